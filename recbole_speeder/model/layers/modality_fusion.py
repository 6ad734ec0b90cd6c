"""What the multimodal ID baselines SASRecEF and SASRecLF share (Speeder paper, appendix B).

Both are RecBole's SASRec with the run's frozen text and image features beside its trainable item
id embedding; the features are the ones Speeder reads (:mod:`recbole_speeder.features.loader`,
attached to the dataset as ``item_features``):

- :func:`feature_modalities` / :func:`check_feature_modalities`: which of the loaded modalities
  they read (``text``, ``vision``; never ``seq``: their id input is their own item embedding);
- :class:`FrozenModalities`: the features and presence masks as buffers (frozen, kept out of
  checkpoints: a run rebuilds them from the feature cache);
- :class:`ModalityProjection`: one modality's features to the model's width, LayerNorm then a
  linear map, exactly zero for an item without that input (mask False, [PAD]);
- :func:`encode_sequence`: SASRec's forward on given input embeddings (position embedding,
  LayerNorm, dropout, causal transformer, the output at the last item);
- :class:`FusedScoringMixin`: SASRec's loss (``loss_type`` CE or BPR), ``predict`` and
  ``full_sort_predict`` for a model that scores a sequence representation against an item table
  of its own (dot product).
"""

import logging

import torch
from torch import nn

from recbole_speeder.errors import ConfigError

logger = logging.getLogger(__name__)

FEATURE_MODALITIES = ("text", "vision")  # what the fusion baselines read; the id input is their own


def check_feature_modalities(model_name, config):
    """Before any data is read: ``modalities`` names only text / vision (``seq`` is Speeder's
    frozen SASRec, which these models replace with their own trainable item embedding)."""
    from recbole_speeder.features.loader import requested_modalities

    modalities = requested_modalities(config)
    if "seq" in modalities:
        raise ConfigError(f"modalities: {model_name} reads text and vision features; its id input is its own "
                          "trainable item embedding, not the seq features of a frozen SASRec: "
                          f"set modalities: {[m for m in modalities if m != 'seq'] or ['text', 'vision']}.")


def feature_modalities(model_name, config, features):
    """The modalities of ``features`` (:class:`~recbole_speeder.features.loader.ItemFeatures`) that
    the model fuses: those asked for and loaded; a modality asked for that the dataset lacks (images
    of ml-100k) is left out with a warning; none at all is a ConfigError."""
    from recbole_speeder.features.loader import requested_modalities

    asked = [m for m in requested_modalities(config) if m in FEATURE_MODALITIES]
    loaded = [m for m in asked if m in features.modalities]
    for m in asked:
        if m not in loaded:
            logger.warning(f"{model_name}: the dataset has no {m} features; it fuses the item id with "
                           f"{' and '.join(loaded) or 'nothing'} only.")
    if not loaded:
        raise ConfigError(f"{model_name} fuses text / image features with the item id, and this run loaded none "
                          f"(modalities: {asked}); use SASRec for the ids alone.")
    return tuple(loaded)


class FrozenModalities(nn.Module):
    """Frozen item features of some modalities: ``feature(m)`` [n_items, d_m], ``mask(m)`` [n_items]
    (True = the item has this input; row 0, [PAD], never has), non-persistent buffers."""

    def __init__(self, features, modalities):
        super().__init__()
        self.modalities = tuple(modalities)
        self.dims = {m: int(features.dims[m]) for m in self.modalities}
        for m in self.modalities:
            mask = features.masks[m].bool().clone()
            mask[0] = False
            self.register_buffer(f"feature_{m}", features.tensors[m].float(), persistent=False)
            self.register_buffer(f"mask_{m}", mask, persistent=False)

    def feature(self, modality):
        return getattr(self, f"feature_{modality}")

    def mask(self, modality):
        return getattr(self, f"mask_{modality}")


class ModalityProjection(nn.Module):
    """A modality's features to width ``hidden``: Linear(LayerNorm(x)) (the LayerNorm puts encoders
    of very different scales on one footing); items without the input get exactly zero."""

    def __init__(self, dim, hidden, eps=1e-12):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.linear = nn.Linear(dim, hidden)

    def forward(self, features, mask):
        return self.linear(self.norm(features)) * mask.unsqueeze(-1).to(features.dtype)


def encode_sequence(model, branch, item_emb, item_seq, item_seq_len):
    """SASRec's forward (RecBole's ``SASRec.forward``) on the input embeddings ``item_emb`` [B, L, H]:
    ``branch`` holds the ``position_embedding``, ``LayerNorm``, ``dropout`` and ``trm_encoder`` (the
    SASRec ``model`` itself, or a branch of SASRecLF with the same attributes), ``model`` the
    attention mask and the gathering. Returns the last item's output [B, H]."""
    position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
    position_embedding = branch.position_embedding(position_ids.unsqueeze(0).expand_as(item_seq))
    input_emb = branch.dropout(branch.LayerNorm(item_emb + position_embedding))
    attention_mask = model.get_attention_mask(item_seq)
    output = branch.trm_encoder(input_emb, attention_mask, output_all_encoded_layers=True)[-1]
    return model.gather_indexes(output, item_seq_len - 1)


class FusedScoringMixin:
    """What SASRecEF and SASRecLF share: the frozen ``item_features`` they declare (checked before
    any data is read, loaded by :meth:`frozen_features`), and SASRec's loss, ``predict`` and
    ``full_sort_predict`` over the model's own item table.

    The model gives ``item_table()`` ([n_items, D], every item's representation, used as input and
    as output) and ``sequence_output(item_seq, item_seq_len, table)`` ([B, D]); an item's score is
    the dot product of the two, so ``full_sort_predict`` gathered at some items equals ``predict``
    at them. ``loss_type`` CE: cross-entropy over every item; BPR: RecBole's sampled negative.
    """

    side_info = ("item_features",)

    @classmethod
    def side_info_for(cls, config):
        return cls.side_info

    @classmethod
    def check_config(cls, config):
        check_feature_modalities(cls.__name__, config)

    def frozen_features(self, config, dataset):
        """The dataset's item features of the modalities this model reads, as frozen buffers."""
        features = dataset.side_info("item_features", type(self).__name__)
        return FrozenModalities(features, feature_modalities(type(self).__name__, config, features))

    def forward(self, item_seq, item_seq_len):
        return self.sequence_output(item_seq, item_seq_len, self.item_table())

    def calculate_loss(self, interaction):
        table = self.item_table()
        seq_output = self.sequence_output(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], table)
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "BPR":
            neg_items = interaction[self.NEG_ITEM_ID]
            pos_score = (seq_output * table[pos_items]).sum(dim=-1)
            neg_score = (seq_output * table[neg_items]).sum(dim=-1)
            return self.loss_fct(pos_score, neg_score)
        return self.loss_fct(seq_output @ table.t(), pos_items)

    def predict(self, interaction):
        table = self.item_table()
        seq_output = self.sequence_output(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], table)
        return (seq_output * table[interaction[self.ITEM_ID]]).sum(dim=1)

    def full_sort_predict(self, interaction):
        table = self.item_table()
        seq_output = self.sequence_output(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], table)
        return seq_output @ table.t()
