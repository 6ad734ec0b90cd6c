"""SPAE: position prompts (PPL, eqs 15-17) and the positional proxy task (PPT, eqs 13-14)."""

import numpy as np
import pytest
import torch

from recbole_speeder.model.layers.spae import PositionPrompts, PPTSample, ppt_label, sample_ppt


def test_position_prompts_truncate_to_real_length():
    torch.manual_seed(0)
    ppl = PositionPrompts(n_max=6, hidden=4)
    out = ppl(torch.tensor([3, 1, 5]))
    assert out.shape == (3, 5, 4)
    assert torch.equal(out[0, :3], ppl.prompts[:3]) and torch.all(out[0, 3:] == 0)
    assert torch.equal(out[1, :1], ppl.prompts[:1]) and torch.all(out[1, 1:] == 0)
    assert torch.equal(out[2], ppl.prompts[:5])
    out.sum().backward()
    # p_6 is never used; p_1 is used by all three sequences
    assert ppl.prompts.grad[:, 0].tolist() == [3, 2, 2, 1, 1, 0]


def test_position_prompts_lookup_and_limits():
    ppl = PositionPrompts(n_max=3, hidden=2)
    got = ppl.lookup(torch.tensor([0, 3, 1]))
    assert torch.all(got[0] == 0)
    assert torch.equal(got[1], ppl.prompts[2]) and torch.equal(got[2], ppl.prompts[0])
    with pytest.raises(ValueError, match="MAX_ITEM_LIST_LENGTH"):
        ppl(torch.tensor([4]))


def test_position_prompts_disabled_for_ablation():
    ppl = PositionPrompts(n_max=3, hidden=2, enabled=False)
    assert list(ppl.parameters()) == []
    assert torch.all(ppl(torch.tensor([2, 3])) == 0)
    assert ppl.lookup(torch.tensor([1, 0])).shape == (2, 2)


@pytest.mark.parametrize("a, b, c, label", [
    (0, 1, 3, True),    # |0-1| = 1 <= |1-3| = 2
    (0, 3, 4, False),   # 3 > 1
    (2, 4, 6, True),    # 2 <= 2: ties answer yes
    (5, 2, 0, False),   # 3 > 2
    (4, 0, 1, False),   # 4 > 1
    (1, 0, 4, True),    # 1 <= 4
])
def test_ppt_label_eq14(a, b, c, label):
    assert ppt_label(a, b, c) is label


def test_sample_ppt_needs_three_distinct_items():
    rng = np.random.default_rng(0)
    assert sample_ppt([7, 8], rng) is None
    assert sample_ppt([7, 8, 7, 8, 8], rng) is None
    assert sample_ppt(torch.tensor([7, 8, 9, 0, 0]), rng, length=2) is None
    assert sample_ppt([], rng) is None


def test_sample_ppt_uses_latest_occurrence_and_eq14():
    history = [7, 8, 7, 9]  # 7 stands at position 2 (its latest occurrence), 8 at 1, 9 at 3
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        s = sample_ppt(history, rng)
        assert isinstance(s, PPTSample)
        assert sorted((s.a_pos, s.b_pos, s.c_pos)) == [1, 2, 3]
        assert s.label == (abs(s.a_pos - s.b_pos) <= abs(s.b_pos - s.c_pos))
        seen.add((s.a_pos, s.b_pos, s.c_pos))
    assert len(seen) == 6  # every order of the three items is drawn
    assert {history[p] for p in (s.a_pos, s.b_pos, s.c_pos)} == {7, 8, 9}


def test_sample_ppt_padded_row_and_seed():
    row = torch.tensor([3, 4, 5, 6, 0, 0])
    draws = [sample_ppt(row, np.random.default_rng(5), length=4) for _ in range(2)]
    assert draws[0] == draws[1]
    assert max(draws[0][:3]) <= 3
    labels = {sample_ppt(list(range(1, 11)), np.random.default_rng(s)).label for s in range(30)}
    assert labels == {True, False}
