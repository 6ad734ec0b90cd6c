"""Issue 18, 2026-12-02 (commit 472047b): where the host reads (aten::_local_scalar_dense) and the size-dependent
operators (nonzero, unique, masked_select) of one compiled Speeder training step come from, as
benchmarks/efficiency.py --profile counts them: the profiled step of 2026-12-01 (docs/results/2026-12-01-h200-c)
(../../2026-12-01-cpu/compiled-by-frame/by_frame.py: llm_compile default, left padding, tiny backbone,
n = 10, batch 16, CPU, AdamW fused as on a GPU), each such operator printed with its callers in the
plugin, peft, transformers and torch.optim. The CPU's fused AdamW reads each parameter's step count (its
CPU kernel only, not the GPU's) and is left out.
    python docs/results/2026-12-02-cpu/host-reads/host_reads.py [--set KEY=VALUE ...] > host_reads.txt
"""
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "2026-12-01-cpu", "compiled-by-frame"))
from by_frame import ROOT, profiled_step  # noqa: E402  (puts benchmarks/ on the path)
from efficiency import SYNC_OPS  # noqa: E402  (the operators efficiency.py --profile counts)

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
    overrides = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--set"]
    found = collections.Counter()
    for event in profiled_step("Speeder", overrides).events():
        if event.name in SYNC_OPS:
            chain = callers(event)
            if not any("_fused_adamw" in c for c in chain):
                found[(event.name, " <- ".join(chain[:4]))] += 1
    print(f"host reads and size-dependent operators of one compiled Speeder training step "
          f"(left padding, llm_compile default, settings {overrides or 'default'}):")
    for (name, chain), count in sorted(found.items()):
        print(f"{count} x {name} <- {chain}")


if __name__ == "__main__":
    main()
