"""Operators dispatched in one training step (forward, backward, optimizer) of Speeder and of the
bare backbone, on the CPU (deterministic: a count, not a time). SHAPE=tiny|smollm2-shape; extra
arguments are efficiency.py options, e.g. --set ppt_layout=separate --set prompt_packing=False.

    SHAPE=smollm2-shape python docs/results/2026-11-30-cpu/issue18/opcount.py
"""
import os
import sys

# the repository whose package is measured: ROOT, or the one this file lies in
ROOT = os.environ.get("ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]
import tempfile, collections
import torch
import recbole_speeder.compat  # noqa
import efficiency as E
from recbole_speeder.llm.backbone import load_tokenizer
from torch.profiler import profile, ProfilerActivity, record_function
shape = os.environ.get("SHAPE", "tiny")
args = E.parse_args(["--backbone", shape, "--history", "10", "--batch", "16", "--device", "cpu"] + sys.argv[1:])
args.llm_path = "random:" + shape
tok = load_tokenizer(None)
dev = E.Device("cpu")
home = tempfile.mkdtemp()
E.write_dataset(home, E.make_titles(tok, 200, args.title_tokens, seed=args.seed), 10)
os.chdir(home)
for name in ("Speeder", "Backbone"):
    m = E.build_model("Speeder", home, args, torch.float32, dev)
    model = m if name == "Speeder" else E.BareBackbone(m)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, foreach=True)
    g = torch.Generator().manual_seed(0)
    inter = E.random_interaction(model, 16, 10, g)
    def step():
        with record_function("A_forward"):
            loss = model.calculate_loss(inter)
        with record_function("B_backward"):
            loss.backward()
        with record_function("C_optimizer"):
            opt.step(); opt.zero_grad()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    c = collections.Counter()
    for e in prof.events():
        if not e.name.startswith("aten::"): continue
        p = e.cpu_parent
        if p is not None and p.name.startswith("aten::"): continue
        # find phase ancestor
        a, phase = e, "other"
        while a is not None:
            if a.name in ("A_forward", "B_backward", "C_optimizer"): phase = a.name; break
            a = a.cpu_parent
        if phase == "other" and e.thread != 0: phase = "B_backward(autograd thread)"
        c[phase] += 1
    print(name, sum(c.values()), dict(sorted(c.items())))
