"""Where a Speeder training step reads a tensor value on the host or runs an operator whose output
size needs the device (each a synchronisation on a GPU): counted with a dispatch mode on the CPU.

    python docs/results/2026-11-30-cpu/issue18/syncs.py
"""
import os
import sys

# the repository whose package is measured: ROOT, or the one this file lies in
ROOT = os.environ.get("ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]
import tempfile, collections, traceback
import torch
import recbole_speeder.compat  # noqa
import efficiency as E
from recbole_speeder.llm.backbone import load_tokenizer
from torch.utils._python_dispatch import TorchDispatchMode
args = E.parse_args(["--backbone", "tiny", "--history", "10", "--batch", "16", "--device", "cpu"] + sys.argv[1:])
args.llm_path = "random:tiny"
tok = load_tokenizer(None)
dev = E.Device("cpu")
home = tempfile.mkdtemp()
E.write_dataset(home, E.make_titles(tok, 200, args.title_tokens, seed=args.seed), 10)
os.chdir(home)
model = E.build_model("Speeder", home, args, torch.float32, dev)
model.train()
g = torch.Generator().manual_seed(0)
inter = E.random_interaction(model, 16, 10, g)
model.calculate_loss(inter).backward()
c = collections.Counter()
SYNC = {"_local_scalar_dense", "nonzero", "_unique2", "masked_select", "masked_scatter", "masked_scatter_"}
class Spy(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        if name in SYNC:
            st = [f for f in traceback.extract_stack()[:-1] if "site-packages/torch/" not in f.filename]
            c[(name, " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in st[-3:][::-1]))] += 1
        return func(*args, **(kwargs or {}))
with Spy():
    model.calculate_loss(inter).backward()
for k, v in c.most_common(30): print(v, k)
