"""Shared fixtures: a throw-away data home and working directory for every run."""

import importlib.util
import os
import shutil

import pytest
import torch

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


def load_benchmark_script(name):
    """The module of ``benchmarks/<name>.py`` (a script folder, not a package)."""
    path = os.path.join(os.path.dirname(HERE), "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tiny_with_images(data_home):
    """``data_home/tiny``: the shipped tiny with an image column, items i1-i3 with pictures (the
    others none); returns ``data_home``."""
    import numpy as np

    from recbole_speeder.data.prepare.synthetic import draw_item_image

    folder = data_home / "tiny"
    shutil.copytree(os.path.join(HERE, "data", "tiny"), folder)
    (folder / "images").mkdir()
    rng = np.random.default_rng(0)
    lines = (folder / "tiny.item").read_text().splitlines()
    rows = [lines[0] + "\timage:token"]
    for line in lines[1:]:
        token = line.split("\t")[0]
        name = ""
        if token in ("i1", "i2", "i3"):
            name = f"{token}.png"
            draw_item_image(rng, int(token[1:]), size=64).save(folder / "images" / name)
        rows.append(f"{line}\t{name}")
    (folder / "tiny.item").write_text("\n".join(rows) + "\n")
    return data_home


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


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    """A 2-layer Llama with SmolLM2's real tokenizer, saved as a local model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from recbole_speeder.llm.backbone import load_tokenizer

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
