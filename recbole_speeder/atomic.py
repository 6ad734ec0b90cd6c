"""Atomic writes: what is on disk is the old file (or folder) or the whole new one, never half of one.

Every cache, candidate set, checkpoint, converted backbone, prepared dataset and result table
of the plugin goes through this module:

- :func:`atomic_write` (and its text / bytes forms, and :func:`atomic_file` for writers that
  take a file name): the content is written to a temporary file beside the target, flushed
  to disk, then renamed over the target (``os.replace`` is atomic on one file system);
- :func:`atomic_folder`: a folder is filled under a temporary name beside the target and
  renamed into place; an existing target is moved aside first and removed only once the new
  folder is in.

A write that fails or is interrupted removes its temporary file or folder and leaves the old
target untouched; one that fails for want of room (:func:`write_failed`) is a DataError that
names the target. Leftovers of a killed process (``.tmp-*`` beside the target) are removed
by the next replacing folder write to the same place (:func:`remove_stale_temporaries`).
"""

import contextlib
import glob
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary file name beside ``path``; when the block ends without an error the
    file is renamed to ``path`` (for writers that take a file name, not a file object)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_failed(path, err):
    """The DataError of a write to ``path`` that failed with ``err`` (an OSError, or the
    RuntimeError torch's writer raises on a full disk), after the old ``path`` was kept."""
    from recbole_speeder.errors import DataError

    return DataError(f"{path} could not be written ({type(err).__name__}: {err}); is its disk full? "
                     "What was there before is unchanged.")


def atomic_write(path, write, mode="wb", encoding=None):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place;
    a failed write is :func:`write_failed`'s DataError.

    ``mode`` is ``"wb"`` (binary) or ``"w"`` (text, with ``encoding``); missing folders are made.
    """
    try:
        with atomic_file(path) as tmp:
            with open(tmp, mode, encoding=encoding, newline="" if "b" not in mode else None) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
    except (OSError, RuntimeError) as err:
        raise write_failed(path, err) from None


def atomic_write_text(path, text, encoding="utf-8"):
    """Write the string ``text`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text), mode="w", encoding=encoding)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data))


def _temporary_prefix(path):
    return f".tmp-{os.path.basename(os.path.normpath(path))}-"


def remove_stale_temporaries(path):
    """Remove the temporary folders that an interrupted :func:`atomic_folder` of ``path`` left."""
    parent = os.path.dirname(os.path.abspath(path))
    for leftover in glob.glob(os.path.join(glob.escape(parent), glob.escape(_temporary_prefix(path)) + "*")):
        shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(tmp, path):
    """Replace ``path`` by ``tmp``; the old folder is removed only once the new one is in."""
    old = None
    if os.path.lexists(path):
        old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=f".old-{os.path.basename(path)}-")
        os.rmdir(old)
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path, if_exists="replace"):
    """Yield a new empty folder beside ``path``; when the block ends without an error it is
    renamed to ``path``.

    ``if_exists``: ``"replace"`` puts the new folder in place of an existing one; ``"keep"``
    keeps an existing ``path`` and discards the new folder (two processes that build the same
    thing, e.g. a backbone conversion, both end with one complete folder). The folder gets
    the permissions of an ordinary new folder (``mkdtemp`` makes it private).
    """
    if if_exists not in ("replace", "keep"):
        raise ValueError(f"if_exists must be replace or keep (got {if_exists!r})")
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    if if_exists == "replace":  # one writer per path: what an earlier, killed write left is stale
        remove_stale_temporaries(path)
    tmp = tempfile.mkdtemp(dir=parent, prefix=_temporary_prefix(path))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        yield tmp
        if if_exists == "replace":
            _swap_into_place(tmp, path)
        else:
            try:
                os.replace(tmp, path)
            except OSError:  # another process put a complete folder there first: keep it
                if not os.path.isdir(path):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
