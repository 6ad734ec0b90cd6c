"""Tables and checks of run.sh, from its work folder (logs, times.tsv, dmon samples) and its
output folder (throughput-*.json):

    python3 summarize.py WORK_DIR OUT_DIR [BUDGET_S] > summary.md

Reads only what the commands printed; every number is copied or derived (stated how).
"""

import ast
import glob
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, ROOT)

STEPS, BATCH = 100, 64  # smollm2-short.yaml: steps_per_epoch, train_batch_size (per process)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
WARNING = "destroy_process_group() was not called"
# name: (what, launcher, processes, GPUs, steps per stage epoch)
SMOL = {
    "smol-1gpu": ("one GPU", "python", 1, 1, STEPS),
    "smol-torchrun": ("DDP, 2 GPUs", "torchrun --nproc_per_node=2", 2, 2, STEPS),
    "smol-accelerate": ("DDP, 2 GPUs, 20 steps per stage", "accelerate launch --multi_gpu --num_processes 2", 2, 2, 20),
    "smol-2jobs-gpu0": ("two jobs at once: job on GPU 0", "python, CUDA_VISIBLE_DEVICES=0", 1, 1, STEPS),
    "smol-2jobs-gpu1": ("two jobs at once: job on GPU 1", "python, CUDA_VISIBLE_DEVICES=1", 1, 1, STEPS),
    "smol-1gpu-2jobs-a": ("two jobs on GPU 0: job a", "python, CUDA_VISIBLE_DEVICES=0", 1, 1, STEPS),
    "smol-1gpu-2jobs-b": ("two jobs on GPU 0: job b", "python, CUDA_VISIBLE_DEVICES=0", 1, 1, STEPS),
}


def read(path):
    try:
        with open(path, errors="replace") as f:
            return ANSI.sub("", f.read())
    except OSError:
        return None


def times(work):
    out = {}
    text = read(os.path.join(work, "times.tsv")) or ""
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            out[parts[0]] = (int(parts[1]) / 1000.0, int(parts[2]))
    return out


def parse_run(text):
    """Training seconds per stage epoch, the candidate test result, errors."""
    # the MPO stage epochs only: a run that fills the feature cache first logs SASRec's epochs too
    mpo = text[text.find("MPO stage 1"):] if "MPO stage 1" in text else ""
    epochs = [float(t) for t in re.findall(r"epoch \d+ training \[time: ([\d.]+)s", mpo)]
    result = None
    found = re.findall(r"candidate test result: (\{.*?\})", text)
    if found:
        try:
            result = ast.literal_eval(found[-1])
        except (ValueError, SyntaxError):
            result = None
    errors = [line.strip() for line in text.splitlines() if re.match(r"\s*(\w+Error|error):", line)]
    return {"epochs": epochs, "test": result, "errors": errors[-3:], "warning": WARNING in text}


def dmon_busy(work, name):
    """(mean SM % over the samples where a GPU was busy, busy samples, all samples) per GPU."""
    text = read(os.path.join(work, f"dmon-{name}.log"))
    if not text:
        return {}
    columns, samples = None, {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "#" and "gpu" in fields:
            columns = fields[1:]
            continue
        if fields[0].startswith("#") or columns is None or len(fields) != len(columns):
            continue
        try:
            gpu, sm = fields[columns.index("gpu")], float(fields[columns.index("sm")])
        except (ValueError, IndexError):
            continue
        samples.setdefault(gpu, []).append(sm)
    out = {}
    for gpu, values in sorted(samples.items()):
        busy = [v for v in values if v > 0]
        out[gpu] = (sum(busy) / len(busy) if busy else 0.0, len(busy), len(values))
    return out


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def throughput_section(out_dir):
    files = [p for p in (os.path.join(out_dir, "throughput-1gpu.json"), os.path.join(out_dir, "throughput-2gpu.json"))
             if os.path.isfile(p)]
    if not files:
        return "## 1. Training throughput: no throughput file (see tp-*.log in logs.tar.gz)\n"
    from distributed_throughput import markdown

    results = [json.load(open(p)) for p in files]
    return "## 1. Training throughput (benchmarks/distributed_throughput.py)\n\n" + markdown(results)


def smol_section(work, walls):
    runs = {name: parse_run(read(os.path.join(work, f"{name}.log")) or "") for name in SMOL
            if os.path.isfile(os.path.join(work, f"{name}.log"))}
    lines = ["## 2. SmolLM2-135M on ml-100k (run_recbole_speeder.py, smollm2-short.yaml)", "",
             f"samples/s = processes x {BATCH} x steps / training seconds of a stage epoch (RecBole's "
             "`epoch 0 training [time: ...]` line; the device is synchronised around it), mean over the three "
             "MPO stages; wall: the whole command (start-up, features, validation, test included); SM %: "
             "nvidia-smi dmon's `sm` column, mean over the 1-s samples where the GPU was busy (busy / all samples).",
             "", "| run | launcher | GPUs | training s per stage epoch | samples/s | speed-up | wall s | exit | "
             "test VHR@1 | SM % (busy/all) |", "|---|---|---|---|---|---|---|---|---|---|"]
    base = None
    rates = {}
    for name, (what, launcher, procs, gpus, steps) in SMOL.items():
        if name not in runs:
            continue
        run = runs[name]
        rate = None
        if run["epochs"]:
            rate = sum(procs * BATCH * steps / t for t in run["epochs"]) / len(run["epochs"])
        rates[name] = rate
        if name == "smol-1gpu":
            base = rate
        speedup = f"{rate / base:.2f}x" if rate and base and name in ("smol-1gpu", "smol-torchrun") else "-"
        wall, rc = walls.get(name, (None, None))
        vhr = run["test"].get("vhr@1") if run["test"] else None
        dmon_name = {"smol-2jobs-gpu0": "smol-2jobs", "smol-2jobs-gpu1": "smol-2jobs",
                     "smol-1gpu-2jobs-a": "smol-1gpu-2jobs", "smol-1gpu-2jobs-b": "smol-1gpu-2jobs"}.get(name, name)
        busy = dmon_busy(work, dmon_name)
        sm = ", ".join(f"GPU{g} {m:.0f} ({b}/{n})" for g, (m, b, n) in busy.items()) or "-"
        lines.append(f"| {what} | {launcher} | {gpus} | {', '.join(f'{t:.1f}' for t in run['epochs']) or '-'} | "
                     f"{fmt(rate)} | {speedup} | {fmt(wall, 0)} | {rc if rc is not None else '-'} | "
                     f"{fmt(vhr, 4)} | {sm} |")
    for pair, label in ((("smol-2jobs-gpu0", "smol-2jobs-gpu1"), "two jobs at once, one per GPU"),
                        (("smol-1gpu-2jobs-a", "smol-1gpu-2jobs-b"), "two jobs at once on GPU 0")):
        if all(rates.get(n) for n in pair):
            total = sum(rates[n] for n in pair)
            lines.append(f"| **{label}, together** | | {2 if 'gpu1' in pair[1] else 1} | | {fmt(total)} | "
                         f"{f'{total / base:.2f}x' if base else '-'} | | | | |")
    for name, run in runs.items():
        if run["errors"]:
            lines.append(f"\n{name}: {' | '.join(run['errors'])}")
    return "\n".join(lines) + "\n", runs


def equality_section(work, runs, walls, run_log):
    lines = ["## 3. Checks", ""]
    lines += [f"- {line}" for line in run_log.splitlines() if "process 0 alone writes" in line]
    for launched, single in (("smol-torchrun", "smol-torchrun-eval1"), ("smol-accelerate", "smol-accelerate-eval1")):
        if launched not in runs:
            lines.append(f"- {launched}: not run")
            continue
        one = parse_run(read(os.path.join(work, f"{single}.log")) or "")
        two = runs[launched]["test"]
        strip = (lambda d: {k: v for k, v in d.items() if k != "infer_ms_per_sample"}) if two else None
        if two and one["test"]:
            same = strip(two) == strip(one["test"])
            differ = sorted(k for k in strip(two) if strip(two).get(k) != strip(one["test"]).get(k))
            lines.append(f"- {launched}: candidate test metrics of the 2-process run {'EQUAL' if same else 'DIFFER'} "
                         f"to one process scoring the same checkpoint ({single})"
                         + ("" if same else f"; differing: {differ}"))
            lines.append(f"  - 2 processes: `{strip(two)}`")
            lines.append(f"  - 1 process:   `{strip(one['test'])}`")
        else:
            lines.append(f"- {launched} vs {single}: a result is missing (exit codes {walls.get(launched, ('-', '-'))[1]}, "
                         f"{walls.get(single, ('-', '-'))[1]})")
    for name in ("tp-2gpu", "smol-torchrun", "smol-accelerate"):
        text = read(os.path.join(work, f"{name}.log"))
        if text is not None:
            lines.append(f"- {name}: PyTorch's `{WARNING}` warning "
                         f"{'PRESENT' if WARNING in text else 'absent'}; exit {walls.get(name, ('-', '-'))[1]}")
    return "\n".join(lines) + "\n"


def main():
    work, out_dir = sys.argv[1], sys.argv[2]
    budget = sys.argv[3] if len(sys.argv) > 3 else "-"
    walls = times(work)
    print(f"# Issue 19: multi-GPU training on nvidia-h200-x2 (run.sh, budget {budget} s)\n")
    run_log = read(os.path.join(out_dir, "run.log")) or ""
    env = [line for line in run_log.splitlines() if line.startswith(("torch ", "index", "0,", "1,", "NCCL", "TORCH_", "NVSHMEM"))]
    print("```\n" + "\n".join(env) + "\n```\n")
    print(throughput_section(out_dir))
    section, runs = smol_section(work, walls)
    print(section)
    print(equality_section(work, runs, walls, run_log))
    print("## Commands and wall times\n")
    for name, (wall, rc) in walls.items():
        print(f"- {name}: {wall:.0f} s, exit {rc}")
    skipped = [line for line in run_log.splitlines() if "skipped" in line]
    if skipped:
        print("\n" + "\n".join(f"- {line}" for line in skipped))
    logs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(work, "*.log")))
    print(f"\nlogs.tar.gz: {', '.join(logs)}")


if __name__ == "__main__":
    main()
