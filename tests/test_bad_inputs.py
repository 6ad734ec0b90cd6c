"""Bad input ends in one ``error: ...`` line and exit status 2, and changes no file on disk: the
real run script as a subprocess, one case per kind of input (all cases start at once)."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from conftest import HERE

REPO = os.path.dirname(HERE)
SCRIPT = os.path.join(REPO, "run_recbole_speeder.py")
FAST_ARGS = ["--epochs=1", "--gpu_id=", "--state=WARNING", "--show_progress=False"]


def _non_numeric_timestamp(folder):
    path = folder / "dataset" / "tiny" / "tiny.inter"
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = lines[4].rsplit("\t", 1)[0] + "\t16000O1180\n"  # a letter O in the timestamp
    path.write_text("".join(lines))
    return ["--model=SASRec", "--dataset=tiny"]


def _short_lines(folder):
    path = folder / "dataset" / "tiny" / "tiny.inter"
    lines = path.read_text().splitlines(keepends=True)
    for k in (6, 9, 12):
        lines[k] = lines[k].rsplit("\t", 1)[0] + "\n"  # the timestamp cut off
    path.write_text("".join(lines))
    return ["--model=SASRec", "--dataset=tiny"]


def _truncated_plugin_weights(folder):
    checkpoint = folder / "saved" / "Speeder-run" / "stage3"
    checkpoint.mkdir(parents=True)
    torch.save({"epoch": 0, "stage": 3}, checkpoint / "trainer_state.pt")
    save_file({"mrc.weight": torch.ones(64, 64)}, str(checkpoint / "plugin.safetensors"))
    data = (checkpoint / "plugin.safetensors").read_bytes()
    (checkpoint / "plugin.safetensors").write_bytes(data[: len(data) // 2])
    return ["--model=Speeder", "--dataset=tiny", f"--checkpoint={checkpoint}"]


def _damaged_trainer_state(folder):
    checkpoint = folder / "saved" / "Speeder-run" / "stage3"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.pt").write_bytes(b"not a torch file")
    save_file({"mrc.weight": torch.ones(4, 4)}, str(checkpoint / "plugin.safetensors"))
    return ["--model=Speeder", "--dataset=tiny", f"--checkpoint={checkpoint}"]


def _missing_pth(folder):
    (folder / "saved").mkdir()
    return ["--model=SASRec", "--dataset=tiny", f"--checkpoint={folder / 'saved' / 'SASRec-Nov-30-2026.pth'}"]


CASES = {
    "non_numeric": (_non_numeric_timestamp, r"tiny\.inter, line 5: column 'timestamp:float' holds '16000O1180', "
                                            r"which is not a number"),
    "short_lines": (_short_lines, r"tiny\.inter: 3 line\(s\) have fewer than the header's 3 fields "
                                  r"\(line 7, 10, 13\).*mean"),
    "truncated_safetensors": (_truncated_plugin_weights, r"--checkpoint: checkpoint file .*stage3/plugin\.safetensors "
                                                         r"cannot be read .*damaged or truncated"),
    "damaged_trainer_state": (_damaged_trainer_state, r"Checkpoint file .*stage3/trainer_state\.pt cannot be read "
                                                      r"\(UnpicklingError\); it is damaged"),
    "missing_pth": (_missing_pth, r"--checkpoint: '.*SASRec-Nov-30-2026\.pth' is not a file"),
}


def _snapshot(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns, hashlib.sha1(f.read()).hexdigest())
    return out


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every case's (process, files before, folder), run at the same time."""
    started = {}
    for name, (make, _) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        shutil.copytree(os.path.join(HERE, "data", "tiny"), folder / "dataset" / "tiny")
        args = make(folder)
        before = _snapshot(folder)
        process = subprocess.Popen([sys.executable, SCRIPT, *args, *FAST_ARGS], cwd=folder, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started[name] = (process, before, folder)
    results = {}
    for name, (process, before, folder) in started.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stderr, before, _snapshot(folder))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error_and_changes_nothing(bad_runs, case):
    import re

    code, stderr, before, after = bad_runs[case]
    assert code == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(CASES[case][1], errors[0]), stderr
    # every file that was there is unchanged; a run's log is all that may have been added
    assert {k: v for k, v in after.items() if k in before} == before
    assert all(k.split(os.sep)[0] == "log" for k in set(after) - set(before)), sorted(set(after) - set(before))
