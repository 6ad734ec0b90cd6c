"""Sequential Position Awareness Enhancement (paper section 2.4): PPL and PPT.

* PPL, position prompt learning (eqs 15-17): learnable vectors p_1..p_n of the LLM width;
  a history of real length l uses p_1..p_l (truncation), p_i is added to the i-th history
  item's fused vector (i = 1 is the oldest item, the order in which the prompt lists them).
* PPT, positional proxy task (eqs 13-14): three distinct items a, b, c of a history; the
  answer is "yes" iff |idx_a - idx_b| <= |idx_b - idx_c| (the *distance* question). The *order*
  question (not in the paper; ``ppt_question``) asks of the same three items whether a comes
  before b (c is named, unused): the question a small LLM learns in PPT's form
  (``benchmarks/ppt_probe.py``).
"""

from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class PositionPrompts(nn.Module):
    """Learnable position prompts p_1..p_n_max (eq 15); ``enabled=False`` is the w/o-PPL
    ablation (no parameters, zero vectors)."""

    def __init__(self, n_max, hidden, enabled=True, init_std=0.02):
        super().__init__()
        self.n_max, self.hidden, self.enabled = int(n_max), int(hidden), bool(enabled)
        if self.enabled:
            self.prompts = nn.Parameter(torch.randn(self.n_max, self.hidden) * init_std)
        else:
            self.register_parameter("prompts", None)

    def _check(self, index):
        # host tensors only: reading a device tensor's maximum would wait for the device (the
        # prompt builders write positions 1..history_len = n_max, never more)
        if index.device.type == "cpu" and index.numel() and int(index.max()) > self.n_max:
            raise ValueError(f"history position {int(index.max())} exceeds the "
                             f"{self.n_max} position prompts (MAX_ITEM_LIST_LENGTH)")

    def forward(self, lengths):
        """Eq 16: [B, n, hidden] with row b holding p_1..p_{lengths[b]} and zeros after it,
        n = max(lengths)."""
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        n = int(lengths.max()) if lengths.numel() else 0
        positions = torch.arange(1, n + 1, device=lengths.device).expand(len(lengths), n)
        index = torch.where(positions <= lengths[:, None], positions, 0)
        return self.lookup(index)

    def lookup(self, index):
        """p_index for any tensor of 1-based positions; position 0 gives a zero vector."""
        self._check(index)
        shape = (*index.shape, self.hidden)
        if not self.enabled:
            return torch.zeros(shape, device=index.device)
        table = torch.cat([self.prompts.new_zeros(1, self.hidden), self.prompts])
        return table[index.to(table.device)]


class PPTSample(NamedTuple):
    """One PPT question: 0-based history positions of a, b, c and the answer (True = yes)."""

    a_pos: int
    b_pos: int
    c_pos: int
    label: bool


def ppt_label(idx_a, idx_b, idx_c):
    """Eq 14: yes iff |idx_a - idx_b| <= |idx_b - idx_c|."""
    return abs(idx_a - idx_b) <= abs(idx_b - idx_c)


PPT_QUESTIONS = ("distance", "order")


def ppt_answer(question, sample):
    """The answer (True = yes) of ``question`` about a :class:`PPTSample`: eq 14's for
    ``distance``, idx_a < idx_b for ``order``."""
    if question == "order":
        return sample.a_pos < sample.b_pos
    if question == "distance":
        return sample.label
    raise ValueError(f"PPT question must be one of {', '.join(PPT_QUESTIONS)} (got {question!r})")


def sample_ppt(history_item_ids, rng, length=None):
    """Draw one PPT question from a history (eq 13), or None with < 3 distinct items.

    Args:
        history_item_ids: item ids oldest first (list, array or 1-D tensor; when it is
            RecBole's right-padded row, give ``length``).
        rng: a ``numpy.random.Generator`` (the caller seeds it: same seed, same questions).
        length: real length of the history (default: all of it).

    An item that occurs several times stands at its latest occurrence: the item's position
    is the one nearest to the prediction, which is the occurrence that matters for "what
    comes next", and it keeps every item at one well-defined index. The three items are
    drawn uniformly without replacement among the distinct items, in random order (a, b, c).
    """
    ids = np.asarray(history_item_ids.cpu() if torch.is_tensor(history_item_ids)
                     else history_item_ids, dtype=np.int64).reshape(-1)
    if length is not None:
        ids = ids[:int(length)]
    latest = {}
    for pos, item in enumerate(ids.tolist()):
        if item > 0:  # 0 is RecBole's padding
            latest[item] = pos
    if len(latest) < 3:
        return None
    positions = np.fromiter(latest.values(), dtype=np.int64)
    a, b, c = (int(p) for p in rng.choice(positions, size=3, replace=False))
    return PPTSample(a, b, c, ppt_label(a, b, c))
