"""Side-by-side benchmark: several models x seeds on one dataset, one table.

Every run goes through :func:`recbole_speeder.quick_start.run`, so every model is trained on
the same split and scored on the same stored candidate sets. The table holds mean and
standard deviation (over seeds) of the candidate metrics (HR@1, ValidRatio, VHR@1, NDCG@k,
MRR), RecBole's ranking Recall@K / NDCG@K (each K of ``topk``, under ``eval_args``' mode; ``-``
for a model that cannot rank the catalog), and the training and inference time per sample; then
a row per model for the cold-target test rows (``cold_item_max_inter``, :mod:`recbole_speeder.data.cold_items`).
Written as markdown and CSV (per run and summary) under ``benchmark_dir``.

With ``jobs`` > 1 (:func:`benchmark_in_parallel`) every (model, seed) run is its own process,
at most ``jobs`` at a time: runs that leave a GPU mostly idle, like a small LLM, then share it.
"""

import csv
import json
import os
import statistics
import subprocess
import sys
import time

from recbole_speeder.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from recbole_speeder.evaluation.protocols import CANDIDATES, RECBOLE_PREFIX, flat_metrics
from recbole_speeder.quick_start import run
from recbole_speeder.trainer.curves import curve_files, run_log_file

CANDIDATE_COLUMNS = ["hr@1", "valid_ratio", "vhr@1", "ndcg@3", "ndcg@5", "mrr"]
RECBOLE_METRICS = ("recall", "ndcg")  # RecBole's ranking metrics in the table, at every K the run reports
COLD_SUFFIX = " [cold targets]"  # the model label of a cold-target row
TIME_COLUMNS = ["train_ms_per_sample", "infer_ms_per_sample"]
# MLLM-MSR's preference summaries (training / test sequences), kept apart from the two above;
# a column appears only when some run reports it
SUMMARY_COLUMNS = ["summary_train_ms_per_sample", "summary_ms_per_sample"]
GPU_COLUMNS = ["gpu_busy"]  # the GPU's busy share of the training time (GPU runs only)
WALL_COLUMNS = ["wall_s"]  # the run's wall seconds, set-up to test (its log's "Wall time by phase")


def _metric_row(model, result, candidates, ranking):
    row = {"model": model, "dataset": result["dataset"], "seed": result["seed"]}
    for key in CANDIDATE_COLUMNS:
        row[key] = (candidates or {}).get(key)
    flat = flat_metrics(dict(ranking or {}, **{CANDIDATES: {k: row[k] for k in CANDIDATE_COLUMNS}}))
    for key, value in flat.items():
        if key not in CANDIDATE_COLUMNS and key.removeprefix(RECBOLE_PREFIX).split("@")[0] in RECBOLE_METRICS:
            row[key] = float(value)
    return row


def flatten(result):
    """The benchmark rows of the dict :func:`run` returns: the run's, then, when the test split has
    cold-target rows, theirs (model label + :data:`COLD_SUFFIX`, no time columns)."""
    cand = result.get("candidate_test") or {}
    row = _metric_row(result["model"], result, cand, result.get("test_result"))
    row["train_ms_per_sample"] = result.get("train_ms_per_sample")
    row["infer_ms_per_sample"] = cand.get("infer_ms_per_sample")
    row["gpu_busy"] = result.get("gpu_busy")
    row["wall_s"] = (result.get("phase_seconds") or {}).get("total")
    for key in SUMMARY_COLUMNS:
        row[key] = cand.get(key)
    rows = [row]
    if result.get("cold_test_n"):
        rows.append(_metric_row(result["model"] + COLD_SUFFIX, result, result.get("candidate_cold_test"),
                                result.get("cold_test_result")))
        rows[-1]["cases"] = result["cold_test_n"]
    return rows


def ranking_columns(rows):
    """The RecBole ranking columns some row holds, by metric then K."""
    found = {k for row in rows for k in row
             if k.removeprefix(RECBOLE_PREFIX).split("@")[0] in RECBOLE_METRICS and k not in CANDIDATE_COLUMNS}

    def order(column):
        name, k = column.removeprefix(RECBOLE_PREFIX).split("@")
        return RECBOLE_METRICS.index(name), int(k)

    return sorted(found, key=order)


def summarize(rows):
    """Mean and standard deviation per model and column, in first-seen model order."""
    columns = CANDIDATE_COLUMNS + ranking_columns(rows) + TIME_COLUMNS
    columns += [c for c in GPU_COLUMNS + WALL_COLUMNS + SUMMARY_COLUMNS + ["cases"]
                if any(r.get(c) is not None for r in rows)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    summary = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        entry = {"model": model, "runs": len(mine)}
        for column in columns:
            values = [r[column] for r in mine if r.get(column) is not None]
            entry[column] = statistics.mean(values) if values else None
            entry[column + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0 if values else None
        summary.append(entry)
    return summary, columns


def markdown(summary, columns, title):
    def cell(entry, column):
        mean, std = entry[column], entry[column + "_std"]
        if mean is None:
            return "-"
        digits = 1 if column in WALL_COLUMNS else 3 if column in TIME_COLUMNS + SUMMARY_COLUMNS else 4
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    lines = [f"### {title}", "", "| model | runs | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 2) + "|"]
    for entry in summary:
        lines.append(f"| {entry['model']} | {entry['runs']} | " + " | ".join(cell(entry, c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path, rows):
    def write(f):
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(path, write, mode="w", encoding="utf-8")


def benchmark(models, dataset, seeds, config_file_list=None, overrides=None, out_dir="benchmark_results"):
    """Run every model with every seed; write and return the markdown table."""
    rows = []
    for model in models:
        for seed in seeds:
            config_dict = dict(overrides or {}, seed=seed)
            rows += flatten(run(model=model, dataset=dataset, config_file_list=config_file_list,
                                config_dict=config_dict))
    return write_tables(rows, out_dir)


def benchmark_in_parallel(models, dataset, seeds, jobs, config_file_list=None, overrides=None,
                          out_dir="benchmark_results", poll_seconds=1.0):
    """:func:`benchmark` with each (model, seed) run in its own process, ``jobs`` at a time.

    Run ``<model>-<seed>`` writes its output to ``<out_dir>/<dataset>-<time>-jobs/<model>-<seed>/run.log``
    (an LLM run its validation curves beside it, ``run-curves.csv`` / ``.png``)
    and its checkpoints under ``<checkpoint_dir>/<dataset>-<time>-<model>-<seed>/``, so runs
    never share a file. The table holds the runs that finished; if any failed, the error lists
    them with their logs, after the table is written.
    """
    from recbole_speeder.config import Config
    from recbole_speeder.errors import SpeederError

    overrides = dict(overrides or {})
    for model in models:  # a bad key or dataset fails here, once; the embedded data is copied once
        Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=dict(overrides))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = os.path.join(out_dir, f"{dataset}-{stamp}-jobs")
    checkpoints = overrides.pop("checkpoint_dir", None) or "saved"
    pending = [(model, seed) for model in models for seed in seeds]
    running, rows, failed = [], [], []
    try:
        while pending or running:
            while pending and len(running) < max(1, int(jobs)):
                model, seed = pending.pop(0)
                spec = {"model": model, "dataset": dataset, "config_file_list": config_file_list,
                        "config_dict": dict(overrides, seed=seed, checkpoint_dir=os.path.join(
                            checkpoints, f"{dataset}-{stamp}-{model}-{seed}"))}
                running.append(_start_run(spec, os.path.join(work, f"{model}-{seed}")))
            time.sleep(poll_seconds)
            for entry in [e for e in running if e[0].poll() is not None]:
                process, log, folder = entry
                log.close()
                running.remove(entry)
                if process.returncode == 0:
                    with open(os.path.join(folder, "rows.json")) as f:
                        rows += json.load(f)
                else:
                    failed.append(f"{os.path.basename(folder)} (exit status {process.returncode}, "
                                  f"log {os.path.join(folder, 'run.log')})")
    finally:
        for process, log, _ in running:  # interrupted: stop the runs still going
            process.terminate()
            process.wait()
            log.close()
    order = {(m, s): i for i, (m, s) in enumerate((m, s) for m in models for s in seeds)}
    rows.sort(key=lambda r: (r["model"].endswith(COLD_SUFFIX),
                             order.get((r["model"].removesuffix(COLD_SUFFIX), r["seed"]), len(order))))
    table, base = write_tables(rows, out_dir) if rows else (None, None)
    if failed:
        written = f" The table of the others: {base}.md." if base else ""
        raise SpeederError(f"{len(failed)} of {len(order)} runs failed: {'; '.join(failed)}.{written}")
    return table, base


def _start_run(spec, folder):
    """Start one run of :func:`benchmark_in_parallel` in a child process writing into ``folder``:
    ``run.log`` (its output) and ``rows.json`` (its table rows). Returns (process, log, folder)."""
    os.makedirs(folder, exist_ok=True)
    # the child imports this package from where this process did, installed or not
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    log = open(os.path.join(folder, "run.log"), "w")
    command = [sys.executable, "-m", "recbole_speeder.benchmark", json.dumps(spec), os.path.join(folder, "rows.json")]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log, folder


def _run_one(spec_json, row_path):
    """Child process of :func:`benchmark_in_parallel`: one run, its table rows as JSON, and the
    run's validation curves (Figure 5, written beside RecBole's log) copied beside the row as
    ``run-curves.csv`` / ``.png``."""
    spec = json.loads(spec_json)
    rows = flatten(run(**spec))
    log_file = run_log_file()
    for path in curve_files(log_file) if log_file else ():
        if os.path.isfile(path):
            target = os.path.join(os.path.dirname(row_path), "run-curves" + os.path.splitext(path)[1])
            with open(path, "rb") as f:
                atomic_write_bytes(target, f.read())
    atomic_write_text(row_path, json.dumps(rows))


def read_runs(paths):
    """Rows of earlier ``-runs.csv`` files (to merge runs made in separate jobs into one table)."""
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows.append({k: (v if k in ("model", "dataset") else _number(v)) for k, v in row.items()})
    return rows


def _number(text):
    if text in ("", "None"):
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def write_tables(rows, out_dir):
    """Write the runs CSV, the summary CSV and the markdown table of ``rows``; return (table, base)."""
    summary, columns = summarize(rows)
    datasets = sorted({str(r["dataset"]) for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"{'+'.join(datasets)}-{stamp}")
    _write_csv(base + "-runs.csv", rows)
    _write_csv(base + "-summary.csv", summary)
    title = f"{', '.join(datasets)}: test split, seeds {', '.join(map(str, seeds))}"
    table = markdown(summary, columns, title)
    atomic_write_text(base + ".md", table)
    return table, base


if __name__ == "__main__":
    from recbole_speeder.cli import friendly_errors

    friendly_errors(_run_one)(*sys.argv[1:3])
