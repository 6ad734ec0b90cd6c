"""Frozen item encoders (text, vision, sequential ids), their on-disk cache and the loader.

Entry point: :func:`load_item_features` (paper, section 2.3; pre-computed features as in
appendix C).
"""

from recbole_speeder.features.cache import FeatureCache, fingerprint
from recbole_speeder.features.loader import MODALITIES, ItemFeatures, load_item_features
from recbole_speeder.features.sequential import item_embeddings, load_sequence_teacher, train_sequential_model
from recbole_speeder.features.text import CausalLMTextEncoder, TextEncoder, encode_with_causal_lm
from recbole_speeder.features.vision import VisionEncoder

__all__ = [
    "MODALITIES", "ItemFeatures", "load_item_features", "FeatureCache", "fingerprint",
    "TextEncoder", "CausalLMTextEncoder", "encode_with_causal_lm", "VisionEncoder",
    "train_sequential_model", "item_embeddings", "load_sequence_teacher",
]
