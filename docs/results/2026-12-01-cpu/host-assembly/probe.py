"""Issue 18, 2026-12-01 (commit d189520): the host time of the part of Speeder's training step that runs before any
device work (the histories and training candidates, the prompts with PPT's questions, the distinct items
and the packing of :meth:`Speeder._on_device` without its copy), batch 128, n = 10, stage 3, the
defaults, on efficiency.py's synthetic dataset and tiny backbone (the host work does not depend on the
backbone's size). 5 untimed steps, then the mean of 25. From the repo root:
    .venv/bin/python docs/results/2026-12-01-cpu/host-assembly/probe.py [--set prompt_packing=False]
"""
import os, sys, tempfile, time
sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "benchmarks")]
import torch
import recbole_speeder.compat  # noqa
import efficiency as E
from recbole_speeder.llm.backbone import RANDOM_PREFIX, load_tokenizer
args = E.parse_args(["--backbone", "tiny", "--models", "Speeder", "--history", "10", "--batch", "128", "--device", "cpu"]
                    + sys.argv[1:])
args.llm_path = RANDOM_PREFIX + "tiny"
dev = E.Device("cpu")
tok = load_tokenizer(None)
with tempfile.TemporaryDirectory() as home:
    E.write_dataset(home, E.make_titles(tok, args.items, args.title_tokens, seed=0), args.history[0])
    os.chdir(home)
    model = E.build_model("Speeder", home, args, torch.float32, dev)
    model.train()
    g = torch.Generator().manual_seed(0)
    warmup, timed = 5, 25
    inters = [E.random_interaction(model, args.batch, args.history[0], g) for _ in range(warmup + timed)]
    parts = {"histories+candidates": 0.0, "_training_batch": 0.0, "_on_device(pack)": 0.0}
    for k, it in enumerate(inters):
        t0 = time.perf_counter()
        h = model.recent_history(it)
        c, tp = model.training_candidates(it, device="cpu")
        t1 = time.perf_counter()
        b = model._training_batch(h, c, tp)
        t2 = time.perf_counter()
        b = model._on_device(b, model.prompt_packing)
        t3 = time.perf_counter()
        if k >= warmup:
            parts["histories+candidates"] += t1 - t0; parts["_training_batch"] += t2 - t1; parts["_on_device(pack)"] += t3 - t2
    for name, v in parts.items():
        print(f"{name}: {v / timed * 1000:.2f} ms per step of {args.batch}")
    print("packing", model.prompt_packing, "ppt_layout", model.ppt_layout, "answer_head", model.answer_head,
          "score_loss", model.score_loss)
