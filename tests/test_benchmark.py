"""The side-by-side benchmark: runs, table, CSVs, and merging runs made in separate jobs."""

import csv
import os
import statistics

import pytest

from recbole_speeder.benchmark import benchmark, read_runs, write_tables


def test_benchmark_table_has_mean_and_spread_over_seeds(fast_config, workdir):
    table, base = benchmark(["SASRec"], "tiny", [2020, 2021], overrides=fast_config, out_dir=str(workdir / "bench"))
    for suffix in (".md", "-summary.csv", "-runs.csv"):
        assert os.path.isfile(base + suffix)
    runs = list(csv.DictReader(open(base + "-runs.csv")))
    assert [r["seed"] for r in runs] == ["2020", "2021"]
    vhr = [float(r["vhr@1"]) for r in runs]
    summary = list(csv.DictReader(open(base + "-summary.csv")))[0]
    assert float(summary["vhr@1"]) == statistics.mean(vhr)
    assert float(summary["vhr@1_std"]) == statistics.stdev(vhr)
    assert "| SASRec | 2 |" in table and "±" in table
    assert float(runs[0]["train_ms_per_sample"]) > 0 and float(runs[0]["infer_ms_per_sample"]) > 0

    merged_table, merged_base = write_tables(read_runs([base + "-runs.csv", base + "-runs.csv"]), str(workdir / "m"))
    assert "| SASRec | 4 |" in merged_table


@pytest.mark.slow
def test_parallel_runs_keep_their_files_apart_and_give_the_same_table(fast_config, workdir):
    """--jobs: two seeds at once in two processes; same rows as one after another, own logs and checkpoints."""
    from recbole_speeder.benchmark import benchmark_in_parallel

    overrides = dict(fast_config, checkpoint_dir=str(workdir / "ckpt"))
    table, base = benchmark_in_parallel(["SASRec"], "tiny", [2020, 2021], jobs=2, overrides=overrides,
                                        out_dir=str(workdir / "par"), poll_seconds=0.2)
    _, serial_base = benchmark(["SASRec"], "tiny", [2020, 2021], overrides=fast_config, out_dir=str(workdir / "ser"))
    parallel_runs = list(csv.DictReader(open(base + "-runs.csv")))
    serial_runs = list(csv.DictReader(open(serial_base + "-runs.csv")))
    for a, b in zip(parallel_runs, serial_runs):
        assert (a["seed"], a["vhr@1"], a["mrr"]) == (b["seed"], b["vhr@1"], b["mrr"])
    jobs = [d for d in os.listdir(workdir / "par") if d.endswith("-jobs")]
    assert len(jobs) == 1
    assert sorted(os.listdir(workdir / "par" / jobs[0])) == ["SASRec-2020", "SASRec-2021"]
    checkpoint_dirs = sorted(os.listdir(workdir / "ckpt"))
    assert len(checkpoint_dirs) == 2 and all(os.listdir(workdir / "ckpt" / d) for d in checkpoint_dirs)


@pytest.mark.slow
def test_a_failed_parallel_run_is_named_with_its_log(fast_config, workdir):
    import pytest

    from recbole_speeder.benchmark import benchmark_in_parallel
    from recbole_speeder.errors import ConfigError, SpeederError

    # a typo fails once, before any process starts
    with pytest.raises(ConfigError, match="hiden_size"):
        benchmark_in_parallel(["SASRec"], "tiny", [7], jobs=2, overrides=dict(fast_config, hiden_size=8),
                              out_dir=str(workdir / "typo"))
    assert not (workdir / "typo").exists()
    # a run that fails while it runs (here: at evaluation, a candidate set needs more items than exist)
    with pytest.raises(SpeederError, match=r"1 of 1 runs failed: SASRec-7 \(exit status 2, log .*run\.log\)"):
        benchmark_in_parallel(["SASRec"], "tiny", [7], jobs=2, overrides=dict(fast_config, candidate_num=100000),
                              out_dir=str(workdir / "par"), poll_seconds=0.2)
    log = next((workdir / "par").glob("*-jobs/SASRec-7/run.log")).read_text()
    assert log.startswith("error: ") or "\nerror: " in log
