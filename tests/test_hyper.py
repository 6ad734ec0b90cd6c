"""Hyper-parameter search: RecBole's params-file format and HyperTuning through the plugin."""

import os

import pandas as pd
import pytest

from recbole_speeder.errors import ConfigError
from recbole_speeder.hyper import build_space, read_params_file


def test_two_trials_of_sasrec_write_the_best_parameters_and_a_table(fast_config, workdir, capsys):
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from run_hyper import main

    (workdir / "sasrec.hyper").write_text("# RecBole's format\nlearning_rate choice [0.01,0.0001]\n")
    args = [f"--{k}={v}" for k, v in dict(fast_config, epochs=1).items()]
    main(["--model=SASRec", "--dataset=tiny", "--params_file=sasrec.hyper", "--output_file=out/sasrec.result", *args])
    printed = capsys.readouterr().out
    table = pd.read_csv(workdir / "out" / "sasrec.result", sep="\t", comment="#")
    assert list(table["trial"]) == [1, 2] and sorted(table["learning_rate"]) == [0.0001, 0.01]
    assert {"valid_score", "valid:mrr@10", "test:ndcg@10", "candidate:vhr@1"} <= set(table.columns)
    best = table.loc[table["valid_score"].idxmax()]
    header = (workdir / "out" / "sasrec.result").read_text().splitlines()
    assert header[1] == f"# best params: learning_rate:{best['learning_rate']:g}"
    assert f"best params: {{'learning_rate': {best['learning_rate']:g}}}" in printed
    assert os.listdir(workdir / "out") == ["sasrec.result"]  # written atomically: no temporary left


def test_params_file_kinds_and_errors(tmp_path):
    path = tmp_path / "space.hyper"
    path.write_text("learning_rate loguniform -8,0\nhidden_size choice [32,64]\n\ndropout_prob uniform 0.1,0.5\n"
                    "train_batch_size quniform 64,512,64  # an integer\nmlp_hidden_size choice ['[64,64]','[128]']\n")
    params = read_params_file(str(path))
    assert params[0] == ("learning_rate", "loguniform", [-8.0, 0.0]) and params[1][2] == [32, 64]
    assert params[4][2] == ["[64,64]", "[128]"]
    assert set(build_space(params)) == {"learning_rate", "hidden_size", "dropout_prob", "train_batch_size",
                                        "mlp_hidden_size"}
    for text, message in [("learning_rate loguniform 0,-8\n", r"line 1: loguniform needs low,high with low < high"),
                          ("learning_rate normal 0,1\n", r"line 1: unknown kind 'normal'"),
                          ("\nhidden_size choice [32,\n", r"line 2: choice needs a list"),
                          ("learning_rat choice [0.1]\n", r"learning_rat.*Did you mean 'learning_rate'")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_params_file(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        read_params_file(str(tmp_path / "none.hyper"))
