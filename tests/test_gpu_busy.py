"""The GPU's busy share of the training time in every run's log (trainer/timing.py)."""

import glob

from recbole_speeder.quick_start import run
from recbole_speeder.trainer.timing import GpuBusySampler


def test_a_cpu_run_logs_the_gpu_busy_share_as_not_available(fast_config, workdir):
    result = run(model="SASRec", dataset="tiny", config_dict=dict(fast_config, state="INFO"))
    assert result["gpu_busy"] is None
    logs = glob.glob(str(workdir / "log" / "**" / "*.log"), recursive=True)
    text = "".join(open(path, encoding="utf-8").read() for path in logs)
    assert "GPU busy: n/a (no GPU)" in text


def test_the_sampler_samples_nothing_without_a_gpu():
    sampler = GpuBusySampler("cpu")
    with sampler:
        pass
    assert sampler.share() is None and sampler.why_not == "no GPU"
    assert sampler.describe() == "GPU busy: n/a (no GPU)"
