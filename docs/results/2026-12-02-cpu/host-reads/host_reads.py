"""Issue 18, fourteenth session: where the host reads (aten::_local_scalar_dense, item) and the size-dependent
operators (nonzero, unique, masked_select) of one compiled Speeder training step come from, as
benchmarks/efficiency.py --profile counts them (llm_compile: default, left padding, tiny backbone, n = 10,
batch 16, CPU, AdamW fused as on a GPU). Each is printed with its callers in the plugin, peft, transformers
and torch; the CPU's fused AdamW reads each parameter's step count (its CPU kernel only) and is left out.
    python docs/results/2026-12-02-cpu/host-reads/host_reads.py [--set KEY=VALUE ...] > host_reads.txt
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

READS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::masked_select",
         "aten::unique_consecutive", "aten::is_nonzero")
FRAMES = ("recbole_speeder/", "benchmarks/", "site-packages/peft", "transformers/", "torch/optim")


def callers(event):
    """The frames of ours, peft's, transformers' and torch.optim's above ``event``, innermost first."""
    chain, parent = [], event.cpu_parent
    while parent is not None:
        if any(part in parent.name for part in FRAMES) or parent.name.startswith("aten::"):
            chain.append(parent.name.split(ROOT + "/")[-1].split("site-packages/")[-1])
        parent = parent.cpu_parent
    return chain


def main():
    import recbole_speeder.compat  # noqa: F401
    from recbole_speeder.llm.backbone import RANDOM_PREFIX, load_tokenizer
    from recbole_speeder.trainer.llm_trainer import fused_adam

    sets = ["prompt_packing=False", "llm_compile=default"] + [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--set"]
    args = E.parse_args(["--backbone", "tiny", "--history", "10", "--batch", "16", "--device", "cpu",
                         "--out", tempfile.gettempdir()] + [x for o in sets for x in ("--set", o)])
    args.llm_path = RANDOM_PREFIX + args.backbone
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as home:
        E.write_dataset(home, E.make_titles(load_tokenizer(None), args.items, args.title_tokens, seed=args.seed), 10)
        os.chdir(home)
        try:
            model = E.build_model("Speeder", home, args, torch.float32, E.Device("cpu"))
            batch = E.random_interaction(model, 16, 10, torch.Generator().manual_seed(1))
            optimizer = fused_adam(torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5),
                                   device_types=("cpu",))
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
    found = collections.Counter()
    for event in prof.events():
        if event.name in READS:
            chain = callers(event)
            if not any("_fused_adamw" in c for c in chain):
                found[(event.name, " <- ".join(chain[:4]))] += 1
    print(f"host reads and size-dependent operators of one compiled Speeder training step (settings {sets}):")
    for (name, chain), count in sorted(found.items()):
        print(f"{count} x {name} <- {chain}")


if __name__ == "__main__":
    main()
