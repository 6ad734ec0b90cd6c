"""Atomic file writes: what is on disk is the old file or the whole new one, never half of one.

Every cache, candidate set, checkpoint file and result table of the plugin goes through
:func:`atomic_write`: the content is written to a temporary file beside the target, flushed
to disk, then renamed over the target (``os.replace`` is atomic on one file system). A write
that fails or is interrupted removes its temporary file and leaves the old target untouched.
"""

import os
import tempfile


def atomic_write(path, write, mode="wb", encoding=None):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.

    ``mode`` is ``"wb"`` (binary) or ``"w"`` (text, with ``encoding``); missing folders are made.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline="" if "b" not in mode else None) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text, encoding="utf-8"):
    """Write the string ``text`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text), mode="w", encoding=encoding)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data))
