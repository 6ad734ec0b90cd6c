"""RecBole's own sequential models through the plugin: a representative subset of RecBole 1.2.1's
``tests/model/test_model_auto.py::TestSequentialRecommender`` configurations (CE and BPR losses,
point-wise and pair-wise models, a model scored with ``predict`` only), run by the plugin's
``objective_function`` on the tiny dataset. RecBole's default negative sampling is kept and
switched off only where the loss reads no negatives."""

import pytest

from recbole_speeder.config import Config
from recbole_speeder.errors import ConfigError
from recbole_speeder.quick_start import objective_function

# (RecBole's test name, its config_dict), as in RecBole 1.2.1's TestSequentialRecommender
RECBOLE_CONFIGS = [
    ("test_gru4rec_with_BPR_loss", {"model": "GRU4Rec", "loss_type": "BPR"}),  # pair-wise, sampled negatives
    ("test_sasrec", {"model": "SASRec", "train_neg_sample_args": None}),  # CE over all items
    ("test_fpmc", {"model": "FPMC"}),  # pair-wise by class (input_type), BPR only
    ("test_narm", {"model": "NARM", "train_neg_sample_args": None}),
    ("test_din", {"model": "DIN", "eval_step": 0}),  # point-wise, labels from sampled negatives; predict only
]


@pytest.mark.parametrize("name, config", RECBOLE_CONFIGS, ids=[n for n, _ in RECBOLE_CONFIGS])
def test_recbole_sequential_configuration_runs_through_the_plugin(name, config, fast_config):
    settings = dict(fast_config, dataset="tiny", epochs=1, mlp_hidden_size=[16], **config)
    result = objective_function(config_dict=settings, saved=False)
    assert result["model"] == config["model"]
    assert result["test_result"]  # RecBole's own metrics
    cand = result["candidate_test"]  # and the candidate protocol, on the shared sets
    assert cand["n"] == 60 and cand["valid_ratio"] == 1.0 and 0.0 <= cand["vhr@1"] <= 1.0


@pytest.mark.parametrize("model, loss, sampling", [
    ("SASRec", None, None),  # RecBole's SASRec: CE, no negatives
    ("SASRec", "BPR", "uniform"),
    ("GRU4Rec", "CE", None),
    ("FPMC", None, "uniform"),
    ("DIN", None, "uniform"),
    ("SINE", "NLL", None),
    ("Speeder", None, None),  # the LLM models draw their own candidates (llm.yaml)
])
def test_negative_sampling_follows_the_loss(fast_config, model, loss, sampling):
    settings = dict(fast_config, **({"loss_type": loss} if loss else {}))
    config = Config(model=model, dataset="tiny", config_dict=settings)
    assert config["train_neg_sample_args"]["distribution"] == (sampling or "none")


def test_negative_sampling_that_the_loss_cannot_use_is_refused(fast_config):
    with pytest.raises(ConfigError, match=r"SASRec with loss_type CE .*reads no negative samples"):
        Config(model="SASRec", dataset="tiny", config_dict=dict(
            fast_config, train_neg_sample_args={"distribution": "uniform", "sample_num": 1}))
    with pytest.raises(ConfigError, match=r"FPMC trains on sampled negatives"):
        Config(model="FPMC", dataset="tiny", config_dict=dict(fast_config, train_neg_sample_args=None))


def test_item_features_of_feature_models_are_loaded_or_named(fast_config):
    config = Config(model="SASRecF", dataset="tiny", config_dict=dict(fast_config, selected_features=["title"]))
    assert config["load_col"]["item"] == ["item_id", "title"]
    with pytest.raises(ConfigError, match=r"SASRecF reads .*selected_features \['class'\].*item_id, title"):
        Config(model="SASRecF", dataset="tiny", config_dict=fast_config)
