"""ml-100k's item titles as Speeder's ``text_encoder: llm`` encodes them (the backbone's mean-pooled
last hidden state, ``encode_with_causal_lm``), saved as .npy for ``benchmarks/ppt_probe.py
--item-features``, with how parallel they are (mean pairwise cosine, raw and centred; random
64-d rows, the probe's default, for comparison).

    python docs/results/2026-12-05-cpu/title_vectors.py --out /tmp/feat/ml100k-llm-titles.npy
"""

import argparse
import os

import numpy as np
import torch

from recbole_speeder.data.prepare.registry import embedded_source
from recbole_speeder.features.text import encode_with_causal_lm
from recbole_speeder.llm.backbone import load_backbone


def mean_pairwise_cosine(vectors):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(unit)
    return float(((unit @ unit.T).sum() - n) / (n * n - n))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--llm_path", default="default")
    args = parser.parse_args()
    item_file = os.path.join(embedded_source("ml-100k"), "ml-100k.item")
    with open(item_file, encoding="latin-1") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    column = next(i for i, name in enumerate(rows[0]) if name.startswith("movie_title"))
    titles = [row[column] for row in rows[1:]]
    model, tokenizer = load_backbone(args.llm_path, dtype=torch.float32, device="cpu")[:2]
    with torch.no_grad():
        vectors = encode_with_causal_lm(model, tokenizer, titles, batch_size=32, show_progress=False).numpy()
    np.save(args.out, vectors)
    rng = np.random.default_rng(0)
    print(f"{len(titles)} titles, {vectors.shape[1]}-d, written to {args.out}")
    print(f"mean pairwise cosine: {mean_pairwise_cosine(vectors):.4f} raw, "
          f"{mean_pairwise_cosine(vectors - vectors.mean(0)):.4f} centred, "
          f"{mean_pairwise_cosine(rng.standard_normal((len(titles), 64))):.4f} random 64-d rows")


if __name__ == "__main__":
    main()
