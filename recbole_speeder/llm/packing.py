"""Padding-free packing: several prompts in one row, each attending only to itself.

A left-padded batch [B, L] spends the decoder's arithmetic on padding: every row is as long as
the longest. Packed, the B prompts stand one after the other in a single row of T = sum of
their lengths tokens; the linear layers (nearly all of the arithmetic) see exactly the real
tokens, each prompt's position ids restart at 0, and attention stays inside each prompt:

- ``varlen``: one variable-length flash-attention call over the whole row
  (``torch.nn.attention.varlen.varlen_attn``, CUDA; torch >= 2.9);
- ``grouped``: prompts of equal length stand next to each other (:class:`PackedSequences`
  orders them so), and each such run is one causal ``scaled_dot_product_attention`` call on a
  [count, heads, length, dim] view, without a mask (any device; a few calls per layer).

``ATTENTION`` picks one (``auto``: varlen on CUDA when it works, grouped otherwise); a varlen
call that fails falls back to grouped for the rest of the process, with one warning.

The decoder is a transformers model; :func:`packed_attention` registers the attention function
under :data:`NAME` and switches the decoder's ``_attn_implementation`` to it for one call.
transformers builds no mask for an implementation it has no mask function for, and hands the
call's keyword arguments (here ``speeder_packing``) down to the attention function.
"""

import contextlib
import inspect
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recbole_speeder.errors import ConfigError

logger = logging.getLogger(__name__)

NAME = "speeder_packed"
MODES = ("auto", "varlen", "grouped")
ATTENTION = "auto"  # benchmarks/efficiency.py --packed-attention sets it
_VARLEN = {"checked": False, "fn": None, "causal": None, "gqa": False, "scale": False, "failed": False}


@dataclass
class PackedSequences:
    """Where the prompts of a packed row lie.

    lengths: host list of the prompt lengths, in row order (equal lengths adjacent).
    position_ids: [1, T] position of each token inside its prompt.
    cu_seqlens: [N + 1] int32 start of each prompt (and T at the end).
    groups: host tuples (first token, count, length) of the runs of equal-length prompts.
    """

    lengths: tuple
    position_ids: torch.Tensor
    cu_seqlens: torch.Tensor
    groups: tuple

    @property
    def max_len(self):
        return max(self.lengths) if self.lengths else 0

    @property
    def total(self):
        return int(sum(self.lengths))

    @classmethod
    def from_lengths(cls, lengths):
        """Packing of prompts of ``lengths`` (host ints) laid out in that order."""
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        position_ids = np.arange(int(starts[-1]), dtype=np.int64) - np.repeat(starts[:-1], lengths)
        groups, k = [], 0
        while k < len(lengths):
            j = k
            while j + 1 < len(lengths) and lengths[j + 1] == lengths[k]:
                j += 1
            groups.append((int(starts[k]), j - k + 1, int(lengths[k])))
            k = j + 1
        return cls(tuple(int(n) for n in lengths), torch.from_numpy(position_ids)[None],
                   torch.from_numpy(starts.astype(np.int32)), tuple(groups))

    def tensors(self):
        return {"position_ids": self.position_ids, "cu_seqlens": self.cu_seqlens}

    def with_tensors(self, tensors):
        return PackedSequences(self.lengths, tensors["position_ids"], tensors["cu_seqlens"], self.groups)


def _varlen():
    """The varlen function and how this torch version spells its options (checked once)."""
    if not _VARLEN["checked"]:
        _VARLEN["checked"] = True
        try:
            from torch.nn.attention.varlen import varlen_attn

            params = inspect.signature(varlen_attn).parameters
            _VARLEN["fn"] = varlen_attn
            # torch 2.9-2.11: is_causal=...; later: window_size=(-1, 0) means causal
            _VARLEN["causal"] = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}
            _VARLEN["gqa"] = "enable_gqa" in params
            _VARLEN["scale"] = "scale" in params
        except (ImportError, ValueError, TypeError):
            _VARLEN["fn"] = None
    return _VARLEN["fn"]


def attention_mode(device):
    """``varlen`` or ``grouped``, as :data:`ATTENTION` asks and the device allows."""
    if ATTENTION not in MODES:
        raise ConfigError(f"packed attention must be one of {', '.join(MODES)} (got {ATTENTION!r}).")
    usable = device.type == "cuda" and not _VARLEN["failed"] and _varlen() is not None
    if ATTENTION == "varlen" and not usable:
        raise ConfigError("packed attention 'varlen' needs CUDA and torch.nn.attention.varlen (torch >= 2.9).")
    if ATTENTION == "grouped" or not usable:
        return "grouped"
    return "varlen"


def _repeat_heads(x, times):
    """[T, Hkv, D] -> [T, Hkv * times, D], each key/value head repeated for its query heads."""
    return x if times == 1 else x.repeat_interleave(times, dim=1)


def _varlen_attention(q, k, v, packing, scaling):
    fn = _varlen()
    rep = q.shape[1] // k.shape[1]
    kwargs = dict(_VARLEN["causal"])
    if rep > 1 and _VARLEN["gqa"]:
        kwargs["enable_gqa"] = True
    else:
        k, v = _repeat_heads(k, rep), _repeat_heads(v, rep)
    default_scale = q.shape[-1] ** -0.5
    if scaling is not None and abs(scaling - default_scale) > 1e-12:
        if not _VARLEN["scale"]:
            raise ConfigError("this torch's varlen_attn takes no scale; use grouped packed attention.")
        kwargs["scale"] = scaling
    cu = packing.cu_seqlens.to(device=q.device, dtype=torch.int32)
    return fn(q, k, v, cu, cu, packing.max_len, packing.max_len, **kwargs)


def _grouped_attention(query, key, value, packing, scaling):
    """query [1, Hq, T, D], key / value [1, Hkv, T, D] -> [T, Hq, D]: one causal SDPA call per
    run of equal-length prompts, on [count, heads, length, dim] views of the run."""
    rep = query.shape[1] // key.shape[1]
    outs = []
    for start, count, length in packing.groups:
        end = start + count * length

        def block(x):
            return x[0, :, start:end].unflatten(1, (count, length)).transpose(0, 1)

        out = F.scaled_dot_product_attention(block(query), block(key), block(value), is_causal=True,
                                             scale=scaling, enable_gqa=rep > 1)
        outs.append(out.transpose(1, 2).reshape(count * length, query.shape[1], query.shape[3]))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def packed_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function of a packed row: query [1, Hq, T, D], key / value
    [1, Hkv, T, D] -> ([1, T, Hq, D], None)."""
    packing = kwargs.get("speeder_packing")
    if packing is None:
        raise ConfigError(f"attention '{NAME}' was called without the packing of its row.")
    if dropout:
        raise ConfigError("packed attention has no attention dropout.")
    window = kwargs.get("sliding_window") or getattr(module, "sliding_window", None)
    if window is not None and packing.max_len > int(window):
        raise ConfigError(f"packed attention ignores sliding windows; a prompt of {packing.max_len} tokens "
                          f"exceeds this layer's window of {window}.")
    if attention_mode(query.device) == "varlen":
        try:
            q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # [T, H, D]
            return _varlen_attention(q, k, v, packing, scaling).unsqueeze(0), None
        except (RuntimeError, TypeError, NotImplementedError) as err:
            _VARLEN["failed"] = True
            logger.warning("varlen attention failed (%s); packed attention uses grouped SDPA from now on.", err)
    return _grouped_attention(query, key, value, packing, scaling).unsqueeze(0), None


def _register():
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, packed_attention_forward)


@contextlib.contextmanager
def packed_attention(decoder):
    """Run ``decoder`` (a transformers decoder) with :func:`packed_attention_forward` inside."""
    _register()
    config = decoder.config
    previous = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
