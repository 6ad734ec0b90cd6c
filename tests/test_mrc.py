"""MRC / MoME fusion (paper section 2.3): shapes, hard routing, gates, missing inputs, MPO parts."""

import pytest
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.model.layers.mpo import STAGE_PARTS as MPO_STAGE_PARTS
from recbole_speeder.model.layers.mpo import stage_plan
from recbole_speeder.model.layers.mrc import MRC, PART_NAMES, part_of

DIMS = {"text": 12, "vision": 20, "seq": 8}
B = 6


def make(seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(d_f=16, l1=1, l2=1, heads=4, dropout=0.0, gate="tanh")
    options.update(kwargs)
    return MRC(DIMS, out_dim=24, **options).eval()


def inputs(seed=1, batch=B):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, d, generator=g) for m, d in DIMS.items()}


def perturb(params):
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p))


def test_shapes_and_subsets():
    model = make()
    feats = inputs()
    assert model(feats).shape == (B, 24)
    for subset in (["text"], ["text", "vision"], ["text", "vision", "seq"], ["seq", "text"]):
        tokens, order = model.forward_tokens(feats, None, subset)
        assert tokens.shape == (B, len(subset), 16)
        assert order == tuple(m for m in ("text", "vision", "seq") if m in subset)
        assert model(feats, None, subset).shape == (B, 24)


def test_subset_never_sees_other_modalities():
    model = make()
    feats = inputs()
    text_only = model(feats, None, ["text"])
    changed = dict(feats, vision=torch.randn(B, 20) * 5, seq=torch.randn(B, 8) * 5)
    assert torch.equal(model(changed, None, ["text"]), text_only)
    # parameters of the vision / id paths have no influence on a text-only forward
    perturb(model.part_parameters("A_v") + model.part_parameters("V-FFN") + model.part_parameters("A_s_tan"))
    assert torch.equal(model(feats, None, ["text"]), text_only)
    # ... but they do on the full forward (the check above can fail)
    assert not torch.allclose(model(changed), model(feats))


@pytest.mark.parametrize("expert,position", [("T-FFN", 0), ("V-FFN", 1), ("S-FFN", 2)])
def test_hard_routing_each_expert_touches_only_its_token(expert, position):
    model = make(l1=1, l2=0)
    feats = inputs()
    before, order = model.forward_tokens(feats)
    assert order == ("text", "vision", "seq")
    perturb(model.part_parameters(expert))
    after, _ = model.forward_tokens(feats)
    for i in range(3):
        if i == position:
            assert not torch.allclose(after[:, i], before[:, i]), f"{expert} did not reach its own token"
        else:
            assert torch.equal(after[:, i], before[:, i]), f"{expert} leaked into token {order[i]}"


def test_mm_ffn_is_shared_across_tokens():
    model = make(l1=0, l2=1)
    feats = inputs()
    before, _ = model.forward_tokens(feats)
    perturb(model.part_parameters("MM-FFN"))
    after, _ = model.forward_tokens(feats)
    for i in range(3):
        assert not torch.allclose(after[:, i], before[:, i])


def test_gates_at_init():
    e = torch.randn(50, DIMS["vision"]) * 3
    tanh_gate = make(gate="tanh").gates["vision"]
    g = tanh_gate.gate_values(e)
    assert (g > -1).all() and (g < 1).all() and (g.abs() > 1e-3).any()
    assert torch.allclose(tanh_gate(e), torch.tanh(tanh_gate.proj(e)) * e)
    relu_gate = make(gate="relu").gates["vision"]
    g = relu_gate.gate_values(e)
    assert (g >= 0).all() and (g == 0).any() and (g > 0).any()
    none_model = make(gate="none")
    assert torch.equal(none_model.gates["seq"](e[:, :8]), e[:, :8])
    assert none_model.part_parameters("A_v_tan") == [] and none_model.part_parameters("A_s_tan") == []
    with pytest.raises(ConfigError):
        make(gate="sigmoid")


def test_text_input_is_not_gated():
    model = make()
    assert "text" not in model.gates
    feats = inputs()
    direct = model.adapters["text"](feats["text"])
    assert torch.equal(model.embed("text", feats["text"]), direct)
    gated = model.adapters["vision"](torch.tanh(model.gates["vision"].proj(feats["vision"])) * feats["vision"])
    assert torch.allclose(model.embed("vision", feats["vision"]), gated)


def test_missing_modality_uses_learned_vector():
    model = make()
    feats = inputs()
    mask = torch.tensor([True, False, True, False, True, True])
    token = model.embed("vision", feats["vision"], mask)
    assert torch.equal(token[1], model.missing["vision"]) and torch.equal(token[3], model.missing["vision"])
    assert not torch.allclose(token[0], model.missing["vision"])
    out = model(feats, {"vision": mask})
    # a missing item's output ignores whatever its vision row holds
    scrambled = dict(feats, vision=feats["vision"].clone())
    scrambled["vision"][~mask] = 100.0
    out2 = model(scrambled, {"vision": mask})
    assert torch.equal(out2[~mask], out[~mask])
    # and the learned vector does matter
    with torch.no_grad():
        model.missing["vision"].add_(1.0)
    out3 = model(feats, {"vision": mask})
    assert not torch.allclose(out3[~mask], out[~mask]) and torch.allclose(out3[mask], out[mask])


def test_every_parameter_in_exactly_one_part():
    model = make(l1=2, l2=2)
    all_names = {n for n, _ in model.named_parameters()}
    seen = []
    for part in PART_NAMES:
        seen += [n for n, _ in model.named_part_parameters(part)]
    assert sorted(seen) == sorted(all_names)
    assert part_of("mome_blocks.1.experts.vision.0.weight") == "V-FFN"
    assert part_of("mm_blocks.0.attention.in_proj_weight") == "attention"


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_set_trainable_per_mpo_stage(stage):
    model = make()
    model.set_trainable(MPO_STAGE_PARTS[stage])
    assert model.trainable_parts() == sorted(MPO_STAGE_PARTS[stage])
    for name, p in model.named_parameters():
        assert p.requires_grad == (part_of(name) in MPO_STAGE_PARTS[stage]), name
    expected = {
        1: {"T-FFN", "A_t", "A_f"},
        2: set(PART_NAMES) - {"S-FFN", "A_s", "A_s_tan"},
        3: set(PART_NAMES),
    }[stage]
    assert set(MPO_STAGE_PARTS[stage]) == expected


def test_stage1_step_updates_only_stage1_parts():
    model = make().train()
    model.set_trainable(MPO_STAGE_PARTS[1])
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(inputs(), None, ["text"]).pow(2).mean().backward()
    for name, p in model.named_parameters():
        if part_of(name) in ("T-FFN", "A_t", "A_f"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    optim.step()
    for name, value in frozen_before.items():
        assert torch.equal(dict(model.named_parameters())[name], value)


def test_stage_plan():
    assert stage_plan([1, 2, 3], [1, 2, 3]) == [(1, 1), (2, 2), (3, 3)]
    assert stage_plan([2, 3], [5, 1, 2]) == [(2, 1), (3, 2)]
    with pytest.raises(ConfigError, match="increasing list"):
        stage_plan([3, 1], [1, 1, 1])
    with pytest.raises(ConfigError, match="epochs of stages 1, 2, 3"):
        stage_plan([1, 2, 3], [1, 1])


def test_same_seed_same_numbers_and_bad_config():
    feats = inputs()
    assert torch.equal(make(seed=3)(feats), make(seed=3)(feats))
    with pytest.raises(ConfigError, match="divisible"):
        make(heads=5)
    with pytest.raises(ConfigError, match="built for"):
        MRC({"text": 12}, 24, d_f=16)(feats, None, ["text", "vision"])
    with pytest.raises(ConfigError, match="Unknown MRC part"):
        make().set_trainable(["A_x"])


def test_from_config():
    config = {"mome_dim": 32, "mome_l1": 2, "mome_l2": 0, "mome_heads": 2, "mome_dropout": 0.0, "gate": "relu"}
    model = MRC.from_config(config, {"text": 12, "vision": 20}, 48)
    assert len(model.mome_blocks) == 2 and len(model.mm_blocks) == 0
    assert model.gates["vision"].kind == "relu" and model.out_adapter.out_features == 48
