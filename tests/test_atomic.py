"""Atomic writes leave no temporaries: a failed write removes its own, and the next write into a
folder removes what killed writers left there, never a live writer's."""

import os
import subprocess
import sys

import pytest

from recbole_speeder import atomic

from conftest import HERE

REPO = os.path.dirname(HERE)

# a writer killed (SIGKILL) in the middle of its write: nothing of its own can clean up
KILLED_WRITE = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from recbole_speeder.atomic import atomic_file, atomic_folder
kind, target = sys.argv[2], sys.argv[3]
with (atomic_file if kind == "file" else atomic_folder)(target) as tmp:
    if kind == "file":
        open(tmp, "wb").close()  # 0 bytes so far, as torch.save left it
    else:
        open(os.path.join(tmp, "plugin.safetensors"), "wb").close()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_write(kind, target):
    """Start a write of ``target`` (a file or a folder) in another process and kill it mid-write."""
    process = subprocess.run([sys.executable, "-c", KILLED_WRITE, REPO, kind, str(target)])
    assert process.returncode == -9
    return process


def temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith((".tmp-", ".old-")))


def test_the_next_write_into_a_folder_removes_what_killed_writes_left(tmp_path):
    killed_write("file", tmp_path / "SASRec-Dec-04-2026_15-04-31-0a1b2c.pth")
    (left,) = temporaries(tmp_path)  # the name says the target and the writer
    assert left.startswith(f".tmp-SASRec-Dec-04-2026_15-04-31-0a1b2c.pth-{atomic._HOST}-") and left.endswith(".pth")
    assert os.path.getsize(tmp_path / left) == 0
    killed_write("folder", tmp_path / "Speeder-Dec-04-2026_15-04-31-3d4e5f")  # its write removed the file's
    (left,) = temporaries(tmp_path)
    assert left.startswith(".tmp-Speeder-Dec-04-2026_15-04-31-3d4e5f-") and os.path.isdir(tmp_path / left)
    atomic.atomic_write_text(tmp_path / "another-target.txt", "x")  # a write of another target
    assert sorted(os.listdir(tmp_path)) == ["another-target.txt"]


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    """Two runs writing into one folder at once: one's write does not remove the other's temporary."""
    with atomic.atomic_file(tmp_path / "first.pth") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"first")
        atomic.atomic_write_text(tmp_path / "second.txt", "second")
        with atomic.atomic_folder(tmp_path / "third") as folder:
            assert os.path.isfile(tmp)
        assert os.path.isfile(tmp) and os.path.isdir(tmp_path / "third") and not os.path.exists(folder)
    assert (tmp_path / "first.pth").read_bytes() == b"first"
    assert temporaries(tmp_path) == []


def test_a_failed_write_removes_its_temporary(tmp_path):
    with pytest.raises(ValueError):
        with atomic.atomic_file(tmp_path / "model.pth") as tmp:
            open(tmp, "wb").close()
            raise ValueError("stop")
    with pytest.raises(ValueError):
        with atomic.atomic_folder(tmp_path / "stage3") as folder:
            open(os.path.join(folder, "plugin.safetensors"), "wb").close()
            raise ValueError("stop")
    assert os.listdir(tmp_path) == []


def test_a_folder_moved_aside_by_a_killed_write_goes_back_in_place(tmp_path):
    """Killed between its two renames, a folder write left the old folder aside and no target."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = tmp_path / f".old-stage3-{atomic._HOST}-{dead.pid}-abcd_123"
    new = tmp_path / f".tmp-stage3-{atomic._HOST}-{dead.pid}-efgh_456"
    for folder in (old, new):
        folder.mkdir()
    (old / "trainer_state.pt").write_text("the last complete checkpoint")
    atomic.atomic_write_text(tmp_path / "curves.csv", "x")
    assert (tmp_path / "stage3" / "trainer_state.pt").read_text() == "the last complete checkpoint"
    assert temporaries(tmp_path) == []
