"""eval_shuffle_history: the order-sensitivity test of "Lost in Sequence" (LLM-SRec, KDD 2025)."""

import numpy as np
import pytest
from recbole.data import data_preparation
from recbole.model.sequential_recommender.sasrec import SASRec

from recbole_speeder.config import Config
from recbole_speeder.data.eval_order import shuffled_histories
from recbole_speeder.model.speeder import Speeder
from recbole_speeder.quick_start import run
from recbole_speeder.utils import create_dataset


def random_histories(rows=300, width=10, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, width + 1, rows)
    seq = np.zeros((rows, width), dtype=np.int64)
    for i, n in enumerate(lengths):
        seq[i, :n] = rng.choice(np.arange(1, 1000), n, replace=False)
    return seq, lengths


def test_the_most_recent_items_are_permuted_the_same_way_for_every_model():
    seq, lengths = random_histories()
    config = {"candidate_seed": 2024, "eval_shuffle_window": None, "history_len": None}
    whole = shuffled_histories(config, seq, lengths)
    assert np.array_equal(whole, shuffled_histories(config, seq, lengths))  # the same every time
    for i, n in enumerate(lengths):  # the same items, the same length
        assert sorted(whole[i, :n]) == sorted(seq[i, :n]) and not whole[i, n:].any()
    changed = (whole != seq).any(axis=1)
    assert not changed[lengths == 1].any() and changed[lengths >= 4].mean() > 0.9
    five = shuffled_histories(dict(config, eval_shuffle_window=5), seq, lengths)
    for i, n in enumerate(lengths):  # only the most recent 5 move
        kept = max(0, n - 5)
        assert np.array_equal(five[i, :kept], seq[i, :kept]) and sorted(five[i, kept:n]) == sorted(seq[i, kept:n])
    short = lengths <= 5  # a history within both windows gets one permutation under either
    assert np.array_equal(five[short], whole[short])
    # an LLM model's history_len is the window where eval_shuffle_window is ~
    assert np.array_equal(shuffled_histories(dict(config, history_len=5), seq, lengths), five)
    assert not np.array_equal(shuffled_histories(dict(config, candidate_seed=7), seq, lengths), whole)


def split_rows(model, config_dict):
    """split -> [(user, target, history)] of the run's RecBole split, in order."""
    config = Config(model=model, dataset="tiny", config_dict=config_dict)
    loaders = dict(zip(("train", "valid", "test"), data_preparation(config, create_dataset(config))))
    out = {}
    for split, loader in loaders.items():
        d = loader._dataset
        inter = d.inter_feat
        out[split] = rows(inter, d.uid_field, d.iid_field, d.item_id_list_field, d.item_list_length_field)
    return config, out


def rows(interaction, uid, iid, seq_field, len_field, seq=None):
    seq = interaction[seq_field].cpu().numpy() if seq is None else seq
    lengths = interaction[len_field].cpu().numpy()
    users, targets = interaction[uid].cpu().tolist(), interaction[iid].cpu().tolist()
    return [(u, t, tuple(s[:n].tolist())) for u, t, s, n in zip(users, targets, seq, lengths)]


@pytest.fixture
def recorded(monkeypatch):
    """kind -> rows every SASRec / Speeder call of that kind read (training and evaluation)."""
    seen = {"train": [], "eval": []}
    for cls, methods in ((SASRec, {"calculate_loss": "train", "full_sort_predict": "eval"}),
                         (Speeder, {"calculate_loss": "train", "full_sort_predict": "eval",
                                    "candidate_scores": "eval"})):
        for name, kind in methods.items():
            def watched(self, interaction, *args, _method=getattr(cls, name), _kind=kind):
                seen[_kind].extend(rows(interaction, self.USER_ID, self.ITEM_ID, self.ITEM_SEQ, self.ITEM_SEQ_LEN))
                return _method(self, interaction, *args)

            monkeypatch.setattr(cls, name, watched)
    return seen


@pytest.mark.slow
def test_sasrec_and_speeder_read_shuffled_test_histories_and_untouched_training_data(
        fast_config, tiny_llm_dir, recorded):
    base = dict(fast_config, epochs=1, cold_item_max_inter=None)
    config, split = split_rows("SASRec", base)
    test_seq = np.array([list(h) + [0] * (10 - len(h)) for _, _, h in split["test"]])
    test_len = np.array([len(h) for _, _, h in split["test"]])
    shuffled = shuffled_histories(dict(candidate_seed=config["candidate_seed"], eval_shuffle_window=5,
                                       history_len=None), test_seq, test_len)
    shuffled_test = [(u, t, tuple(s[:n].tolist())) for (u, t, _), s, n in zip(split["test"], shuffled, test_len)]
    moved = set(split["test"]) - set(shuffled_test)  # test rows whose order the shuffle changed
    assert moved and all(sorted(a[2]) == sorted(b[2]) for a, b in zip(split["test"], shuffled_test))

    def one_run(model, **settings):
        recorded["train"].clear(), recorded["eval"].clear()
        run(model=model, dataset="tiny", config_dict=dict(base, **settings))
        return list(recorded["train"]), list(recorded["eval"])

    train, in_order = one_run("SASRec")
    assert set(split["test"]) <= set(in_order)  # the recording sees what the model reads
    for _ in range(2):  # two runs: the same permutations
        train_shuffled, evaluated = one_run("SASRec", eval_shuffle_history=True, eval_shuffle_window=5)
        assert set(evaluated) == set(split["valid"]) | set(shuffled_test)  # validation keeps its order
        assert not moved & (set(evaluated) - set(split["valid"]))
        assert train_shuffled == train and set(train) == set(split["train"])  # training untouched

    speeder = dict(llm_path=tiny_llm_dir, mpo_stages=[3], stage_epochs=[0, 0, 1], steps_per_epoch=2,
                   train_batch_size=8, eval_batch_size=16, mome_dim=16, mome_heads=2, history_len=5,
                   modalities=["text"], text_encoder="llm", seq_encoder_epochs=1, seq_encoder_hidden=16)
    train, evaluated = one_run("Speeder", eval_shuffle_history=True, **speeder)  # window ~ = its history_len 5
    assert set(evaluated) == set(split["valid"]) | set(shuffled_test)
    assert not moved & (set(evaluated) - set(split["valid"]))
    assert train and set(train) <= set(split["train"])
