"""What `reproducibility: True` costs on the GPU, and whether it makes the same seed give the same
numbers (issue 20). Each run is a fresh process: CUBLAS_WORKSPACE_CONFIG is read when cuBLAS starts.

    python measure.py --model=SASRec                      # RecBole's SASRec on ml-100k, 20 epochs
    python measure.py --model=Speeder --llm_path=$G       # a short Speeder run (100 steps per MPO stage)

For the model: a warm-up run (fills the dataset's feature caches and candidate sets; not reported),
then `reproducibility` True, True, False, False with seed 2020. Prints one markdown table (wall
seconds, training / inference ms per sample, test metrics, whether the two runs of a setting gave
identical metrics, and the operations torch reported as nondeterministic) and writes it, with the
raw rows, to --out (default ./reproducibility-<model>.{md,json}). Extra --key=value pairs are
passed to every run.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

SETTINGS = {
    "SASRec": {"dataset": "ml-100k", "epochs": 20, "stopping_step": 20, "show_progress": False},
    "Speeder": {"dataset": "ml-100k", "text_encoder": "llm", "seq_encoder_epochs": 20, "steps_per_epoch": 100,
                "stage_epochs": [1, 1, 1], "train_batch_size": 64, "eval_batch_size": 128, "show_progress": False},
}
WARMUP = {"SASRec": {"epochs": 1}, "Speeder": {"stage_epochs": [0, 0, 0]}}
METRICS = ["vhr@1", "ndcg@5", "mrr"]


def child(config_json):
    """One run in this process; prints RESULT <json>."""
    from recbole_speeder.quick_start import run

    config = json.loads(config_json)
    model = config.pop("model")
    start = time.perf_counter()
    result = run(model=model, dataset=config.pop("dataset"), config_dict=config)
    wall = time.perf_counter() - start
    cand = {k: v for k, v in (result.get("candidate_test") or {}).items()}
    print("RESULT " + json.dumps({"wall_s": wall, "candidate_test": cand, "test_result": result.get("test_result"),
                                  "train_ms_per_sample": result.get("train_ms_per_sample")}), flush=True)


def one_run(config):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(config)],
                          capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"run failed: {config}")
    ops = sorted(set(re.findall(r"(\w+(?:\.\w+)*) does not have a deterministic implementation", proc.stderr)))
    row = json.loads(lines[-1][len("RESULT "):])
    row["nondeterministic_ops"] = ops
    return row


def same_numbers(a, b):
    strip = lambda r: ({k: v for k, v in (r["candidate_test"] or {}).items() if k != "infer_ms_per_sample"},
                       r["test_result"])
    return strip(a) == strip(b)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(SETTINGS))
    parser.add_argument("--llm_path", default=None)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", default=".")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        return child(args.child)
    if args.model is None:
        parser.error("--model is needed (SASRec or Speeder)")
    from recbole_speeder.cli import parse_overrides

    base = dict(SETTINGS[args.model], model=args.model, seed=args.seed, **parse_overrides(rest))
    if args.llm_path:
        base["llm_path"] = args.llm_path
    print(f"warm-up run: {json.dumps(dict(base, **WARMUP[args.model]))}", flush=True)
    one_run(dict(base, **WARMUP[args.model]))
    rows = []
    for reproducible in (True, True, False, False):
        row = one_run(dict(base, reproducibility=reproducible))
        row["reproducibility"] = reproducible
        rows.append(row)
        print(f"reproducibility={reproducible}: {row['wall_s']:.1f} s, "
              f"{ {m: row['candidate_test'].get(m) for m in METRICS} }", flush=True)
    header = ("| reproducibility | run | wall s | train ms/sample | infer ms/sample | "
              + " | ".join(f"test {m}" for m in METRICS) + " | same as run 1 | nondeterministic ops |")
    lines = [f"`{args.model}` on {base['dataset']}, seed {args.seed}, settings {json.dumps(base)}", "", header,
             "|" + "---|" * (header.count("|") - 1)]
    for k, row in enumerate(rows):
        first = rows[k - k % 2]
        train = row["train_ms_per_sample"]
        lines.append(
            f"| {row['reproducibility']} | {k % 2 + 1} | {row['wall_s']:.1f} | "
            f"{train:.3f} | {row['candidate_test'].get('infer_ms_per_sample')} | "
            + " | ".join(str(row["candidate_test"].get(m)) for m in METRICS)
            + f" | {'-' if k % 2 == 0 else ('yes' if same_numbers(first, row) else 'NO')} | "
            f"{', '.join(row['nondeterministic_ops']) or '-'} |")
    table = "\n".join(lines) + "\n"
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"reproducibility-{args.model}.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, f"reproducibility-{args.model}.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
