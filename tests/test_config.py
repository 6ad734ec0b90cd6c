"""Config: plugin properties, split modes, and clear messages for bad names and keys."""

import subprocess
import sys
import os

import pytest
import yaml

from recbole_speeder.config import PROPERTIES_DIR, Config
from recbole_speeder.errors import ConfigError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plugin_defaults_and_leave_one_out(fast_config):
    config = Config(model="SASRec", dataset="tiny", config_dict=fast_config)
    assert config["candidate_num"] == 5
    assert config["split_mode"] == "LS"
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["data_path"].endswith(os.path.join("dataset", "tiny"))


def test_yaml_typo_suggests_closest_key(fast_config, workdir):
    (workdir / "bad.yaml").write_text("learning_rat: 0.01\n")
    with pytest.raises(ConfigError, match=r"learning_rat.*bad\.yaml.*learning_rate"):
        Config(model="SASRec", dataset="tiny", config_file_list=[str(workdir / "bad.yaml")], config_dict=fast_config)


def test_command_line_typo(fast_config):
    with pytest.raises(ConfigError, match="candidate_nun.*candidate_num"):
        Config(model="SASRec", dataset="tiny", config_dict=dict(fast_config, candidate_nun=3))


def test_missing_config_file(fast_config):
    with pytest.raises(ConfigError, match="nope.yaml.*does not exist"):
        Config(model="SASRec", dataset="tiny", config_file_list=["nope.yaml"], config_dict=fast_config)


def test_unknown_model_suggests(fast_config):
    with pytest.raises(ConfigError, match="SASrec.*SASRec"):
        Config(model="SASrec", dataset="tiny", config_dict=fast_config)


def test_unknown_dataset_lists_prepared(fast_config):
    with pytest.raises(DataError, match="Unknown dataset 'tinny'.*Did you mean 'tiny'"):
        Config(model="SASRec", dataset="tinny", config_dict=fast_config)


def test_amazon_dataset_not_prepared_says_what_to_do(fast_config):
    with pytest.raises(DataError, match=r"(?s)raw/Automotive.*prepare.py amazon --name Automotive"):
        Config(model="SASRec", dataset="Automotive", config_dict=fast_config)


def test_sequence_split_needs_files(fast_config):
    with pytest.raises(ConfigError, match="tiny.train.inter"):
        Config(model="SASRec", dataset="tiny", config_dict=dict(fast_config, split_mode="sequence"))


def test_ml100k_is_copied_from_the_recbole_package(fast_config, workdir):
    config = Config(model="SASRec", dataset="ml-100k", config_dict=fast_config)
    assert (workdir / "dataset" / "ml-100k" / "ml-100k.inter").is_file()
    assert config["TITLE_FIELD"] == "movie_title"


def test_ml100k_copy_survives_a_parallel_run_that_copies_it_first(tmp_path, monkeypatch):
    """Two runs starting at once both copy ml-100k; the one that renames second must not fail."""
    from recbole_speeder import atomic
    from recbole_speeder.data.prepare import registry

    home = str(tmp_path / "dataset")
    real_replace = os.replace
    calls = []

    def replace_after_the_other_run(src, dst):
        if not calls and os.path.basename(dst) == "ml-100k":
            calls.append(dst)
            monkeypatch.setattr(atomic.os, "replace", real_replace)
            registry.ensure_dataset_files(home, "ml-100k")  # the other run wins the race
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_after_the_other_run)
    registry.ensure_dataset_files(home, "ml-100k")
    assert calls and registry.is_prepared(home, "ml-100k")
    assert sorted(os.listdir(home)) == ["ml-100k"]  # no temporary folder left behind


def test_run_script_prints_clear_error_not_traceback(workdir):
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "run_recbole_speeder.py"), "--model=NoSuchModel", "--dataset=tiny"],
        capture_output=True, text=True, cwd=workdir,
    )
    assert proc.returncode == 2
    assert "error: Unknown model 'NoSuchModel'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_only_recommenders_count_as_models(fast_config):
    # MRC is a module of the plugin, not a model: naming it is an unknown-model error
    with pytest.raises(ConfigError, match="Unknown model 'MRC'"):
        Config(model="MRC", dataset="tiny", config_dict=fast_config)


@pytest.mark.parametrize("model, name", [("Speeder", "quick/cpu.yaml"), ("Speeder", "recipes/ml-100k-gpu.yaml"),
                                         ("LLaRA", "recipes/ml-100k-gpu-title-baselines.yaml"),
                                         ("TALLRec", "recipes/ml-100k-gpu-title-baselines.yaml")])
def test_shipped_config_files_load(fast_config, model, name):
    """Every YAML shipped for --config_files has only known keys (a typo would be refused)
    and each of its values reaches the run's config."""
    path = os.path.join(PROPERTIES_DIR, name)
    config = Config(model=model, dataset="tiny", config_file_list=[path], config_dict=fast_config)
    with open(path) as f:
        settings = yaml.safe_load(f) or {}
    assert settings
    for key, value in settings.items():
        if key not in fast_config:  # the test's own settings win over the file
            assert config[key] == value, key
