"""Where a run's time goes, in every run's log (trainer/timing.py): the GPU's busy share of the
training time and the wall time by phase."""

import glob
import time

import pytest

from recbole_speeder.benchmark import flatten
from recbole_speeder.quick_start import run
from recbole_speeder.trainer.timing import GpuBusySampler, PhaseClock


def run_log(workdir):
    logs = glob.glob(str(workdir / "log" / "**" / "*.log"), recursive=True)
    return "".join(open(path, encoding="utf-8").read() for path in logs)


def test_a_cpu_run_logs_the_gpu_busy_share_as_not_available(fast_config, workdir):
    result = run(model="SASRec", dataset="tiny", config_dict=dict(fast_config, state="INFO"))
    assert result["gpu_busy"] is None
    assert "GPU busy: n/a (no GPU)" in run_log(workdir)


def test_a_run_reports_its_wall_time_by_phase(fast_config, workdir):
    result = run(model="SASRec", dataset="tiny", config_dict=dict(fast_config, state="INFO", epochs=3))
    phases = result["phase_seconds"]
    assert {"data", "candidates", "model", "fit", "train", "valid", "checkpoint", "test", "total"} <= set(phases)
    assert all(value >= 0 for value in phases.values())
    # the training epochs, validations and checkpoint writes happen inside fit, fit inside the run
    assert phases["train"] + phases["valid"] + phases["checkpoint"] <= phases["fit"] + 0.2
    assert phases["fit"] + phases["data"] + phases["test"] <= phases["total"] + 0.2
    line = next(line for line in run_log(workdir).splitlines() if "Wall time by phase" in line)
    assert "fit " in line and "train " in line and " in 3" in line and "total " in line  # 3 epochs, 3 validations
    assert flatten(result)[0]["wall_s"] == phases["total"]


def test_the_phase_clock_adds_up_repeated_and_nested_phases():
    clock = PhaseClock()
    for _ in range(2):
        with clock.phase("fit"):
            with clock.phase("train"):
                time.sleep(0.01)
    assert clock.counts == {"train": 2, "fit": 2}
    assert clock.seconds["fit"] >= clock.seconds["train"] >= 0.02
    text = clock.describe()
    assert text.startswith("Wall time by phase: fit ") and "(train " in text and " in 2, other " in text
    assert "train" not in text.split("(")[0]  # an inner phase is shown inside fit only
    with pytest.raises(RuntimeError):
        with clock.phase("test"):
            raise RuntimeError("a failing phase is still timed")
    assert clock.counts["test"] == 1


def test_the_sampler_samples_nothing_without_a_gpu():
    sampler = GpuBusySampler("cpu")
    with sampler:
        pass
    assert sampler.share() is None and sampler.why_not == "no GPU"
    assert sampler.describe() == "GPU busy: n/a (no GPU)"
