"""The multimodal sample: deterministic, clean by default, carries signal, loads in RecBole."""

import collections
import importlib.util
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from recbole_speeder.data.prepare.amazon import prepare_amazon
from recbole_speeder.data.prepare.cli import main
from recbole_speeder.data.prepare.synthetic import CATEGORY_WORDS, generate_synthetic


def _files(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f][1:]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The default sample made through the CLI, as a user would."""
    out = tmp_path_factory.mktemp("data") / "dataset"
    assert main(["synthetic", "--out", str(out)]) == 0
    return out


def test_same_seed_same_bytes_other_seed_differs(sample, tmp_path):
    again = tmp_path / "dataset"
    assert main(["synthetic", "--out", str(again)]) == 0
    first, second = _files(sample), _files(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    assert any(name.startswith(os.path.join("MMSynth", "images")) for name in first)

    other = generate_synthetic(str(tmp_path / "raw7"), seed=7)
    assert open(other["reviews"], "rb").read() != first[os.path.join("raw", "MMSynth", "MMSynth.jsonl.gz")]
    assert open(other["meta"], "rb").read() != first[os.path.join("raw", "MMSynth", "meta_MMSynth.jsonl.gz")]


def test_default_sample_is_clean_and_sized(sample):
    import json

    folder = sample / "MMSynth"
    stats = json.loads((folder / "MMSynth.stats.json").read_text())
    assert stats["total"]["item"] == 240
    assert 1500 <= stats["total"]["seq"] <= 2500
    for rule in ("no_metadata", "empty_title", "no_image_file", "unusable_image", "rare_items"):
        assert stats["removed"][rule] == 0, rule
    assert stats["sources"]["reviews"]["malformed_lines"] == 0
    inter = _rows(folder / "MMSynth.inter")
    counts = collections.Counter(row[2] for row in inter)
    assert min(counts.values()) >= 8
    assert min(collections.Counter(row[0] for row in inter).values()) >= 9
    raw_images = os.listdir(sample / "raw" / "MMSynth" / "images")
    assert any(n.endswith(".png") for n in raw_images) and any("._AC_." in n for n in raw_images)
    for _, title, image in _rows(folder / "MMSynth.item")[:20]:
        with Image.open(folder / "images" / image) as picture:
            assert picture.size == (64, 64) and picture.format in ("PNG", "JPEG")
        assert title and "\t" not in title


def test_modalities_carry_signal(tmp_path):
    paths = generate_synthetic(str(tmp_path / "raw"), seed=3, n_users=300)
    category = paths["categories"]
    out = tmp_path / "dataset"
    prepare_amazon("MMSynth", paths["reviews"], paths["meta"], paths["images"], out_dir=str(out),
                   seed=3, log=lambda m: None)
    folder = out / "MMSynth"

    # ids: the most frequent successor of the last history item (counted on train) hits the target
    successors = collections.defaultdict(collections.Counter)
    for _, _, history, target in _rows(folder / "MMSynth.train.inter"):
        seq = history.split(" ") + [target]
        for a, b in zip(seq, seq[1:]):
            successors[a][b] += 1
    test = _rows(folder / "MMSynth.test.inter")
    hits = sum(successors[h.split(" ")[-1]].most_common(1)[0][0] == t for _, _, h, t in test)
    assert hits / len(test) > 0.2  # chance is about 1/240

    # text: most titles hold a word of their own category
    items = _rows(folder / "MMSynth.item")
    own = sum(any(w in CATEGORY_WORDS[category[i]] for w in t.lower().split()) for i, t, _ in items)
    assert own / len(items) > 0.8

    # vision: the mean colour separates categories better than chance (nearest centroid)
    colours = {i: np.asarray(Image.open(folder / "images" / f).convert("RGB"), dtype=float).mean((0, 1))
               for i, _, f in items}
    centroids = {c: np.mean([v for i, v in colours.items() if category[i] == c], axis=0) for c in range(8)}
    right = sum(min(centroids, key=lambda c: np.linalg.norm(v - centroids[c])) == category[i]
                for i, v in colours.items())
    assert right / len(colours) > 0.5  # chance is 1/8


def test_defects_flag_adds_broken_items_that_preparation_removes(tmp_path):
    paths = generate_synthetic(str(tmp_path / "raw"), seed=11, n_users=300, defects=True)
    broken = paths["defects"]
    logs = []
    stats = prepare_amazon("MMSynth", paths["reviews"], paths["meta"], paths["images"],
                           out_dir=str(tmp_path / "dataset"), log=logs.append)
    assert stats["sources"]["reviews"]["malformed_lines"] == broken["malformed_lines"] == 3
    assert stats["removed"]["empty_title"] == 3
    assert stats["removed"]["no_image_file"] == 3
    assert stats["removed"]["no_metadata"] == 2
    assert stats["removed"]["unusable_image"] == 2
    assert {b["item"] for b in stats["unusable_images"]} == set(broken["corrupt_image"])
    kept = {row[0] for row in _rows(tmp_path / "dataset" / "MMSynth" / "MMSynth.item")}
    for kind in ("empty_title", "missing_image", "corrupt_image", "no_metadata"):
        assert not kept & set(broken[kind]), kind
    assert len(kept) == 230 - stats["removed"]["rare_items"]


@pytest.mark.skipif(importlib.util.find_spec("recbole_speeder.compat") is None,
                    reason="recbole_speeder.compat (numpy-2 / pandas-3 fixes, lead) is not written yet")
def test_sample_loads_in_recbole(sample):
    from recbole.data import data_preparation

    from recbole_speeder.config import Config
    from recbole_speeder.utils import create_dataset

    # split_mode: auto finds the 7:2:1 split files and shares one id space for histories
    config = Config(model="SASRec", dataset="MMSynth", config_dict={
        "data_path": str(sample), "gpu_id": "", "train_batch_size": 64, "eval_batch_size": 64})
    assert config["split_mode"] == "sequence"
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    folder = sample / "MMSynth"
    sizes = [len(_rows(folder / f"MMSynth.{s}.inter")) for s in ("train", "valid", "test")]
    assert [len(loader.dataset) for loader in (train, valid, test)] == sizes
    assert dataset.item_num == 241  # 240 items + [PAD]
    first = _rows(folder / "MMSynth.train.inter")[0]
    row = train.dataset.inter_feat[0]
    history = row["item_id_list"][: int(row["item_length"])].tolist()
    assert dataset.id2token("item_id", history).tolist() == first[2].split(" ")
    assert dataset.id2token("item_id", int(row["item_id"])) == first[3]


def test_a_model_scored_per_user_is_refused_before_candidates_are_drawn(sample, tmp_path, monkeypatch):
    """Pop evaluates one row per user, the 7:2:1 split has several sequences per user: one
    ConfigError, and no candidate file of its id mapping left behind for the sequential models."""
    from recbole_speeder.errors import ConfigError
    from recbole_speeder.quick_start import run

    home = tmp_path / "dataset"
    shutil.copytree(sample / "MMSynth", home / "MMSynth")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="Pop cannot be scored under the candidate protocol: its valid"):
        run(model="Pop", dataset="MMSynth", config_dict={"data_path": str(home), "gpu_id": "", "epochs": 1,
                                                         "show_progress": False, "state": "ERROR"})
    assert not (home / "MMSynth" / "candidates").exists()
