"""benchmarks/distributed_throughput.py: one CPU process on the tiny shape, and the report's
speed-up column (the multi-GPU rows come from the device run; the two-process path it uses is
the one tests/test_distributed.py launches)."""

import json

import pytest

from conftest import load_benchmark_script


@pytest.fixture(scope="module")
def bench():
    return load_benchmark_script("distributed_throughput")


@pytest.mark.slow
def test_one_process_on_cpu_writes_rows(bench, tmp_path, monkeypatch, capsys):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "r" / "1.json"
    assert bench.main(["--backbone", "tiny", "--batch", "2,4", "--steps", "1", "--warmup", "0",
                       "--items", "60", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["gpus"], r["strategy"], r["per_gpu_batch"]) for r in result["rows"]] == [
        (1, "one process", 2), (1, "one process", 4)]
    for row in result["rows"]:
        assert row["ms_per_step"] > 0 and row["samples_per_s"] == pytest.approx(
            row["per_gpu_batch"] / (row["ms_per_step"] / 1000), rel=1e-2)
    assert "| 1 | one process | 4 |" in capsys.readouterr().out


def test_report_gives_the_speed_up_over_one_gpu(bench, tmp_path, capsys):
    def row(gpus, strategy, samples):
        return {"backbone": "llama2-7b-shape", "strategy": strategy, "gpus": gpus, "per_gpu_batch": 16,
                "history": 10, "ms_per_step": 1000.0 * gpus * 16 / samples, "samples_per_s": samples,
                "peak_mib": 30720.0, "steps": 10, "warmup": 3}

    meta = {"device_name": "GPU", "dtype": "bfloat16", "candidates": 5}
    paths = []
    for name, rows in (("1", [row(1, "one process", 100.0)]), ("2", [row(2, "ddp", 190.0), row(2, "fsdp", 150.0)])):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({"meta": meta, "rows": rows}))
    assert bench.main(["--report", ",".join(map(str, paths))]) == 0
    table = capsys.readouterr().out
    assert "| 2 | ddp | 16 | 168.4 | 190.0 | 1.90x | 30.0 |" in table
    assert "| 2 | fsdp | 16 | 213.3 | 150.0 | 1.50x | 30.0 |" in table
