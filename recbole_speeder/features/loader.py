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

Every matrix is cached on disk by :class:`~recbole_speeder.features.cache.FeatureCache`
under ``dataset/<name>/features/`` and recomputed only when the encoder or its inputs change.
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recbole_speeder.errors import ConfigError, DataError
from recbole_speeder.features.cache import FeatureCache, fingerprint
from recbole_speeder.features.sequential import sequential_settings, train_sequential_embeddings
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

    @property
    def n_items(self):
        return next(iter(self.tensors.values())).shape[0] if self.tensors else 0

    def lookup(self, item_ids):
        """Features and masks of ``item_ids`` (any shape) -> (dict of [..., d_m], dict of [...])."""
        features = {m: t[item_ids] for m, t in self.tensors.items()}
        masks = {m: k[item_ids] for m, k in self.masks.items()}
        return features, masks

    def to(self, device):
        return ItemFeatures(
            {m: t.to(device) for m, t in self.tensors.items()},
            {m: k.to(device) for m, k in self.masks.items()},
            dict(self.dims),
        )


def _get(config, key, default):
    try:
        value = config[key]
    except KeyError:
        value = None
    return default if value is None else value


def read_item_table(config):
    """The dataset's ``.item`` file as a DataFrame of strings (empty cells -> ""), or None."""
    folder = config["data_path"]
    path = os.path.join(folder, f"{config['dataset']}.item")
    if not os.path.isfile(path):
        return None, path
    try:
        table = pd.read_csv(
            path, sep=_get(config, "field_separator", "\t"), dtype=str, keep_default_na=False,
            encoding=_get(config, "encoding", "utf-8"), engine="python",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"Cannot read item file {path}: {err}") from None
    table.columns = [str(c).split(":")[0] for c in table.columns]
    return table, path


def _item_column(table, path, field_name, key):
    if field_name not in table.columns:
        raise DataError(
            f"Item file {path} has no column '{field_name}' (config key {key}); its columns are "
            f"{', '.join(table.columns)}."
        )
    return table[field_name]


def _text_encoder(config):
    name = _get(config, "text_encoder", "default")
    batch_size = _get(config, "feature_batch_size", 64)
    if name == "llm":
        llm_path = _get(config, "llm_path", "default")

        def loader():
            try:
                from recbole_speeder.model.backbone import load_backbone
            except ImportError:
                raise ConfigError("text_encoder: llm needs recbole_speeder.model.backbone.load_backbone.") from None
            device = _get(config, "feature_device", "auto")
            return load_backbone(llm_path, device=None if device == "auto" else device)

        llm_name = f"llm:{llm_path}"

        return CausalLMTextEncoder(loader, llm_name, batch_size=batch_size, show_progress=_get(config, "show_progress", True))
    return TextEncoder(
        name, device=_get(config, "feature_device", "auto"), batch_size=batch_size,
        show_progress=_get(config, "show_progress", True),
    )


def _vision_encoder(config):
    return VisionEncoder(
        _get(config, "vision_encoder", "default"), device=_get(config, "feature_device", "auto"),
        batch_size=_get(config, "feature_batch_size", 64), show_progress=_get(config, "show_progress", True),
    )


def _text_features(config, cache, table, path, encoder):
    tokens = table[config["ITEM_ID_FIELD"]].tolist()
    titles = _item_column(table, path, _get(config, "TITLE_FIELD", "title"), "TITLE_FIELD").str.strip().tolist()
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


def image_paths(config, table, path):
    """Full image paths per .item row (None where no file is named), or None if the dataset has no images."""
    image_field = _get(config, "IMAGE_FIELD", "image")
    image_dir = os.path.join(config["data_path"], _get(config, "image_dir", "images"))
    if image_field not in table.columns:
        logger.info(f"vision features: {path} has no '{image_field}' column (IMAGE_FIELD); no vision modality.")
        return None
    if not os.path.isdir(image_dir):
        logger.info(f"vision features: no image folder {image_dir} (image_dir); no vision modality.")
        return None
    names = table[image_field].str.strip().tolist()
    return [os.path.join(image_dir, n) if n else None for n in names]


def file_signature(path):
    """(name, size, mtime) of a file, None when it is missing: part of a cache fingerprint."""
    if path is None or not os.path.isfile(path):
        return None
    stat = os.stat(path)
    return [os.path.basename(path), stat.st_size, stat.st_mtime_ns]


def _vision_features(config, cache, table, paths, encoder):
    tokens = table[config["ITEM_ID_FIELD"]].tolist()
    signature = fingerprint(tokens, [file_signature(p) for p in paths])
    return cache.get_or_compute("vision", encoder.identity, signature, tokens, lambda: encoder.encode_files(paths))


def _seq_features(config, cache, dataset, train_data):
    if train_data is None:
        raise ConfigError("The seq modality needs the run's training data: load_item_features(config, dataset, train_data).")
    train_dataset = getattr(train_data, "dataset", train_data)
    iid = dataset.iid_field
    id_tokens = [str(t) for t in dataset.field2id_token[iid]]
    inter = train_dataset.inter_feat
    arrays = [inter[iid].numpy()]
    list_field = iid + _get(config, "LIST_SUFFIX", "_list")
    if list_field in inter.interaction:
        arrays.append(inter[list_field].numpy())
    settings = sequential_settings(config)
    identity = {"name": "SASRec", "kind": "recbole-sasrec-item-embedding", **settings}
    signature = fingerprint(id_tokens, *arrays)

    def compute():
        table = train_sequential_embeddings(config, dataset, train_data).numpy()[1:]
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
    modalities = _get(config, "modalities", list(MODALITIES))
    if isinstance(modalities, str):
        modalities = [modalities]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ConfigError(f"modalities: {modalities} must be a non-empty subset of {list(MODALITIES)}.")
    return [m for m in MODALITIES if m in modalities]


def load_item_features(config, dataset, train_data=None, encoders=None):
    """Cached frozen-encoder features of every item of ``dataset``, aligned with its item ids.

    Args:
        config: the run's config (keys of ``properties/features.yaml``, TITLE_FIELD, IMAGE_FIELD...).
        dataset: the run's RecBole dataset (gives the token <-> id mapping).
        train_data: the run's training dataloader, needed by the seq modality.
        encoders: optional ``{"text": encoder, "vision": encoder}`` to use instead of building
            them from the config (same interface as :class:`TextEncoder` / :class:`VisionEncoder`).

    Returns:
        :class:`ItemFeatures`, also attached as ``dataset.item_features``.
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
        _item_column(table, item_path, config["ITEM_ID_FIELD"], "ITEM_ID_FIELD")
        table = table.drop_duplicates(subset=config["ITEM_ID_FIELD"], keep="first").reset_index(drop=True)

    for modality in modalities:
        if modality == "text":
            cached = _text_features(config, cache, table, item_path, encoders.get("text") or _text_encoder(config))
        elif modality == "vision":
            paths = image_paths(config, table, item_path)
            if paths is None:
                continue
            cached = _vision_features(config, cache, table, paths, encoders.get("vision") or _vision_encoder(config))
        else:
            cached = _seq_features(config, cache, dataset, train_data)
        tensor, mask = _align(cached, id_tokens)
        features.tensors[modality], features.masks[modality] = tensor, mask
        features.dims[modality] = int(tensor.shape[1])
        logger.info(
            f"{modality} features: {int(mask.sum())} of {len(id_tokens) - 1} items present, dim {tensor.shape[1]}"
        )
    dataset.item_features = features
    return features
