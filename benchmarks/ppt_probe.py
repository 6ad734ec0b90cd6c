"""Is Speeder's positional proxy task (PPT) learnable in its prompt form? A CPU probe.

    python benchmarks/ppt_probe.py --out docs/results/<run>/ppt-probe              # every variant, n = 10
    python benchmarks/ppt_probe.py --histories 5 --variants lora-1e-3,full-1e-3    # shorter histories
    python benchmarks/ppt_probe.py --llm-path default --histories 5 --variants order-lora-1e-3  # pretrained SmolLM2

PPT (paper eqs 13-14) asks, for three items a, b, c of a history, whether the first two are at
most as far apart as the last two. In the GPU runs PPT accuracy stays at chance. This probe trains
the PPT task alone (no recommendation loss) with the project's own pieces --
:class:`~recbole_speeder.prompts.hybrid.HybridPrompt` (``build_ppt``, the paper's own-prompt form),
:class:`~recbole_speeder.model.layers.spae.PositionPrompts` (PPL), ``build_inputs_embeds``,
``sample_ppt`` / ``ppt_label``, ``apply_lora``, the LM head on the answer position, the one-token
cross-entropy and Speeder's warm-up + cosine schedule -- on a small random Llama with SmolLM2's
tokenizer, or with ``--llm-path`` (``default`` = SmolLM2-135M-Instruct) on a real backbone through
``load_backbone``. Items are random distinct ids; an item's vector is a trainable linear adapter over a
fixed random feature row (what MRC gives), at the scale of the token embeddings; ``--item-features``
gives the items real feature rows instead (e.g. the backbone's mean-pooled title vectors, which
are nearly parallel: ml-100k's SmolLM2 title vectors have a mean pairwise cosine of 0.85), scaled
to unit mean square (``--feature-scaling rms``, their directions kept) or standardised per
dimension (``standardize``, the common direction removed).

Variants (``--variants``): ``lora-*`` LoRA r=8 on q/v (as Speeder), ``full-*`` every weight trains;
``-noppl`` sets p_i = 0 (only rotary positions remain); ``order-*`` asks the easier question
"does a come before b?" in the same prompt machinery (c stays in the prompt, unused); ``hint-*``
adds p_i to the a/b/c placeholders too (their positions handed over: only the distance comparison
is left to learn; Speeder never does this, it gives the answer's inputs away). Accuracy is
on a fixed held-out set of questions over fresh histories, read as Speeder reads it (the larger of
the yes / no logits). Prints a markdown table; ``--out`` gets ``ppt_probe.md`` and ``ppt_probe.json``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from recbole_speeder.atomic import atomic_write_text  # noqa: E402
from recbole_speeder.llm.answers import label_answer_loss, pair_logits  # noqa: E402
from recbole_speeder.llm.backbone import apply_lora, load_backbone, load_tokenizer  # noqa: E402
from recbole_speeder.llm.decoding import head_logits, hidden_at  # noqa: E402
from recbole_speeder.model.layers.spae import PositionPrompts, sample_ppt  # noqa: E402
from recbole_speeder.prompts.base import build_inputs_embeds  # noqa: E402
from recbole_speeder.prompts.hybrid import DEFAULT_PPT_TEMPLATE, HybridPrompt  # noqa: E402
from recbole_speeder.trainer.llm_trainer import warmup_schedule  # noqa: E402

ORDER_TEMPLATE = ("Here is the purchase history of a user, oldest first: {history}. Consider the items "
                  "{a}, {b} and {c}. Does the first come before the second in the history? Answer yes or no.")
# name -> (task, training, learning rate, PPL on, a/b/c get their p_i too)
VARIANTS = {
    "lora-2e-4": ("ppt", "lora", 2e-4, True, False),
    "lora-1e-3": ("ppt", "lora", 1e-3, True, False),
    "full-1e-3": ("ppt", "full", 1e-3, True, False),
    "lora-1e-3-noppl": ("ppt", "lora", 1e-3, False, False),
    "full-1e-3-noppl": ("ppt", "full", 1e-3, False, False),
    "order-lora-1e-3": ("order", "lora", 1e-3, True, False),
    "order-lora-2e-4": ("order", "lora", 2e-4, True, False),
    "order-full-1e-3": ("order", "full", 1e-3, True, False),
    "hint-full-1e-3": ("ppt", "full", 1e-3, True, True),
    "order-hint-full-1e-3": ("order", "full", 1e-3, True, True),
    "hint-lora-1e-3": ("ppt", "lora", 1e-3, True, True),
    "order-hint-lora-1e-3": ("order", "lora", 1e-3, True, True),
}


def questions(rng, count, n, n_items, task):
    """``count`` (history [n], a/b/c items [3], yes) of random distinct items; positions from
    ``sample_ppt``; the answer is eq 14's (``ppt``) or pos(a) < pos(b) (``order``)."""
    out = []
    for _ in range(count):
        history = rng.choice(n_items, size=n, replace=False) + 1  # ids 1..n_items (0 is padding)
        s = sample_ppt(history, rng)
        yes = s.label if task == "ppt" else s.a_pos < s.b_pos
        out.append((history, history[[s.a_pos, s.b_pos, s.c_pos]], bool(yes)))
    return out


def item_features(args):
    """[items + 1, d] fixed item features (row 0 unused, as padding): random normal rows, or the
    first ``--items`` rows of ``--item-features`` (.npy) scaled by ``--feature-scaling``."""
    if not args.item_features:
        return torch.randn(args.items + 1, args.feature_dim)
    try:
        rows = np.load(args.item_features).astype(np.float32)
    except (OSError, ValueError) as err:
        raise SystemExit(f"--item-features {args.item_features}: not a readable .npy file ({err})") from None
    if rows.ndim != 2 or len(rows) < args.items:
        raise SystemExit(f"--item-features {args.item_features}: need a 2-d array of at least --items "
                         f"{args.items} rows, got shape {rows.shape}")
    rows = rows[:args.items]
    if args.feature_scaling == "standardize":
        rows = (rows - rows.mean(0)) / (rows.std(0) + 1e-6)
    else:
        rows = rows / np.sqrt(np.mean(rows ** 2))
    return torch.from_numpy(np.concatenate([np.zeros((1, rows.shape[1]), np.float32), rows]))


class Probe(nn.Module):
    """Backbone (+ LoRA), item adapter over fixed random features, position prompts."""

    def __init__(self, tokenizer, args, training, use_ppl, history_len):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(args.seed)  # every variant starts from the same weights
        if args.llm_path:  # a fresh copy of the real backbone (float32, CPU) for every variant
            llm = load_backbone(args.llm_path, dtype=torch.float32, device="cpu")[0]
        else:
            config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.hidden,
                                 intermediate_size=2 * args.hidden, num_hidden_layers=args.layers,
                                 num_attention_heads=args.heads, num_key_value_heads=args.heads,
                                 max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
            llm = LlamaForCausalLM(config)
            llm.config._attn_implementation = "sdpa"
        hidden = llm.config.hidden_size
        token_std = float(llm.get_input_embeddings().weight.detach().std())
        self.llm = apply_lora(llm, r=8, alpha=16, dropout=0.05) if training == "lora" else llm
        features = item_features(args)
        self.register_buffer("features", features)
        self.adapter = nn.Linear(features.shape[1], hidden, bias=False)
        nn.init.normal_(self.adapter.weight, std=token_std / features.shape[1] ** 0.5)  # outputs ~ token scale
        self.ppl = PositionPrompts(history_len, hidden, enabled=use_ppl)

    def answer_logits(self, batch):
        """Full-vocabulary logits [B, V] at each prompt's PPT answer position."""
        vectors = self.adapter(self.features[batch.slot_item_ids()])
        embeds = build_inputs_embeds(self.llm, batch, vectors, self.ppl)
        rows, positions = batch.answer("ppt")
        return head_logits(self.llm, hidden_at(self.llm, embeds, rows, positions,
                                               attention_mask=batch.decoder_mask()))


def build(prompt, chunk, hint=False):
    """(PPT prompt batch, yes / no token per row); ``hint``: a/b/c placeholders get their p_i
    (Speeder's ``ppt_question_positions``)."""
    positions = [[int(np.flatnonzero(h == item)[0]) + 1 for item in abc] for h, abc, _ in chunk] if hint else None
    batch = prompt.build_ppt([h for h, _, _ in chunk], np.stack([abc for _, abc, _ in chunk]), positions)
    yes = torch.tensor([y for _, _, y in chunk])
    return batch, torch.where(yes, prompt.yes_id, prompt.no_id)


@torch.no_grad()
def accuracy(model, prompt, held_out, hint=False, size=128):
    model.eval()
    correct = 0
    for start in range(0, len(held_out), size):
        batch, target = build(prompt, held_out[start:start + size], hint)
        pair = pair_logits(model.answer_logits(batch), prompt.yes_id, prompt.no_id)
        predicted = torch.where(pair.argmax(dim=1) == 0, prompt.yes_id, prompt.no_id)
        correct += int((predicted == target).sum())
    model.train()
    return correct / len(held_out)


def run_variant(name, n, tokenizer, args):
    """One row: held-out accuracy and mean training loss every ``eval_every`` steps, wall time."""
    task, training, lr, use_ppl, hint = VARIANTS[name]
    prompt = HybridPrompt(tokenizer, ppt_template=DEFAULT_PPT_TEMPLATE if task == "ppt" else ORDER_TEMPLATE)
    held_out = questions(np.random.default_rng(args.seed + 1000 + n), args.eval_size, n, args.items, task)
    rng = np.random.default_rng(args.seed + n)  # the same training questions for every variant of a task
    model = Probe(tokenizer, args, training, use_ppl, n).train()
    if training == "full":
        for p in model.llm.parameters():
            p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_schedule(args.steps, 0.05, "cosine"))
    started = time.perf_counter()
    checkpoints, losses, window = [], [], []
    for step in range(1, args.steps + 1):
        batch, target = build(prompt, questions(rng, args.batch, n, args.items, task), hint)
        loss = label_answer_loss(model.answer_logits(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        window.append(float(loss.detach()))
        if step % args.eval_every == 0 or step == args.steps:
            checkpoints.append((step, accuracy(model, prompt, held_out, hint)))
            losses.append(float(np.mean(window)))
            window = []
    yes_rate = float(np.mean([y for _, _, y in held_out]))
    return {"variant": name, "task": task, "training": training, "lr": lr, "ppl": use_ppl, "hint": hint, "n": n,
            "trainable": sum(p.numel() for p in params), "majority": max(yes_rate, 1 - yes_rate),
            "accuracy": checkpoints, "loss": losses, "wall_s": time.perf_counter() - started}


def table(rows, args):
    steps = [s for s, _ in rows[0]["accuracy"]] if rows else []
    backbone = (f"the pretrained backbone {args.llm_path!r}" if args.llm_path else
                f"a random Llama ({args.layers} layers, hidden {args.hidden}, {args.heads} heads, SmolLM2 tokenizer)")
    lines = [f"PPT alone on {backbone}, {args.items} items, batch {args.batch}, {args.steps} steps, "
             f"held-out accuracy on {args.eval_size} questions, seed {args.seed}\n",
             "| variant | n | trainable params | majority | " + " | ".join(f"acc@{s}" for s in steps)
             + " | loss (last window) | wall s |",
             "|---|---|---|---|" + "---|" * len(steps) + "---|---|"]
    for r in rows:
        accs = " | ".join(f"{a:.3f}" for _, a in r["accuracy"])
        lines.append(f"| {r['variant']} | {r['n']} | {r['trainable']:,} | {r['majority']:.3f} | {accs} | "
                     f"{r['loss'][-1]:.3f} | {r['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma list of: " + ", ".join(VARIANTS))
    parser.add_argument("--histories", default="10", help="comma list of history lengths n")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--eval-size", type=int, default=512)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--feature-dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--item-features", default=None,
                        help=".npy [N, d] of real item features (first --items rows); default: random rows")
    parser.add_argument("--feature-scaling", choices=["rms", "standardize"], default="rms",
                        help="--item-features scaled to unit mean square (rms) or per-dimension z-scores")
    parser.add_argument("--llm-path", default=None,
                        help="real backbone as load_backbone takes it ('default' = SmolLM2-135M-Instruct); "
                             "default: the random Llama of --hidden/--layers/--heads")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="folder for ppt_probe.md and ppt_probe.json")
    return parser.parse_args(argv)


def main(argv=None):
    """Train every (variant, n), print the table, write it to ``--out``; returns the rows."""
    args = parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise SystemExit(f"--variants: unknown {unknown}; use {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.llm_path)
    rows = []
    for n in (int(h) for h in args.histories.split(",")):
        for name in names:
            rows.append(run_variant(name, n, tokenizer, args))
            print(f"done {name} n={n}: {rows[-1]['accuracy'][-1][1]:.3f} ({rows[-1]['wall_s']:.0f} s)",
                  file=sys.stderr, flush=True)
    text = table(rows, args)
    print(text)
    if args.out:
        atomic_write_text(os.path.join(args.out, "ppt_probe.md"), text)
        atomic_write_text(os.path.join(args.out, "ppt_probe.json"),
                          json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
