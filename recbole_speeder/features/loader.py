"""Item features of a RecBole dataset, aligned with its internal item ids (paper, section 2.3).

``load_item_features(config, dataset, train_data)`` returns, for the modalities asked for
(``modalities``: text, vision, seq), one frozen-encoder vector per item plus a presence
mask, row i = RecBole internal item id i (row 0 = [PAD]: zeros, mask False):

- text: titles read straight from ``dataset/<name>/<name>.item`` (column ``TITLE_FIELD``),
  encoded by ``text_encoder`` (:mod:`recbole_speeder.features.text`);
- vision: images ``dataset/<name>/<image_dir>/<file>`` named in column ``IMAGE_FIELD``,
  encoded by ``vision_encoder`` (:mod:`recbole_speeder.features.vision`); a dataset with no
  such column or folder (ml-100k) simply has no vision modality;
- seq: SASRec item embeddings trained on the run's training split
  (:mod:`recbole_speeder.features.sequential`).

What lies above this layer is handed in, not imported: the backbone for ``text_encoder: llm``
(``llm_loader``) and the training of the id encoder (``sequence_encoder``); the run builds
both (:func:`recbole_speeder.quick_start.attach_side_info`).

Every matrix is cached on disk by :class:`~recbole_speeder.features.cache.FeatureCache`
under ``dataset/<name>/features/`` and recomputed only when the encoder or its inputs change.
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from recbole_speeder.data.item_table import image_paths, item_column, read_item_table
from recbole_speeder.errors import ConfigError, DataError
from recbole_speeder.features.cache import FeatureCache, file_signature, fingerprint
from recbole_speeder.features.sequential import sequential_settings, training_split_fingerprint
from recbole_speeder.features.text import CausalLMTextEncoder, TextEncoder
from recbole_speeder.features.vision import VisionEncoder

logger = logging.getLogger(__name__)

MODALITIES = ("text", "vision", "seq")


@dataclass
class ItemFeatures:
    """Frozen item features, rows indexed by RecBole internal item id.

    Attributes:
        tensors: modality -> float32 tensor [n_items, d_m].
        masks: modality -> bool tensor [n_items] (True = the item has this input).
        dims: modality -> d_m.
    """

    tensors: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)

    @property
    def modalities(self):
        return tuple(m for m in MODALITIES if m in self.tensors)

    @classmethod
    def random(cls, n_items, dims, generator=None):
        """Features of random values (``dims``: modality -> width, drawn in that order), every item
        with every input but row 0, [PAD] (zeros, mask False): for timing and tests."""
        features = cls()
        for m, dim in dims.items():
            tensor = torch.randn(n_items, dim, generator=generator)
            tensor[0] = 0
            mask = torch.ones(n_items, dtype=torch.bool)
            mask[0] = False
            features.tensors[m], features.masks[m], features.dims[m] = tensor, mask, dim
        return features


def _text_encoder(config, llm_loader):
    name = config["text_encoder"]
    batch_size = config["feature_batch_size"]
    if name == "llm":
        if llm_loader is None:
            raise ConfigError("text_encoder: llm needs the run's backbone (llm_loader), and none was handed in.")
        return CausalLMTextEncoder(llm_loader, f"llm:{config['llm_path']}", batch_size=batch_size,
                                   show_progress=config["show_progress"])
    return TextEncoder(name, device=config["feature_device"], batch_size=batch_size,
                       show_progress=config["show_progress"])


def _vision_encoder(config):
    return VisionEncoder(config["vision_encoder"], device=config["feature_device"],
                         batch_size=config["feature_batch_size"], show_progress=config["show_progress"])


def _text_features(config, cache, table, path, encoder):
    tokens = table[config["ITEM_ID_FIELD"]].tolist()
    titles = item_column(table, path, config["TITLE_FIELD"], "TITLE_FIELD").str.strip().tolist()
    present = np.array([bool(t) for t in titles])

    def compute():
        idx = np.flatnonzero(present)
        encoded = encoder.encode([titles[i] for i in idx])
        matrix = np.zeros((len(titles), encoded.shape[1]), dtype=np.float32)
        matrix[idx] = encoded
        if (~present).any():
            logger.warning(f"text features: {int((~present).sum())} items have an empty title (mask False)")
        return matrix, present

    return cache.get_or_compute("text", encoder.identity, fingerprint(tokens, titles), tokens, compute)


def _vision_features(config, cache, table, paths, encoder):
    tokens = table[config["ITEM_ID_FIELD"]].tolist()
    signature = fingerprint(tokens, [file_signature(p) for p in paths])
    return cache.get_or_compute("vision", encoder.identity, signature, tokens, lambda: encoder.encode_files(paths))


def _seq_features(config, cache, dataset, train_data, sequence_encoder):
    if train_data is None or sequence_encoder is None:
        raise ConfigError("The seq modality needs the run's training data and its id encoder: "
                          "load_item_features(config, dataset, train_data, sequence_encoder=...).")
    id_tokens, signature = training_split_fingerprint(config, dataset, train_data)
    identity = {"name": "SASRec", "kind": "recbole-sasrec-item-embedding", **sequential_settings(config)}

    def compute():
        table = sequence_encoder(dataset, train_data).numpy()[1:]
        return table, np.ones(len(table), dtype=bool)

    return cache.get_or_compute("seq", identity, signature, id_tokens[1:], compute)


def _align(cached, id_tokens):
    """Rows of ``cached`` in RecBole id order (missing tokens and [PAD]: zeros, mask False)."""
    row_of = cached.row_of()
    rows = np.array([row_of.get(t, -1) for t in id_tokens])
    rows[0] = -1
    found = rows >= 0
    matrix = np.zeros((len(id_tokens), cached.dim), dtype=np.float32)
    matrix[found] = cached.matrix[rows[found]]
    mask = np.zeros(len(id_tokens), dtype=bool)
    mask[found] = cached.mask[rows[found]]
    matrix[~mask] = 0.0
    return torch.from_numpy(matrix), torch.from_numpy(mask)


def requested_modalities(config):
    modalities = config["modalities"]
    if isinstance(modalities, str):
        modalities = [modalities]
    unknown = [m for m in modalities or [] if m not in MODALITIES]
    if unknown or not modalities:
        raise ConfigError(f"modalities: {modalities} must be a non-empty subset of {list(MODALITIES)}.")
    return [m for m in MODALITIES if m in modalities]


def load_item_features(config, dataset, train_data=None, encoders=None, llm_loader=None, sequence_encoder=None):
    """Cached frozen-encoder features of every item of ``dataset``, aligned with its item ids.

    Args:
        config: the run's config (keys of ``properties/features.yaml``, TITLE_FIELD, IMAGE_FIELD...).
        dataset: the run's RecBole dataset (gives the token <-> id mapping).
        train_data: the run's training dataloader, needed by the seq modality.
        encoders: optional ``{"text": encoder, "vision": encoder}`` to use instead of building
            them from the config (same interface as :class:`TextEncoder` / :class:`VisionEncoder`).
        llm_loader: ``() -> (model, tokenizer)``, the backbone, for ``text_encoder: llm``.
        sequence_encoder: ``(dataset, train_data) -> float tensor [n_items, d]``, trains the id
            encoder on the training split (the seq modality; computed only on a cache miss).

    Returns:
        :class:`ItemFeatures`.
    """
    encoders = dict(encoders or {})
    modalities = requested_modalities(config)
    cache = FeatureCache(os.path.join(config["data_path"], "features"))
    id_tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    features = ItemFeatures()

    table, item_path = (None, None)
    if "text" in modalities or "vision" in modalities:
        table, item_path = read_item_table(config)
        if table is None:
            raise DataError(
                f"Item file {item_path} is missing: the text / vision modalities read titles and image "
                "names from it. Prepare the dataset (dataset/README.md) or set modalities: [seq]."
            )
        item_column(table, item_path, config["ITEM_ID_FIELD"], "ITEM_ID_FIELD")
        table = table.drop_duplicates(subset=config["ITEM_ID_FIELD"], keep="first").reset_index(drop=True)

    for modality in modalities:
        if modality == "text":
            encoder = encoders.get("text") or _text_encoder(config, llm_loader)
            cached = _text_features(config, cache, table, item_path, encoder)
        elif modality == "vision":
            paths = image_paths(config, table, item_path)
            if paths is None:
                continue
            cached = _vision_features(config, cache, table, paths, encoders.get("vision") or _vision_encoder(config))
        else:
            cached = _seq_features(config, cache, dataset, train_data, sequence_encoder)
        tensor, mask = _align(cached, id_tokens)
        features.tensors[modality], features.masks[modality] = tensor, mask
        features.dims[modality] = int(tensor.shape[1])
        logger.info(
            f"{modality} features: {int(mask.sum())} of {len(id_tokens) - 1} items present, dim {tensor.shape[1]}"
        )
    return features
