"""Hybrid prompts of Speeder (paper section 2.4, Fig. 3) and the one-token answer.

A prompt is instruction text with one *placeholder position* per item: history items,
candidates, and the three items a, b, c of the positional proxy task (PPT, eq 13-14). The
input embedding of each placeholder is replaced by the item's fused vector e_mm (eq 10);
history placeholders additionally get their position prompt p_i (PPL, eqs 15-17).

Templates are plain strings the user edits in YAML:

* ``prompt_template``: the recommendation task; must contain ``{history}`` and
  ``{candidates}`` once each.
* ``ppt_template``: the PPT question; must contain ``{history}``, ``{a}``, ``{b}``, ``{c}``
  once each; each of ``{a}``, ``{b}``, ``{c}`` becomes one placeholder (no PPL on them, that
  would give the answer away). Answers are the tokens ``yes`` / ``no``.
* ``history_item_template`` / ``candidate_item_template``: how one item is written; must
  contain ``<item>`` (the placeholder) once and may contain ``{index}``; items are joined
  with ``item_separator``.

Other braces are kept as literal text. With ``use_chat_template`` the filled task text is
wrapped in the tokenizer's chat template (user turn + generation prompt) when it has one.

Fixed text is tokenised once: every text piece is encoded when first needed and the token
layout of a prompt depends only on (history length, number of candidates), so it is cached
and a batch is assembled by copying cached id arrays. Pieces are encoded separately, so the
ids may differ from tokenising the whole rendered string at piece boundaries; they are the
same for training and evaluation, which is what matters.

Answer (t_out = 1): the candidate's label, one token. Labels are the digits ``1``..``9``
while every digit is a single token and C <= 9; otherwise (or with
``candidate_labels: letters``) the capital letters ``A``..``Z`` (C <= 26). History items are
always numbered 1..n in text (those numbers may span several tokens; they are never answers).
"""

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from recbole_speeder.errors import ConfigError
from recbole_speeder.model.backbone import eos_ids

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
_PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")


@dataclass
class PromptBatch:
    """A left-padded batch of hybrid prompts.

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
        length (so the recommendation and PPT prompts of a step share one forward pass)."""
        length = max(self.input_ids.shape[1], other.input_ids.shape[1])

        def widen(batch):
            fill = length - batch.input_ids.shape[1]
            values = (pad_id, 0, 0, 0)
            return [F.pad(t, (fill, 0), value=v) for t, v in zip(
                (batch.input_ids, batch.attention_mask, batch.item_ids, batch.history_index), values)]

        return PromptBatch(*(torch.cat(pair) for pair in zip(widen(self), widen(other))))


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
    """ConfigError unless ``text`` holds each ``required`` placeholder exactly once, each
    ``optional`` one at most once, and no other ``{name}`` placeholder."""
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


class HybridPrompt:
    """Builds token layouts of the recommendation and PPT prompts for a tokenizer."""

    def __init__(self, tokenizer, prompt_template=DEFAULT_PROMPT_TEMPLATE,
                 history_item_template=DEFAULT_ITEM_TEMPLATE,
                 candidate_item_template=DEFAULT_ITEM_TEMPLATE, item_separator=", ",
                 ppt_template=DEFAULT_PPT_TEMPLATE, use_chat_template=False,
                 candidate_labels="auto"):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ConfigError("the tokenizer has neither a pad nor an eos token")
        for key, tpl in (("history_item_template", history_item_template),
                         ("candidate_item_template", candidate_item_template)):
            check_template(tpl, key, [], optional=["index"])
            if tpl.count(ITEM) != 1:
                raise ConfigError(f"{key} must contain {ITEM} exactly once: {tpl!r}")
        self.history_item_template = history_item_template.replace("{index}", "\0")
        self.candidate_item_template = candidate_item_template.replace("{index}", "\0")
        self.item_separator = str(item_separator)
        check_template(prompt_template, "prompt_template", ["history", "candidates"])
        check_template(ppt_template, "ppt_template", ["history", "a", "b", "c"])
        self.use_chat_template = bool(use_chat_template) and bool(
            getattr(tokenizer, "chat_template", None))
        self._bos = self._leading_special_ids()
        rec_pieces, self._rec_order = split_at_placeholders(self._wrap(prompt_template),
                                                ["history", "candidates"])
        ppt_pieces, self._ppt_order = split_at_placeholders(self._wrap(ppt_template),
                                                ["history", "a", "b", "c"])
        self._rec_pieces = [self.encode_piece(p) for p in rec_pieces]
        self._ppt_pieces = [self.encode_piece(p) for p in ppt_pieces]
        self._rec_pieces[0] = self._bos + self._rec_pieces[0]
        self._ppt_pieces[0] = self._bos + self._ppt_pieces[0]
        self.labels_scheme = str(candidate_labels).lower()
        if self.labels_scheme not in ("auto", "digits", "letters"):
            raise ConfigError(f"candidate_labels must be auto, digits or letters, "
                              f"got {candidate_labels!r}")
        self.yes_id = self.single_token_id("yes")
        self.no_id = self.single_token_id("no")
        self._sep_ids = self.encode_piece(self.item_separator)
        # per-instance caches: layouts depend only on (history length, candidate count)
        self.candidate_labels = lru_cache(maxsize=64)(self._candidate_labels)
        self.label_token_ids = lru_cache(maxsize=64)(self._label_token_ids)
        self.rec_layout = lru_cache(maxsize=4096)(self._rec_layout)
        self.ppt_layout = lru_cache(maxsize=4096)(self._ppt_layout)
        self._item_pieces = lru_cache(maxsize=None)(self._encode_item_pieces)

    # ---- tokenisation of fixed text -------------------------------------------------
    def _wrap(self, template):
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
        return PromptBatch(*(torch.from_numpy(a) for a in (input_ids, mask, item_ids,
                                                          hist_index)))

    def build(self, histories, candidates):
        """Recommendation prompts.

        Args:
            histories: per sample, the history item ids oldest first (lists or 1-D tensors,
                no padding; see :func:`unpad`).
            candidates: [B, C] item ids (tensor or nested lists); the answer for candidate
                column j is ``label_token_ids(C)[j]``.
        """
        histories = [_as_ids(h, "history") for h in histories]
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
        histories = [_as_ids(h, "history") for h in histories]
        abc = np.asarray(abc_items.cpu() if torch.is_tensor(abc_items) else abc_items,
                         dtype=np.int64).reshape(len(histories), 3)
        layouts = [self.ppt_layout(len(h)) for h in histories]
        return self._assemble(layouts, histories, abc)

    def render(self, batch, row=0):
        """Human-readable text of one prompt (placeholders shown as ``[item <id>]``)."""
        ids, items = batch.input_ids[row], batch.item_ids[row]
        keep = batch.attention_mask[row].bool()
        out = []
        for tid, iid in zip(ids[keep].tolist(), items[keep].tolist()):
            out.append(f"[item {iid}]" if iid else self.tokenizer.decode([tid]))
        return "".join(out)


def _as_ids(seq, what):
    arr = np.asarray(seq.cpu() if torch.is_tensor(seq) else seq, dtype=np.int64).reshape(-1)
    if (arr <= 0).any():
        raise ValueError(f"{what} item ids must be > 0 (0 is padding): {arr.tolist()}")
    return arr


def unpad(item_seq, item_length):
    """RecBole's right-padded ``item_id_list`` [B, N] + ``item_length`` [B] -> list of arrays."""
    seq = item_seq.cpu().numpy()
    return [row[:n] for row, n in zip(seq, item_length.cpu().tolist())]


# ---- model side ---------------------------------------------------------------------
def causal_lm_parts(model):
    """(decoder, lm_head) of a causal LM, also through a peft wrapper (LoRA stays active)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def build_inputs_embeds(model, batch, slot_vectors, position_prompts=None):
    """Token embeddings with every placeholder row replaced by its item vector (Fig. 3).

    Args:
        model: the causal LM (or its peft wrapper).
        batch: a :class:`PromptBatch` on the model's device.
        slot_vectors: [S, H] e_mm of each placeholder in row-major order (order of
            ``batch.slot_item_ids()``).
        position_prompts: optional :class:`~recbole_speeder.model.spae.PositionPrompts`;
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
        vectors = vectors + position_prompts.lookup(batch.slot_history_index()).to(
            embeds.dtype)
    return embeds.masked_scatter(mask.unsqueeze(-1), vectors)


def decoder_hidden(model, inputs_embeds, attention_mask):
    """Last hidden states [B, L, H] of the decoder (no LM head). Position ids follow the
    attention mask (as ``generate`` does with left padding), so padding does not shift them."""
    decoder, _ = causal_lm_parts(model)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False).last_hidden_state


def answer_logits(model, inputs_embeds, attention_mask, token_ids=None):
    """Logits at the answer position only: [B, V], or [B, len(token_ids)] for those tokens.

    Runs the decoder for hidden states, then the LM head on the last row alone (and only its
    ``token_ids`` rows when given), in float32: the full [B, L, V] logits are never formed.
    """
    _, lm_head = causal_lm_parts(model)
    hidden = decoder_hidden(model, inputs_embeds, attention_mask)[:, -1].float()
    weight, bias = lm_head.weight, lm_head.bias
    if token_ids is not None:
        rows = torch.as_tensor(token_ids, device=weight.device)
        weight, bias = weight[rows], (None if bias is None else bias[rows])
    # float32 logits: in bfloat16 the few label logits often tie exactly, and ties decide answers
    return F.linear(hidden, weight.float(), None if bias is None else bias.float())


def answer_loss(logits, target_token_ids):
    """Eq 19: next-token cross-entropy on the single answer token."""
    return F.cross_entropy(logits.float(), target_token_ids.to(logits.device))


def constrained_scores(logits, label_token_ids):
    """Scores [B, C] of the candidates: logits of their label tokens (constrained decoding)."""
    return logits[:, label_token_ids.to(logits.device)]


@torch.no_grad()
def generate_answers(model, tokenizer, inputs_embeds, attention_mask, max_new_tokens=1):
    """Free greedy generation from the hybrid prompts; returns the decoded new text per row.

    A row stops at the tokenizer's or the model's end of sequence, and its answer is the text
    before the first of them (:func:`decode_answers`)."""
    stop = stop_token_ids(model, tokenizer)
    out = model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                         max_new_tokens=int(max_new_tokens), do_sample=False,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=stop or None)
    new = out[:, -int(max_new_tokens):] if out.shape[1] > max_new_tokens else out
    return decode_answers(tokenizer, new.tolist(), stop)


def stop_token_ids(model, tokenizer):
    """End-of-sequence ids of the tokenizer and of the model's generation config."""
    config = getattr(model, "generation_config", None)
    return sorted(set(eos_ids(tokenizer.eos_token_id) + eos_ids(getattr(config, "eos_token_id", None))))


def decode_answers(tokenizer, rows, stop_ids):
    """Text of each generated row up to (without) its first ``stop_ids`` token: what follows an
    end of sequence is not part of the answer (a model may go on with a new chat turn)."""
    stop = set(stop_ids)
    cut = [next((row[:i] for i, t in enumerate(row) if t in stop), row) for row in rows]
    return tokenizer.batch_decode(cut, skip_special_tokens=True)


def parse_answer(text, num_candidates, labels=None):
    """0-based candidate position named by a generated answer, or None when invalid.

    With digit labels every number in the text is read; the answer is valid only when the
    text names exactly one distinct number and it lies in 1..C. With letter labels the
    standalone capital letters are read the same way (an article "A" therefore counts as a
    label). ``labels`` defaults to digits.
    """
    labels = list(labels) if labels is not None else [str(i) for i in
                                                      range(1, num_candidates + 1)]
    if labels and labels[0].isdigit():
        found = {int(m) for m in re.findall(r"\d+", text)}
        if len(found) != 1:
            return None
        value = found.pop()
        return value - 1 if 1 <= value <= num_candidates else None
    found = set(re.findall(r"(?<![A-Za-z])[A-Z](?![A-Za-z])", text))
    if len(found) != 1:
        return None
    value = found.pop()
    return labels.index(value) if value in labels[:num_candidates] else None
