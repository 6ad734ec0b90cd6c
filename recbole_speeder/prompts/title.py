"""Title prompts of the LLM baselines (TALLRec, LLaRA, zero-shot LLM).

Every history item and candidate is written as its title; LLaRA's *hybrid* item
representation appends one placeholder position to each title whose input embedding is
replaced by the item's projected SASRec embedding (LLaRA, "textual + behavioural" tokens);
TMF appends ``item_slots`` of them, one per modality, all holding the item's id (the model
tells them apart by their order: an item's placeholders are adjacent, so in row-major order
they come in groups of ``item_slots``).
The answer is the chosen candidate's title followed by the end-of-sequence token.

Fixed text comes from ``prompt_template`` (``{history}`` and ``{candidates}`` once each),
tokenised piece-wise by :class:`~recbole_speeder.prompts.base.PromptBase` (BOS, optional chat
template); a title is encoded once per item as a piece in the middle of a prompt and cut to
``title_max_tokens`` tokens. Prompts are left-padded so that the last prompt (or answer)
token of every row sits at the last position.
"""

import numpy as np
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.llm.answers import IGNORE
from recbole_speeder.prompts.base import PromptBase, PromptBatch, check_template, left_pad

DEFAULT_TITLE_PROMPT = (
    "Here is the purchase history of a user, oldest first: {history}. "
    "Which of these candidates will the user buy next? {candidates}. "
    "Answer with the title of one candidate only. Answer: ")


class TitleAnswerPrompt(PromptBase):
    """A prompt whose answer is an item's title: titles cut to ``title_max_tokens`` tokens,
    encoded once per item, followed by the end of sequence."""

    def __init__(self, tokenizer, titles, item_separator=", ", use_chat_template=False, title_max_tokens=24):
        super().__init__(tokenizer, item_separator=item_separator, use_chat_template=use_chat_template)
        self.titles = list(titles)
        self.title_max_tokens = int(title_max_tokens)
        if self.title_max_tokens < 1:
            raise ConfigError(f"title_max_tokens must be at least 1 (got {title_max_tokens}).")
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self.pad_id
        self._title_ids = {}

    def title_ids(self, item):
        """Token ids of the item's title as shown in prompts (cut to ``title_max_tokens``)."""
        return self.item_piece(self._title_ids, self.titles, item, self.title_max_tokens)

    def title_text(self, item):
        """The title as the LLM sees it (after the cut): what an answer is matched against."""
        return self.tokenizer.decode(self.title_ids(item), skip_special_tokens=True).strip()

    def answer_ids(self, item):
        """Target tokens of an answer naming ``item``: its title, then end of sequence."""
        return list(self.title_ids(item)) + [self.eos_id]


class TitlePrompt(TitleAnswerPrompt):
    """Builds title prompts (optionally hybrid) and their teacher-forced answers."""

    def __init__(self, tokenizer, titles, prompt_template=DEFAULT_TITLE_PROMPT, item_separator=", ",
                 use_chat_template=False, title_max_tokens=24, item_slots=1):
        super().__init__(tokenizer, titles, item_separator=item_separator, use_chat_template=use_chat_template,
                         title_max_tokens=title_max_tokens)
        self.item_slots = int(item_slots)  # placeholders after each title of a hybrid row
        check_template(prompt_template, "prompt_template", ["history", "candidates"])
        self._rec_pieces, self._rec_order = self.template_pieces(prompt_template, ["history", "candidates"])

    def _row(self, history, candidates, hybrid, answer):
        ids, slots = [], []
        for k, piece in enumerate(self._rec_pieces):
            ids.extend(piece)
            if k == len(self._rec_order):
                break
            items = history if self._rec_order[k] == "history" else candidates
            for j, item in enumerate(items):
                ids.extend(self.title_ids(item))
                if hybrid:
                    for _ in range(self.item_slots):
                        slots.append((len(ids), item))
                        ids.append(self.pad_id)
                if j + 1 < len(items):
                    ids.extend(self._sep_ids)
        answer_ids = self.answer_ids(answer) if answer is not None else []
        return ids + answer_ids, slots, len(answer_ids)

    def build(self, histories, candidates, hybrid=None, answers=None):
        """Left-padded title prompts.

        Args:
            histories: per row, history item ids oldest first (no padding).
            candidates: [B, C] candidate item ids.
            hybrid: per row, whether items carry their ``item_slots`` embedding placeholders
                (default none).
            answers: optional per-row item id whose answer tokens are appended (teacher forcing).

        Returns:
            (PromptBatch, labels): ``item_ids`` marks the placeholders (history_index stays 0:
            no position prompts); ``labels`` [B, L] holds the answer token ids at the answer
            positions and ``IGNORE`` elsewhere (None without ``answers``).
        """
        candidates = np.asarray(candidates.cpu() if torch.is_tensor(candidates) else candidates, dtype=np.int64)
        histories = [np.asarray(h.cpu() if torch.is_tensor(h) else h, dtype=np.int64).reshape(-1) for h in histories]
        if candidates.ndim != 2 or len(candidates) != len(histories):
            raise ValueError(f"candidates must be [B, C] with B={len(histories)}, got shape {candidates.shape}")
        size = len(histories)
        hybrid = np.zeros(size, dtype=bool) if hybrid is None else np.asarray(hybrid, dtype=bool).reshape(size)
        rows = [self._row(h.tolist(), c.tolist(), bool(y), None if answers is None else int(answers[b]))
                for b, (h, c, y) in enumerate(zip(histories, candidates, hybrid))]
        input_ids, mask, offsets = left_pad([r[0] for r in rows], self.pad_id, self.length_multiple)
        length = input_ids.shape[1]
        item_ids = np.zeros_like(input_ids)
        labels = np.full_like(input_ids, IGNORE)
        for b, ((ids, slots, n_answer), off) in enumerate(zip(rows, offsets)):
            for pos, item in slots:
                item_ids[b, off + pos] = item
            if n_answer:
                labels[b, length - n_answer:] = ids[-n_answer:]
        batch = PromptBatch.from_arrays(input_ids, mask, item_ids)
        return batch, (torch.from_numpy(labels) if answers is not None else None)
