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
    (workdir / "bad.yaml").write_text("epochs: 1\nlearning_rat: 0.01\n")
    with pytest.raises(ConfigError, match=r"learning_rat.*bad\.yaml', line 2.*learning_rate"):
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


@pytest.mark.slow
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
                                         ("Speeder", "recipes/ml-100k-gpu-score.yaml"),
                                         ("Speeder", "recipes/ml-100k-gpu-last-item.yaml"),
                                         ("Speeder", "recipes/ml-100k-gpu-catalog.yaml"),
                                         ("Speeder", "recipes/ml-100k-gpu-distill.yaml"),
                                         ("LLaRA", "recipes/ml-100k-gpu-title-baselines.yaml"),
                                         ("TALLRec", "recipes/ml-100k-gpu-title-baselines.yaml"),
                                         ("TMF", "recipes/ml-100k-gpu-tmf.yaml"),
                                         ("MLLMMSR", "recipes/ml-100k-gpu-mllmmsr.yaml")])
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


# -- typed keys (the (type) annotations of the property files; recbole_speeder/schema.py) ----------
def _cli(*args):
    from recbole_speeder.cli import parse_overrides

    return parse_overrides(list(args))


@pytest.mark.parametrize("model, args, message", [
    ("Speeder", ["--stage_epochs=2"], r"stage_epochs must be a list of integers \(each at least 0\), "
                                      r"e\.g\. \[1, 1, 1\] \(got 2 on the command line\)"),
    ("Speeder", ["--stage_epochs=abc"], r"stage_epochs must be a list of integers.*got 'abc'"),
    ("Speeder", ["--stage_epochs=[1,-1,1]"], r"stage_epochs must hold integers \(each at least 0\)"),
    ("Speeder", ["--steps_per_epoch=0"], r"steps_per_epoch must be at least 1 \(got 0"),
    ("Speeder", ["--lora_r=0"], r"lora_r must be at least 1 \(got 0"),
    ("Speeder", ["--lora_r=abc"], r"lora_r must be an integer \(at least 1\) \(got 'abc'"),
    ("Speeder", ["--history_len=abc"], r"history_len must be an integer"),
    ("Speeder", ["--candidate_num=abc"], r"candidate_num must be an integer \(at least 2\)"),
    ("Speeder", ["--learning_rate=abc"], r"learning_rate must be a positive number \(got 'abc'"),
    ("Speeder", ["--use_ppt=maybe"], r"use_ppt must be True or False \(got 'maybe'"),
    ("Speeder", ["--lr_schedule=linear"], r"lr_schedule: 'linear' is not one of cosine, constant"),
    ("Speeder", ["--mpo_stages=[3,1]"], r"mpo_stages must be an increasing list"),  # the model's own checks
    ("TALLRec", ["--llm_path=/no/such/model.gguf"], r"llm_path '/no/such/model\.gguf': no such GGUF file"),
    ("SASRec", ["--epochs=abc"], r"epochs must be an integer \(got 'abc'"),  # RecBole's annotation
    # a key of another model's property files, checked whatever the model
    ("SASRec", ["--stage_epochs=abc"], r"stage_epochs must be a list of integers.*got 'abc' on the command line"),
    ("SASRec", ["--lora_r=0"], r"lora_r must be at least 1 \(got 0"),
    ("Speeder", ["--inner_size=abc"], r"inner_size must be an integer.* \(got .abc."),  # RecBole's model files
])
def test_typed_keys_are_checked_before_any_data(fast_config, monkeypatch, model, args, message):
    import recbole_speeder.config as config_module

    def no_data(*a, **k):
        raise AssertionError("data was looked at before the key check")

    monkeypatch.setattr(config_module, "ensure_dataset_files", no_data)
    with pytest.raises(ConfigError, match=message):
        Config(model=model, dataset="tiny", config_dict=dict(fast_config, **_cli(*args)))


def test_a_key_of_another_model_with_a_bad_value_exits_2_in_one_line(fast_config, monkeypatch, capsys):
    """The run script in this process: ``--stage_epochs=abc`` (Speeder's key) refused for SASRec
    before any data is read, in one ``error:`` line, exit status 2."""
    import importlib.util

    import recbole_speeder.config as config_module

    monkeypatch.setattr(config_module, "ensure_dataset_files", lambda *a: pytest.fail("data looked at"))
    spec = importlib.util.spec_from_file_location("run_script", os.path.join(REPO, "run_recbole_speeder.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_:
        script.main(["--model=SASRec", "--dataset=tiny", "--stage_epochs=abc",
                     f"--data_path={fast_config['data_path']}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: stage_epochs must be a list of integers (each at least 0), e.g. [1, 1, 1] "
        "(got 'abc' on the command line)."]
    # a value that suits the key passes, for any model
    monkeypatch.undo()
    config = Config(model="SASRec", dataset="tiny", config_dict=dict(fast_config, **_cli("--stage_epochs=[1,0,2]")))
    assert config["stage_epochs"] == [1, 0, 2]


@pytest.mark.parametrize("model", ["Speeder", "SASRec"])
def test_a_wrong_typed_yaml_value_names_its_file_and_line(fast_config, workdir, monkeypatch, model):
    import recbole_speeder.config as config_module

    monkeypatch.setattr(config_module, "ensure_dataset_files", lambda *a: pytest.fail("data looked at"))
    good, bad = workdir / "good.yaml", workdir / "bad.yaml"
    good.write_text("stopping_step: 3\n")
    bad.write_text("# my settings\nlearning_rate: 0.01\n\nstage_epochs: [1, x, 2]\n")
    with pytest.raises(ConfigError, match=rf"stage_epochs must be a list of integers.*\(got \[1, 'x', 2\] "
                                          rf"in {bad}, line 4\)\."):
        Config(model=model, dataset="tiny", config_file_list=[str(good), str(bad)], config_dict=fast_config)
    bad.write_text("stopping_step: three\n")
    with pytest.raises(ConfigError, match=rf"stopping_step must be an integer.*\(got 'three' in {bad}, line 1\)"):
        Config(model=model, dataset="tiny", config_file_list=[str(good), str(bad)], config_dict=fast_config)


def test_bare_word_lists_parse_and_typed_values_pass(fast_config):
    overrides = _cli("--modalities=[text,seq]", "--stage_epochs=[1,0,2]", "--lora_target_modules=all-linear",
                     "--plugin_learning_rate=1e-3", "--steps_per_epoch=~")
    assert overrides["modalities"] == ["text", "seq"] and overrides["stage_epochs"] == [1, 0, 2]
    config = Config(model="Speeder", dataset="tiny", config_dict=dict(fast_config, **overrides))
    assert config["modalities"] == ["text", "seq"] and config["steps_per_epoch"] is None
    assert config["lora_target_modules"] == "all-linear" and config["plugin_learning_rate"] == 1e-3


def test_every_plugin_default_keeps_its_own_annotation():
    import glob

    from recbole_speeder.schema import check_value, file_annotations

    checked = 0
    paths = glob.glob(os.path.join(PROPERTIES_DIR, "*.yaml")) + glob.glob(os.path.join(PROPERTIES_DIR, "*", "*.yaml"))
    for path in paths:
        if os.sep + "quick" + os.sep in path or os.sep + "recipes" + os.sep in path:
            continue  # config files (--config_files), checked like a user's
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        lines = [line for line in open(path) if line[:1].isalpha()]
        assert all("# (" in line for line in lines), f"{path}: every key says its (type)"
        for key, spec in file_annotations(path).items():
            assert check_value(key, values[key], spec, default=values[key]) is None, (path, key)
            checked += 1
    assert checked > 60


def test_bad_resume_path_is_refused_before_any_data(fast_config, monkeypatch, tmp_path):
    import recbole_speeder.quick_start as quick_start

    monkeypatch.setattr(quick_start, "create_dataset", lambda config: pytest.fail("data loaded"))
    with pytest.raises(ConfigError, match=r"--resume: '.*no-such-run/stage3' is not a folder"):
        quick_start.run(model="Speeder", dataset="tiny", config_dict=fast_config,
                        resume_file=str(tmp_path / "no-such-run" / "stage3"))
    with pytest.raises(ConfigError, match=r"--resume: '.*nope\.pth' is not a file"):
        quick_start.run(model="SASRec", dataset="tiny", config_dict=fast_config, resume_file=str(tmp_path / "nope.pth"))


def test_gpu_choice_of_the_environment_is_kept_without_gpu_id(fast_config, monkeypatch):
    """RecBole wrote its default gpu_id '0' over CUDA_VISIBLE_DEVICES (a GPU run asked for the
    second GPU and got the first); a gpu_id the user gives still wins."""
    no_gpu_id = {k: v for k, v in fast_config.items() if k != "gpu_id"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    config = Config(model="SASRec", dataset="tiny", config_dict=no_gpu_id)
    assert config["gpu_id"] == "7" and os.environ["CUDA_VISIBLE_DEVICES"] == "7"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    config = Config(model="SASRec", dataset="tiny", config_dict=dict(no_gpu_id, gpu_id=""))
    assert config["gpu_id"] == "" and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert str(config["device"]) == "cpu"
