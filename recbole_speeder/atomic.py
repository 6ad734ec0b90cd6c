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
names the target. A killed process cannot clean up: every temporary is named after its target and
its writer (``.tmp-<target>-<host>-<pid>-<random>``, and ``.old-...`` for a folder moved aside),
and every write removes, from the folder it writes into, the temporaries whose writer on this
machine has ended (:func:`remove_stale_temporaries`); a live writer's are left alone, so two
runs may write into one folder at once.
"""

import contextlib
import os
import re
import shutil
import socket
import tempfile
import zlib

# the writer of a temporary: a hash of this machine's name and the process id
_HOST = format(zlib.crc32(socket.gethostname().encode("utf-8")), "08x")
# .tmp-<target>-<host>-<pid>-<8 random characters of tempfile><the target's extension, for files>
_TEMPORARY = re.compile(
    r"^\.(?P<kind>tmp|old)-(?P<target>.+)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[a-z0-9_]{8}(?:\.[^/]*)?$")


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary file name beside ``path``; when the block ends without an error the
    file is renamed to ``path`` (for writers that take a file name, not a file object)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(path), suffix=os.path.splitext(path)[1])
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


def _temporary_prefix(path, kind="tmp"):
    return f".{kind}-{os.path.basename(os.path.normpath(path))}-{_HOST}-{os.getpid()}-"


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (PermissionError): alive
        return True
    return True


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def remove_stale_temporaries(path, same_target=False):
    """Remove what killed writes left in the folder of ``path``: the temporary files and folders
    (``.tmp-*``, ``.old-*``) whose writer ran on this machine and has ended, whatever their target.
    A folder moved aside (``.old-``) whose target is missing goes back in its place: the write
    stopped between its two renames, and the old folder is the last complete one.

    ``same_target``: also remove untagged ``.tmp-<target>-*`` temporaries of ``path`` itself
    (written before temporaries named their writer), for writes that own ``path`` (one writer
    per path)."""
    parent = os.path.dirname(os.path.abspath(path))
    target = os.path.basename(os.path.normpath(path))
    try:
        names = [n for n in os.listdir(parent) if n.startswith((".tmp-", ".old-"))]
    except FileNotFoundError:
        return
    for name in names:
        leftover = os.path.join(parent, name)
        tagged = _TEMPORARY.match(name)
        if tagged is None:
            if same_target and name.startswith(f".tmp-{target}-"):
                _remove(leftover)
            continue
        if tagged["host"] != _HOST or _process_alive(int(tagged["pid"])):
            continue  # a live writer's, or another machine's: not ours to judge
        original = os.path.join(parent, tagged["target"])
        if tagged["kind"] == "old" and not os.path.lexists(original):
            try:
                os.replace(leftover, original)
                continue
            except OSError:  # another process put a folder there meanwhile: this one is stale
                pass
        _remove(leftover)


def _swap_into_place(tmp, path):
    """Replace ``path`` by ``tmp``; the old folder is removed only once the new one is in."""
    old = None
    if os.path.lexists(path):
        old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=_temporary_prefix(path, kind="old"))
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
    # "replace": one writer per path, so what an earlier, killed write of it left is stale
    remove_stale_temporaries(path, same_target=if_exists == "replace")
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
