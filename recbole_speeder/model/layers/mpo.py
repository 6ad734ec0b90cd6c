"""MPO, the modality-aware progressive optimisation of Speeder (paper, section 2.5): the stage table.

=====  ======================  ================================================================
stage  modalities fed to MRC   MRC parts trained (besides LoRA and PPL, which train in every stage)
=====  ======================  ================================================================
1      text                    T-FFN, A_t, A_f
2      text, vision            everything but the id parts (S-FFN, A_s, A_s_tan)
3      text, vision, seq       everything
=====  ======================  ================================================================

Part names are those of :mod:`~recbole_speeder.model.layers.mrc`. ``mpo_stages`` picks the
stages to run (the ablations "w/o stage 1" = [2, 3], "w/o stages 1 & 2" = [3]) and
``stage_epochs`` their lengths (:func:`stage_plan`).
"""

from recbole_speeder.errors import ConfigError
from recbole_speeder.model.layers.mrc import PART_NAMES

STAGES = (1, 2, 3)
STAGE_MODALITIES = {1: ("text",), 2: ("text", "vision"), 3: ("text", "vision", "seq")}
STAGE_PARTS = {
    1: ("T-FFN", "A_t", "A_f"),
    2: tuple(p for p in PART_NAMES if p not in ("S-FFN", "A_s", "A_s_tan")),
    3: PART_NAMES,
}


def stage_plan(mpo_stages, stage_epochs):
    """[(stage, epochs)] of a run from ``mpo_stages`` and ``stage_epochs`` (checked)."""
    stages = [int(s) for s in mpo_stages]
    epochs = [int(e) for e in stage_epochs]
    if not stages or any(s not in STAGES for s in stages) or stages != sorted(set(stages)):
        raise ConfigError(f"mpo_stages must be an increasing list drawn from 1, 2, 3 (got {stages}).")
    if len(epochs) != len(STAGES):
        raise ConfigError(f"stage_epochs must list the epochs of stages 1, 2, 3 (got {epochs}).")
    return [(s, epochs[s - 1]) for s in stages]
