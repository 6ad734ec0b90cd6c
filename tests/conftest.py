"""Shared fixtures: a throw-away data home and working directory for every run."""

import os
import shutil

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

FAST = {
    "epochs": 2,
    "train_batch_size": 64,
    "eval_batch_size": 64,
    "show_progress": False,
    "state": "WARNING",
    "hidden_size": 16,
    "inner_size": 32,
    "embedding_size": 16,
    "n_layers": 1,
    "MAX_ITEM_LIST_LENGTH": 10,
    "gpu_id": "",
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh cwd (RecBole writes log/, saved/ there) with the shipped test data as data home."""
    data_home = tmp_path / "dataset"
    shutil.copytree(os.path.join(HERE, "data", "tiny"), data_home / "tiny")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fast_config(workdir):
    return dict(FAST, data_path=str(workdir / "dataset"))
