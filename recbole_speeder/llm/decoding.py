"""Running the causal LM on prompt embeddings: hidden states, answer logits, free generation.

The decoder runs without its LM head; the head is applied only where an answer is read, so
the full [B, L, V] logits are never formed. :func:`hidden_at` gathers the last hidden state at
given (row, position) pairs -- a prompt may hold several answers (Speeder's recommendation
answer in the middle of a row and its PPT answer at the end) -- and :func:`head_logits` applies
the LM head to those rows only. :func:`answer_logits` is the common case: the last position of
left-padded prompts. A packed row (:mod:`~recbole_speeder.llm.packing`) runs in the same
helpers, given its :class:`~recbole_speeder.llm.packing.PackedSequences`.
"""

import torch
import torch.nn.functional as F

from recbole_speeder.llm.backbone import eos_ids
from recbole_speeder.llm.packing import packed_attention


def causal_lm_parts(model):
    """(decoder, lm_head) of a causal LM, also through a peft wrapper (LoRA stays active)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def decoder_hidden(model, inputs_embeds, attention_mask=None, packing=None):
    """Last hidden states [B, L, H] of the decoder (no LM head).

    ``attention_mask`` [B, L] (left padding): position ids follow it (as ``generate`` does),
    so padding does not shift them; ``None``: no row is padded (no mask is built, SDPA runs
    causal without one). ``packing``: ``inputs_embeds`` is one packed row [1, T, H] of the
    prompts ``packing`` describes (no mask; positions restart in every prompt)."""
    decoder, _ = causal_lm_parts(model)
    if packing is not None:
        with packed_attention(decoder):
            return decoder(inputs_embeds=inputs_embeds, position_ids=packing.position_ids, use_cache=False,
                           speeder_packing=packing).last_hidden_state
    position_ids = None
    if attention_mask is not None:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False).last_hidden_state


def hidden_at(model, inputs_embeds, rows, positions, attention_mask=None, packing=None):
    """Last hidden states [N, H] at (``rows[k]``, ``positions[k]``), one decoder pass
    (:func:`decoder_hidden` for the other arguments). The indices are device tensors: no
    host synchronisation."""
    return decoder_hidden(model, inputs_embeds, attention_mask, packing)[rows, positions]


def head_logits(model, hidden, token_ids=None):
    """The LM head on ``hidden`` [N, H] only: float32 logits [N, V], or [N, len(token_ids)]
    for those vocabulary rows alone."""
    _, lm_head = causal_lm_parts(model)
    weight, bias = lm_head.weight, lm_head.bias
    if token_ids is not None:
        rows = torch.as_tensor(token_ids, device=weight.device)
        weight, bias = weight[rows], (None if bias is None else bias[rows])
    # float32 logits: in bfloat16 the few label logits often tie exactly, and ties decide answers
    return F.linear(hidden.float(), weight.float(), None if bias is None else bias.float())


def answer_logits(model, inputs_embeds, attention_mask, token_ids=None):
    """Logits at the last position of left-padded prompts: [B, V], or [B, len(token_ids)]."""
    hidden = decoder_hidden(model, inputs_embeds, attention_mask)[:, -1]
    return head_logits(model, hidden, token_ids)


@torch.no_grad()
def generate_answers(model, tokenizer, inputs_embeds, attention_mask, max_new_tokens=1):
    """Free greedy generation from the prompts; returns the decoded new text per row.

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
