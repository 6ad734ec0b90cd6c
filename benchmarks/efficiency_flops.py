"""FLOP count of benchmarks/efficiency.py: the prompt lengths each decoder call sees, and the
decoder's model FLOPs per step, written down as a formula (not measured)."""

import torch

from efficiency_inputs import _chunks


def call_lengths(kwargs):
    """Prompt lengths of one decoder call, from its keyword arguments: the packing's, the 2-D
    mask's row sums, or the padded length of each row (no mask: nothing is padded). A tensor
    or a list; ``None`` for a call with neither inputs nor a mask."""
    packing = kwargs.get("speeder_packing")
    if packing is not None:
        return list(packing.lengths)
    mask = kwargs.get("attention_mask")
    inputs = kwargs.get("inputs_embeds")
    inputs = inputs if inputs is not None else kwargs.get("input_ids")
    if torch.is_tensor(mask) and mask.dim() == 2 and (inputs is None or mask.shape[1] == inputs.shape[1]):
        return mask.sum(dim=1)
    if inputs is not None:  # generate() may hand the decoder no 2-D mask (none when nothing is padded)
        return [int(inputs.shape[1])] * int(inputs.shape[0])
    return None


class PromptLength:
    """Mean prompt length of the first decoder call after :meth:`reset` (the prompt). The hook
    only keeps the call's lengths; they are read after the timed section (reading a device
    tensor there would wait for the device)."""

    def __init__(self, llm):
        from recbole_speeder.llm.decoding import causal_lm_parts

        self.lengths = None
        self.handle = causal_lm_parts(llm)[0].register_forward_pre_hook(self, with_kwargs=True)

    @property
    def value(self):
        if self.lengths is None:
            return None
        lengths = self.lengths
        return float(lengths.float().mean()) if torch.is_tensor(lengths) else sum(lengths) / len(lengths)

    def reset(self):
        self.lengths = None

    def __call__(self, module, args, kwargs):
        if self.lengths is None:
            self.lengths = call_lengths(kwargs)

    def remove(self):
        self.handle.remove()


class TokenCounter:
    """Every prompt length of every decoder call while :meth:`counting` (for the FLOP count)."""

    def __init__(self, llm):
        from recbole_speeder.llm.decoding import causal_lm_parts

        self.lengths, self.active = [], False
        self.handle = causal_lm_parts(llm)[0].register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if self.active:
            lengths = call_lengths(kwargs)
            if lengths is not None:
                self.lengths += lengths.tolist() if torch.is_tensor(lengths) else list(lengths)

    def remove(self):
        self.handle.remove()


# Model FLOPs of the decoder, written down here (not measured):
#   forward of a prompt of L tokens = 2 * P * L            (every nn.Linear of the decoder: attention
#                                                           projections, MLP, LoRA A and B; P = their
#                                                           weights, embeddings and LM head excluded)
#                                   + 2 * layers * d_attn * L^2   (QK^T and AV, causal: half of 4*d*L^2)
#   training (LoRA)  = 2 x linear forward + 3 x attention forward: the frozen weights need only the
#                      gradient of their input (as much as the forward), not of themselves, so the
#                      conventional 6 * P * L (3 x forward) would count 1.5x the work done; attention's
#                      backward is about 2 x its forward.
#   inference        = forward.
# Left out: the LM head (applied to the answer positions only: 2 * d * V each, 0.2-0.3% here), the
# norms, rotary embeddings, activations, softmax and residual adds, MRC / projector (small), the
# optimizer step, and padding (wasted work is not model work: a padded batch shows a lower rate).
def decoder_flop_terms(llm):
    """(P: weights of the decoder's linear layers, layers, attention width) of a causal LM."""
    from recbole_speeder.llm.decoding import causal_lm_parts

    decoder = causal_lm_parts(llm)[0]
    linear = sum(m.weight.numel() for m in decoder.modules() if isinstance(m, torch.nn.Linear))
    cfg = decoder.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return linear, cfg.num_hidden_layers, heads * head_dim


def step_flops(terms, lengths, training):
    """Model FLOPs of one step over prompts of ``lengths`` (see the formula above)."""
    linear, layers, width = terms
    dense = 2.0 * linear * sum(lengths)
    attention = 2.0 * layers * width * sum(n * n for n in lengths)
    return 2 * dense + 3 * attention if training else dense + attention


@torch.no_grad()
def count_step(model, interaction, candidates, micro, dev, training):
    """Prompt lengths the decoder sees in one (untimed) training or inference step."""
    counter = TokenCounter(model.llm)
    model.train() if training else model.eval()
    try:
        counter.active = True
        for part, part_cands in _chunks(interaction, micro, None if training else candidates):
            model.begin_step()  # as the trainer and the evaluator mark each step (CUDA graphs)
            if training:
                model.calculate_loss(part)  # on the host, as the trainer hands it (time_training)
            else:
                model.candidate_scores(part.to(dev.device), part_cands.to(dev.device))
    finally:
        counter.remove()
    return counter.lengths


FLOP_MODELS = ("Speeder", "Backbone")  # the models with an achieved-TFLOP/s column


def add_flop_rate(row, model, interaction, candidates, args, dev):
    """Tokens, model GFLOP and achieved TFLOP/s per sample of each timed phase (one more,
    untimed step counts the prompt lengths the decoder sees; formula above)."""
    terms = decoder_flop_terms(model.llm)
    for phase, training in (("train", True), ("infer", False)):
        ms = row.get(f"{phase}_ms")
        if not isinstance(ms, (int, float)):
            continue
        lengths = count_step(model, interaction, candidates, row[f"{phase}_micro_batch"], dev, training)
        flops = step_flops(terms, lengths, training) / len(interaction)
        row[f"{phase}_tokens"] = sum(lengths) / len(interaction)
        row[f"{phase}_gflop"] = flops / 1e9
        row[f"{phase}_tflops"] = flops / (ms / 1000.0) / 1e12

