"""SASRecEF and SASRecLF (the Speeder paper's multimodal ID baselines, appendix B): catalog scores,
predict, a missing modality, whole runs on tiny with images and their checkpoints."""

import logging
import shutil

import pytest
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.features.loader import ItemFeatures
from recbole_speeder.quick_start import run

from conftest import FAST, HERE, write_tiny_with_images

MODELS = ("SASRecEF", "SASRecLF")
# one epoch, no cold-target report: the runs below stay a few seconds
RUN = dict(FAST, epochs=1, cold_item_max_inter=None)


def _config(model, data_home, **overrides):
    from recbole_speeder.config import Config

    return Config(model=model, dataset="tiny", config_dict=dict(FAST, data_path=str(data_home), **overrides))


def _data(config):
    from recbole.data import data_preparation

    from recbole_speeder.utils import create_dataset

    return data_preparation(config, create_dataset(config))


def _features(n_items, vision=True, seed=0):
    """Made-up frozen features: text for every item, an image for the even ids only."""
    generator = torch.Generator().manual_seed(seed)
    features = ItemFeatures()
    dims = {"text": 12, "vision": 10} if vision else {"text": 12}
    for m, dim in dims.items():
        mask = torch.ones(n_items, dtype=torch.bool) if m == "text" else torch.arange(n_items) % 2 == 0
        mask[0] = False
        features.tensors[m] = torch.randn(n_items, dim, generator=generator) * mask[:, None]
        features.masks[m], features.dims[m] = mask, dim
    return features


def _build(model_name, config, train_data, features):
    from recbole_speeder.utils import get_model

    train_data._dataset.attach_side_info(item_features=features)
    torch.manual_seed(0)
    return get_model(model_name)(config, train_data._dataset)


@pytest.fixture(scope="module")
def plain_home(tmp_path_factory):
    """The shipped tiny (titles, no images: the ml-100k case)."""
    home = tmp_path_factory.mktemp("fusion-plain") / "dataset"
    shutil.copytree(f"{HERE}/data/tiny", home / "tiny")
    return home


@pytest.fixture(scope="module")
def image_home(tmp_path_factory):
    """tiny with images of items i1-i3; its features are computed by the first run and read from
    the cache by the others."""
    return write_tiny_with_images(tmp_path_factory.mktemp("fusion-images") / "dataset")


@pytest.mark.parametrize("model_name", MODELS)
def test_full_sort_predict_has_the_catalog_s_shape_and_equals_predict(plain_home, model_name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = _config(model_name, plain_home)
    train, _, test = _data(config)
    model = _build(model_name, config, train, _features(train._dataset.item_num))
    interaction = next(iter(test))[0][torch.arange(12)]
    loss = model.calculate_loss(next(iter(train)))
    loss.backward()
    assert torch.isfinite(loss) and model.projections["vision"].linear.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        full = model.full_sort_predict(interaction)
        assert full.shape == (12, model.n_items)
        items = torch.randint(1, model.n_items, (12, 5), generator=torch.Generator().manual_seed(0))
        rows = interaction.repeat_interleave(5)
        rows.update(type(interaction)({model.ITEM_ID: items.reshape(-1)}))
        torch.testing.assert_close(model.predict(rows).view(12, 5), full.gather(1, items), rtol=1e-5, atol=1e-5)
        # the frozen features are read: other text features, other scores
        model.features.feature_text.mul_(-1.0)
        assert not torch.allclose(model.full_sort_predict(interaction), full)


@pytest.mark.parametrize("model_name", MODELS)
def test_an_item_without_an_image_gets_nothing_from_the_vision_input(plain_home, model_name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = _config(model_name, plain_home)
    train, _, _ = _data(config)
    model = _build(model_name, config, train, _features(train._dataset.item_num))
    table = model.item_table().detach()
    no_image = ~model.features.mask("vision")
    text = model.projections["text"](model.features.feature("text"), model.features.mask("text")).detach()
    hidden = model.hidden_size
    if model_name == "SASRecEF":  # e(i) = E_id(i) + text(i) + vision(i) -> E_id(i) + text(i) without an image
        torch.testing.assert_close(table[no_image], (model.item_embedding.weight.detach() + text)[no_image])
    else:  # [id; text; vision]: the vision slice is zero without an image
        assert table.shape[1] == 3 * hidden
        assert torch.equal(table[no_image, 2 * hidden:], torch.zeros_like(table[no_image, 2 * hidden:]))
        assert table[~no_image, 2 * hidden:].abs().sum(dim=1).min() > 0


@pytest.mark.parametrize("model_name", MODELS)
def test_a_dataset_without_images_fuses_id_and_text(plain_home, model_name, monkeypatch, tmp_path, caplog):
    monkeypatch.chdir(tmp_path)
    config = _config(model_name, plain_home)
    train, _, test = _data(config)
    with caplog.at_level(logging.WARNING):
        model = _build(model_name, config, train, _features(train._dataset.item_num, vision=False))
    assert f"{model_name}: the dataset has no vision features" in caplog.text
    assert model.features.modalities == ("text",) and set(model.projections) == {"text"}
    assert not any("vision" in key for key in model.state_dict())
    width = model.hidden_size * (2 if model_name == "SASRecLF" else 1)
    assert model.item_table().shape == (model.n_items, width)
    model.eval()
    assert model.full_sort_predict(next(iter(test))[0]).shape[1] == model.n_items
    # asking for images only, on a dataset that has none, leaves nothing to fuse
    vision_only = _config(model_name, plain_home, modalities=["vision"])
    with pytest.raises(ConfigError, match="loaded none"):
        _build(model_name, vision_only, train, _features(train._dataset.item_num, vision=False))


@pytest.mark.parametrize("model_name", MODELS)
def test_bpr_scores_recbole_s_sampled_negative(plain_home, model_name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = _config(model_name, plain_home, loss_type="BPR")
    assert config["train_neg_sample_args"]["sample_num"] == 1  # RecBole's default sampling, kept for BPR
    train, _, _ = _data(config)
    model = _build(model_name, config, train, _features(train._dataset.item_num))
    batch = next(iter(train))
    model.eval()  # no dropout: the loss below is computed twice
    table = model.item_table()
    seq = model.sequence_output(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], table)
    pos, neg = ((seq * table[batch[key]]).sum(dim=-1) for key in (model.POS_ITEM_ID, model.NEG_ITEM_ID))
    loss = model.calculate_loss(batch)
    torch.testing.assert_close(loss, -torch.log(1e-10 + torch.sigmoid(pos - neg)).mean())


@pytest.mark.parametrize("model_name", MODELS)
def test_the_seq_modality_is_refused_before_any_data(plain_home, model_name):
    with pytest.raises(ConfigError, match="its id input is its own trainable item embedding"):
        _config(model_name, plain_home, modalities=["text", "seq"])


@pytest.mark.slow
@pytest.mark.parametrize("model_name", MODELS)
def test_a_run_with_images_ranks_and_its_checkpoint_gives_the_same_test_metrics(image_home, model_name, monkeypatch,
                                                                                 tmp_path):
    """The real text and image encoders; the first run fills the data home's feature cache, the
    others read it."""
    monkeypatch.chdir(tmp_path)
    config = dict(RUN, data_path=str(image_home))
    result = run(model=model_name, dataset="tiny", config_dict=config)
    assert {"recall@10", "ndcg@10", "mrr@10"} <= set(result["test_result"])
    assert result["candidate_test"]["n"] == 60 and 0.0 <= result["candidate_test"]["vhr@1"] <= 1.0
    state = torch.load(result["saved_model_file"], map_location="cpu", weights_only=True)["state_dict"]
    assert {"projections.text.linear.weight", "projections.vision.linear.weight"} <= set(state)
    assert not any(key.startswith("features.") for key in state)  # the frozen features are rebuilt from the cache
    assert ("branches.vision.trm_encoder.layer.0.multi_head_attention.query.weight" in state) == (model_name == "SASRecLF")

    loaded = run(model=model_name, dataset="tiny", config_dict=config, model_file=result["saved_model_file"])

    def scores(metrics):
        return {k: v for k, v in metrics.items() if not k.endswith("_ms_per_sample")}

    assert loaded["test_result"] == result["test_result"]
    assert scores(loaded["candidate_test"]) == scores(result["candidate_test"])
