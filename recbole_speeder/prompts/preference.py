"""The recommendation prompt of MLLM-MSR: preference summary + recent items + one candidate.

MLLM-MSR (Ye et al. 2024, arXiv 2408.09698, section 3.4) asks its fine-tuned recommender,
for one candidate at a time, whether a user with the given preference summary will choose it;
the answer is one token, yes or no (:mod:`~recbole_speeder.llm.answers`).

``prompt_template`` holds ``{summary}`` and ``{candidate}`` once each and optionally
``{history}`` (the last ``history_len`` items, written as their titles and joined with
``item_separator``); the candidate is written as its item summary (title + image words, cut
to ``item_summary_max_tokens`` tokens), titles are cut to ``title_max_tokens``. Text pieces
are tokenised once and assembled piece-wise as in
:class:`~recbole_speeder.prompts.base.PromptBase` (BOS, optional chat template); rows are
left-padded so that every prompt ends at the last position, where the answer is read.
"""

from functools import lru_cache

import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.prompts.base import PromptBase, PromptBatch, check_template, left_pad

DEFAULT_PREFERENCE_PROMPT = (
    "A user's preferences: {summary}\n"
    "The user's latest purchases, oldest first: {history}.\n"
    "Candidate item: {candidate}.\n"
    "Will the user buy the candidate next? Answer Yes or No.\nAnswer:")


class PreferencePrompt(PromptBase):
    """Token layouts of the yes/no prompts (see the module doc)."""

    def __init__(self, tokenizer, titles, summaries, prompt_template=DEFAULT_PREFERENCE_PROMPT,
                 item_separator="; ", use_chat_template=False, title_max_tokens=24,
                 item_summary_max_tokens=48, answer_yes=" Yes", answer_no=" No"):
        super().__init__(tokenizer, item_separator=item_separator, use_chat_template=use_chat_template)
        check_template(prompt_template, "prompt_template", ["summary", "candidate"], optional=["history"])
        self._pieces, self._order = self.template_pieces(prompt_template, ["summary", "history", "candidate"])
        self.shows_history = "history" in self._order
        self.titles, self.summaries = list(titles), list(summaries)
        self.title_max_tokens, self.item_summary_max_tokens = int(title_max_tokens), int(item_summary_max_tokens)
        for key, value in (("title_max_tokens", self.title_max_tokens),
                           ("item_summary_max_tokens", self.item_summary_max_tokens)):
            if value < 1:
                raise ConfigError(f"{key} must be at least 1 (got {value}).")
        for key, word in (("answer_yes", answer_yes), ("answer_no", answer_no)):
            if not isinstance(word, str) or not word.strip():
                raise ConfigError(f"{key} must be a non-empty quoted string (got {word!r}; YAML reads an unquoted "
                                  f"Yes / No as a boolean).")
        self.yes_id = self.single_token_id(answer_yes)
        self.no_id = self.single_token_id(answer_no)
        if self.yes_id == self.no_id:
            raise ConfigError(f"answer_yes {answer_yes!r} and answer_no {answer_no!r} are the same token.")
        self._title_ids, self._summary_ids, self._summary_texts = {}, {}, {}
        self._encode_text = lru_cache(maxsize=65536)(self.encode_piece)  # a summary repeats per candidate

    def title_ids(self, item):
        """Token ids of an item's title as shown among the recent items."""
        return self.item_piece(self._title_ids, self.titles, item, self.title_max_tokens)

    def summary_ids(self, item):
        """Token ids of an item's summary (title + image words) as shown for a candidate."""
        return self.item_piece(self._summary_ids, self.summaries, item, self.item_summary_max_tokens)

    def summary_text(self, item):
        """The item summary as the LLM sees it (after the cut): also used in summary prompts."""
        item = int(item)
        if item not in self._summary_texts:
            self._summary_texts[item] = self.tokenizer.decode(self.summary_ids(item), skip_special_tokens=True).strip()
        return self._summary_texts[item]

    def _row(self, summary, history, candidate):
        ids = list(self._pieces[0])
        for name, piece in zip(self._order, self._pieces[1:]):
            if name == "summary":
                ids.extend(self._encode_text(str(summary)))
            elif name == "candidate":
                ids.extend(self.summary_ids(candidate))
            else:
                for j, item in enumerate(history):
                    if j:
                        ids.extend(self._sep_ids)
                    ids.extend(self.title_ids(item))
            ids.extend(piece)
        return ids

    def build(self, summaries, histories, candidates):
        """Left-padded prompts, one per row: (summary text, recent item ids, candidate id).

        Returns a :class:`~recbole_speeder.prompts.base.PromptBatch` without placeholders
        (``item_ids`` and ``history_index`` are zeros); the answer is read at the last position.
        """
        if not len(summaries) == len(histories) == len(candidates):
            raise ValueError(f"{len(summaries)} summaries, {len(histories)} histories and {len(candidates)} "
                             f"candidates: one of each per row")
        rows = [self._row(s, [int(i) for i in (h.tolist() if torch.is_tensor(h) else h)], int(c))
                for s, h, c in zip(summaries, histories, candidates)]
        input_ids, mask, _ = left_pad(rows, self.pad_id, self.length_multiple)
        return PromptBatch.from_arrays(input_ids, mask)
