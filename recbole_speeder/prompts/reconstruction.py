"""Reconstruction prompts of Speeder's MPO stage 1 (paper, section 2.5): item vector in, title out.

Stage 1's stated goal is that the LLM "accurately reconstruct item attributes from compressed
textual representations while initiating learning of the SR task". A reconstruction prompt
holds one item's fused vector e_mm at one placeholder and asks for the item's title; the
answer is the title's tokens (cut to ``title_max_tokens``) and the end of sequence, trained
with teacher forcing like the title baselines' answers (:mod:`~recbole_speeder.llm.answers`).
Published precedent: RecInterpreter (the LLM names the items whose vectors it was given),
LC-Rec's index-language alignment tasks.

``reconstruction_template`` holds ``{item}`` once (the placeholder). Rows are left-padded;
``labels`` [B, L] holds the answer's token ids at the answer positions and ``IGNORE`` elsewhere.
"""

import numpy as np
import torch

from recbole_speeder.llm.answers import IGNORE
from recbole_speeder.prompts.base import PromptBatch, check_template, left_pad
from recbole_speeder.prompts.title import TitleAnswerPrompt

DEFAULT_RECONSTRUCTION_TEMPLATE = "Here is an item: {item}. Its title is:"


class ReconstructionPrompt(TitleAnswerPrompt):
    """Prompts "item vector -> title" and their teacher-forced answers."""

    def __init__(self, tokenizer, titles, template=DEFAULT_RECONSTRUCTION_TEMPLATE, use_chat_template=False,
                 title_max_tokens=24):
        super().__init__(tokenizer, titles, use_chat_template=use_chat_template, title_max_tokens=title_max_tokens)
        check_template(template, "reconstruction_template", ["item"])
        (self._before, self._after), _ = self.template_pieces(template, ["item"])

    def build(self, items):
        """(PromptBatch with one placeholder per row, labels [B, L]) for the item ids ``items``."""
        items = [int(i) for i in (items.tolist() if torch.is_tensor(items) else items)]
        rows, slots, answers = [], [], []
        for item in items:
            answer = self.answer_ids(item)
            slots.append(len(self._before))
            rows.append(self._before + [self.pad_id] + self._after + answer)
            answers.append(len(answer))
        input_ids, mask, offsets = left_pad(rows, self.pad_id, self.length_multiple)
        item_ids = np.zeros_like(input_ids)
        labels = np.full_like(input_ids, IGNORE)
        length = input_ids.shape[1]
        for b, (item, slot, off, n) in enumerate(zip(items, slots, offsets, answers)):
            item_ids[b, off + slot] = item
            labels[b, length - n:] = input_ids[b, length - n:]
        return PromptBatch.from_arrays(input_ids, mask, item_ids), torch.from_numpy(labels)
