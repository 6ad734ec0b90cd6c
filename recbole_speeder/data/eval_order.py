"""Order sensitivity: every test history shuffled (``eval_shuffle_history``).

The test of "Lost in Sequence" (LLM-SRec, KDD 2025): a model that uses the order of a history
loses accuracy when its test histories are shuffled; an LLM recommender that reads the history
as a bag of items does not. :func:`shuffle_test_histories` gives the test loader over a copy of
its dataset whose histories hold the same items, at the same length, in a shuffled order, for
every model (RecBole's and the plugin's) and both protocols (the candidate sets and RecBole's
ranking), since both read the same loader.

- Only the most recent ``eval_shuffle_window`` items of a history are shuffled (the older ones
  keep their place); ``~`` is the model's ``history_len`` where it has one (the items an LLM
  model reads), else the whole stored history. Shuffling more than a model reads would change
  *which* items it reads, not only their order.
- The permutations depend only on ``candidate_seed``, the number of test rows and each row's
  window: every model and every run with the same window gets the same shuffles. A permutation
  may leave a short history as it was (a history of 2 items keeps its order half of the time).
- Validation and training keep their order: the run trains and keeps its weights as the run in
  order does, and only the test differs.
"""

import numpy as np
import torch

SPLIT_CODE = {"valid": 1, "test": 2}


def shuffle_window(config, width):
    """The number of most recent items shuffled per history (at most ``width``, the stored one)."""
    window = config["eval_shuffle_window"] or config["history_len"] or width
    return max(1, min(int(window), int(width)))


def shuffled_histories(config, seq, lengths, split="test"):
    """``seq`` [N, L] (numpy, right-padded) with the last min(length, window) items of every row
    permuted; the draw depends on ``candidate_seed``, ``split`` and N only, so that the first
    k keys of a row are the same whatever the window."""
    seq, lengths = np.asarray(seq), np.asarray(lengths, dtype=np.int64)
    rows, width = seq.shape
    window = shuffle_window(config, width)
    rng = np.random.default_rng([int(config["candidate_seed"]), SPLIT_CODE[split]])
    keys = rng.random((window, rows)).T  # column j drawn before column j + 1: the same for any window
    n = np.minimum(lengths, window)
    j = np.arange(window)[None, :]
    inside = j < n[:, None]
    perm = np.argsort(np.where(inside, keys, np.inf), axis=1, kind="stable")  # a permutation of 0..n-1 first
    start = (lengths - n)[:, None]
    row = np.broadcast_to(np.arange(rows)[:, None], inside.shape)[inside]
    out = seq.copy()
    out[row, (start + j)[inside]] = seq[row, (start + perm)[inside]]
    return out


def shuffle_test_histories(config, test_data, logger=None):
    """``test_data`` over a copy of its dataset with every history shuffled
    (:func:`shuffled_histories`), or ``test_data`` itself when ``eval_shuffle_history`` is off or
    the dataset holds no histories."""
    if not config["eval_shuffle_history"]:
        return test_data
    dataset = test_data._dataset
    field = getattr(dataset, "item_id_list_field", None)
    inter = dataset.inter_feat
    if field is None or field not in inter.interaction:
        if logger is not None:
            logger.warning("eval_shuffle_history: the test split holds no histories; nothing shuffled.")
        return test_data
    seq, lengths = inter[field].numpy(), inter[dataset.item_list_length_field].numpy()
    shuffled = shuffled_histories(config, seq, lengths)
    new_inter = inter[torch.arange(len(inter))]
    new_inter.interaction[field] = torch.from_numpy(shuffled).to(inter[field].dtype)
    if logger is not None:
        changed = int((shuffled != seq).any(axis=1).sum())
        logger.info(f"eval_shuffle_history: the most recent {shuffle_window(config, seq.shape[1])} items of the "
                    f"{len(seq)} test histories shuffled (candidate_seed {config['candidate_seed']}); "
                    f"{changed} changed order")
    return type(test_data)(config, dataset.copy(new_inter), test_data._sampler, shuffle=False)
