"""Running the causal LM on prompt embeddings: hidden states, answer logits, free generation.

Every LLM model of the plugin reads its answer where a left-padded prompt ends (the last
position). These helpers never form the full [B, L, V] logits: the decoder runs without its
LM head and the head is applied only where an answer is read.
"""

import torch
import torch.nn.functional as F

from recbole_speeder.llm.backbone import eos_ids


def causal_lm_parts(model):
    """(decoder, lm_head) of a causal LM, also through a peft wrapper (LoRA stays active)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def decoder_hidden(model, inputs_embeds, attention_mask):
    """Last hidden states [B, L, H] of the decoder (no LM head). Position ids follow the
    attention mask (as ``generate`` does with left padding), so padding does not shift them."""
    decoder, _ = causal_lm_parts(model)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False).last_hidden_state


def lm_head_logits(model, hidden, token_ids=None):
    """float32 logits [N, V] of hidden states [N, H], or [N, len(token_ids)] for those tokens
    only (the LM head's rows of ``token_ids``)."""
    _, lm_head = causal_lm_parts(model)
    weight, bias = lm_head.weight, lm_head.bias
    if token_ids is not None:
        rows = torch.as_tensor(token_ids, device=weight.device)
        weight, bias = weight[rows], (None if bias is None else bias[rows])
    # float32 logits: in bfloat16 the few label logits often tie exactly, and ties decide answers
    return F.linear(hidden.float(), weight.float(), None if bias is None else bias.float())


def answer_logits(model, inputs_embeds, attention_mask, token_ids=None):
    """Logits at the answer position only: [B, V], or [B, len(token_ids)] for those tokens.

    Runs the decoder for hidden states, then the LM head on the last row alone (and only its
    ``token_ids`` rows when given), in float32: the full [B, L, V] logits are never formed.
    """
    hidden = decoder_hidden(model, inputs_embeds, attention_mask)[:, -1]
    return lm_head_logits(model, hidden, token_ids)


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
