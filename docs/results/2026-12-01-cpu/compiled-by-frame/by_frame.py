"""Issue 18, 2026-12-01 (commits 6c471e7 to 9b48e5c): which code dispatches the host operators of one *compiled* Speeder training
step (llm_compile: default, left padding, tiny backbone, n = 10, batch 16, CPU; AdamW on its multi-tensor
or fused form as on a GPU: OPTIMIZER=foreach|fused, default fused). Under CUDA graphs the compiled graphs cost one launch each, so what remains on the
host is these operators. Each top-level aten operator (not called by another) is charged to the innermost
frame of the plugin, peft or transformers above it (torch.profiler with_stack); operators with
none form two buckets: AdamW, and autograd's backward (its operators by name below the table).
    [OPTIMIZER=foreach] python docs/results/2026-12-01-cpu/compiled-by-frame/by_frame.py [--set KEY=VALUE ...] > by_frame.txt
"""
import collections
import os
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import efficiency as E  # noqa: E402

OPTIMIZER = os.environ.get("OPTIMIZER", "fused")  # or foreach
OWN = ("recbole_speeder/", "benchmarks/", "site-packages/peft", "transformers/models")


def where(event):
    """The innermost Python frame of ours, peft's or transformers' above ``event`` (the profiler's
    Python-function events are the operators' parents)."""
    parent = event.cpu_parent
    while parent is not None:
        if any(part in parent.name for part in OWN):
            return parent.name.split(ROOT + "/")[-1].split("site-packages/")[-1]
        parent = parent.cpu_parent
    parent = event.cpu_parent
    while parent is not None:
        if "torch/optim/" in parent.name:
            return "the optimizer (AdamW)"
        parent = parent.cpu_parent
    return "autograd's backward (no plugin frame)"


def profiled_step(model_name, overrides, batch_size=16):
    """The profile (with stacks) of one compiled training step of ``model_name`` after 3 warm-up steps."""
    import recbole_speeder.compat  # noqa: F401
    from recbole_speeder.llm.backbone import RANDOM_PREFIX, load_tokenizer

    sets = ["prompt_packing=False", "llm_compile=default"] + overrides
    args = E.parse_args(["--backbone", "tiny", "--history", "10", "--batch", str(batch_size), "--device", "cpu",
                         "--out", tempfile.gettempdir()] + [x for o in sets for x in ("--set", o)])
    args.llm_path = RANDOM_PREFIX + args.backbone
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as home:
        E.write_dataset(home, E.make_titles(load_tokenizer(None), args.items, args.title_tokens, seed=args.seed), 10)
        os.chdir(home)
        try:
            model = E.build_model("Speeder", home, args, torch.float32, E.Device("cpu"))
            if model_name == "Backbone":
                model = E.BareBackbone(model)
            batch = E.random_interaction(model, batch_size, 10, torch.Generator().manual_seed(1))
            params = [p for p in model.parameters() if p.requires_grad]
            if OPTIMIZER == "foreach":  # the multi-tensor form, the GPU's default before commit 9b48e5c
                optimizer = torch.optim.AdamW(params, lr=1e-5, foreach=True)
            else:  # the fused form the trainer runs on a GPU since (fused_adam)
                from recbole_speeder.trainer.llm_trainer import fused_adam
                optimizer = fused_adam(torch.optim.AdamW(params, lr=1e-5), device_types=("cpu",))
            model.train()

            def step():
                optimizer.zero_grad(set_to_none=True)
                model.calculate_loss(batch).backward()
                optimizer.step()

            for _ in range(3):  # the compilations
                step()
            with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
                step()
        finally:
            os.chdir(cwd)
    return prof


def count_step(model_name, overrides, batch_size=16):
    prof = profiled_step(model_name, overrides, batch_size)
    counts, backward = collections.Counter(), collections.Counter()
    for event in prof.events():
        if event.name.startswith("aten::"):
            parent = event.cpu_parent
            if parent is None or not parent.name.startswith("aten::"):
                counts[where(event)] += 1
                if where(event).startswith("autograd"):
                    backward[event.name] += 1
    return counts, backward


def main():
    overrides = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--set"]
    (backbone, backbone_bw), (speeder, speeder_bw) = count_step("Backbone", overrides), count_step("Speeder", overrides)
    print(f"top-level operators of one compiled training step (settings {overrides or 'default'}, AdamW {OPTIMIZER}): "
          f"Speeder {sum(speeder.values())}, bare Backbone {sum(backbone.values())}\n")
    print("Speeder | Backbone | where (innermost plugin / peft / transformers frame)")
    for key in sorted(set(speeder) | set(backbone), key=lambda k: -(speeder[k] - backbone[k])):
        if speeder[key] or backbone[key]:
            print(f"{speeder[key]:7d} | {backbone[key]:8d} | {key}")
    print("\nautograd's backward, by operator:\nSpeeder | Backbone | operator")
    for key in sorted(set(speeder_bw) | set(backbone_bw), key=lambda k: -(speeder_bw[k] - backbone_bw[k]))[:25]:
        print(f"{speeder_bw[key]:7d} | {backbone_bw[key]:8d} | {key}")


if __name__ == "__main__":
    main()
