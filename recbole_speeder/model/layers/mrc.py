"""MRC: Multimodal Representation Compression with MoME (paper, section 2.3, eqs 1-10 and 18).

One fused vector e_mm per item, at the LLM's hidden width, from its frozen modality vectors:

1. modality adapters (eqs 1-3): ``A_t``, ``A_v``, ``A_s`` (Linear d_m -> d_f). The non-text
   inputs first pass a gate ``e = g(A_tan(e)) * e`` (eq 18; ``gate: tanh`` as in the paper,
   ``relu``, or ``none`` = identity and no A_tan). Where an item lacks a modality (mask False)
   its token is the learned ``missing`` vector of that modality instead.
2. MoME (eqs 4-9): the present modalities form a sequence of 1-3 tokens (text, vision, id in
   that order; modalities outside the requested subset are left out, so MPO stage 1 never
   sees vision or ids). ``mome_l1`` blocks of shared multi-head self-attention followed by
   *hard-routed* expert FFNs -- T-FFN only on the text token, V-FFN only on the vision token,
   S-FFN only on the id token -- then ``mome_l2`` blocks of self-attention + one shared
   MM-FFN. Each sub-layer is residual + LayerNorm (post-norm, eqs 7-9).
3. average pooling over the tokens and the output adapter ``A_f`` (d_f -> LLM width, eq 10).

Named parts (MPO, section 2.5, trains them stage by stage: :mod:`~recbole_speeder.model.layers.mpo`),
each parameter belongs to exactly one:

=========== ==========================================================================
'A_t'       ``adapters.text``   (Linear d_text -> d_f)
'A_v'       ``adapters.vision`` (Linear d_vision -> d_f)
'A_s'       ``adapters.seq``    (Linear d_seq -> d_f)
'A_v_tan'   ``gates.vision.proj`` (Linear d_vision -> d_vision of eq 18; none when gate: none)
'A_s_tan'   ``gates.seq.proj``    (Linear d_seq -> d_seq of eq 18; none when gate: none)
'T-FFN'     ``mome_blocks.*.experts.text``   (text expert FFN of every L1 block)
'V-FFN'     ``mome_blocks.*.experts.vision`` (vision expert FFN of every L1 block)
'S-FFN'     ``mome_blocks.*.experts.seq``    (id expert FFN of every L1 block)
'MM-FFN'    ``mm_blocks.*.ffn``              (shared FFN of every L2 block)
'attention' ``*_blocks.*.attention``         (the MHSA of every L1 and L2 block)
'norms'     ``*_blocks.*.norm_attention`` and ``*_blocks.*.norm_ffn`` (every LayerNorm)
'A_f'       ``out_adapter``     (Linear d_f -> out_dim)
'missing'   ``missing.text`` / ``missing.vision`` / ``missing.seq`` (d_f each)
=========== ==========================================================================
"""


import torch
from torch import nn

from recbole_speeder.errors import ConfigError

MODALITY_ORDER = ("text", "vision", "seq")
PART_NAMES = (
    "A_t", "A_v", "A_s", "A_v_tan", "A_s_tan", "T-FFN", "V-FFN", "S-FFN", "MM-FFN",
    "attention", "norms", "A_f", "missing",
)
_ADAPTER_PART = {"text": "A_t", "vision": "A_v", "seq": "A_s"}
_GATE_PART = {"vision": "A_v_tan", "seq": "A_s_tan"}
_EXPERT_PART = {"text": "T-FFN", "vision": "V-FFN", "seq": "S-FFN"}

GATES = ("tanh", "relu", "none")


def rescale_to_norm(vectors, norm, eps=1e-6):
    """Each row of ``vectors`` rescaled to L2 norm ``norm``: ``e * (norm / max(||e||, eps))``.

    Used by ``item_vector_norm: token`` (not in the paper): an untrained MRC's output norm on
    ml-100k is 10.9-13.6 while SmolLM2's token embeddings average 3.20, so the item vectors
    dominate the residual stream; rescaling them to the mean token-embedding norm puts them on
    the token scale.
    """
    return vectors * (norm / vectors.norm(dim=-1, keepdim=True).clamp_min(eps))


class FeedForward(nn.Sequential):
    """Position-wise FFN d -> 4d -> d (GELU), used for every expert and the MM-FFN."""

    def __init__(self, dim, dropout):
        super().__init__(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )


class ModalityGate(nn.Module):
    """Eq 18: ``e <- g(A_tan(e)) * e`` with g = tanh (paper), relu, or no gate at all."""

    def __init__(self, dim, kind="tanh"):
        super().__init__()
        if kind not in GATES:
            raise ConfigError(f"gate: '{kind}' is not one of {', '.join(GATES)}.")
        self.kind = kind
        self.proj = nn.Linear(dim, dim) if kind != "none" else None

    def gate_values(self, embedding):
        """The multiplicative gate g(A_tan(e)) (all ones for ``none``)."""
        if self.kind == "none":
            return torch.ones_like(embedding)
        projected = self.proj(embedding)
        return torch.tanh(projected) if self.kind == "tanh" else torch.relu(projected)

    def forward(self, embedding):
        if self.kind == "none":
            return embedding
        return self.gate_values(embedding) * embedding


class MoMEBlock(nn.Module):
    """Shared MHSA then FFN, each residual + LayerNorm (eqs 7-9).

    With ``experts`` (an L1 block) token i goes through the FFN of its own modality only
    (hard routing); without (an L2 block) every token goes through one shared MM-FFN.
    """

    def __init__(self, dim, heads, dropout, experts=None):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attention_dropout = nn.Dropout(dropout)
        self.norm_attention = nn.LayerNorm(dim)
        self.norm_ffn = nn.LayerNorm(dim)
        if experts:
            self.experts = nn.ModuleDict({m: FeedForward(dim, dropout) for m in experts})
        else:
            self.ffn = FeedForward(dim, dropout)

    def forward(self, tokens, modalities):
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        tokens = self.norm_attention(tokens + self.attention_dropout(attended))
        if hasattr(self, "experts"):
            routed = torch.stack([self.experts[m](tokens[:, i]) for i, m in enumerate(modalities)], dim=1)
        else:
            routed = self.ffn(tokens)
        return self.norm_ffn(tokens + routed)


def part_of(parameter_name):
    """The named part (see the module docstring) a parameter of :class:`MRC` belongs to."""
    head, _, rest = parameter_name.partition(".")
    if head == "adapters":
        return _ADAPTER_PART[rest.split(".")[0]]
    if head == "gates":
        return _GATE_PART[rest.split(".")[0]]
    if head == "missing":
        return "missing"
    if head == "out_adapter":
        return "A_f"
    if head in ("mome_blocks", "mm_blocks"):
        sub = rest.split(".")
        if sub[1] == "attention":
            return "attention"
        if sub[1] in ("norm_attention", "norm_ffn"):
            return "norms"
        if sub[1] == "experts":
            return _EXPERT_PART[sub[2]]
        if sub[1] == "ffn":
            return "MM-FFN"
    raise KeyError(parameter_name)


class MRC(nn.Module):
    """Modality adapters + gates + MoME + pooling + output adapter (section 2.3).

    Args:
        dims: modality -> input width d_m, for the modalities this model can take
            (any non-empty subset of text / vision / seq).
        out_dim: width of the fused vector (the LLM's hidden size).
        d_f: common width of the modality tokens (``mome_dim``).
        l1: MoME blocks with hard-routed experts (``mome_l1``).
        l2: blocks with the shared MM-FFN (``mome_l2``).
        heads: attention heads (``mome_heads``; must divide d_f).
        dropout: dropout in attention and FFNs (``mome_dropout``).
        gate: ``tanh`` | ``relu`` | ``none`` for the non-text inputs (eq 18).
    """

    def __init__(self, dims, out_dim, d_f=256, l1=1, l2=1, heads=4, dropout=0.1, gate="tanh"):
        super().__init__()
        unknown = [m for m in dims if m not in MODALITY_ORDER]
        if unknown or not dims:
            raise ConfigError(f"MRC modalities {list(dims)} must be a non-empty subset of {list(MODALITY_ORDER)}.")
        if d_f % heads != 0:
            raise ConfigError(f"mome_dim ({d_f}) must be divisible by mome_heads ({heads}).")
        if l1 < 0 or l2 < 0:
            raise ConfigError(f"mome_l1 ({l1}) and mome_l2 ({l2}) must be >= 0.")
        self.modalities = tuple(m for m in MODALITY_ORDER if m in dims)
        self.dims = {m: int(dims[m]) for m in self.modalities}
        self.d_f, self.out_dim, self.gate_kind = int(d_f), int(out_dim), gate
        self.adapters = nn.ModuleDict({m: nn.Linear(self.dims[m], d_f) for m in self.modalities})
        self.gates = nn.ModuleDict({m: ModalityGate(self.dims[m], gate) for m in self.modalities if m != "text"})
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.randn(d_f) * 0.02) for m in self.modalities})
        self.mome_blocks = nn.ModuleList([MoMEBlock(d_f, heads, dropout, self.modalities) for _ in range(l1)])
        self.mm_blocks = nn.ModuleList([MoMEBlock(d_f, heads, dropout) for _ in range(l2)])
        self.out_adapter = nn.Linear(d_f, out_dim)

    @classmethod
    def from_config(cls, config, dims, out_dim):
        """Build from the ``mome_*`` / ``gate`` keys of ``properties/mrc.yaml``."""
        return cls(
            dims, out_dim, d_f=int(config["mome_dim"]), l1=int(config["mome_l1"]), l2=int(config["mome_l2"]),
            heads=int(config["mome_heads"]), dropout=float(config["mome_dropout"]), gate=config["gate"],
        )

    # ----- parts -----------------------------------------------------------------------
    def named_part_parameters(self, name):
        if name not in PART_NAMES:
            raise ConfigError(f"Unknown MRC part '{name}'; parts are {', '.join(PART_NAMES)}.")
        return [(n, p) for n, p in self.named_parameters() if part_of(n) == name]

    def part_parameters(self, name):
        """Parameters of one named part (empty when this model lacks it, e.g. A_v without vision)."""
        return [p for _, p in self.named_part_parameters(name)]

    def set_trainable(self, names):
        """Make exactly the parameters of the named parts trainable; freeze all others."""
        names = set(names)
        for name in names:
            if name not in PART_NAMES:
                raise ConfigError(f"Unknown MRC part '{name}'; parts are {', '.join(PART_NAMES)}.")
        for parameter_name, parameter in self.named_parameters():
            parameter.requires_grad_(part_of(parameter_name) in names)

    def trainable_parts(self):
        """Names of the parts with at least one trainable parameter."""
        return sorted({part_of(n) for n, p in self.named_parameters() if p.requires_grad})

    # ----- forward ---------------------------------------------------------------------
    def _order(self, modalities):
        modalities = tuple(modalities) if modalities is not None else self.modalities
        unknown = [m for m in modalities if m not in self.modalities]
        if unknown or not modalities:
            raise ConfigError(
                f"MRC asked for modalities {list(modalities)}; it was built for {list(self.modalities)}."
            )
        return tuple(m for m in MODALITY_ORDER if m in modalities)

    def embed(self, modality, features, mask=None):
        """One modality's token: gate (eq 18, non-text) + adapter, missing vector where mask is False."""
        adapter = self.adapters[modality]
        embedding = features.to(adapter.weight.dtype)
        if modality in self.gates:
            embedding = self.gates[modality](embedding)
        token = adapter(embedding)
        if mask is not None:
            token = torch.where(mask.to(token.device).unsqueeze(-1), token, self.missing[modality].to(token.dtype))
        return token

    def forward_tokens(self, features, masks=None, modalities=None):
        """MoME output tokens [B, T, d_f] and their modality order (before pooling)."""
        order = self._order(modalities)
        masks = masks or {}
        tokens = torch.stack([self.embed(m, features[m], masks.get(m)) for m in order], dim=1)
        for block in self.mome_blocks:
            tokens = block(tokens, order)
        for block in self.mm_blocks:
            tokens = block(tokens, order)
        return tokens, order

    def forward(self, features, masks=None, modalities=None):
        """Fused item vectors [B, out_dim] (average pooling + A_f, eq 10).

        Args:
            features: modality -> [B, d_m] frozen features.
            masks: modality -> bool [B], True where the item has that modality.
            modalities: the subset to use (default: all the model was built for).
        """
        tokens, _ = self.forward_tokens(features, masks, modalities)
        return self.out_adapter(tokens.mean(dim=1))
