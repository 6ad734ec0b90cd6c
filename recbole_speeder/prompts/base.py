"""What every prompt of the plugin shares: piece-wise tokenisation, batches, padding, templates.

A prompt is fixed text from a YAML template with named placeholders (``{history}``...) filled
by item text or by *placeholder positions* whose input embedding is replaced by an item
vector (Speeder's hybrid prompt, Fig. 3; LLaRA's item tokens). Fixed text is tokenised once
and a prompt is assembled by concatenating cached token-id pieces; pieces are encoded
separately, so the ids may differ from tokenising the whole rendered string at piece
boundaries, but they are the same for training and evaluation, which is what matters.

Rows are left-padded (:func:`left_pad`) so that every prompt ends at the last position,
where the answer is read. With ``use_chat_template`` the template is wrapped in the
tokenizer's chat template (user turn + generation prompt) when it has one.
"""

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recbole_speeder.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")


@dataclass
class PromptBatch:
    """A left-padded batch of prompts.

    input_ids / attention_mask: [B, L]; placeholder positions hold ``pad_token_id``.
    item_ids: [B, L] item id at each placeholder position, 0 elsewhere (0 is RecBole's PAD,
        never a real item).
    history_index: [B, L] 1-based position i of a history item (for its p_i), 0 elsewhere.
    answer_position: the position whose logits predict the answer; always L - 1 (left
        padding puts every prompt's last token there).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    item_ids: torch.Tensor
    history_index: torch.Tensor

    @property
    def answer_position(self):
        return self.input_ids.shape[1] - 1

    @property
    def slot_mask(self):
        return self.item_ids > 0

    def slot_item_ids(self):
        """Item id of every placeholder, in row-major order ([S])."""
        return self.item_ids[self.slot_mask]

    def slot_history_index(self):
        """History position (1-based, 0 = not a history item) of every placeholder ([S])."""
        return self.history_index[self.slot_mask]

    def to(self, device):
        return PromptBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask,
                                                    self.item_ids, self.history_index)))

    def concat(self, other, pad_id):
        """Rows of ``self`` then rows of ``other`` in one batch, left-padded to the longer
        length (so prompts of two tasks share one forward pass)."""
        length = max(self.input_ids.shape[1], other.input_ids.shape[1])

        def widen(batch):
            fill = length - batch.input_ids.shape[1]
            values = (pad_id, 0, 0, 0)
            return [F.pad(t, (fill, 0), value=v) for t, v in zip(
                (batch.input_ids, batch.attention_mask, batch.item_ids, batch.history_index), values)]

        return PromptBatch(*(torch.cat(pair) for pair in zip(widen(self), widen(other))))

    @classmethod
    def from_arrays(cls, input_ids, attention_mask, item_ids=None, history_index=None):
        """A batch from int64 numpy arrays (``item_ids`` / ``history_index`` default to zeros)."""
        zeros = np.zeros_like(input_ids)
        arrays = (input_ids, attention_mask, zeros if item_ids is None else item_ids,
                  zeros.copy() if history_index is None else history_index)
        return cls(*(torch.from_numpy(a) for a in arrays))


def left_pad(rows, pad_id):
    """(input_ids [B, L], attention_mask [B, L], offsets) of token-id rows aligned to the right
    (int64 numpy arrays; row b starts at ``offsets[b]``), so that every prompt ends at L - 1."""
    length = max(len(ids) for ids in rows)
    input_ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    offsets = []
    for b, ids in enumerate(rows):
        off = length - len(ids)
        input_ids[b, off:] = ids
        mask[b, off:] = 1
        offsets.append(off)
    return input_ids, mask, offsets


def check_template(text, key, required, optional=()):
    """ConfigError unless ``text`` holds each ``required`` placeholder exactly once and no
    ``{name}`` placeholder outside ``required`` and ``optional``."""
    if not isinstance(text, str):
        raise ConfigError(f"{key} must be a string, got {type(text).__name__}")
    for name in required:
        count = text.count("{" + name + "}")
        if count != 1:
            raise ConfigError(f"{key} must contain {{{name}}} exactly once (found {count}): "
                              f"{text!r}")
    allowed = ["{" + n + "}" for n in (*required, *optional)]
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(allowed))
    if unknown:
        raise ConfigError(f"{key} has unknown placeholders {unknown}; allowed: {allowed}")


def split_at_placeholders(text, names):
    """Split at the placeholders ``names`` -> (pieces, order): len(pieces) = len(order) + 1."""
    pattern = re.compile("|".join(re.escape("{" + n + "}") for n in names))
    pieces, order, last = [], [], 0
    for match in pattern.finditer(text):
        pieces.append(text[last:match.start()])
        order.append(match.group()[1:-1])
        last = match.end()
    pieces.append(text[last:])
    return pieces, order


def as_item_ids(seq, what):
    """A history (list, array or 1-D tensor, no padding) as an int64 numpy array of ids > 0."""
    arr = np.asarray(seq.cpu() if torch.is_tensor(seq) else seq, dtype=np.int64).reshape(-1)
    if (arr <= 0).any():
        raise ValueError(f"{what} item ids must be > 0 (0 is padding): {arr.tolist()}")
    return arr


def build_inputs_embeds(model, batch, slot_vectors, position_prompts=None):
    """Token embeddings with every placeholder row replaced by its item vector (Fig. 3).

    Args:
        model: the causal LM (or its peft wrapper).
        batch: a :class:`PromptBatch` on the model's device.
        slot_vectors: [S, H] item vector of each placeholder in row-major order (order of
            ``batch.slot_item_ids()``).
        position_prompts: optional :class:`~recbole_speeder.model.layers.spae.PositionPrompts`;
            history placeholders get + p_i (eq 17).

    Returns:
        [B, L, H] inputs_embeds (one masked scatter; gradients reach ``slot_vectors``).
    """
    embeds = model.get_input_embeddings()(batch.input_ids)
    mask = batch.slot_mask
    if slot_vectors.shape != (int(mask.sum()), embeds.shape[-1]):
        raise ValueError(f"slot_vectors must be [{int(mask.sum())}, {embeds.shape[-1]}], "
                         f"got {list(slot_vectors.shape)}")
    vectors = slot_vectors.to(embeds.dtype)
    if position_prompts is not None:
        vectors = vectors + position_prompts.lookup(batch.slot_history_index()).to(embeds.dtype)
    return embeds.masked_scatter(mask.unsqueeze(-1), vectors)


class PromptBase:
    """Tokenisation of fixed text for one tokenizer: pieces, BOS, chat wrapping, item texts."""

    def __init__(self, tokenizer, item_separator=", ", use_chat_template=False):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ConfigError("the tokenizer has neither a pad nor an eos token")
        self.item_separator = str(item_separator)
        self.use_chat_template = bool(use_chat_template) and bool(
            getattr(tokenizer, "chat_template", None))
        self._bos = self._leading_special_ids()
        self._sep_ids = self.encode_piece(self.item_separator)

    def wrap(self, template):
        """The template as the user turn of the chat template (with ``use_chat_template``)."""
        if not self.use_chat_template:
            return template
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": template}], tokenize=False,
            add_generation_prompt=True)

    def _leading_special_ids(self):
        """BOS ids the tokenizer adds by itself (none when the chat template is used)."""
        if self.use_chat_template:
            return []
        plain = self.tokenizer.encode("a", add_special_tokens=False)
        full = self.tokenizer.encode("a", add_special_tokens=True)
        return full[:len(full) - len(plain)] if full[-len(plain):] == plain else []

    def template_pieces(self, template, names):
        """(token-id pieces, placeholder order) of a (wrapped) template split at ``names``;
        the first piece starts with the tokenizer's BOS."""
        pieces, order = split_at_placeholders(self.wrap(template), names)
        ids = [self.encode_piece(p) for p in pieces]
        ids[0] = self._bos + ids[0]
        return ids, order

    def encode_piece(self, text):
        """Token ids of a text piece as it reads in the middle of a prompt.

        The piece is encoded after a newline anchor and the anchor's ids are removed, so
        SentencePiece tokenizers do not add a word-start marker to every piece.
        """
        if not text:
            return []
        tok = self.tokenizer
        anchor = tok.encode("\n", add_special_tokens=False)
        both = tok.encode("\n" + text, add_special_tokens=False)
        if anchor and both[:len(anchor)] == anchor:
            return both[len(anchor):]
        return tok.encode(text, add_special_tokens=False)

    def item_piece(self, cache, texts, item, max_tokens):
        """``encode_piece(texts[item])`` cut to ``max_tokens``, encoded once per item into ``cache``."""
        item = int(item)
        if item not in cache:
            cache[item] = self.encode_piece(texts[item])[:max_tokens]
        return cache[item]

    def single_token_id(self, text):
        """The one token id of ``text`` in prompt context; ConfigError if it is several."""
        ids = self.encode_piece(text)
        if len(ids) != 1:
            raise ConfigError(f"the backbone's tokenizer splits {text!r} into {len(ids)} "
                              f"tokens; the one-token answer needs a single token")
        return ids[0]

    def render(self, batch, row=0):
        """Human-readable text of one prompt (placeholders shown as ``[item <id>]``)."""
        ids, items = batch.input_ids[row], batch.item_ids[row]
        keep = batch.attention_mask[row].bool()
        out = []
        for tid, iid in zip(ids[keep].tolist(), items[keep].tolist()):
            out.append(f"[item {iid}]" if iid else self.tokenizer.decode([tid]))
        return "".join(out)
