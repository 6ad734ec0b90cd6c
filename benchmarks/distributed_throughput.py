"""Training throughput of Speeder on 1 and N GPUs through the plugin's data-parallel path.

    torchrun --nproc_per_node=1 benchmarks/distributed_throughput.py --backbone llama2-7b-shape \
        --tokenizer TOKENIZER --batch 16,32 --out R/1gpu.json
    torchrun --nproc_per_node=2 benchmarks/distributed_throughput.py --backbone llama2-7b-shape \
        --tokenizer TOKENIZER --batch 16,32 --strategy ddp,fsdp --out R/2gpu.json
    python benchmarks/distributed_throughput.py --report R/1gpu.json,R/2gpu.json

Every process builds Speeder as ``benchmarks/efficiency.py`` does (:func:`efficiency.build_model`:
the plugin's real model from a RecBole ``Config`` on a small synthetic dataset; the backbone
``llm_path: random:<shape>`` with ``llm_tokenizer``, random weights, bfloat16 on GPU; random item
features; MPO stage 3, everything trainable) and trains it on random batches
(:func:`efficiency.random_interaction`) of ``--batch`` sequences per process with ``--history``
items each. One step is what the trainer does (``LLMTrainer._train_epoch``): zero the
gradients, the loss through the context of :mod:`recbole_speeder.trainer.distributed`
(``Distributed.loss_function``: ``LossForward`` wrapped in DDP by accelerate's
``prepare_model``; with ``fsdp`` the backbone's decoder layers sharded first), backward, AdamW
step over the trainable weights. Under one process (``WORLD_SIZE`` 1) the context is the
plain single-process one, as in a one-GPU run: no DDP.

Times: ``--warmup`` untimed steps, then ``--steps`` timed ones between two barriers with the
device synchronised: ms per step is the slowest process's; samples/s = processes x per-GPU batch
/ step time; peak memory is ``torch.cuda.max_memory_allocated`` (the largest over the processes,
weights included), reset before each measurement. ``--strategy ddp,fsdp`` measures DDP first,
then shards the same model (sharding cannot be undone) and measures FSDP.

Process 0 writes ``--out`` (JSON: meta + rows) and prints its table; ``--report`` merges such
files and prints one table with the speed-up over the one-GPU row of the same backbone,
history and per-GPU batch.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="llama2-7b-shape",
                        help="a random:<shape> backbone (tiny | smollm2-shape | llama2-7b-shape), or default / a model folder")
    parser.add_argument("--tokenizer", default=None, help="tokenizer of a shape backbone (default: SmolLM2's)")
    from efficiency import _int_list  # comma-separated positive integers, as efficiency.py reads them

    parser.add_argument("--batch", type=_int_list, default=[16], help="per-GPU batches to measure, e.g. 16,32")
    parser.add_argument("--history", type=int, default=10, help="history items per sequence")
    parser.add_argument("--strategy", default="ddp", help="ddp, fsdp or ddp,fsdp (several processes only)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--title-tokens", type=int, default=20)
    parser.add_argument("--items", type=int, default=500, help="items of the synthetic dataset")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a Speeder property, as run_recbole_speeder.py --KEY=VALUE takes it (repeatable)")
    parser.add_argument("--out", default=None, help="JSON file for the rows (process 0)")
    parser.add_argument("--report", default=None, help="FILE[,FILE...]: merge such JSON files, print the table, exit")
    args = parser.parse_args(argv)
    args.strategy = [s.strip().lower() for s in args.strategy.split(",") if s.strip()]
    if not args.report and (args.steps < 1 or args.warmup < 0):
        parser.error("--steps must be >= 1, --warmup >= 0")
    from recbole_speeder.cli import parse_overrides

    args.overrides = parse_overrides([f"--{item}" for item in args.set])
    return args


# ---- measurement ----------------------------------------------------------------------------
def _efficiency_args(args):
    """The namespace ``efficiency.build_model`` reads."""
    from recbole_speeder.llm.backbone import RANDOM_PREFIX, SHAPES

    shape = args.backbone in SHAPES
    return argparse.Namespace(
        history=[args.history], candidates=args.candidates, title_tokens=args.title_tokens, seed=args.seed,
        llm_path=RANDOM_PREFIX + args.backbone if shape else args.backbone,
        tokenizer=args.tokenizer if shape else None, overrides=dict(args.overrides),
    )


class Timer:
    """Wall time of a block on every process: starts and ends with a barrier and a device
    synchronisation, so the time is the slowest process's."""

    def __init__(self, dist, device):
        self.dist, self.device = dist, device

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.dist.wait_for_everyone()

    def __enter__(self):
        self._sync()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self._sync()
        self.seconds = time.perf_counter() - self.start


def peak_mib(dist, device):
    """The largest ``max_memory_allocated`` over the processes (MiB; None on the CPU)."""
    if device.type != "cuda":
        return None
    value = torch.tensor([torch.cuda.max_memory_allocated(device) / 2**20], device=device)
    if dist.enabled:
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return float(value.item())


def measure(model, dist, strategy, batch, args, device, generator):
    """One row: ms per step, samples/s and peak memory of ``args.steps`` training steps."""
    from efficiency import random_interaction

    if dist.enabled:
        dist.strategy = strategy  # ddp, or fsdp: the backbone is sharded by loss_function
    loss_of = dist.loss_function(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model.train()
    batches = [random_interaction(model, batch, args.history, generator) for _ in range(args.warmup + args.steps)]

    def step(interaction):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(interaction.to(device))
        loss.backward()
        optimizer.step()

    for interaction in batches[: args.warmup]:
        step(interaction)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with Timer(dist, device) as timer:
        for interaction in batches[args.warmup:]:
            step(interaction)
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    ms = 1000.0 * timer.seconds / args.steps
    return {
        "backbone": args.backbone, "strategy": strategy if dist.enabled else "one process",
        "gpus": dist.num_processes, "per_gpu_batch": batch, "history": args.history,
        "ms_per_step": round(ms, 2), "samples_per_s": round(dist.num_processes * batch / (ms / 1000.0), 2),
        "peak_mib": None if device.type != "cuda" else round(peak_mib(dist, device), 0),
        "steps": args.steps, "warmup": args.warmup,
    }


def run_benchmark(args):
    import recbole_speeder.compat  # noqa: F401  (numpy/pandas/torch adaptations before recbole)
    from efficiency import Device, make_titles, write_dataset, build_model

    from recbole_speeder.launch import launched_world_size
    from recbole_speeder.llm.backbone import load_tokenizer
    from recbole_speeder.trainer.distributed import SINGLE, check_strategy, context_for

    world = launched_world_size()
    for strategy in args.strategy:
        check_strategy({"distributed_strategy": strategy}, {})
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist = context_for({"distributed_backend": "auto", "distributed_strategy": args.strategy[0],
                        "device": device, "seed": args.seed}) if world > 1 else SINGLE
    strategies = args.strategy if dist.enabled else args.strategy[:1]
    eff_args = _efficiency_args(args)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = load_tokenizer(eff_args.tokenizer if eff_args.llm_path.startswith("random:") else
                               (None if args.backbone == "default" else args.backbone))
    rows = []
    with tempfile.TemporaryDirectory(prefix="ddpbench-") as home:
        write_dataset(home, make_titles(tokenizer, args.items, args.title_tokens, seed=args.seed), args.history)
        cwd = os.getcwd()
        os.chdir(home)  # RecBole writes log/ and saved/ into the working directory
        try:
            start = time.perf_counter()
            model = build_model("Speeder", home, eff_args, dtype, Device(device))
            build_s = time.perf_counter() - start
            generator = torch.Generator().manual_seed(args.seed + dist.process_index)  # each GPU its own data
            for strategy in strategies:
                for batch in args.batch:
                    row = measure(model, dist, strategy, batch, args, device, generator)
                    row["build_s"] = round(build_s, 1)
                    rows.append(row)
                    if dist.is_main_process:
                        print(json.dumps(row), flush=True)
        finally:
            os.chdir(cwd)
    meta = {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "torch": torch.__version__, "dtype": str(dtype).replace("torch.", ""), "processes": dist.num_processes,
        "candidates": args.candidates, "title_tokens": args.title_tokens, "overrides": args.overrides,
        "nccl_nvls_enable": os.environ.get("NCCL_NVLS_ENABLE"),
    }
    result = {"meta": meta, "rows": rows}
    if dist.is_main_process:
        if args.out:
            from recbole_speeder.atomic import atomic_write_text

            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            atomic_write_text(args.out, json.dumps(result, indent=1))
        print(markdown([result]))
    dist.close()  # every process waits here, then the process group is destroyed
    return result


# ---- report ---------------------------------------------------------------------------------
def _num(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results):
    """One table over the rows of ``results``; speed-up over the one-GPU row of the same
    backbone, history and per-GPU batch."""
    rows = [row for result in results for row in result["rows"]]
    meta = results[0]["meta"] if results else {}
    base = {(r["backbone"], r["history"], r["per_gpu_batch"]): r for r in rows if r["gpus"] == 1}
    lines = [
        f"### Speeder training throughput, {rows[0]['backbone'] if rows else '-'} on {meta.get('device_name', '-')}",
        "",
        f"random weights and inputs, {meta.get('dtype', '-')}, history {rows[0]['history'] if rows else '-'} items, "
        f"{meta.get('candidates', '-')} candidates; {rows[0]['steps'] if rows else '-'} timed steps after "
        f"{rows[0]['warmup'] if rows else '-'} warm-up; peak memory: the largest torch.cuda.max_memory_allocated "
        "over the GPUs",
        "",
        "| GPUs | strategy | per-GPU batch | ms per step | samples/s | speed-up | peak GiB per GPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["per_gpu_batch"], r["gpus"], r["strategy"])):
        one = base.get((r["backbone"], r["history"], r["per_gpu_batch"]))
        speedup = f"{r['samples_per_s'] / one['samples_per_s']:.2f}x" if one else "-"
        peak = None if r.get("peak_mib") is None else r["peak_mib"] / 1024
        lines.append(f"| {r['gpus']} | {r['strategy']} | {r['per_gpu_batch']} | {_num(r['ms_per_step'], 1)} | "
                     f"{_num(r['samples_per_s'], 1)} | {speedup} | {_num(peak, 1)} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        results = []
        for path in args.report.split(","):
            with open(path) as f:
                results.append(json.load(f))
        print(markdown(results))
        return 0
    run_benchmark(args)
    return 0


if __name__ == "__main__":
    from recbole_speeder.cli import friendly_errors

    sys.exit(friendly_errors(main)())
