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
* ``ppt_followup_template``: the PPT question as it follows a recommendation answer in the same
  row (``ppt_layout: shared``, :meth:`HybridPrompt.build_shared`): ``{a}``, ``{b}``, ``{c}`` once
  each, no ``{history}`` (the row has it already); with the chat template it is a new user turn.
* ``ppt_order_template`` / ``ppt_order_followup_template``: the same two forms of the *order*
  question (``ppt_question: order | curriculum``: does a come before b? c is named, unused),
  with the same placeholders; a PPT row asks one of the two questions (``questions``).
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
from typing import NamedTuple

import numpy as np
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.prompts.base import PromptBase, PromptBatch, as_item_ids, check_template, padded_length

ITEM = "<item>"
DEFAULT_PROMPT_TEMPLATE = (
    "Here is the purchase history of a user, oldest first: {history}. "
    "Which of these candidates will the user buy next? {candidates}. "
    "Answer with the number of one candidate only.")
DEFAULT_PPT_TEMPLATE = (
    "Here is the purchase history of a user, oldest first: {history}. "
    "Consider the items {a}, {b} and {c}. Are the first two at most as far apart in the "
    "history as the last two? Answer yes or no.")
# 14 tokens after the answer (a, b, c included): the 33-token question it replaced cost +14% of the
# 7B shape's training at n = 10 for the same VHR@1 (2026-11-30, commit dddca86: docs/results.md, "Ablations";
# docs/benchmarks.md, "Llama-2-7B shape")
DEFAULT_PPT_FOLLOWUP_TEMPLATE = "\nGap {a}-{b} at most gap to {c}?"
# the order question (ppt_question: order | curriculum): the own-prompt form is the one SmolLM2 learned
# in benchmarks/ppt_probe.py (its ORDER_TEMPLATE); the follow-up is as short as the distance one
DEFAULT_PPT_ORDER_TEMPLATE = (
    "Here is the purchase history of a user, oldest first: {history}. Consider the items {a}, {b} and {c}. "
    "Does the first come before the second in the history? Answer yes or no.")
DEFAULT_PPT_ORDER_FOLLOWUP_TEMPLATE = "\nOf {a}, {b}, {c}: first before second?"
PPT_QUESTIONS = ("distance", "order")
DEFAULT_ITEM_TEMPLATE = "{index}: " + ITEM
LABEL_SCHEMES = ("auto", "digits", "letters")


class HybridPrompt(PromptBase):
    """Builds token layouts of the recommendation and PPT prompts for a tokenizer."""

    def __init__(self, tokenizer, prompt_template=DEFAULT_PROMPT_TEMPLATE,
                 history_item_template=DEFAULT_ITEM_TEMPLATE,
                 candidate_item_template=DEFAULT_ITEM_TEMPLATE, item_separator=", ",
                 ppt_template=DEFAULT_PPT_TEMPLATE, use_chat_template=False,
                 candidate_labels="auto", ppt_followup_template=DEFAULT_PPT_FOLLOWUP_TEMPLATE,
                 ppt_order_template=DEFAULT_PPT_ORDER_TEMPLATE,
                 ppt_order_followup_template=DEFAULT_PPT_ORDER_FOLLOWUP_TEMPLATE):
        super().__init__(tokenizer, item_separator=item_separator, use_chat_template=use_chat_template)
        for key, tpl in (("history_item_template", history_item_template),
                         ("candidate_item_template", candidate_item_template)):
            check_template(tpl, key, [], optional=["index"])
            if tpl.count(ITEM) != 1:
                raise ConfigError(f"{key} must contain {ITEM} exactly once: {tpl!r}")
        self.history_item_template = history_item_template.replace("{index}", "\0")
        self.candidate_item_template = candidate_item_template.replace("{index}", "\0")
        check_template(prompt_template, "prompt_template", ["history", "candidates"])
        self._rec_pieces, self._rec_order = self.template_pieces(prompt_template, ["history", "candidates"])
        # question -> (pieces, placeholder order) of the own prompt and of the follow-up
        self._ppt_forms, self._followup_forms = {}, {}
        for question, own, followup, names in (
                ("distance", ppt_template, ppt_followup_template, ("ppt_template", "ppt_followup_template")),
                ("order", ppt_order_template, ppt_order_followup_template,
                 ("ppt_order_template", "ppt_order_followup_template"))):
            check_template(own, names[0], ["history", "a", "b", "c"])
            self._ppt_forms[question] = self.template_pieces(own, ["history", "a", "b", "c"])
            check_template(followup, names[1], ["a", "b", "c"])
            self._followup_forms[question] = self.followup_pieces(followup, ["a", "b", "c"])
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
        self.shared_layout = lru_cache(maxsize=4096)(self._shared_layout)
        self._rows = {}
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

    def _abc_items(self, pieces, order, ids):
        """Append pieces with one placeholder per a / b / c; their positions in a, b, c order."""
        abc = {}
        for k, piece in enumerate(pieces):
            ids.extend(piece)
            if k < len(order):
                name = order[k]
                if name == "history":
                    raise AssertionError("history is laid out by the caller")
                abc[name] = len(ids)
                ids.append(self.pad_id)
        return [abc["a"], abc["b"], abc["c"]]

    def _ppt_layout(self, n_history, question="distance"):
        """(ids, history slot positions, [a, b, c] slot positions) as int64 numpy arrays."""
        ids, hist, abc = [], [], {}
        pieces, order = self._ppt_forms[question]
        for k, piece in enumerate(pieces):
            ids.extend(piece)
            if k < len(order):
                name = order[k]
                if name == "history":
                    self._items("h", [str(i) for i in range(1, n_history + 1)], ids, hist)
                else:
                    abc[name] = len(ids)
                    ids.append(self.pad_id)
        return (np.asarray(ids, dtype=np.int64), np.asarray(hist, dtype=np.int64),
                np.asarray([abc["a"], abc["b"], abc["c"]], dtype=np.int64))

    def _shared_layout(self, n_history, n_candidates, question="distance"):
        """The recommendation prompt, its answer label, then the PPT follow-up question:
        (ids, history slots, candidate slots then a, b, c slots, label position)."""
        ids, hist, cand = (list(a) for a in self._rec_layout(n_history, n_candidates))
        label = len(ids)
        ids.append(self.pad_id)  # the recommendation answer's label token, written per row
        abc = self._abc_items(*self._followup_forms[question], ids)
        return (np.asarray(ids, dtype=np.int64), np.asarray(hist, dtype=np.int64),
                np.asarray(cand + abc, dtype=np.int64), label)

    # ---- batches ----------------------------------------------------------------------
    def _assemble(self, rows, histories, others, labels=None, abc_positions=None):
        """Left-pad the rows and write their items, placeholder by placeholder.

        ``rows``: per row a :class:`_Row` (its layout); ``histories``: item ids per row;
        ``others``: per row the items of the layout's other placeholders (candidates, a, b,
        c); ``labels``: per row the answer label token of a shared layout; ``abc_positions``:
        per row None or the 1-based history positions of its a, b, c (their placeholders then
        get p_i too). Rows of one layout are written together (numpy, no loop over positions)."""
        size = len(rows)
        length = padded_length(max(len(r.ids) for r in rows), self.length_multiple)
        input_ids = np.full((size, length), self.pad_id, dtype=np.int64)
        mask = np.zeros((size, length), dtype=np.int64)
        item_ids = np.zeros_like(input_ids)
        hist_index = np.zeros_like(input_ids)
        rec_at = np.full(size, -1, dtype=np.int64)
        ppt_at = np.full(size, -1, dtype=np.int64)
        last_at = np.full(size, -1, dtype=np.int64)
        groups = {}
        for b, r in enumerate(rows):
            groups.setdefault(id(r), (r, []))[1].append(b)
        for r, members in groups.values():
            idx = np.asarray(members)
            off = length - len(r.ids)
            input_ids[idx, off:] = r.ids
            mask[idx, off:] = 1
            if len(r.hist):
                item_ids[idx[:, None], off + r.hist] = np.stack([histories[b] for b in members])
                hist_index[idx[:, None], off + r.hist] = np.arange(1, len(r.hist) + 1)
            if len(r.other):
                item_ids[idx[:, None], off + r.other] = np.stack([others[b] for b in members])
            if r.label is not None:
                input_ids[idx, off + r.label] = np.asarray(labels)[idx]
            if r.rec_answer is not None:
                rec_at[idx] = off + r.rec_answer
                if len(r.hist):
                    last_at[idx] = off + r.hist[-1]
            if r.ppt_answer is not None:
                ppt_at[idx] = off + r.ppt_answer
                if abc_positions is not None:
                    for b in members:
                        hist_index[b, off + r.other[-3:]] = abc_positions[b]
        answers = {}
        for name, at in (("rec", rec_at), ("ppt", ppt_at), ("last_item", last_at)):
            which = np.nonzero(at >= 0)[0]
            if len(which):
                answers[name] = (which, at[which])
        return PromptBatch.from_arrays(input_ids, mask, item_ids, hist_index, answers=answers)

    def _rec_row(self, n_history, n_candidates):
        def make():
            ids, hist, cand = self.rec_layout(n_history, n_candidates)
            return ids, hist, cand, None, len(ids) - 1, None
        return self._row(("rec", n_history, n_candidates), make)

    def _recommendation_row(self, n_history, n_candidates, history_only):
        """The whole recommendation prompt, or with ``history_only`` the one cut after the history."""
        return (self._history_row if history_only else self._rec_row)(n_history, n_candidates)

    def prompt_length(self, n_history, n_candidates, history_only=False):
        """Tokens of one recommendation prompt (as :meth:`build` lays it out)."""
        return len(self._recommendation_row(n_history, n_candidates, history_only).ids)

    def _history_row(self, n_history, n_candidates):
        """The recommendation prompt cut after its last history placeholder (``history_only``)."""
        if not n_history:
            return self._rec_row(n_history, n_candidates)

        def make():
            ids, hist, _ = self.rec_layout(n_history, n_candidates)
            end = int(hist[-1]) + 1
            return ids[:end], hist, np.zeros(0, dtype=np.int64), None, end - 1, None
        return self._row(("history", n_history, n_candidates), make)

    def _ppt_row(self, n_history, question="distance"):
        def make():
            ids, hist, abc = self.ppt_layout(n_history, question)
            return ids, hist, abc, None, None, len(ids) - 1
        return self._row(("ppt", n_history, question), make)

    def _history_shared_row(self, n_history, n_candidates, question="distance"):
        """The prompt cut after its last history placeholder (where ``"rec"`` is read), then
        the PPT follow-up question (``history_only``: no answer label to write in between).
        With the chat template the whole shared row is kept (its follow-up starts a new turn)."""
        if self.use_chat_template or not n_history:
            return self._shared_row(n_history, n_candidates, question)

        def make():
            cut = self._history_row(n_history, n_candidates)
            ids = list(cut.ids)
            abc = self._abc_items(*self._followup_forms[question], ids)
            return (np.asarray(ids, dtype=np.int64), cut.hist, np.asarray(abc, dtype=np.int64), None,
                    cut.rec_answer, len(ids) - 1)
        return self._row(("history-shared", n_history, n_candidates, question), make)

    def _shared_row(self, n_history, n_candidates, question="distance"):
        def make():
            ids, hist, other, label = self.shared_layout(n_history, n_candidates, question)
            return ids, hist, other, label, label - 1, len(ids) - 1
        return self._row(("shared", n_history, n_candidates, question), make)

    def _question_only_row(self, row):
        """A shared row without its recommendation answer (a further PPT question of a sequence
        whose own row asks one already): the same tokens, only its PPT answer read."""
        return self._row(("question-only", id(row)), lambda: (row.ids, row.hist, row.other, row.label, None,
                                                              row.ppt_answer))

    def _row(self, key, make):
        """The :class:`_Row` of ``key``, its fields made by ``make()`` the first time only."""
        if key not in self._rows:
            self._rows[key] = _Row(*make())
        return self._rows[key]

    def build(self, histories, candidates, history_only=False):
        """Recommendation prompts; the answer ``"rec"`` of row b is read at its last position,
        ``"last_item"`` (``score_readout``) at its last history placeholder.

        Args:
            histories: per sample, the history item ids oldest first (lists, arrays or 1-D
                tensors, no padding).
            candidates: [B, C] item ids (tensor or nested lists); the answer for candidate
                column j is ``label_token_ids(C)[j]``.
            history_only: cut each prompt after its last history placeholder (no candidates,
                no question): what a readout there sees is the same (causal attention), for
                fewer tokens (``score_readout: last_item``); ``"rec"`` is then that position.
        """
        histories = [as_item_ids(h, "history") for h in histories]
        candidates = self._candidates(candidates, len(histories))
        c = candidates.shape[1]
        rows = [self._recommendation_row(len(h), c, history_only) for h in histories]
        return self._assemble(rows, histories, candidates)

    @staticmethod
    def _questions(questions, count):
        questions = ["distance"] * count if questions is None else [str(q) for q in questions]
        if len(questions) != count or any(q not in PPT_QUESTIONS for q in questions):
            raise ValueError(f"questions must be {count} of {', '.join(PPT_QUESTIONS)}, got {questions}")
        return questions

    def build_ppt(self, histories, abc_items, abc_positions=None, questions=None):
        """PPT prompts: ``abc_items`` [B, 3] item ids of a, b, c; answer ``"ppt"`` (yes_id /
        no_id) at the last position. ``abc_positions`` [B, 3] (1-based history positions of a,
        b, c; optional) gives their placeholders p_i as well (``ppt_question_positions``);
        ``questions``: per row ``distance`` (eq 14, the default) or ``order``."""
        histories = [as_item_ids(h, "history") for h in histories]
        abc = np.asarray(abc_items.cpu() if torch.is_tensor(abc_items) else abc_items,
                         dtype=np.int64).reshape(len(histories), 3)
        questions = self._questions(questions, len(histories))
        rows = [self._ppt_row(len(h), q) for h, q in zip(histories, questions)]
        positions = None if abc_positions is None else np.asarray(abc_positions, dtype=np.int64).reshape(-1, 3)
        return self._assemble(rows, histories, abc, abc_positions=positions)

    def build_shared(self, histories, candidates, target_pos, ppt_rows, abc_items, abc_positions=None,
                     history_only=False, questions=None):
        """Recommendation prompts where rows ``ppt_rows`` (ascending) go on with their answer
        label (``target_pos``, teacher forcing) and the PPT follow-up question about
        ``abc_items`` [P, 3]: one row holds both tasks, the history is encoded once, and the
        causal mask keeps the recommendation answer blind to what follows it.

        Answers: ``"rec"`` of every row (before its label token; the last position in rows
        without PPT) and ``"ppt"`` of rows ``ppt_rows`` (their last position), in row order.
        ``abc_positions`` [P, 3]: as in :meth:`build_ppt`; ``history_only``: every row is cut
        after its history as in :meth:`build`, and the PPT question follows the last history
        item directly (where ``"rec"`` is read; there is no label to teacher-force);
        ``questions``: per question ``distance`` (eq 14, the default) or ``order``.

        A row named more than once in ``ppt_rows`` (more than one question per sequence,
        ``ppt_ratio`` > 1) asks its first question in its own row; each further one gets a row of
        its own after the B rows, the same shared row without a ``"rec"`` answer. The ``"ppt"``
        answers are then in the order of :func:`shared_question_order`."""
        histories = [as_item_ids(h, "history") for h in histories]
        candidates = self._candidates(candidates, len(histories))
        c = candidates.shape[1]
        ppt_rows = [int(r) for r in ppt_rows]
        if ppt_rows != sorted(ppt_rows) or any(not 0 <= r < len(histories) for r in ppt_rows):
            raise ValueError(f"ppt_rows must be ascending rows of the batch, got {ppt_rows}")
        abc = np.asarray(abc_items.cpu() if torch.is_tensor(abc_items) else abc_items,
                         dtype=np.int64).reshape(len(ppt_rows), 3)
        questions = self._questions(questions, len(ppt_rows))
        target_pos = np.asarray(target_pos.cpu() if torch.is_tensor(target_pos) else target_pos,
                                dtype=np.int64).reshape(-1)
        label_ids = list(self.label_token_ids(c).numpy()[target_pos])
        rows = [self._recommendation_row(len(h), c, history_only) for h in histories]
        others = list(candidates)
        positions = None if abc_positions is None else [None] * len(histories)
        shared = self._history_shared_row if history_only else self._shared_row
        histories = list(histories)
        for k, b in enumerate(ppt_rows):
            row = shared(len(histories[b]), c, questions[k])
            # a whole shared row lists the candidates before a, b, c; a cut one only a, b, c
            other = np.concatenate([candidates[b], abc[k]]) if row.label is not None else abc[k]
            position = None if positions is None else np.asarray(abc_positions[k], dtype=np.int64)
            if k and ppt_rows[k - 1] == b:  # a further question of sequence b: a row of its own
                rows.append(self._question_only_row(row))
                histories.append(histories[b])
                others.append(other)
                label_ids.append(label_ids[b])
                if positions is not None:
                    positions.append(position)
                continue
            rows[b], others[b] = row, other
            if positions is not None:
                positions[b] = position
        return self._assemble(rows, histories, others, labels=label_ids, abc_positions=positions)

    @staticmethod
    def _candidates(candidates, size):
        candidates = np.asarray(candidates.cpu() if torch.is_tensor(candidates)
                                else candidates, dtype=np.int64)
        if candidates.ndim != 2 or len(candidates) != size:
            raise ValueError(f"candidates must be [B, C] with B={size}, got "
                             f"shape {candidates.shape}")
        return candidates


def shared_question_order(ppt_rows):
    """The order of :meth:`HybridPrompt.build_shared`'s ``"ppt"`` answers as indices into
    ``ppt_rows``: each row's first question in row order, then the further ones as given."""
    first = [k for k, r in enumerate(ppt_rows) if k == 0 or ppt_rows[k - 1] != r]
    return first + sorted(set(range(len(ppt_rows))) - set(first))


class _Row(NamedTuple):
    """The layout of one kind of row: token ids, placeholder positions, answer positions."""

    ids: np.ndarray
    hist: np.ndarray
    other: np.ndarray
    label: object  # position of the answer label token written per row (shared layout), or None
    rec_answer: object  # position whose hidden state predicts the recommendation answer, or None
    ppt_answer: object  # position whose hidden state predicts the PPT answer, or None
