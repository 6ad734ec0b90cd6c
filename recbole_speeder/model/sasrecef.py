r"""SASRecEF
################################################

Reference:
    "A Remarkably Efficient Paradigm to Multimodal Large Language Models for Sequential
    Recommendation" (Speeder), arXiv 2511.05885, appendix B: "SASRec + EarlyFusion enhances SASRec
    by incorporating ID, text, and image inputs, with Early Fusion applied", after the fusion
    baselines of ODMT (Ji et al., "Online Distillation-enhanced Multi-modal Transformer for
    Sequential Recommendation", ACM MM 2023, arXiv 2308.04067).

RecBole's SASRec whose item representation fuses, per item and before the transformer, its
trainable id embedding with its frozen text and image features (the run's cached features, the
ones Speeder reads; ``modalities: [text, vision]``):

    e(i) = E_id(i) + sum over m in {text, vision} of mask_m(i) * W_m LayerNorm(x_m(i)) + b_m

(a linear early fusion: the same as a linear map of the concatenation [E_id(i); x_t(i); x_v(i)],
without the hidden LeakyReLU layer of ODMT's concatenation fusion). e(i) is the item's input to
SASRec's transformer and its output embedding alike: an item's score is the dot product of the
sequence's last output with e(i), so ``full_sort_predict`` ranks the whole catalog and the
candidate protocol reads it as for SASRec. ``loss_type``: CE over every item (default) or BPR on
RecBole's sampled negative, as SASRec.

A missing modality contributes nothing: an item without a title or an image (mask False) has
e(i) = E_id(i) + the modalities it has, and a dataset without images (ml-100k) fuses the id with
the text alone (logged). ``modalities`` names text and / or vision only; the frozen SASRec
features ``seq`` are refused (the id input is the model's own embedding). The features are
buffers kept out of checkpoints: a run rebuilds them from the feature cache.
"""

from recbole.model.sequential_recommender.sasrec import SASRec
from torch import nn

from recbole_speeder.model.layers.modality_fusion import FusedScoringMixin, ModalityProjection, encode_sequence


class SASRecEF(FusedScoringMixin, SASRec):
    """SASRec on the early fusion of item id, text and image embeddings (Speeder, appendix B)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.features = self.frozen_features(config, dataset)
        self.projections = nn.ModuleDict({
            m: ModalityProjection(self.features.dims[m], self.hidden_size, eps=self.layer_norm_eps)
            for m in self.features.modalities
        })
        self.projections.apply(self._init_weights)

    def item_table(self):
        """e(i) of every item [n_items, hidden_size] (the features add nothing to row 0, [PAD])."""
        table = self.item_embedding.weight
        for m in self.features.modalities:
            table = table + self.projections[m](self.features.feature(m), self.features.mask(m))
        return table

    def sequence_output(self, item_seq, item_seq_len, table):
        return encode_sequence(self, self, table[item_seq], item_seq, item_seq_len)
