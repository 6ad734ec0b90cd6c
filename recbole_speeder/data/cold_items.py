"""Cold items: the evaluation sequences whose target the training split barely knows.

An ID model (SASRec) learns an item from its training interactions; Speeder also reads the
item's title and image. Two settings show the difference, for every model under one protocol:

- ``cold_item_max_inter`` (default 5): the test metrics are also reported on the test sequences
  whose target item has at most that many interactions in the training split
  (:func:`training_item_counts`), the ``cold`` rows of :func:`cold_rows`; ``~`` = not reported.
- ``cold_item_ratio`` (default 0): that share of the items, drawn with ``candidate_seed`` (the
  same items for every model and run), is held out of training entirely
  (:func:`hold_out_items`): training sequences whose target is one of them are dropped and the
  items are removed from the other training histories, so that only their features describe
  them. Validation and test sequences are kept as they are; the held-out targets are then cold
  rows with 0 training interactions.
"""

import numpy as np
import torch

from recbole_speeder.data.candidates import CandidateSet
from recbole_speeder.errors import ConfigError


def _sequences(dataset):
    """(item lists [N, L], lengths [N]) of a sequential dataset's rows as numpy, or None."""
    list_field = getattr(dataset, "item_id_list_field", None)
    if list_field is None or list_field not in dataset.inter_feat.interaction:
        return None
    inter = dataset.inter_feat
    return inter[list_field].numpy(), inter[dataset.item_list_length_field].numpy()


def training_item_counts(config, train_dataset):
    """Interactions of each item in the training split [item_num] (numpy int64).

    Each training row's target is one interaction. Under RecBole's leave-one-out split
    (``split_mode: LS``) the rows of a user are the prefixes of one sequence, so its first item,
    never a target, is counted from the row of history length 1; under the 7:2:1 split of
    sequences every row is a sequence of its own and its history items are counted too."""
    targets = train_dataset.inter_feat[train_dataset.iid_field].numpy()
    parts = [targets]
    sequences = _sequences(train_dataset)
    if sequences is not None:
        seq, lengths = sequences
        if config["split_mode"] == "LS":
            parts.append(seq[lengths == 1, 0])
        else:
            parts.append(seq[np.arange(seq.shape[1])[None, :] < lengths[:, None]])
    return np.bincount(np.concatenate(parts).astype(np.int64), minlength=train_dataset.item_num)


def cold_rows(config, train_dataset, eval_dataset):
    """Bool mask [N] of the rows of ``eval_dataset`` whose target has at most
    ``cold_item_max_inter`` training interactions (None when the setting is ``~``)."""
    limit = config["cold_item_max_inter"]
    if limit is None:
        return None
    counts = training_item_counts(config, train_dataset)
    targets = eval_dataset.inter_feat[eval_dataset.iid_field].numpy()
    return counts[targets] <= int(limit)


def cold_subset(config, eval_data, mask, candidate_set=None):
    """(loader, candidate set) of the rows ``mask`` of ``eval_data`` (a RecBole evaluation loader of
    the same kind, over a copy of its dataset) and of ``candidate_set``, in the split's order."""
    rows = torch.from_numpy(np.flatnonzero(mask))
    dataset = eval_data._dataset.copy(eval_data._dataset.inter_feat[rows])
    loader = type(eval_data)(config, dataset, eval_data._sampler, shuffle=False)
    if candidate_set is None:
        return loader, None
    subset = CandidateSet(candidate_set.item_ids[rows], candidate_set.target_pos[rows], candidate_set.path)
    return loader, subset


def held_out_items(config, item_num):
    """Bool mask [item_num] of the items ``cold_item_ratio`` holds out of training (never [PAD])."""
    ratio = float(config["cold_item_ratio"] or 0)
    held = np.zeros(item_num, dtype=bool)
    count = int(round(ratio * (item_num - 1)))
    if count >= item_num - 1:
        raise ConfigError(f"cold_item_ratio {ratio} would hold out all {item_num - 1} items; use a share below 1.")
    if count:
        rng = np.random.default_rng(int(config["candidate_seed"]))
        held[1 + rng.choice(item_num - 1, count, replace=False)] = True
    return held


def hold_out_items(config, train_data, logger=None):
    """``train_data`` without the items of :func:`held_out_items` (a new training loader over a
    copy of its dataset), or ``train_data`` itself when ``cold_item_ratio`` is 0."""
    dataset = train_data._dataset
    held = held_out_items(config, dataset.item_num)
    if not held.any():
        return train_data
    inter = dataset.inter_feat
    keep = ~held[inter[dataset.iid_field].numpy()]
    sequences = _sequences(dataset)
    update = {}
    if sequences is not None:
        seq, lengths = sequences
        kept_items = ~held[seq] & (np.arange(seq.shape[1])[None, :] < lengths[:, None])
        order = np.argsort(~kept_items, axis=1, kind="stable")  # kept items first, in their order
        new_lengths = kept_items.sum(axis=1)
        new_seq = np.take_along_axis(seq, order, axis=1)
        new_seq[np.arange(seq.shape[1])[None, :] >= new_lengths[:, None]] = 0
        keep &= new_lengths > 0
        update = {dataset.item_id_list_field: new_seq, dataset.item_list_length_field: new_lengths}
    rows = torch.from_numpy(np.flatnonzero(keep))
    new_inter = inter[rows]
    for field, values in update.items():
        new_inter.interaction[field] = torch.from_numpy(values[keep]).to(inter[field].dtype)
    if logger is not None:
        logger.info(f"cold_item_ratio {config['cold_item_ratio']}: {int(held.sum())} items held out of training "
                    f"({len(keep) - int(keep.sum())} of {len(keep)} training rows dropped)")
    return type(train_data)(config, dataset.copy(new_inter), train_data._sampler, shuffle=config["shuffle"])
