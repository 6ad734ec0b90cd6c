r"""SASRecLF
################################################

Reference:
    "A Remarkably Efficient Paradigm to Multimodal Large Language Models for Sequential
    Recommendation" (Speeder), arXiv 2511.05885, appendix B: "SASRec + LateFusion [...] utilizing
    Late Fusion to integrate ID, text, and image features through Transformer layers", after the
    late-fusion baseline of ODMT (Ji et al., "Online Distillation-enhanced Multi-modal Transformer
    for Sequential Recommendation", ACM MM 2023, arXiv 2308.04067).

RecBole's SASRec run once per modality, the sequence representations fused after the
transformers. Each modality m in {id, text, vision} has its item representation and a SASRec
encoder of its own (position embedding, LayerNorm, dropout, transformer; the same ``n_layers``,
``n_heads``, ``hidden_size``, ``inner_size``):

- r_id(i) = E_id(i), the trainable item embedding, encoded by SASRec's own modules (the id
  branch is exactly SASRec);
- r_m(i) = mask_m(i) * (W_m LayerNorm(x_m(i)) + b_m) for the frozen text / image features x_m
  (the run's cached features, the ones Speeder reads; ``modalities: [text, vision]``);
- s_m = the m-branch's output at the last history item, on the inputs r_m of the history.

Fusion: the sequence is [s_id; s_text; s_vision] and an item [r_id(i); r_text(i); r_vision(i)]
(concatenations), so an item's score is sum over m of s_m . r_m(i): the sum of the per-modality
SASRec scores (ODMT's late fusion combines the branches' scores too). One loss on the
fused scores, ``loss_type`` CE over every item (default) or BPR, as SASRec; ``full_sort_predict``
ranks the whole catalog and the candidate protocol reads it as for SASRec.

A missing modality contributes nothing: an item without a title or an image has r_m(i) = 0, so it
enters that branch's history as its position embedding only and gets no score from that branch;
a dataset without images (ml-100k) has no vision branch at all (logged). ``modalities`` names
text and / or vision only; the frozen SASRec features ``seq`` are refused (the id branch is the
model's own). The features are buffers kept out of checkpoints: a run rebuilds them from the
feature cache.
"""

import torch
from recbole.model.layers import TransformerEncoder
from recbole.model.sequential_recommender.sasrec import SASRec
from torch import nn

from recbole_speeder.model.layers.modality_fusion import FusedScoringMixin, ModalityProjection, encode_sequence


class SequenceBranch(nn.Module):
    """SASRec's sequence modules for one modality (the attribute names of RecBole's SASRec)."""

    def __init__(self, model):
        super().__init__()
        self.position_embedding = nn.Embedding(model.max_seq_length, model.hidden_size)
        self.trm_encoder = TransformerEncoder(
            n_layers=model.n_layers, n_heads=model.n_heads, hidden_size=model.hidden_size,
            inner_size=model.inner_size, hidden_dropout_prob=model.hidden_dropout_prob,
            attn_dropout_prob=model.attn_dropout_prob, hidden_act=model.hidden_act,
            layer_norm_eps=model.layer_norm_eps,
        )
        self.LayerNorm = nn.LayerNorm(model.hidden_size, eps=model.layer_norm_eps)
        self.dropout = nn.Dropout(model.hidden_dropout_prob)


class SASRecLF(FusedScoringMixin, SASRec):
    """One SASRec per modality (item id, text, image), sequence representations fused late
    (Speeder, appendix B)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.features = self.frozen_features(config, dataset)
        modalities = self.features.modalities
        self.projections = nn.ModuleDict({
            m: ModalityProjection(self.features.dims[m], self.hidden_size, eps=self.layer_norm_eps) for m in modalities
        })
        self.branches = nn.ModuleDict({m: SequenceBranch(self) for m in modalities})
        self.projections.apply(self._init_weights)
        self.branches.apply(self._init_weights)

    def item_table(self):
        """[r_id(i); r_text(i); r_vision(i)] of every item [n_items, hidden_size x branches]."""
        tables = [self.item_embedding.weight]
        tables += [self.projections[m](self.features.feature(m), self.features.mask(m)) for m in self.features.modalities]
        return torch.cat(tables, dim=1)

    def sequence_output(self, item_seq, item_seq_len, table):
        """[s_id; s_text; s_vision] [B, hidden_size x branches]: each branch on its slice of ``table``."""
        slices = table.split(self.hidden_size, dim=1)
        branches = [self] + [self.branches[m] for m in self.features.modalities]
        return torch.cat([encode_sequence(self, branch, rows[item_seq], item_seq, item_seq_len)
                          for branch, rows in zip(branches, slices)], dim=1)
