"""End to end: each RecBole baseline through the plugin's run(), with the candidate protocol."""

import glob
import os

import pytest
import torch

from recbole_speeder.quick_start import run

BASELINES = ["GRU4Rec", "SASRec", "BERT4Rec"]


@pytest.mark.parametrize("model", BASELINES)
def test_baseline_runs_end_to_end(model, fast_config):
    result = run(model=model, dataset="tiny", config_dict=fast_config)
    assert set(result["test_result"]) >= {"recall@10", "ndcg@10", "mrr@10"}
    cand = result["candidate_test"]
    assert cand["n"] == 60  # leave-one-out: one test sequence per user
    assert cand["valid_ratio"] == 1.0
    assert cand["vhr@1"] == pytest.approx(cand["valid_ratio"] * cand["hr@1"], abs=1e-4)
    assert 0.0 <= cand["ndcg@5"] <= 1.0 and 0.0 < cand["mrr"] <= 1.0
    assert result["train_ms_per_sample"] > 0
    # the best checkpoint exists and loads with torch's safe loader (torch >= 2.6 default)
    state = torch.load(result["saved_model_file"], weights_only=True)
    assert state["config"]["model"] == model


def test_candidate_sets_are_shared_across_models_and_runs(fast_config, workdir):
    run(model="SASRec", dataset="tiny", config_dict=fast_config)
    files = sorted(glob.glob(str(workdir / "dataset" / "tiny" / "candidates" / "*.cand")))
    assert [os.path.basename(f).split("-")[0] for f in files] == ["test", "valid"]
    before = {f: open(f).read() for f in files}
    fast_config = dict(fast_config, seed=7, MAX_ITEM_LIST_LENGTH=5)
    run(model="GRU4Rec", dataset="tiny", config_dict=fast_config)
    after = {f: open(f).read() for f in sorted(glob.glob(str(workdir / "dataset" / "tiny" / "candidates" / "*.cand")))}
    assert after == before
    # every set: the true next item plus 4 items the user never interacted with
    inter = open(workdir / "dataset" / "tiny" / "tiny.inter").read().splitlines()[1:]
    seen = {}
    for line in inter:
        u, i, _ = line.split("\t")
        seen.setdefault(u, set()).add(i)
    for f in files:
        for line in open(f).read().splitlines()[1:]:
            user, target, cands = line.split("\t")
            cands = cands.split(" ")
            assert len(cands) == 5 and len(set(cands)) == 5 and target in cands
            assert not (set(cands) - {target}) & seen[user]


def test_same_seed_same_numbers(fast_config):
    first = run(model="SASRec", dataset="tiny", config_dict=fast_config)
    second = run(model="SASRec", dataset="tiny", config_dict=fast_config)
    assert first["test_result"] == second["test_result"]
    assert first["candidate_test"]["vhr@1"] == second["candidate_test"]["vhr@1"]
    assert first["candidate_test"]["mrr"] == second["candidate_test"]["mrr"]


def test_evaluate_saved_checkpoint_without_training(fast_config):
    trained = run(model="SASRec", dataset="tiny", config_dict=fast_config)
    loaded = run(model="SASRec", dataset="tiny", config_dict=fast_config, model_file=trained["saved_model_file"])
    assert loaded["test_result"] == trained["test_result"]
    assert loaded["candidate_test"]["mrr"] == trained["candidate_test"]["mrr"]
