"""Speeder ranks the whole catalog (RecBole's ranking evaluation) and the cold-target rows."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_speeder.quick_start import run

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed_worker import build  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def speeder_config(fast_config, tiny_llm_dir):
    return dict(
        fast_config, llm_path=tiny_llm_dir, mpo_stages=[3], stage_epochs=[0, 0, 1], steps_per_epoch=3,
        train_batch_size=8, eval_batch_size=16, mome_dim=16, mome_heads=2, history_len=5, seq_encoder_epochs=1,
        seq_encoder_hidden=16, ppt_ratio=0.5, reconstruction_stages=[],
    )


def _eval_batch(config, model):
    """The first 12 test sequences of tiny, as RecBole's evaluation hands them to a model."""
    from recbole.data import data_preparation

    from recbole_speeder.utils import create_dataset

    _, _, test = data_preparation(config, create_dataset(config))
    interaction = next(iter(test))[0]
    return interaction[torch.arange(12)]


def test_full_sort_predict_equals_the_candidate_scores_and_predict(speeder_config):
    config, _, model, trainer = build(speeder_config)
    model.set_stage(3)
    model.eval()
    interaction = _eval_batch(config, model)
    full = model.full_sort_predict(interaction)
    assert full.shape == (12, model.n_items)
    generator = torch.Generator().manual_seed(0)
    candidates = torch.randint(1, model.n_items, (12, 5), generator=generator)
    scores = model.candidate_scores(interaction, candidates).scores
    torch.testing.assert_close(full.gather(1, candidates), scores, rtol=1e-4, atol=1e-4)
    # predict: RecBole's sampled evaluation repeats each history once per item; encoded once each
    rows = interaction.repeat_interleave(5)
    rows.update(Interaction({model.ITEM_ID: candidates.reshape(-1)}))
    calls = []
    readout = model._history_readout
    model._history_readout = lambda histories: (calls.append(len(histories)), readout(histories))[1]
    torch.testing.assert_close(model.predict(rows).view(12, 5), scores, rtol=1e-4, atol=1e-4)
    assert calls == [len({(tuple(s.tolist()), int(n)) for s, n in zip(interaction[model.ITEM_SEQ],
                                                                        interaction[model.ITEM_SEQ_LEN])})]


def test_label_answer_cannot_rank(speeder_config):
    _, _, model, _ = build(dict(speeder_config, answer_head="index"))
    with pytest.raises(NotImplementedError, match="answer_head: index"):
        model.full_sort_predict(None)


def test_a_full_ranking_run_reports_recbole_metrics_beside_the_candidates(speeder_config):
    """RecBole's collector and metrics (recall@10, ndcg@10...) in best_valid_result / test_result, the
    candidate protocol in candidate_valid / candidate_test, both from one pass; NDCG@10 as the
    early-stopping metric."""
    config = dict(speeder_config, eval_args={"mode": "full"}, valid_metric="NDCG@10", stage_epochs=[0, 0, 2])
    result = run(model="Speeder", dataset="tiny", config_dict=config)
    for split in ("best_valid_result", "test_result"):
        assert {"recall@10", "ndcg@10", "mrr@10", "hit@10"} <= set(result[split])
        assert all(0.0 <= float(v) <= 1.0 for k, v in result[split].items() if "@" in k)
    assert result["best_valid_score"] == result["best_valid_result"]["ndcg@10"]
    assert result["candidate_test"]["n"] == 60 and "vhr@1" in result["candidate_test"]
    assert "ppt_acc" in result["candidate_valid"]  # the model's own report stays beside the candidate metrics
    # the candidates' ranks read off the full-sort scores equal the candidate protocol's own pass
    loaded = run(model="Speeder", dataset="tiny", model_file=result["saved_model_file"],
                 config_dict=dict(speeder_config, eval_args={"mode": "uni10"}))
    assert {"recall@10", "ndcg@10"} <= set(loaded["test_result"])

    def scores(cand):
        return {k: v for k, v in cand.items() if not k.endswith("_ms_per_sample")}

    assert scores(loaded["candidate_test"]) == scores(result["candidate_test"])


@pytest.mark.parametrize("model, extra", [("LLaRA", []), ("Speeder", ["--answer_head=index"]),
                                          ("Speeder", ["--score_readout=both"])])
@pytest.mark.slow
def test_candidate_only_models_refuse_recbole_ranking_in_one_line(workdir, model, extra):
    (workdir / "full.yaml").write_text("eval_args:\n  mode: full\n")
    command = [sys.executable, os.path.join(ROOT, "run_recbole_speeder.py"), f"--model={model}", "--dataset=tiny",
               f"--data_path={workdir / 'dataset'}", "--config_files=full.yaml", *extra]
    out = subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: eval_args mode 'full':") and "candidate" in lines[0]
    assert not (workdir / "log").exists() and not (workdir / "dataset" / "tiny" / "candidates").exists()


def _hand_built(home, split_users):
    """A data home with dataset ``hand``: users u1..u4 with the item sequences of ``split_users``."""
    folder = home / "hand"
    folder.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user, items in split_users.items():
        lines += [f"{user}\t{item}\t{1000 + t}" for t, item in enumerate(items)]
    (folder / "hand.inter").write_text("\n".join(lines) + "\n")


def test_cold_rows_count_training_interactions_on_a_hand_built_dataset(fast_config, workdir):
    from recbole.data import data_preparation

    from recbole_speeder.config import Config
    from recbole_speeder.data.cold_items import cold_rows, hold_out_items, training_item_counts
    from recbole_speeder.utils import create_dataset

    # leave-one-out: the last item of each user is its test target, the one before its valid target
    users = {"u1": ["a", "b", "c", "d", "x"], "u2": ["a", "b", "c", "y", "z"], "u3": ["b", "a", "c", "d", "x"],
             "u4": ["a", "c", "b", "d", "a"]}
    _hand_built(workdir / "dataset", users)
    config = Config(model="SASRec", dataset="hand", config_dict=dict(
        fast_config, cold_item_max_inter=1, user_inter_num_interval="[0,inf)", item_inter_num_interval="[0,inf)"))
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    counts = training_item_counts(config, train._dataset)
    token = dict(zip(dataset.field2id_token["item_id"], range(dataset.item_num)))
    # training parts: u1 a b c, u2 a b c, u3 b a c, u4 a c b -> a 4, b 4, c 4, d 0, x 0, y 0, z 0
    assert {t: int(counts[token[t]]) for t in "abcdxyz"} == {"a": 4, "b": 4, "c": 4, "d": 0, "x": 0, "y": 0, "z": 0}
    test_targets = [dataset.field2id_token["item_id"][i] for i in test._dataset.inter_feat["item_id"].tolist()]
    mask = cold_rows(config, train._dataset, test._dataset)
    assert sorted(t for t, cold in zip(test_targets, mask) if cold) == ["x", "x", "z"]  # u4's "a" is known
    # holding out items: none of them is left in any training row, evaluation rows keep theirs
    held_config = Config(model="SASRec", dataset="hand", config_dict=dict(
        fast_config, cold_item_ratio=0.3, user_inter_num_interval="[0,inf)", item_inter_num_interval="[0,inf)"))
    held_train = hold_out_items(held_config, train)
    from recbole_speeder.data.cold_items import held_out_items

    held = np.flatnonzero(held_out_items(held_config, dataset.item_num))
    assert len(held) == 2
    inter = held_train._dataset.inter_feat
    seen = set(inter["item_id"].tolist()) | {i for row in inter["item_id_list"].tolist() for i in row if i}
    assert not seen & set(held.tolist())
    assert all(n == sum(1 for i in row if i) for row, n in zip(inter["item_id_list"].tolist(),
                                                               inter["item_length"].tolist()))
    # kept: the rows whose target is not held out and whose history keeps an item, histories in order
    before = train._dataset.inter_feat
    expected = []
    for target, row, n in zip(before["item_id"].tolist(), before["item_id_list"].tolist(), before["item_length"].tolist()):
        history = [i for i in row[:n] if i not in held]
        if target not in held and history:
            expected.append((target, history))
    assert [(t, [i for i in row if i]) for t, row in zip(inter["item_id"].tolist(), inter["item_id_list"].tolist())] \
        == expected
    assert training_item_counts(held_config, held_train._dataset)[held].sum() == 0
    assert hold_out_items(config, train) is train  # cold_item_ratio 0: the loader as it was


@pytest.mark.slow
def test_every_model_reports_the_cold_target_rows(fast_config, workdir):
    result = run(model="SASRec", dataset="tiny", config_dict=dict(fast_config, cold_item_ratio=0.2))
    assert result["cold_test_n"] > 0
    assert result["candidate_cold_test"]["n"] == result["cold_test_n"]
    assert {"recall@10", "ndcg@10"} <= set(result["cold_test_result"])
    from recbole_speeder.benchmark import COLD_SUFFIX, flatten

    rows = flatten(result)
    assert [r["model"] for r in rows] == ["SASRec", "SASRec" + COLD_SUFFIX]
    assert rows[1]["cases"] == result["cold_test_n"] and rows[1]["ndcg@10"] == result["cold_test_result"]["ndcg@10"]
    none = run(model="SASRec", dataset="tiny", config_dict=dict(fast_config, cold_item_max_inter=None))
    assert none["cold_test_n"] is None and len(flatten(none)) == 1
