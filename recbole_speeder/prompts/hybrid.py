"""Hybrid prompts of Speeder (paper section 2.4, Fig. 3) and their one-token answer labels.

A prompt is instruction text with one *placeholder position* per item: history items,
candidates, and the three items a, b, c of the positional proxy task (PPT, eq 13-14). The
input embedding of each placeholder is replaced by the item's fused vector e_mm (eq 10);
history placeholders additionally get their position prompt p_i (PPL, eqs 15-17)
(:func:`~recbole_speeder.prompts.base.build_inputs_embeds`).

Templates are plain strings the user edits in YAML:

* ``prompt_template``: the recommendation task; must contain ``{history}`` and
  ``{candidates}`` once each.
* ``ppt_template``: the PPT question; must contain ``{history}``, ``{a}``, ``{b}``, ``{c}``
  once each; each of ``{a}``, ``{b}``, ``{c}`` becomes one placeholder (no PPL on them, that
  would give the answer away). Answers are the tokens ``yes`` / ``no``.
* ``history_item_template`` / ``candidate_item_template``: how one item is written; must
  contain ``<item>`` (the placeholder) once and may contain ``{index}``; items are joined
  with ``item_separator``.

Other braces are kept as literal text. The token layout of a prompt depends only on
(history length, number of candidates), so it is cached and a batch is assembled by copying
cached id arrays.

Answer (t_out = 1): the candidate's label, one token. Labels are the digits ``1``..``9``
while every digit is a single token and C <= 9; otherwise (or with
``candidate_labels: letters``) the capital letters ``A``..``Z`` (C <= 26). History items are
always numbered 1..n in text (those numbers may span several tokens; they are never answers).
"""

from functools import lru_cache

import numpy as np
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.prompts.base import PromptBase, as_item_ids, check_template, left_pad, PromptBatch

ITEM = "<item>"
DEFAULT_PROMPT_TEMPLATE = (
    "Here is the purchase history of a user, oldest first: {history}. "
    "Which of these candidates will the user buy next? {candidates}. "
    "Answer with the number of one candidate only.")
DEFAULT_PPT_TEMPLATE = (
    "Here is the purchase history of a user, oldest first: {history}. "
    "Consider the items {a}, {b} and {c}. Are the first two at most as far apart in the "
    "history as the last two? Answer yes or no.")
DEFAULT_ITEM_TEMPLATE = "{index}: " + ITEM
LABEL_SCHEMES = ("auto", "digits", "letters")


class HybridPrompt(PromptBase):
    """Builds token layouts of the recommendation and PPT prompts for a tokenizer."""

    def __init__(self, tokenizer, prompt_template=DEFAULT_PROMPT_TEMPLATE,
                 history_item_template=DEFAULT_ITEM_TEMPLATE,
                 candidate_item_template=DEFAULT_ITEM_TEMPLATE, item_separator=", ",
                 ppt_template=DEFAULT_PPT_TEMPLATE, use_chat_template=False,
                 candidate_labels="auto"):
        super().__init__(tokenizer, item_separator=item_separator, use_chat_template=use_chat_template)
        for key, tpl in (("history_item_template", history_item_template),
                         ("candidate_item_template", candidate_item_template)):
            check_template(tpl, key, [], optional=["index"])
            if tpl.count(ITEM) != 1:
                raise ConfigError(f"{key} must contain {ITEM} exactly once: {tpl!r}")
        self.history_item_template = history_item_template.replace("{index}", "\0")
        self.candidate_item_template = candidate_item_template.replace("{index}", "\0")
        check_template(prompt_template, "prompt_template", ["history", "candidates"])
        check_template(ppt_template, "ppt_template", ["history", "a", "b", "c"])
        self._rec_pieces, self._rec_order = self.template_pieces(prompt_template, ["history", "candidates"])
        self._ppt_pieces, self._ppt_order = self.template_pieces(ppt_template, ["history", "a", "b", "c"])
        self.labels_scheme = str(candidate_labels).lower()
        if self.labels_scheme not in LABEL_SCHEMES:
            raise ConfigError(f"candidate_labels must be auto, digits or letters, "
                              f"got {candidate_labels!r}")
        self.yes_id = self.single_token_id("yes")
        self.no_id = self.single_token_id("no")
        # per-instance caches: layouts depend only on (history length, candidate count)
        self.candidate_labels = lru_cache(maxsize=64)(self._candidate_labels)
        self.label_token_ids = lru_cache(maxsize=64)(self._label_token_ids)
        self.rec_layout = lru_cache(maxsize=4096)(self._rec_layout)
        self.ppt_layout = lru_cache(maxsize=4096)(self._ppt_layout)
        self._item_pieces = lru_cache(maxsize=None)(self._encode_item_pieces)

    # ---- candidate labels -----------------------------------------------------------
    def _candidate_labels(self, num_candidates):
        """Label strings of ``num_candidates`` candidates (answer vocabulary)."""
        c = int(num_candidates)
        if c < 1:
            raise ConfigError(f"candidate_num must be >= 1, got {c}")
        digits = [str(i) for i in range(1, c + 1)]
        letters = [chr(ord("A") + i) for i in range(c)]
        if self.labels_scheme == "digits" or (self.labels_scheme == "auto" and c <= 9):
            if c > 9:
                raise ConfigError(f"candidate_labels digits allow at most 9 candidates "
                                  f"(candidate_num={c}); use letters")
            return tuple(digits)
        if c > 26:
            raise ConfigError(f"at most 26 candidates have one-token labels "
                              f"(candidate_num={c})")
        return tuple(letters)

    def _label_token_ids(self, num_candidates):
        """Token ids of the candidate labels ([C] LongTensor, CPU)."""
        return torch.tensor([self.single_token_id(s) for s in
                             self.candidate_labels(num_candidates)], dtype=torch.long)

    # ---- layouts ----------------------------------------------------------------------
    def _encode_item_pieces(self, kind, label):
        template = self.history_item_template if kind == "h" else self.candidate_item_template
        before, after = template.replace("\0", label).split(ITEM)
        return self.encode_piece(before), self.encode_piece(after)

    def _items(self, kind, labels, ids, slots):
        """Append the ids of an item list; record placeholder positions in ``slots``."""
        sep = self._sep_ids
        for k, label in enumerate(labels):
            before, after = self._item_pieces(kind, label)
            ids.extend(before)
            slots.append(len(ids))
            ids.append(self.pad_id)
            ids.extend(after)
            if k + 1 < len(labels):
                ids.extend(sep)

    def _rec_layout(self, n_history, n_candidates):
        """(ids, history slot positions, candidate slot positions) as int64 numpy arrays."""
        ids, hist, cand = [], [], []
        for k, piece in enumerate(self._rec_pieces):
            ids.extend(piece)
            if k < len(self._rec_order):
                if self._rec_order[k] == "history":
                    self._items("h", [str(i) for i in range(1, n_history + 1)], ids, hist)
                else:
                    self._items("c", self.candidate_labels(n_candidates), ids, cand)
        return (np.asarray(ids, dtype=np.int64), np.asarray(hist, dtype=np.int64),
                np.asarray(cand, dtype=np.int64))

    def _ppt_layout(self, n_history):
        """(ids, history slot positions, [a, b, c] slot positions) as int64 numpy arrays."""
        ids, hist, abc = [], [], {}
        for k, piece in enumerate(self._ppt_pieces):
            ids.extend(piece)
            if k < len(self._ppt_order):
                name = self._ppt_order[k]
                if name == "history":
                    self._items("h", [str(i) for i in range(1, n_history + 1)], ids, hist)
                else:
                    abc[name] = len(ids)
                    ids.append(self.pad_id)
        return (np.asarray(ids, dtype=np.int64), np.asarray(hist, dtype=np.int64),
                np.asarray([abc["a"], abc["b"], abc["c"]], dtype=np.int64))

    # ---- batches ----------------------------------------------------------------------
    def _assemble(self, layouts, histories, others):
        """Left-pad the layouts and write the item ids into their placeholder positions."""
        input_ids, mask, offsets = left_pad([lay[0] for lay in layouts], self.pad_id)
        item_ids = np.zeros_like(input_ids)
        hist_index = np.zeros_like(input_ids)
        for b, ((_, hist, other), history, items, off) in enumerate(zip(layouts, histories, others,
                                                                         offsets)):
            item_ids[b, off + hist] = history
            hist_index[b, off + hist] = np.arange(1, len(hist) + 1)
            item_ids[b, off + other] = items
        return PromptBatch.from_arrays(input_ids, mask, item_ids, hist_index)

    def build(self, histories, candidates):
        """Recommendation prompts.

        Args:
            histories: per sample, the history item ids oldest first (lists or 1-D tensors,
                no padding).
            candidates: [B, C] item ids (tensor or nested lists); the answer for candidate
                column j is ``label_token_ids(C)[j]``.
        """
        histories = [as_item_ids(h, "history") for h in histories]
        candidates = np.asarray(candidates.cpu() if torch.is_tensor(candidates)
                                else candidates, dtype=np.int64)
        if candidates.ndim != 2 or len(candidates) != len(histories):
            raise ValueError(f"candidates must be [B, C] with B={len(histories)}, got "
                             f"shape {candidates.shape}")
        c = candidates.shape[1]
        layouts = [self.rec_layout(len(h), c) for h in histories]
        return self._assemble(layouts, histories, candidates)

    def build_ppt(self, histories, abc_items):
        """PPT prompts: ``abc_items`` [B, 3] item ids of a, b, c; answer yes_id / no_id."""
        histories = [as_item_ids(h, "history") for h in histories]
        abc = np.asarray(abc_items.cpu() if torch.is_tensor(abc_items) else abc_items,
                         dtype=np.int64).reshape(len(histories), 3)
        layouts = [self.ppt_layout(len(h)) for h in histories]
        return self._assemble(layouts, histories, abc)
