"""Candidate metrics against hand-computed values."""

import pytest
import torch

from recbole_speeder.evaluation.candidate_eval import candidate_metrics, pessimistic_rank


def test_pessimistic_rank_counts_ties_against_the_target():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.5, 0.5, 0.1], [0.2, 0.2, 0.2]])
    target = torch.tensor([0, 1, 2])
    assert pessimistic_rank(scores, target).tolist() == [1, 2, 3]


def test_hr_valid_ratio_vhr_by_hand():
    # 5 sequences: ranks of the true item, and whether the answer named a candidate
    ranks = torch.tensor([1, 1, 2, 1, 5])
    valid = torch.tensor([True, True, True, False, True])
    m = candidate_metrics(ranks, valid, topk=(3,), ranked=True)
    assert m["valid_ratio"] == pytest.approx(4 / 5)
    assert m["hr@1"] == pytest.approx(2 / 4)  # correct among valid answers
    assert m["vhr@1"] == pytest.approx(2 / 5) == pytest.approx(m["valid_ratio"] * m["hr@1"])
    # NDCG@3: hits at rank 1, 1, 2 (the invalid one counts as a miss)
    assert m["ndcg@3"] == pytest.approx((1 + 1 + 1 / torch.log2(torch.tensor(3.0)).item()) / 5)
    assert m["mrr"] == pytest.approx((1 + 1 + 0.5 + 0 + 0.2) / 5)


def test_unranked_answers_have_no_ndcg():
    m = candidate_metrics(torch.tensor([1, 2]), torch.tensor([True, True]), ranked=False)
    assert set(m) == {"hr@1", "valid_ratio", "vhr@1"}
    assert m["hr@1"] == 0.5


def test_no_valid_answer_gives_zero_not_nan():
    m = candidate_metrics(torch.tensor([1, 1]), torch.tensor([False, False]))
    assert m["hr@1"] == 0.0 and m["vhr@1"] == 0.0 and m["valid_ratio"] == 0.0
