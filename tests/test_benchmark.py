"""The side-by-side benchmark: runs, table, CSVs, and merging runs made in separate jobs."""

import csv
import os
import statistics

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
