"""Host time of building one training batch of 128 sequences (prompts, PPT, packing), the best
of 30 repetitions, on the CPU.

    python docs/results/2026-11-30-cpu/issue18/assembly.py
"""
import os
import sys

# the repository whose package is measured: ROOT, or the one this file lies in
ROOT = os.environ.get("ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]
import tempfile, time
import numpy as np, torch
import recbole_speeder.compat  # noqa
import efficiency as E
from recbole_speeder.llm.backbone import load_tokenizer
n = int(os.environ.get("N", 10))
args = E.parse_args(["--backbone", "tiny", "--history", str(n), "--batch", "128", "--device", "cpu"] + sys.argv[1:])
args.llm_path = "random:tiny"
tok = load_tokenizer(None)
home = tempfile.mkdtemp()
E.write_dataset(home, E.make_titles(tok, 1000, args.title_tokens, seed=args.seed), n)
os.chdir(home)
model = E.build_model("Speeder", home, args, torch.float32, E.Device("cpu"))
model.train()
g = torch.Generator().manual_seed(0)
inter = E.random_interaction(model, 128, n, g)
new = hasattr(model, "_training_batch")
def old_step():
    histories = model.recent_history(inter)
    candidates, target_pos = model.training_candidates(inter)
    batch = model.prompt.build(histories, candidates)
    ppt = model._ppt_prompts(histories)
    if ppt is not None:
        batch = batch.concat(ppt[0], model.prompt.pad_id)
    ids = batch.slot_item_ids()
    torch.unique(ids, return_inverse=True)
    return batch
def new_step():
    histories = model.recent_history(inter)
    candidates, target_pos = model.training_candidates(inter, device="cpu")
    batch = model._on_device(model._training_batch(histories, candidates, target_pos), model.prompt_packing)
    return batch
step = new_step if new else old_step
def timed(f, reps=30):
    best = 1e9
    for _ in range(reps):
        torch.manual_seed(1)
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    return best * 1000
parts = {}
torch.manual_seed(1)
parts["whole batch"] = timed(step)
parts["recent_history"] = timed(lambda: model.recent_history(inter))
parts["training_candidates"] = timed(lambda: model.training_candidates(inter))
hist = model.recent_history(inter); cands, pos = model.training_candidates(inter)
parts["prompt.build (rec only)"] = timed(lambda: model.prompt.build(hist, cands))
print(("new" if new else "old"), os.environ.get("TAG", ""), {k: round(v, 2) for k, v in parts.items()})
