"""Frozen item features: real offline encoders, the on-disk cache, SASRec on the train split only."""

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from recbole_speeder.errors import ConfigError, DataError
from recbole_speeder.features import (
    FeatureCache, TextEncoder, VisionEncoder, encode_with_causal_lm, load_item_features,
)
from recbole_speeder.atomic import atomic_write
from recbole_speeder.features.text import default_text_encoder_path
from recbole_speeder.quick_start import feature_inputs

TITLES = {
    "i0": "red sports car brake pads",
    "i1": "ceramic brake pads for sedans",
    "i2": "stainless steel kitchen knife",
    "i3": "chef knife with wooden handle",
    "i4": "winter wool socks",
    "i5": "cotton running socks",
}
COLORS = {"i0": (220, 20, 20), "i1": (200, 40, 30), "i2": (30, 30, 220), "i3": (20, 200, 40)}


class CountingTextEncoder(TextEncoder):
    """The real MiniLM encoder, counting how often it is asked to encode."""

    calls = 0

    def encode(self, texts):
        type(self).calls += 1
        return super().encode(texts)


def write_dataset(home, name="MMTiny", titles=None, test_targets=None, with_images=True):
    """A small RecBole dataset: 6 users x 10 interactions (LS split), titles, PNG images."""
    folder = home / name
    folder.mkdir(parents=True, exist_ok=True)
    titles = dict(TITLES if titles is None else titles)
    rng = np.random.RandomState(0)
    pool = list(TITLES)
    rows = []
    for u in range(6):
        for t in range(9):
            rows.append((f"u{u}", pool[rng.randint(len(pool))], 100 * u + t))
    # test targets (each user's last interaction), written last so that the order in which
    # item tokens first appear -- hence RecBole's ids -- does not depend on them
    targets = test_targets or {"u0": "X", "u1": "Y", "u2": "i1", "u3": "i2", "u4": "i3", "u5": "i4"}
    for u in range(6):
        rows.append((f"u{u}", targets[f"u{u}"], 100 * u + 50))
    with open(folder / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        f.writelines(f"{u}\t{i}\t{t}\n" for u, i, t in rows)
    images = {"i0": "i0.png", "i1": "i1.png", "i2": "i2.png", "i3": "i3.png", "i4": "i4.png", "i5": ""}
    with open(folder / f"{name}.item", "w") as f:
        f.write("item_id:token\ttitle:token_seq\timage:token\n")
        f.writelines(f"{i}\t{titles[i]}\t{images[i]}\n" for i in TITLES)
        f.write("unused\tan item nobody bought\t\n")
    if with_images:
        (folder / "images").mkdir(exist_ok=True)
        for item, color in COLORS.items():
            Image.new("RGB", (32, 24), color).save(folder / "images" / f"{item}.png")
        (folder / "images" / "i4.png").write_bytes(b"this is not a png")  # corrupt; i5: no file named
    return folder


def build(home, name="MMTiny", **overrides):
    """Config, dataset and training dataloader of a real RecBole SASRec run on ``name``."""
    from recbole.data import data_preparation

    from recbole_speeder.config import Config
    from recbole_speeder.utils import create_dataset

    config_dict = {
        "data_path": str(home), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "show_progress": False, "feature_device": "cpu", "seq_encoder_epochs": 2, "seq_encoder_hidden": 8,
        "seq_encoder_batch_size": 16, "MAX_ITEM_LIST_LENGTH": 10, "checkpoint_dir": str(home / "saved"),
        "seed": 7, "use_gpu": False,
    }
    config_dict.update(overrides)
    config = Config(model="SASRec", dataset=name, config_dict=config_dict)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    return config, dataset, train_data


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RecBole's trainer writes log_tensorboard/ into the cwd
    return tmp_path / "data"


def train_sequential_embeddings(config, dataset, data):
    """SASRec item embeddings trained on ``data``, the way a run trains them (RecBole's SASRec,
    the plugin's trainer; see quick_start.feature_inputs)."""
    return feature_inputs(config)["sequence_encoder"](dataset, data)


def ids(dataset, tokens):
    return [int(i) for i in dataset.token2id(dataset.iid_field, tokens)]


@pytest.mark.slow
def test_real_text_and_vision_features_with_bad_images(home, caplog):
    folder = write_dataset(home)
    config, dataset, _ = build(home, modalities=["text", "vision"])
    CountingTextEncoder.calls = 0
    with caplog.at_level(logging.WARNING):
        features = load_item_features(config, dataset, encoders={"text": CountingTextEncoder(device="cpu")})
    assert features.modalities == ("text", "vision") and features.dims == {"text": 384, "vision": 1280}
    n = dataset.item_num
    text, vision = features.tensors["text"], features.tensors["vision"]
    assert text.shape == (n, 384) and vision.shape == (n, 1280) and text.dtype == torch.float32
    # row 0 = [PAD]; X and Y occur in the interactions but have no .item row -> no title, no image
    i0, i1, i2, i4, i5, x = ids(dataset, ["i0", "i1", "i2", "i4", "i5", "X"])
    for mod in ("text", "vision"):
        assert not features.masks[mod][0] and not features.masks[mod][x]
        assert features.tensors[mod][0].abs().sum() == 0 and features.tensors[mod][x].abs().sum() == 0
    # text: L2-normalised MiniLM means; two brake pads are closer than pads vs knife
    assert torch.allclose(text[i0].norm(), torch.tensor(1.0), atol=1e-4)
    assert text[i0] @ text[i1] > text[i0] @ text[i2] + 0.1
    # vision: corrupt (i4) and unnamed (i5) images -> mask False, zeros; no crash; logged
    assert features.masks["vision"][[i0, i1, i2]].all()
    assert not features.masks["vision"][i4] and not features.masks["vision"][i5]
    assert vision[i4].abs().sum() == 0
    assert torch.dist(vision[i0], vision[i1]) < torch.dist(vision[i0], vision[i2])  # two reds vs blue
    assert "3 of 7 images missing or unreadable" in caplog.text and "i4.png" in caplog.text
    # the cache holds .item rows by token (the unused item included), written atomically
    names = sorted(os.listdir(folder / "features"))
    assert [n for n in names if n.startswith(".tmp")] == []
    assert sum(n.startswith("text-") for n in names) == 2 and sum(n.startswith("vision-") for n in names) == 2


def test_dataset_without_images_has_no_vision(home, caplog):
    write_dataset(home, with_images=False)
    config, dataset, _ = build(home, modalities=["text", "vision"], text_encoder=default_text_encoder_path())
    with caplog.at_level(logging.INFO):
        features = load_item_features(config, dataset)
    assert features.modalities == ("text",)
    assert "no vision modality" in caplog.text


def test_cache_hit_miss_and_invalidation(home):
    folder = write_dataset(home)
    config, dataset, _ = build(home, modalities=["text"])
    encoder = CountingTextEncoder(device="cpu")
    CountingTextEncoder.calls = 0
    first = load_item_features(config, dataset, encoders={"text": encoder})
    assert CountingTextEncoder.calls == 1
    cache = FeatureCache(str(folder / "features"))
    npy, sidecar = cache.paths("text", encoder.identity)
    stamp = os.stat(npy).st_mtime_ns
    # hit: nothing recomputed, the file untouched, the same numbers
    second = load_item_features(config, dataset, encoders={"text": encoder})
    assert CountingTextEncoder.calls == 1 and os.stat(npy).st_mtime_ns == stamp
    assert torch.equal(first.tensors["text"], second.tensors["text"])
    # a changed title -> recomputed, only that row differs
    titles = dict(TITLES, i2="a completely different garden hose")
    write_dataset(home, titles=titles)
    third = load_item_features(config, dataset, encoders={"text": encoder})
    assert CountingTextEncoder.calls == 2
    i1, i2 = ids(dataset, ["i1", "i2"])
    assert not torch.allclose(third.tensors["text"][i2], first.tensors["text"][i2])
    assert torch.equal(third.tensors["text"][i1], first.tensors["text"][i1])
    # another encoder (name) -> another cache entry, recomputed; the first stays valid
    other = CountingTextEncoder(name=default_text_encoder_path(), device="cpu")
    assert cache.paths("text", other.identity)[0] != npy
    load_item_features(config, dataset, encoders={"text": other})
    assert CountingTextEncoder.calls == 3
    load_item_features(config, dataset, encoders={"text": encoder})
    assert CountingTextEncoder.calls == 3
    # a .npy replaced behind the sidecar's back (interrupted write) is a miss, not a hit
    np.save(npy, np.zeros((3, 3), dtype=np.float32))
    load_item_features(config, dataset, encoders={"text": encoder})
    assert CountingTextEncoder.calls == 4
    assert not [n for n in os.listdir(folder / "features") if n.startswith(".tmp")]


def test_atomic_write_and_failed_compute_leave_no_files(tmp_path):
    target = tmp_path / "m.npy"
    target.write_bytes(b"old")

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(DataError, match=f"{target} could not be written \\(RuntimeError: disk full\\); is its disk full"):
        atomic_write(str(target), broken)
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["m.npy"]

    cache = FeatureCache(str(tmp_path / "features"))

    def failing():
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("text", {"name": "x"}, "fp", ["a"], failing)
    assert not (tmp_path / "features").exists() or os.listdir(tmp_path / "features") == []
    # loading a large cached matrix is fast (plain np.load); evidence: it is read back exactly
    big = np.random.RandomState(0).randn(3000, 4096).astype(np.float32)
    tokens = [str(i) for i in range(3000)]
    cache.save("text", {"name": "big"}, "fp", tokens, big, np.ones(3000, bool))
    loaded = cache.load("text", {"name": "big"}, "fp")
    assert loaded.hit and np.array_equal(loaded.matrix, big)
    assert cache.load("text", {"name": "big"}, "other-inputs") is None


@pytest.mark.slow
def test_sasrec_features_see_the_training_split_only(home):
    """Changing only test targets (incl. test-only items X, Y) must not change the embeddings."""
    write_dataset(home, name="SeqA")
    config_a, dataset_a, train_a = build(home, name="SeqA")
    write_dataset(home, name="SeqB", test_targets={"u0": "X", "u1": "Y", "u2": "i5", "u3": "i0", "u4": "i1", "u5": "i2"})
    config_b, dataset_b, train_b = build(home, name="SeqB")
    assert list(dataset_a.field2id_token["item_id"]) == list(dataset_b.field2id_token["item_id"])
    x, y = ids(dataset_a, ["X", "Y"])
    train_targets = set(train_a.dataset.inter_feat["item_id"].tolist())
    train_histories = set(train_a.dataset.inter_feat["item_id_list"].flatten().tolist())
    assert x not in train_targets | train_histories and y not in train_targets | train_histories

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    emb_a = train_sequential_embeddings(config_a, dataset_a, train_a)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random state is untouched
    emb_b = train_sequential_embeddings(config_b, dataset_b, train_b)
    assert emb_a.shape == (dataset_a.item_num, 8)
    assert torch.equal(emb_a, emb_b)
    # control: had the full dataset (valid + test samples) been used, the two would differ
    leak_a = train_sequential_embeddings(config_a, dataset_a, dataset_a)
    leak_b = train_sequential_embeddings(config_b, dataset_b, dataset_b)
    assert not torch.equal(leak_a, leak_b)
    # same seed, same numbers; and the training did move the embeddings
    assert torch.equal(train_sequential_embeddings(config_a, dataset_a, train_a), emb_a)

    # through the loader: cached by token, row 0 = [PAD], a second call is a hit
    features = load_item_features(config_a, dataset_a, train_a, **feature_inputs(config_a))
    assert features.modalities == ("text", "vision", "seq")
    seq = features.tensors["seq"]
    assert torch.equal(seq[1:], emb_a[1:]) and seq[0].abs().sum() == 0 and not features.masks["seq"][0]
    folder = home / "SeqA" / "features"
    stamps = {n: os.stat(folder / n).st_mtime_ns for n in os.listdir(folder)}
    again = load_item_features(config_a, dataset_a, train_a, **feature_inputs(config_a))
    assert torch.equal(again.tensors["seq"], seq)
    assert {n: os.stat(folder / n).st_mtime_ns for n in os.listdir(folder)} == stamps


def test_causal_lm_text_features_and_config_errors(home):
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[EOS]": 1}
    for word in " ".join(TITLES.values()).split():
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="[EOS]")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4,
    ))
    texts = list(TITLES.values())
    batched = encode_with_causal_lm(model, tokenizer, texts, batch_size=4, show_progress=False)
    assert batched.shape == (len(texts), 32)
    # padding does not change a text's vector: one at a time == batched
    single = torch.cat([encode_with_causal_lm(model, tokenizer, [t], 1, show_progress=False) for t in texts])
    assert torch.allclose(batched, single, atol=1e-5)
    ids_ = tokenizer(texts[0], return_tensors="pt")["input_ids"]
    hidden = model.model(input_ids=ids_).last_hidden_state.mean(1)
    assert torch.allclose(batched[0], hidden[0], atol=1e-5)

    write_dataset(home)
    config, dataset, _ = build(home, modalities=["text", "sound"])
    with pytest.raises(ConfigError, match="modalities"):
        load_item_features(config, dataset)
    config, dataset, _ = build(home, modalities=["text"], TITLE_FIELD="name")
    with pytest.raises(DataError, match="no column 'name'.*TITLE_FIELD"):
        load_item_features(config, dataset)
    config, dataset, _ = build(home, modalities=["seq"])
    with pytest.raises(ConfigError, match="training data"):
        load_item_features(config, dataset)
    with pytest.raises(ConfigError, match="could not be loaded"):
        VisionEncoder(str(home / "no-such-model-folder"), device="cpu").load()


def test_text_encoder_folder_without_a_model_is_named_as_such(tmp_path):
    from recbole_speeder.features.text import TextEncoder

    folder = tmp_path / "my-encoder"
    folder.mkdir()
    (folder / "notes.txt").write_text("weights to come")
    with pytest.raises(ConfigError, match=r"my-encoder' is a local folder but holds no encoder that loads.*notes\.txt"):
        TextEncoder(str(folder), device="cpu").load()
    with pytest.raises(ConfigError, match="not a local folder"):
        TextEncoder(str(tmp_path / "no-such-folder"), device="cpu").load()
