"""What every prompt of the plugin shares: piece-wise tokenisation, batches, padding, templates.

A prompt is fixed text from a YAML template with named placeholders (``{history}``...) filled
by item text or by *placeholder positions* whose input embedding is replaced by an item
vector (Speeder's hybrid prompt, Fig. 3; LLaRA's item tokens). Fixed text is tokenised once
and a prompt is assembled by concatenating cached token-id pieces; pieces are encoded
separately, so the ids may differ from tokenising the whole rendered string at piece
boundaries, but they are the same for training and evaluation, which is what matters.

Rows are left-padded (:func:`left_pad`) so that every prompt ends at the last position,
where the answer is read unless the batch names other answer positions (a row may hold two
answers: :attr:`PromptBatch.answers`). :meth:`PromptBatch.pack` turns a padded batch into one
padding-free row (:mod:`~recbole_speeder.llm.packing`). Placeholder positions are found on the
host when a batch is built, and a host batch reaches a GPU in one pinned copy
(:func:`to_device`), so nothing the model does with it waits for the device. With
``use_chat_template`` the template is wrapped in the tokenizer's chat template (user turn +
generation prompt) when it has one.
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
    """A batch of prompts, left-padded (rows [B, L]) or packed (one row, :meth:`pack`).

    input_ids / attention_mask: [B, L]; placeholder positions hold ``pad_token_id``.
    item_ids: [B, L] item id at each placeholder position, 0 elsewhere (0 is RecBole's PAD,
        never a real item).
    history_index: [B, L] 1-based position i of a history item (for its p_i), 0 elsewhere.
    answers: name -> (rows [K], positions [K]): where the hidden state that predicts each
        answer of that name is read (Speeder: ``"rec"``, the recommendation answer of every
        sequence, and ``"ppt"``, the PPT answers). ``None`` or a missing name: the last
        position of every row (:meth:`answer`), as left padding puts every prompt's end there.
    slots: (rows [S], positions [S]) of the placeholders; the order of ``slot_item_ids()``
        and of the slot vectors. Computed on the host by the builders (:meth:`from_arrays`),
        so that no device has to be asked where they are.
    packing: the :class:`~recbole_speeder.llm.packing.PackedSequences` of a packed batch.
    padded: whether some row is padded (host flag; ``None``: look at the mask).
    extras: further int64 tensors that travel to the device with the batch (e.g. targets).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    item_ids: torch.Tensor
    history_index: torch.Tensor
    answers: dict = None
    slots: tuple = None
    packing: object = None
    padded: bool = None
    extras: dict = None

    @property
    def answer_position(self):
        """The last position, where every left-padded prompt ends."""
        return self.input_ids.shape[1] - 1

    def answer(self, name="rec"):
        """(rows [K], positions [K]) of the answers ``name`` (default: every row's last position)."""
        if self.answers and name in self.answers:
            return self.answers[name]
        rows = torch.arange(self.input_ids.shape[0], device=self.input_ids.device)
        return rows, torch.full_like(rows, self.answer_position)

    @property
    def slot_mask(self):
        return self.item_ids > 0

    def slot_positions(self):
        """(rows [S], positions [S]) of the placeholders, row-major unless the builder said otherwise."""
        if self.slots is not None:
            return self.slots
        return self.slot_mask.nonzero(as_tuple=True)

    def slot_item_ids(self):
        """Item id of every placeholder, in :meth:`slot_positions` order ([S])."""
        return self.item_ids[self.slot_positions()]

    def slot_history_index(self):
        """History position (1-based, 0 = not a history item) of every placeholder ([S])."""
        return self.history_index[self.slot_positions()]

    @property
    def num_slots(self):
        rows = self.slot_positions()[0]
        return rows.shape[0]

    def has_padding(self):
        if self.padded is not None:
            return self.padded
        return bool((self.attention_mask == 0).any())

    def decoder_mask(self):
        """The attention mask the decoder needs: ``None`` when packed or when no row is padded."""
        if self.packing is not None or not self.has_padding():
            return None
        return self.attention_mask

    # -- moving -----------------------------------------------------------------------------
    def _named_tensors(self):
        named = {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                 "item_ids": self.item_ids, "history_index": self.history_index}
        for name, (rows, positions) in (self.answers or {}).items():
            named[f"answer.{name}.rows"], named[f"answer.{name}.positions"] = rows, positions
        if self.slots is not None:
            named["slots.rows"], named["slots.positions"] = self.slots
        if self.packing is not None:
            named.update({f"packing.{k}": v for k, v in self.packing.tensors().items()})
        named.update({f"extra.{k}": v for k, v in (self.extras or {}).items()})
        return named

    def _with_tensors(self, named):
        answers = None if self.answers is None else {
            name: (named[f"answer.{name}.rows"], named[f"answer.{name}.positions"]) for name in self.answers}
        slots = None if self.slots is None else (named["slots.rows"], named["slots.positions"])
        packing = None if self.packing is None else self.packing.with_tensors(
            {k[len("packing."):]: v for k, v in named.items() if k.startswith("packing.")})
        extras = None if self.extras is None else {k: named[f"extra.{k}"] for k in self.extras}
        return PromptBatch(named["input_ids"], named["attention_mask"], named["item_ids"], named["history_index"],
                           answers, slots, packing, self.padded, extras)

    def to(self, device):
        """The batch on ``device``; from the host to a GPU in one pinned, non-blocking copy (no
        synchronisation with the work already queued on the device)."""
        named = self._named_tensors()
        return self._with_tensors(dict(zip(named, to_device(list(named.values()), device))))

    # -- combining ----------------------------------------------------------------------------
    def concat(self, other, pad_id):
        """Rows of ``self`` then rows of ``other`` in one batch, left-padded to the longer
        length (so prompts of two tasks share one forward pass); answers of the same name are
        joined, extras are dropped."""
        length = max(self.input_ids.shape[1], other.input_ids.shape[1])

        def widen(batch):
            fill = length - batch.input_ids.shape[1]
            values = (pad_id, 0, 0, 0)
            return [F.pad(t, (fill, 0), value=v) for t, v in zip(
                (batch.input_ids, batch.attention_mask, batch.item_ids, batch.history_index), values)]

        def shifted(batch, rows_before):
            fill = length - batch.input_ids.shape[1]
            answers = {name: batch.answer(name) for name in (batch.answers or {"rec": None})}
            slots = batch.slot_positions()
            return ({k: (r + rows_before, p + fill) for k, (r, p) in answers.items()},
                    (slots[0] + rows_before, slots[1] + fill))

        first_answers, first_slots = shifted(self, 0)
        second_answers, second_slots = shifted(other, self.input_ids.shape[0])
        answers = dict(first_answers)
        for name, (rows, positions) in second_answers.items():
            if name in answers:
                answers[name] = (torch.cat([answers[name][0], rows]), torch.cat([answers[name][1], positions]))
            else:
                answers[name] = (rows, positions)
        slots = tuple(torch.cat(pair) for pair in zip(first_slots, second_slots))
        padded = None
        if self.padded is not None and other.padded is not None:
            padded = self.padded or other.padded or self.input_ids.shape[1] != other.input_ids.shape[1]
        return PromptBatch(*(torch.cat(pair) for pair in zip(widen(self), widen(other))),
                           answers=answers, slots=slots, padded=padded)

    def pack(self):
        """The prompts of this left-padded host batch packed into one padding-free row [1, T].

        Prompts are ordered by length (stable), so that equal lengths stand together
        (:class:`~recbole_speeder.llm.packing.PackedSequences`); answers and placeholders keep
        their order and point into the packed row. A batch without padding is returned as it
        is: its rows are already padding-free, and the plain causal attention serves them."""
        from recbole_speeder.llm.packing import PackedSequences

        if not self.has_padding():
            return self

        mask = self.attention_mask.numpy().astype(bool)
        size, length = mask.shape
        lengths = mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        starts = np.zeros(size, dtype=np.int64)
        starts[order] = np.concatenate([[0], np.cumsum(lengths[order])[:-1]])
        shift = torch.from_numpy(starts - (length - lengths))  # packed index = position + shift[row]
        keep = mask[order]

        def flat(t):
            return torch.from_numpy(t.numpy()[order][keep])[None]

        def remap(pair):
            rows, positions = pair
            return torch.zeros_like(rows), positions + shift[rows]

        names = list(self.answers) if self.answers else ["rec"]
        answers = {name: remap(self.answer(name)) for name in names}
        ids = flat(self.input_ids)
        return PromptBatch(ids, torch.ones_like(ids), flat(self.item_ids), flat(self.history_index), answers,
                           remap(self.slot_positions()), PackedSequences.from_lengths(lengths[order]), False,
                           self.extras)

    @classmethod
    def from_arrays(cls, input_ids, attention_mask, item_ids=None, history_index=None, answers=None, extras=None):
        """A batch from int64 numpy arrays (``item_ids`` / ``history_index`` default to zeros;
        ``answers``: name -> (rows, positions) arrays); placeholders and padding are noted on
        the host."""
        zeros = np.zeros_like(input_ids)
        arrays = (input_ids, attention_mask, zeros if item_ids is None else item_ids,
                  zeros.copy() if history_index is None else history_index)
        slots = tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in np.nonzero(arrays[2] > 0))
        answers = None if answers is None else {
            name: tuple(torch.as_tensor(np.asarray(a, dtype=np.int64)) for a in pair) for name, pair in answers.items()}
        extras = None if extras is None else {k: torch.as_tensor(v, dtype=torch.long) for k, v in extras.items()}
        return cls(*(torch.from_numpy(a) for a in arrays), answers=answers, slots=slots,
                   padded=bool((attention_mask == 0).any()), extras=extras)


def to_device(tensors, device):
    """``tensors`` (integer or bool) on ``device``. Host tensors bound for a GPU go in one
    pinned, non-blocking copy: a plain copy of each would wait for the device's queued work."""
    device = torch.device(device)
    if device.type != "cuda" or all(t.device == device for t in tensors):
        return [t.to(device) for t in tensors]
    if any(t.device.type != "cpu" for t in tensors) or any(t.is_floating_point() for t in tensors):
        return [t.to(device) for t in tensors]
    flat = torch.cat([t.reshape(-1).to(torch.long) for t in tensors]).pin_memory()
    moved = flat.to(device, non_blocking=True)
    out, start = [], 0
    for t in tensors:
        out.append(moved[start:start + t.numel()].view(t.shape).to(t.dtype))
        start += t.numel()
    return out


def padded_length(length, multiple=1):
    """``length`` rounded up to a multiple of ``multiple`` (``prompt_length_multiple``): batches of
    prompts then come in few lengths, so that compiled networks and CUDA graphs are reused."""
    return -(-int(length) // int(multiple)) * int(multiple)


def left_pad(rows, pad_id, multiple=1):
    """(input_ids [B, L], attention_mask [B, L], offsets) of token-id rows aligned to the right
    (int64 numpy arrays; row b starts at ``offsets[b]``), so that every prompt ends at L - 1; L is
    the longest row rounded up to a multiple of ``multiple``."""
    length = padded_length(max(len(ids) for ids in rows), multiple)
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
            ``batch.slot_item_ids()``, i.e. of ``batch.slot_positions()``).
        position_prompts: optional :class:`~recbole_speeder.model.layers.spae.PositionPrompts`;
            history placeholders get + p_i (eq 17).

    Returns:
        [B, L, H] inputs_embeds (one indexed write at the host-known placeholder positions;
        gradients reach ``slot_vectors``).
    """
    embeds = model.get_input_embeddings()(batch.input_ids)
    positions = batch.slot_positions()
    if slot_vectors.shape != (positions[0].shape[0], embeds.shape[-1]):
        raise ValueError(f"slot_vectors must be [{positions[0].shape[0]}, {embeds.shape[-1]}], "
                         f"got {list(slot_vectors.shape)}")
    vectors = slot_vectors.to(embeds.dtype)
    if position_prompts is not None:
        vectors = vectors + position_prompts.lookup(batch.slot_history_index()).to(embeds.dtype)
    return embeds.index_put(positions, vectors)


class PromptBase:
    """Tokenisation of fixed text for one tokenizer: pieces, BOS, chat wrapping, item texts."""

    length_multiple = 1  # left-padded batches are a multiple of this many tokens long (prompt_length_multiple)

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

    def wrap_followup(self, text):
        """Text that goes on after a prompt's one-token answer: as it is, or with the chat
        template the end of the assistant turn, then ``text`` as a new user turn and the
        generation prompt."""
        if not self.use_chat_template:
            return text
        marker = "\x01"
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "\x00"}, {"role": "assistant", "content": marker},
             {"role": "user", "content": text.lstrip()}], tokenize=False, add_generation_prompt=True)
        return rendered.split(marker, 1)[1] if marker in rendered else text

    def followup_pieces(self, template, names):
        """(token-id pieces, placeholder order) of :meth:`wrap_followup` text split at ``names``
        (no BOS: it continues a prompt)."""
        pieces, order = split_at_placeholders(self.wrap_followup(template), names)
        return [self.encode_piece(p) for p in pieces], order

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
            spelled = all(len(self.tokenizer.decode([i]).strip()) <= 1 for i in ids)
            hint = (" (it spells the word letter by letter: a tokenizer read from a GGUF file by an older "
                    "transformers can do that; Gemma-3-270M's needs transformers >= 5.23)") if spelled else ""
            raise ConfigError(f"the backbone's tokenizer splits {text!r} into {len(ids)} "
                              f"tokens; the one-token answer needs a single token{hint}")
        return ids[0]

    def render(self, batch, row=0):
        """Human-readable text of one prompt (placeholders shown as ``[item <id>]``)."""
        ids, items = batch.input_ids[row], batch.item_ids[row]
        keep = batch.attention_mask[row].bool()
        out = []
        for tid, iid in zip(ids[keep].tolist(), items[keep].tolist()):
            out.append(f"[item {iid}]" if iid else self.tokenizer.decode([tid]))
        return "".join(out)
