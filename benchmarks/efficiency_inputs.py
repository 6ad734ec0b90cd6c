"""Inputs of benchmarks/efficiency.py: a synthetic RecBole dataset (titles of an exact token count),
random item features, batches and candidates, and the split of a batch into micro-batches."""

import os
import random

import torch

DATASET = "effbench"
FEATURE_DIMS = {"text": 384, "vision": 1280, "seq": 64}  # the plugin's default frozen encoders
WORDS = ("red blue green black white small large light heavy soft hard metal wood glass paper steel plastic "
         "car home kitchen garden tool box bag cup pan pot lamp door wheel brake light seat mirror cover "
         "filter pump oil water air power cable clip ring set kit pack pro max mini new classic premium "
         "top side front back left right fast slow quiet clean fresh warm cold dry wet long short round flat "
         "table chair shelf rack hook pad mat brush knife fork spoon plate bowl glass bottle jar lid case "
         "shoe boot sock shirt coat hat belt watch phone game book card pen star sun moon tree leaf rock").split()


def make_titles(tokenizer, count, title_tokens, seed=0):
    """``count`` titles of exactly ``title_tokens`` tokens each (as the prompts encode a
    title: :meth:`PromptBase.encode_piece`), made of common words."""
    from recbole_speeder.prompts.base import PromptBase

    encode_piece = PromptBase(tokenizer).encode_piece

    def encoded_length(tokenizer, text):
        return len(encode_piece(text))

    rng = random.Random(seed)
    words = [w for w in dict.fromkeys(WORDS) if encoded_length(tokenizer, "x " + w) == encoded_length(tokenizer, "x") + 1]
    if not words:
        words = list(dict.fromkeys(WORDS))
    titles = []
    for _ in range(count):
        title, tries = [], 0
        while encoded_length(tokenizer, " ".join(title)) < title_tokens and tries < 10 * title_tokens:
            candidate = title + [rng.choice(words)]
            tries += 1
            if encoded_length(tokenizer, " ".join(candidate)) <= title_tokens:
                title = candidate
        titles.append(" ".join(title))
    return titles


def write_dataset(home, titles, max_history):
    """A RecBole dataset ``effbench`` in ``home``: every item appears in ``.inter``."""
    folder = os.path.join(home, DATASET)
    os.makedirs(folder, exist_ok=True)
    users = max(2, len(titles) // (max_history + 2))
    with open(os.path.join(folder, f"{DATASET}.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for i in range(len(titles)):
            f.write(f"u{i % users}\ti{i + 1}\t{i}\n")
    with open(os.path.join(folder, f"{DATASET}.item"), "w") as f:
        f.write("item_id:token\ttitle:token_seq\n")
        for i, title in enumerate(titles):
            f.write(f"i{i + 1}\t{title}\n")


def random_features(n_items, modalities, generator):
    """Random item features (row 0 = [PAD]: zeros, mask False), as the feature loader returns them."""
    from recbole_speeder.features.loader import ItemFeatures

    return ItemFeatures.random(n_items, {m: FEATURE_DIMS[m] for m in modalities}, generator)


def random_interaction(model, batch, n, generator):
    """A RecBole batch of ``batch`` sequences with ``n`` random history items each."""
    from recbole.data.interaction import Interaction

    seq = torch.zeros(batch, model.max_seq_length, dtype=torch.long)
    seq[:, :n] = torch.randint(1, model.n_items, (batch, n), generator=generator)
    return Interaction({
        model.ITEM_SEQ: seq,
        model.ITEM_SEQ_LEN: torch.full((batch,), n, dtype=torch.long),
        model.POS_ITEM_ID: torch.randint(1, model.n_items, (batch,), generator=generator),
    })


def random_candidates(n_items, batch, num, generator):
    return torch.rand(batch, n_items - 1, generator=generator).argsort(dim=1)[:, :num] + 1


def _chunks(interaction, size, candidates=None):
    total = len(interaction)
    for start in range(0, total, size):
        index = torch.arange(start, min(total, start + size))
        yield interaction[index], (None if candidates is None else candidates[index])

