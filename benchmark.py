"""Benchmark several models side by side on one dataset and several seeds.

    python benchmark.py --models=GRU4Rec,SASRec,BERT4Rec --dataset=ml-100k --seeds=2020,2021,2022
    python benchmark.py --models=SASRec,Speeder --dataset=MMSynth --seeds=2020 --epochs=20

Writes benchmark_results/<dataset>-<time>.md (the table), -summary.csv and -runs.csv.
`--merge a-runs.csv b-runs.csv` makes one table from runs made in separate jobs.
`--jobs=3` runs three (model, seed) runs at a time, each in its own process (one GPU can hold
several runs of a small LLM; each run's log is in the table's `-jobs/` folder).
Other --key=value pairs override properties for every run.
"""

import argparse
import os

from recbole_speeder.cli import config_file_list, friendly_errors, parse_overrides
from recbole_speeder.errors import ConfigError


@friendly_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="GRU4Rec,SASRec,BERT4Rec", help="comma-separated model names")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", default="2020,2021,2022", help="comma-separated seeds")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files for every run")
    parser.add_argument("--out_dir", default="benchmark_results")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each (model, seed) in its own process (default 1: one after another)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="RUNS_CSV",
                        help="no training: one table from earlier -runs.csv files")
    args, rest = parser.parse_known_args(argv)
    from recbole_speeder.benchmark import benchmark, benchmark_in_parallel, read_runs, write_tables

    if args.merge:
        missing = [p for p in args.merge if not os.path.isfile(p)]
        if missing:
            raise ConfigError(f"--merge: no such file {missing[0]}")
        table, base = write_tables(read_runs(args.merge), args.out_dir)
        print(table)
        print(f"written: {base}.md, {base}-summary.csv, {base}-runs.csv")
        return
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers (got '{args.seeds}').") from None
    from recbole_speeder.utils import get_model

    models = [m for m in args.models.split(",") if m]
    for model in models:
        get_model(model)  # unknown names fail before any training starts
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {args.jobs}).")
    common = dict(config_file_list=config_file_list(args.config_files),
                  overrides=parse_overrides(rest), out_dir=args.out_dir)
    if args.jobs > 1:
        table, base = benchmark_in_parallel(models, args.dataset, seeds, args.jobs, **common)
    else:
        table, base = benchmark(models, args.dataset, seeds, **common)
    print(table)
    print(f"written: {base}.md, {base}-summary.csv, {base}-runs.csv")


if __name__ == "__main__":
    main()
