"""One model's rows of benchmarks/efficiency.py: training and inference timed at every history length
(the micro-batch halved on out-of-memory), with the FLOP rate and the profile where asked."""

import json
import os

import torch

from efficiency_flops import FLOP_MODELS, PromptLength, add_flop_rate
from efficiency_inputs import random_candidates, random_interaction
from efficiency_models import BareBackbone, build_model
from efficiency_timing import is_oom, profile_training, time_inference, time_training


def benchmark_model(name, home, args, dtype, dev):
    rows = []
    if name == "Backbone":
        model = BareBackbone(build_model("Speeder", home, args, dtype, dev))
    else:
        model = build_model(name, home, args, dtype, dev)
    prompt_length = PromptLength(model.llm)
    generator = torch.Generator().manual_seed(args.seed)
    try:
        for n in args.history:
            steps = args.warmup + args.steps
            batches = [random_interaction(model, args.batch, n, generator) for _ in range(steps)]
            candidates = [random_candidates(model.n_items, args.batch, args.candidates, generator) for _ in range(steps)]
            row = {"model": name, "n": n}
            for phase, run, micro in (
                ("train", lambda m: time_training(model, batches, args.warmup, m, dev, args.repeat), args.micro_batch),
                ("infer", lambda m: time_inference(model, batches, candidates, args.warmup, m, dev, prompt_length,
                                                   args.repeat), args.infer_micro_batch),
            ):
                result = None
                while result is None:
                    try:
                        result = run(micro)
                    except RuntimeError as err:
                        if not is_oom(err):
                            raise
                    if result is None:  # out of memory: free (the failed step's frames are gone) and halve
                        model.zero_grad(set_to_none=True)
                        dev.free()
                        micro //= 2
                        if micro < 1:
                            result = ("OOM", None, None, None)
                row[f"{phase}_ms"], row[f"{phase}_peak_mib"], row[f"{phase}_micro_batch"] = result[0], result[1], micro
                if args.repeat > 1 and result[-1]:
                    row[f"{phase}_ms_runs"] = result[-1]
                if phase == "infer":
                    row["prompt_tokens"] = result[2]
            if name in FLOP_MODELS:
                try:
                    add_flop_rate(row, model, batches[-1], candidates[-1], args, dev)
                except RuntimeError as err:  # e.g. out of memory in the counting step: keep the times
                    print(f"no FLOP count for {name} n={n}: {type(err).__name__}: {err}", flush=True)
                    model.zero_grad(set_to_none=True)
                    dev.free()
            if args.profile and n == args.history[0] and isinstance(row.get("train_ms"), (int, float)):
                os.makedirs(args.out, exist_ok=True)
                path = os.path.join(args.out, f"profile-{name}-n{n}.txt")
                row["profile"] = profile_training(model, batches[-1], row["train_micro_batch"], dev, path)
                print(f"profile of one {name} training step: {path}", flush=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        prompt_length.remove()
        del model
        dev.free()
    return rows
