"""Fixed candidate sets of the paper's evaluation protocol (section 3.1).

Every evaluation sequence (a row of the valid or test split) gets one candidate set: its true
next item plus ``candidate_num - 1`` items its user never interacted with, in a shuffled
order. The draw for a row depends only on ``candidate_seed``, the split, the user token, the
target token and how many earlier rows had the same (user, target) -- not on the model, the
training seed or the history length -- and the sets are stored once under
``dataset/<name>/candidates/`` as an atomic file::

    user_id:token   item_id:token   candidates:token_seq

so that every model, ID-based or LLM-based, is scored on exactly the same sets, in the same
order (the order matters to LLMs, which answer with a candidate's index).
"""

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch

from recbole_speeder.atomic import atomic_write
from recbole_speeder.errors import DataError


@dataclass
class CandidateSet:
    """Candidates of one split, aligned with the rows of that split's dataset."""

    item_ids: torch.LongTensor  # [N, C] RecBole internal item ids
    target_pos: torch.LongTensor  # [N] column of the true next item
    path: str

    def __len__(self):
        return self.item_ids.shape[0]


def _stable_int(text):
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "little")


def _user_items(dataset):
    """Internal item ids each user interacted with anywhere in the dataset (all splits)."""
    inter = dataset.inter_feat
    uids = inter[dataset.uid_field].numpy().astype(np.int64)
    items = [inter[dataset.iid_field].numpy()[:, None]]
    list_field = getattr(dataset, "item_id_list_field", None)
    if list_field is not None and list_field in inter.interaction:
        items.append(inter[list_field].numpy())
    items = np.concatenate(items, axis=1).astype(np.int64)
    width = np.int64(dataset.item_num)
    codes = np.unique(np.repeat(uids, items.shape[1]) * width + items.ravel())
    users, items = codes // width, codes % width
    keep = items != 0
    users, items = users[keep], items[keep]
    bounds = np.flatnonzero(np.diff(users)) + 1
    seen = {
        int(group_users[0]): set(group_items.tolist())
        for group_users, group_items in zip(np.split(users, bounds), np.split(items, bounds))
        if len(group_users)
    }
    # items of histories longer than MAX_ITEM_LIST_LENGTH, cut off when the dataset was loaded
    for user, cut in (getattr(dataset, "items_cut_from_histories", None) or {}).items():
        seen.setdefault(user, set()).update(cut)
    return seen


def _draw_row(rng, target, seen, n_items, num_candidates):
    available = n_items - 1 - len(seen | {target})
    if available < num_candidates - 1:
        return None
    negatives = []
    chosen = seen | {target}
    while len(negatives) < num_candidates - 1:
        item = int(rng.integers(1, n_items))
        if item not in chosen:
            chosen.add(item)
            negatives.append(item)
    row = np.array([target] + negatives)
    rng.shuffle(row)
    return row


def _rows(split_dataset):
    inter = split_dataset.inter_feat
    uid_tokens = split_dataset.id2token(split_dataset.uid_field, inter[split_dataset.uid_field].numpy())
    target_ids = inter[split_dataset.iid_field].numpy()
    target_tokens = split_dataset.id2token(split_dataset.iid_field, target_ids)
    return [str(u) for u in uid_tokens], target_ids, [str(t) for t in target_tokens]


def candidate_file(config, split, uid_tokens, target_tokens):
    """Path of the stored sets: keyed by the split's (user, target) rows and the settings."""
    digest = hashlib.sha1()
    digest.update(f"{config['candidate_num']}|{config['candidate_seed']}|{split}".encode())
    for u, t in zip(uid_tokens, target_tokens):
        digest.update(f"{u}\t{t}\n".encode("utf-8"))
    name = f"{split}-c{config['candidate_num']}-s{config['candidate_seed']}-{digest.hexdigest()[:12]}.cand"
    return os.path.join(config["data_path"], "candidates", name)


def _write_atomic(path, uid_tokens, target_tokens, candidate_tokens):
    def write(f):
        f.write("user_id:token\titem_id:token\tcandidates:token_seq\n")
        for u, t, c in zip(uid_tokens, target_tokens, candidate_tokens):
            f.write(f"{u}\t{t}\t{' '.join(c)}\n")

    atomic_write(path, write, mode="w", encoding="utf-8")


def _read(path, split_dataset, uid_tokens, target_tokens):
    with open(path, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]
    if len(lines) != len(uid_tokens):
        raise DataError(f"Candidate file {path} has {len(lines)} rows, the split has {len(uid_tokens)}; delete it to redraw.")
    candidate_tokens = []
    for number, (line, u, t) in enumerate(zip(lines, uid_tokens, target_tokens), start=2):
        parts = line.split("\t")
        if len(parts) != 3 or parts[0] != u or parts[1] != t:
            raise DataError(f"Candidate file {path}, line {number} does not match the split; delete it to redraw.")
        candidate_tokens.append(parts[2].split(" "))
    return candidate_tokens


def load_or_draw(config, full_dataset, split_dataset, split):
    """The candidate set of ``split`` ('valid' or 'test'), drawn on first use and then reused."""
    num = int(config["candidate_num"])
    if num < 2:
        raise DataError(f"candidate_num must be at least 2 (got {num}).")
    uid_tokens, target_ids, target_tokens = _rows(split_dataset)
    path = candidate_file(config, split, uid_tokens, target_tokens)
    if os.path.isfile(path):
        candidate_tokens = _read(path, split_dataset, uid_tokens, target_tokens)
    else:
        seen_by_user = _user_items(full_dataset)
        uid_ids = split_dataset.inter_feat[split_dataset.uid_field].numpy()
        n_items = split_dataset.item_num
        occurrences = {}
        candidate_tokens = []
        for uid, u_tok, target, t_tok in zip(uid_ids, uid_tokens, target_ids, target_tokens):
            k = occurrences.get((u_tok, t_tok), 0)
            occurrences[(u_tok, t_tok)] = k + 1
            rng = np.random.default_rng([int(config["candidate_seed"]), _stable_int(f"{split}|{u_tok}|{t_tok}|{k}")])
            row = _draw_row(rng, int(target), seen_by_user.get(int(uid), set()), n_items, num)
            if row is None:
                raise DataError(
                    f"User '{u_tok}' has interacted with almost every item: fewer than {num - 1} "
                    f"negatives are left for candidate_num={num}."
                )
            candidate_tokens.append([str(x) for x in split_dataset.id2token(split_dataset.iid_field, row)])
        _write_atomic(path, uid_tokens, target_tokens, candidate_tokens)
    item_ids = torch.as_tensor(
        np.array([split_dataset.token2id(split_dataset.iid_field, row) for row in candidate_tokens]),
        dtype=torch.long,
    ).reshape(len(candidate_tokens), num)
    target_pos = (item_ids == torch.as_tensor(target_ids, dtype=torch.long)[:, None]).float().argmax(dim=1)
    return CandidateSet(item_ids=item_ids, target_pos=target_pos, path=path)
