"""Packed vs padded prompts on the GPU (issue 18): the answer logits and the gradients must
agree, and the packed rows should be faster. Run from the repository root:

    python docs/results/2026-11-30-h200/speed/check_packing.py TOKENIZER_FOLDER [OUT.json]

A SmolLM2-shaped Llama with random weights (bfloat16) and LoRA on q/v; a batch shaped like a
Speeder training step at n = 10: 128 recommendation prompts (a third of the histories shorter),
30% of them with the PPT follow-up in the same row (``ppt_layout: shared``), plus 16 PPT
prompts of their own (``separate``), so that lengths differ. For each attention (left padding
with SDPA; packed with ``varlen``; packed with ``grouped``): the logits at every answer and the
gradient of the item vectors, compared with padding; and the time of one forward + backward.
"""

import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, ".")
import recbole_speeder.compat  # noqa: F401,E402
import recbole_speeder.llm.packing as packing  # noqa: E402
from recbole_speeder.llm.backbone import apply_lora, load_tokenizer, random_backbone  # noqa: E402
from recbole_speeder.llm.decoding import head_logits, hidden_at  # noqa: E402
from recbole_speeder.prompts.base import build_inputs_embeds  # noqa: E402
from recbole_speeder.prompts.hybrid import HybridPrompt  # noqa: E402


def main(tokenizer_path, out=None):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # cpu: a dry run
    tokenizer = load_tokenizer(tokenizer_path)
    torch.manual_seed(0)
    model = apply_lora(random_backbone("smollm2-shape", tokenizer, torch.bfloat16, device), r=8, alpha=16,
                       dropout=0.0, target_modules=["q_proj", "v_proj"])
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    prompt = HybridPrompt(tokenizer)
    rng = np.random.default_rng(0)
    size, items = int(os.environ.get("CHECK_SIZE", 128)), 1000
    histories = [rng.choice(np.arange(1, items), size=int(rng.choice([10, 10, 7, 4])), replace=False) for _ in range(size)]
    candidates = rng.integers(1, items, size=(size, 5))
    target = rng.integers(0, 5, size=size)
    ppt_rows = sorted(rng.choice(size, size=max(1, int(0.3 * size)), replace=False).tolist())
    abc = np.stack([rng.choice(histories[b], 3, replace=False) for b in ppt_rows])
    extra = [histories[b] for b in range(max(1, size // 8))]
    padded = prompt.build_shared(histories, candidates, target, ppt_rows, abc).concat(
        prompt.build_ppt(extra, np.stack([h[:3] for h in extra])), prompt.pad_id)
    packed = padded.pack()
    table = (0.02 * torch.randn(items, 576, device=device)).to(torch.bfloat16)
    report = {"torch": torch.__version__, "tokens padded": int(padded.input_ids.numel()),
              "tokens packed": int(packed.input_ids.numel()), "prompt lengths": sorted(set(packed.packing.lengths)),
              "varlen_attn available": packing._varlen() is not None}

    def step(batch, mode):
        packing.ATTENTION = mode
        batch = batch.to(device)
        vectors = table.clone().requires_grad_(True)
        embeds = build_inputs_embeds(model, batch, vectors[batch.slot_item_ids()])
        names = ("rec", "ppt")
        pairs = [batch.answer(n) for n in names]
        hidden = hidden_at(model, embeds, torch.cat([r for r, _ in pairs]), torch.cat([p for _, p in pairs]),
                           attention_mask=batch.decoder_mask(), packing=batch.packing)
        logits = head_logits(model, hidden)
        logits.logsumexp(dim=1).mean().backward()
        return logits.detach(), vectors.grad

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(batch, mode, reps=5):
        step(batch, mode)
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            step(batch, mode)
        sync()
        return 1000 * (time.perf_counter() - start) / reps

    reference, reference_grad = step(padded, "auto")
    scale = reference.abs().max().item()
    for mode in ("varlen", "grouped"):
        try:
            logits, grad = step(packed, mode)
        except Exception as err:  # noqa: BLE001 - a report, not a test
            report[mode] = f"failed: {type(err).__name__}: {err}"
            continue
        cosine = torch.nn.functional.cosine_similarity(grad.float().flatten(), reference_grad.float().flatten(), dim=0)
        report[mode] = {
            "max |logit diff| / max |logit|": (logits - reference).abs().max().item() / scale,
            "same argmax over the 5 labels": float((logits[:size, prompt.label_token_ids(5)].argmax(1)
                                                     == reference[:size, prompt.label_token_ids(5)].argmax(1))
                                                    .float().mean()),
            "gradient cosine": cosine.item(),
            "fell back to grouped": bool(packing._VARLEN["failed"]) if mode == "varlen" else None,
        }
    report["ms per forward+backward"] = {"padded": timed(padded, "auto")}
    for mode in ("varlen", "grouped"):
        if isinstance(report.get(mode), dict):
            report["ms per forward+backward"][f"packed {mode}"] = timed(packed, mode)
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
