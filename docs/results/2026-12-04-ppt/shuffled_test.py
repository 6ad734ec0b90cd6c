"""The test split again with every history shuffled (``eval_shuffle_history``), scored with the
weights a ``benchmark.py --jobs`` run saved: the same weights as that run's rows, so the
difference to its table is the order of the histories alone (a retrained run would add the GPU's
run-to-run noise). One table, as benchmark.py writes it.

    python docs/results/2026-12-04-ppt/shuffled_test.py --model=Speeder --dataset=ml-100k \
        --saved=<the run's --checkpoint_dir> --out_dir=<folder> [--config_files=...] [--key=value ...]

``--saved`` holds one folder per seed, ``<dataset>-<time>-<model>-<seed>/`` (benchmark.py's layout):
an LLM model's run folder inside it (Speeder: its last MPO stage, ``stage<k>``, the weights its
test loaded) or a RecBole model's ``.pth``. Options after these are properties for every run, as
benchmark.py takes them (``--eval_shuffle_history=True`` is added unless given).
"""

import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from recbole_speeder.cli import config_file_list, friendly_errors, parse_overrides  # noqa: E402
from recbole_speeder.errors import ConfigError  # noqa: E402


def checkpoints(saved, dataset, model):
    """seed -> the checkpoint its run's test loaded, from benchmark.py's ``--checkpoint_dir``."""
    found = {}
    for folder in sorted(glob.glob(os.path.join(saved, f"{dataset}-*-{model}-*"))):
        seed = int(folder.rsplit("-", 1)[1])
        files = sorted(glob.glob(os.path.join(folder, f"{model}-*.pth")))
        runs = sorted(glob.glob(os.path.join(folder, f"{model}-*", "")))
        if files:
            found[seed] = files[-1]
        elif runs:
            run = runs[-1].rstrip(os.sep)
            stages = sorted(glob.glob(os.path.join(run, "stage*")),
                            key=lambda p: int(re.sub(r"\D", "", os.path.basename(p))))
            found[seed] = stages[-1] if stages else run
    if not found:
        raise ConfigError(f"--saved {saved}: no {dataset}-<time>-{model}-<seed>/ folder with a checkpoint.")
    return found


@friendly_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--saved", required=True, help="the --checkpoint_dir of the benchmark.py run")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--config_files", default=None)
    args, rest = parser.parse_known_args(argv)
    from recbole_speeder.benchmark import flatten, write_tables
    from recbole_speeder.quick_start import run

    overrides = dict({"eval_shuffle_history": True}, **parse_overrides(rest))
    rows = []
    for seed, checkpoint in sorted(checkpoints(args.saved, args.dataset, args.model).items()):
        print(f"{args.model} seed {seed}: {checkpoint}", flush=True)
        result = run(model=args.model, dataset=args.dataset, config_file_list=config_file_list(args.config_files),
                     config_dict=dict(overrides, seed=seed), model_file=checkpoint)
        rows += flatten(result)
    table, base = write_tables(rows, args.out_dir)
    print(table)
    print(f"written: {base}.md, {base}-summary.csv, {base}-runs.csv")


if __name__ == "__main__":
    main()
