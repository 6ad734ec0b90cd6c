"""On-disk cache of generated texts (item summaries, user-preference summaries of MLLM-MSR).

The feature cache (:mod:`recbole_speeder.features.cache`) stores one float matrix per
encoder; generated texts are different: they are produced a few at a time (a batch of
sequences during training) and keyed by their own inputs. A :class:`TextCache` is one
folder per generator identity (its name and every setting that changes the texts)::

    dataset/<name>/features/<kind>-<identity key>/
        identity.json           the identity, written once
        part-<time>-<pid>-<n>.json   {"identity": ..., "entries": {key: text}}

Each entry's key is a fingerprint of everything the text was made from (item tokens and
their descriptions, a history prefix...), so a changed input is a miss for that entry only,
and an identity change (another backbone, template, block size) opens another folder.
New entries are kept in memory and written by :meth:`TextCache.flush` as one new part file
(temporary file + ``os.replace``, as the feature cache does), so an interrupted run never
leaves a half-written part and concurrent processes never write the same file. A part that
cannot be read, or that belongs to another identity, is skipped with a warning.
"""

import itertools
import json
import logging
import os
import time

from recbole_speeder.atomic import atomic_write_bytes
from recbole_speeder.features.cache import identity_key

FORMAT_VERSION = 1

logger = logging.getLogger(__name__)
_counter = itertools.count()


class TextCache:
    """Texts of one generator identity, keyed by input fingerprints (see the module doc)."""

    def __init__(self, root, kind, identity):
        self.identity = json.loads(json.dumps(identity, default=str))
        self.folder = os.path.join(root, f"{kind}-{identity_key({'kind': kind, **self.identity})}")
        self.entries = {}
        self.pending = {}
        self._parts = set()  # part files already in ``entries`` (read, or written by this cache)
        self._load()

    def _load(self):
        if not os.path.isdir(self.folder):
            return
        for name in sorted(os.listdir(self.folder)):
            if not (name.startswith("part-") and name.endswith(".json")) or name in self._parts:
                continue
            self._parts.add(name)
            path = os.path.join(self.folder, name)
            try:
                with open(path, "r", encoding="utf-8") as f:
                    part = json.load(f)
            except (OSError, ValueError):
                logger.warning(f"Text cache part {path} is unreadable; skipped.")
                continue
            if part.get("format_version") != FORMAT_VERSION or part.get("identity") != self.identity:
                logger.warning(f"Text cache part {path} belongs to another generator; skipped.")
                continue
            self.entries.update(part.get("entries") or {})

    def reload(self):
        """Read the parts written since this cache was opened or last reloaded (by other
        processes, say); entries not yet flushed keep this cache's text."""
        self._load()
        self.entries.update(self.pending)

    def __len__(self):
        return len(self.entries)

    def __contains__(self, key):
        return key in self.entries

    def get(self, key, default=None):
        return self.entries.get(key, default)

    def put(self, key, text):
        """Remember ``text`` under ``key`` (written to disk by the next :meth:`flush`)."""
        text = str(text)
        if self.entries.get(key) != text:
            self.entries[key] = text
            self.pending[key] = text

    def flush(self):
        """Write the entries added since the last flush as one new part file; return their count."""
        if not self.pending:
            return 0
        os.makedirs(self.folder, exist_ok=True)
        identity_path = os.path.join(self.folder, "identity.json")
        if not os.path.isfile(identity_path):
            payload = json.dumps(self.identity, indent=1).encode("utf-8")
            atomic_write_bytes(identity_path, payload)
        part = {"format_version": FORMAT_VERSION, "identity": self.identity, "entries": self.pending}
        payload = json.dumps(part, ensure_ascii=False).encode("utf-8")
        name = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_counter)}.json"
        atomic_write_bytes(os.path.join(self.folder, name), payload)
        self._parts.add(name)
        count, self.pending = len(self.pending), {}
        return count
