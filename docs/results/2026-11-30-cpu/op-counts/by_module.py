"""Issue 18, 2026-11-30 (commit 01b7154): which code dispatches the operators of one Speeder training step
(SmolLM2 shape, random weights, n = 10, batch 16, CPU), with PPT and without. Each aten operator
is charged to the innermost frame of the plugin, peft or transformers' model code on the Python
stack; operators with none (autograd's backward, AdamW) form one bucket.
    python docs/results/2026-11-30-cpu/op-counts/by_module.py > docs/results/2026-11-30-cpu/op-counts/by_module.txt
"""
import collections
import os
import sys
import tempfile
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import efficiency as E  # noqa: E402

OWN = ("recbole_speeder", "benchmarks", "site-packages/peft", "transformers/models")


class CountByFrame(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        where = "autograd / optimizer (no plugin frame)"
        for frame in reversed(traceback.extract_stack()):
            if any(part in frame.filename for part in OWN):
                where = f"{frame.filename.split(ROOT + '/')[-1].split('site-packages/')[-1]}:{frame.name}"
                break
        self.counts[where] += 1
        return func(*args, **(kwargs or {}))


def count_step(overrides):
    import recbole_speeder.compat  # noqa: F401
    from recbole_speeder.llm.backbone import RANDOM_PREFIX, load_tokenizer

    args = E.parse_args(["--backbone", "smollm2-shape", "--history", "10", "--batch", "16", "--device", "cpu",
                         "--out", tempfile.gettempdir()] + [x for o in overrides for x in ("--set", o)])
    args.llm_path = RANDOM_PREFIX + args.backbone
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as home:
        E.write_dataset(home, E.make_titles(load_tokenizer(None), args.items, args.title_tokens, seed=args.seed), 10)
        os.chdir(home)
        try:
            model = E.build_model("Speeder", home, args, torch.float32, E.Device("cpu"))
            batch = E.random_interaction(model, 16, 10, torch.Generator().manual_seed(1))
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

            def step():
                optimizer.zero_grad(set_to_none=True)
                model.calculate_loss(batch).backward()
                optimizer.step()

            step()
            counter = CountByFrame()
            with counter:
                step()
        finally:
            os.chdir(cwd)
    return counter.counts


def main():
    on, off = count_step([]), count_step(["use_ppt=False"])
    print(f"operators of one training step: {sum(on.values())} with PPT, {sum(off.values())} with use_ppt=False\n")
    print("with PPT | without | difference | where")
    for key in sorted(set(on) | set(off), key=lambda k: -(on[k] - off[k]))[:15]:
        print(f"{on[key]:8d} | {off[key]:7d} | {on[key] - off[key]:+10d} | {key}")
    print("\nthe largest, with PPT:")
    for key, value in on.most_common(20):
        print(f"{value:8d} | {key}")


if __name__ == "__main__":
    main()
