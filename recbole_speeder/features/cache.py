"""On-disk cache of frozen-encoder item features (paper, appendix C: pre-computed embeddings).

One modality computed by one encoder is stored as two files in ``dataset/<name>/features/``::

    <modality>-<key>.npy    float32 matrix, one row per item token (row order = ``tokens``)
    <modality>-<key>.json   sidecar: encoder identity, input fingerprint, dim, tokens, mask,
                            and the size / mtime of the .npy it describes

``key`` is derived from the encoder identity (its name and every setting that changes the
vectors), so features of several encoders live side by side and switching back is a hit.
The input fingerprint (item tokens + titles, image file sizes + mtimes, the training split
...) is checked on every load: when it differs the features are recomputed and overwritten.
Rows are keyed by item *token*, not RecBole id, so a cache survives re-mapping of ids.

Both files are written to a temporary file in the same folder and renamed into place
(``os.replace``); the sidecar is written last and records the .npy's size and mtime, so a
run interrupted between the two renames is detected as a miss, never read as a hit.
"""

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np

from recbole_speeder.atomic import atomic_write, atomic_write_bytes

FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


def fingerprint(*parts):
    """Stable sha256 hex digest of strings / numbers / bytes / numpy arrays / nested lists."""
    digest = hashlib.sha256()

    def feed(part):
        if isinstance(part, np.ndarray):
            digest.update(str(part.dtype).encode())
            digest.update(str(part.shape).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            digest.update(part)
        elif isinstance(part, (list, tuple)):
            digest.update(b"[")
            for item in part:
                feed(item)
                digest.update(b"\x1f")
            digest.update(b"]")
        elif isinstance(part, dict):
            feed(json.dumps(part, sort_keys=True, default=str))
        else:
            digest.update(str(part).encode("utf-8"))
        digest.update(b"\x1e")

    for part in parts:
        feed(part)
    return digest.hexdigest()


def file_signature(path):
    """(name, size, mtime) of a file, None when it is missing: part of a cache fingerprint."""
    if path is None or not os.path.isfile(path):
        return None
    stat = os.stat(path)
    return [os.path.basename(path), stat.st_size, stat.st_mtime_ns]


def _folder_files(path):
    """(name, path, stat) of every file of a folder, by name; None when it is not a folder."""
    if not os.path.isdir(path):
        return None
    files = ((name, os.path.join(path, name)) for name in sorted(os.listdir(path)))
    return [(name, full, os.stat(full)) for name, full in files if os.path.isfile(full)]


def folder_signature(path):
    """Sizes and mtimes of a local model folder's files (a changed checkpoint changes the key)."""
    files = _folder_files(path)
    return None if files is None else [[name, stat.st_size, stat.st_mtime_ns] for name, _, stat in files]


_digests = {}  # (path, size, mtime) -> sha256 of the file's bytes, read once per process


def folder_digest(path):
    """[name, sha256] of every file of a model folder, None when it is not a folder: an identity
    that a copy of the same model on another machine (new mtimes) shares."""
    files = _folder_files(path)
    if files is None:
        return None
    entries = []
    for name, full, stat in files:
        key = (os.path.abspath(full), stat.st_size, stat.st_mtime_ns)
        if key not in _digests:
            digest = hashlib.sha256()
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 24), b""):
                    digest.update(block)
            _digests[key] = digest.hexdigest()
        entries.append([name, _digests[key]])
    return entries


def identity_key(identity):
    """File-name key of an encoder identity: readable name + short hash of all settings."""
    name = str(identity.get("name", "encoder"))
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name.rstrip("/\\")) or name).strip("_")
    return f"{slug[:48] or 'encoder'}-{fingerprint(identity)[:10]}"


@dataclass
class CachedFeatures:
    """Features of one modality, rows in ``tokens`` order; ``mask`` True = the item has an input."""

    matrix: np.ndarray
    tokens: list
    mask: np.ndarray
    meta: dict = field(default_factory=dict)
    hit: bool = False

    @property
    def dim(self):
        return int(self.matrix.shape[1])

    def row_of(self):
        """Map item token -> row index."""
        return {token: row for row, token in enumerate(self.tokens)}


class FeatureCache:
    """Feature matrices of one dataset, stored under ``folder`` (``dataset/<name>/features``)."""

    def __init__(self, folder):
        self.folder = folder

    def paths(self, modality, identity):
        stem = os.path.join(self.folder, f"{modality}-{identity_key(identity)}")
        return stem + ".npy", stem + ".json"

    def load(self, modality, identity, input_fingerprint):
        """Cached features, or None when absent, stale (other inputs) or incomplete."""
        npy_path, json_path = self.paths(modality, identity)
        if not (os.path.isfile(npy_path) and os.path.isfile(json_path)):
            return None
        try:
            with open(json_path, "r", encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            logger.warning(f"Feature cache sidecar {json_path} is unreadable; recomputing.")
            return None
        stat = os.stat(npy_path)
        if (
            meta.get("format_version") != FORMAT_VERSION
            or meta.get("input_fingerprint") != input_fingerprint
            or meta.get("encoder") != json.loads(json.dumps(identity, default=str))
            or meta.get("npy_size") != stat.st_size
            or meta.get("npy_mtime_ns") != stat.st_mtime_ns
        ):
            return None
        try:
            matrix = np.load(npy_path, allow_pickle=False)
        except (OSError, ValueError):
            logger.warning(f"Feature cache file {npy_path} is unreadable; recomputing.")
            return None
        if matrix.shape != (len(meta["tokens"]), meta["dim"]):
            return None
        mask = np.asarray(meta["mask"], dtype=bool)
        return CachedFeatures(matrix, list(meta["tokens"]), mask, meta, hit=True)

    def save(self, modality, identity, input_fingerprint, tokens, matrix, mask):
        """Write features atomically and return them as :class:`CachedFeatures`."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        mask = np.asarray(mask, dtype=bool)
        if matrix.ndim != 2 or matrix.shape[0] != len(tokens) or mask.shape != (len(tokens),):
            raise ValueError(
                f"{modality} features: matrix {matrix.shape}, mask {mask.shape} and {len(tokens)} tokens disagree"
            )
        npy_path, json_path = self.paths(modality, identity)
        atomic_write(npy_path, lambda f: np.save(f, matrix, allow_pickle=False))
        stat = os.stat(npy_path)
        meta = {
            "format_version": FORMAT_VERSION,
            "modality": modality,
            "encoder": json.loads(json.dumps(identity, default=str)),
            "input_fingerprint": input_fingerprint,
            "dim": int(matrix.shape[1]),
            "n_rows": int(matrix.shape[0]),
            "n_present": int(mask.sum()),
            "npy_size": stat.st_size,
            "npy_mtime_ns": stat.st_mtime_ns,
            "tokens": [str(t) for t in tokens],
            "mask": [bool(m) for m in mask],
        }
        payload = json.dumps(meta, indent=1).encode("utf-8")
        atomic_write_bytes(json_path, payload)
        return CachedFeatures(matrix, [str(t) for t in tokens], mask, meta, hit=False)

    def get_or_compute(self, modality, identity, input_fingerprint, tokens, compute):
        """Load cached features, or call ``compute() -> (matrix, mask)`` and cache its result."""
        cached = self.load(modality, identity, input_fingerprint)
        npy_path, _ = self.paths(modality, identity)
        if cached is not None and list(cached.tokens) == [str(t) for t in tokens]:
            logger.info(f"{modality} features: cache hit {npy_path}")
            return cached
        logger.info(f"{modality} features: computing ({len(tokens)} items) -> {npy_path}")
        matrix, mask = compute()
        return self.save(modality, identity, input_fingerprint, tokens, matrix, mask)
