"""Pre-split datasets (the paper's 7:2:1 split of sequences) whose histories are longer than
MAX_ITEM_LIST_LENGTH: histories keep their most recent items, as RecBole's leave-one-out path
does, and SASRec and Speeder run on them."""

import os
import sys

import pytest

from recbole_speeder.config import Config
from recbole_speeder.data.candidates import _user_items
from recbole_speeder.data.prepare.amazon import prepare_amazon
from recbole_speeder.quick_start import run
from recbole_speeder.utils import create_dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import FAST  # noqa: E402
from test_data_prepare import make_raw  # noqa: E402

N_ITEMS = 50


def long_sessions():
    """24 one-day sessions of 12..35 items (one user each), rotating through 50 items."""
    return [(f"U{u}", u, [f"I{(7 * u + k) % N_ITEMS}" for k in range(12 + u)]) for u in range(24)]


@pytest.fixture(scope="module")
def long_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    raw = make_raw(root / "raw", long_sessions(), "2018")
    stats = prepare_amazon("Long", *raw, out_dir=str(root / "dataset"), log=lambda m: None)
    assert stats["total"]["seq"] == 24 and max(len(s) for _, _, s in long_sessions()) - 1 > 30
    return root / "dataset"


@pytest.fixture
def long_config(long_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return dict(FAST, data_path=str(long_home), epochs=1, MAX_ITEM_LIST_LENGTH=10)


def test_histories_keep_their_most_recent_items(long_config):
    config = Config(model="SASRec", dataset="Long", config_dict=long_config)
    assert config["split_mode"] == "sequence"
    dataset = create_dataset(config)
    train = dataset.build()[0]
    feat = train.inter_feat
    assert feat["item_id_list"].shape[1] == 10 and int(feat["item_length"].max()) == 10
    rows = {}
    with open(os.path.join(long_home_path(long_config), "Long.train.inter"), encoding="utf-8") as f:
        for line in f.read().splitlines()[1:]:
            session, user, history, target = line.split("\t")
            rows[user] = history.split(" ")
    for k in range(len(feat)):
        user = dataset.id2token("user_id", int(feat["user_id"][k]))
        if user not in rows:
            continue
        kept = dataset.id2token("item_id", feat["item_id_list"][k][: int(feat["item_length"][k])].tolist()).tolist()
        assert kept == rows[user][-10:]
    # the items cut off still count as the user's: no candidate set offers them as negatives
    seen = _user_items(train)
    for user, history in rows.items():
        uid = int(dataset.token2id("user_id", user))
        assert {int(i) for i in dataset.token2id("item_id", history)} <= seen[uid]


def long_home_path(config):
    return os.path.join(config["data_path"], "Long")


def test_sasrec_runs_on_long_presplit_sequences(long_config):
    result = run(model="SASRec", dataset="Long", config_dict=long_config)
    assert result["candidate_test"]["n"] > 0 and result["test_result"]


def test_speeder_runs_on_long_presplit_sequences(long_config, tiny_llm_dir):
    config = dict(long_config, llm_path=tiny_llm_dir, modalities=["text", "seq"], text_encoder="llm",
                  stage_epochs=[0, 0, 1], mpo_stages=[3], steps_per_epoch=2, train_batch_size=4, eval_batch_size=8,
                  mome_dim=16, mome_heads=2, history_len=5, seq_encoder_epochs=1, seq_encoder_hidden=8)
    result = run(model="Speeder", dataset="Long", config_dict=config)
    assert result["candidate_test"]["n"] > 0 and result["candidate_test"]["valid_ratio"] == 1.0
