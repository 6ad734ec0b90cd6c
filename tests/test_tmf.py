"""TMF: LLaRA with one projected token per item modality (text, vision, seq) after each title."""

import os

import pytest
import torch
import yaml

from recbole_speeder.config import PROPERTIES_DIR
from recbole_speeder.errors import ConfigError
from recbole_speeder.features.loader import ItemFeatures
from recbole_speeder.quick_start import run

DIMS = {"text": 6, "vision": 5, "seq": 4}


def hand_features(n_items, modalities):
    """Random item features of distinct widths (row 0 = [PAD]), as the feature loader returns them."""
    return ItemFeatures.random(n_items, {m: DIMS[m] for m in modalities}, torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def tiny_tmf(tmp_path_factory, tiny_llm_dir):
    """``build(modalities)``: a TMF on tiny with the tiny Llama and hand-made features of ``modalities``."""
    import shutil

    from recbole.data import data_preparation

    from recbole_speeder.config import Config
    from recbole_speeder.data.item_table import item_titles
    from recbole_speeder.model.tmf import TMF
    from recbole_speeder.utils import create_dataset
    from conftest import FAST, HERE

    home = tmp_path_factory.mktemp("tmf-home")
    shutil.copytree(os.path.join(HERE, "data", "tiny"), home / "dataset" / "tiny")
    config = Config(model="TMF", dataset="tiny", config_dict=dict(
        FAST, data_path=str(home / "dataset"), checkpoint_dir=str(home / "saved"), llm_path=tiny_llm_dir,
        history_len=4, title_max_tokens=8))
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    split = train_data._dataset

    def build(modalities):
        split.attach_side_info(item_titles=item_titles(config, split),
                               item_features=hand_features(split.item_num, modalities))
        torch.manual_seed(0)
        return TMF(config, split)

    return build


def test_prompt_puts_each_title_then_one_token_per_modality_in_order(tiny_tmf):
    model = tiny_tmf(("seq", "vision", "text"))  # the order of the prompt is fixed, not the features'
    assert model.token_modalities == ("text", "vision", "seq") and model.prompt.item_slots == 3
    prompt = model.prompt
    histories, candidates, answers = [[1, 2, 3], [4, 5]], [[6, 7, 8, 9, 10], [11, 12, 13, 14, 15]], [8, 14]
    batch, labels = prompt.build(histories, candidates, hybrid=[True, False], answers=answers)
    pieces, pad, sep = prompt._rec_pieces, prompt.pad_id, prompt._sep_ids

    def expected(history, cands, slots, answer):
        ids, items = list(pieces[0]), [0] * len(pieces[0])
        for k, group in enumerate((history, cands)):
            for j, item in enumerate(group):
                title = prompt.title_ids(item)
                ids += title + [pad] * slots
                items += [0] * len(title) + [item] * slots
                if j + 1 < len(group):
                    ids += sep
                    items += [0] * len(sep)
            ids += pieces[k + 1]
            items += [0] * len(pieces[k + 1])
        answer_ids = prompt.answer_ids(answer)
        return ids + answer_ids, items + [0] * len(answer_ids)

    for row, slots in ((0, 3), (1, 0)):  # hybrid row: title + text, vision, seq tokens; text-only row: titles
        ids, items = expected(histories[row], candidates[row], slots, answers[row])
        keep = batch.attention_mask[row].bool()
        assert batch.input_ids[row][keep].tolist() == ids  # token by token
        assert batch.item_ids[row][keep].tolist() == items
        assert labels[row][-len(prompt.answer_ids(answers[row])):].tolist() == prompt.answer_ids(answers[row])
    # each placeholder's input embedding is its item's feature of its modality through that modality's projector
    model.eval()
    with torch.no_grad():
        embeds, batch = model.embed(batch)
        words = model.llm.get_input_embeddings()(batch.input_ids)
    rows, positions = batch.slot_positions()
    assert rows.tolist() == [0] * 3 * 8
    for k, pos in enumerate(positions.tolist()):
        item, modality = int(batch.item_ids[0, pos]), model.token_modalities[k % 3]
        with torch.no_grad():
            want = model.projectors[modality](getattr(model, f"feature_{modality}")[item])
        assert torch.allclose(embeds[0, pos], want, atol=1e-6)
    others = batch.item_ids == 0
    assert torch.equal(embeds[others], words[others])


def test_a_modality_the_run_lacks_is_left_out_of_the_prompt(tiny_tmf):
    model = tiny_tmf(("text", "seq"))  # ml-100k: no images
    assert model.token_modalities == ("text", "seq") and set(model.projectors) == {"text", "seq"}
    batch, _ = model.prompt.build([[1, 2]], [[3, 4, 5, 6, 7]], hybrid=[True])
    row = batch.item_ids[0]
    assert row[row > 0].tolist() == [i for i in (1, 2, 3, 4, 5, 6, 7) for _ in range(2)]
    for pos in (row > 0).nonzero().squeeze(1).tolist()[::2]:  # the two tokens of an item stand together
        assert row[pos + 1] == row[pos]
        assert batch.input_ids[0, pos - len(model.prompt.title_ids(int(row[pos]))):pos].tolist() == \
            model.prompt.title_ids(int(row[pos]))
    with torch.no_grad():
        vectors = model.slot_vectors(batch.to("cpu").slot_item_ids())
    assert vectors.shape == (14, model.llm.get_input_embeddings().embedding_dim)
    with pytest.raises(ConfigError, match="TMF needs item features"):
        tiny_tmf(())


def test_properties_are_llaras_but_the_modalities_and_it_trains_with_llaras_curriculum():
    from recbole_speeder.trainer import LLaRATrainer
    from recbole_speeder.utils import get_trainer
    from recbole.utils import ModelType

    def values(name):
        with open(os.path.join(PROPERTIES_DIR, "model", name)) as f:
            return yaml.safe_load(f)

    tmf, llara = values("TMF.yaml"), values("LLaRA.yaml")
    assert tmf.pop("modalities") == ["text", "vision", "seq"] and llara.pop("modalities") == ["seq"]
    assert tmf == llara
    assert get_trainer(ModelType.SEQUENTIAL, "TMF") is LLaRATrainer


@pytest.fixture
def tmf_config(fast_config, tiny_llm_dir):
    return dict(fast_config, llm_path=tiny_llm_dir, epochs=1, steps_per_epoch=2, train_batch_size=8,
                eval_batch_size=64, history_len=4, title_max_tokens=8, generation_max_new_tokens=6,
                text_encoder="llm", seq_encoder_epochs=1, seq_encoder_hidden=16)


def test_tmf_trains_answers_with_a_title_and_its_checkpoint_round_trips(tmf_config):
    from safetensors.torch import load_file

    result = run(model="TMF", dataset="tiny", config_dict=tmf_config)
    cand = result["candidate_test"]
    assert cand["n"] == 60 and 0.0 <= cand["valid_ratio"] <= 1.0 and "mrr" not in cand  # generated titles
    assert cand["vhr@1"] == pytest.approx(cand["valid_ratio"] * cand["hr@1"], abs=1e-3)
    folder = result["saved_model_file"]
    assert os.path.isfile(os.path.join(folder, "adapter", "adapter_config.json"))  # LoRA on the backbone
    plugin = load_file(os.path.join(folder, "plugin.safetensors"))
    # tiny has no images: a text and a seq projector, no vision one
    assert {k.split(".")[1] for k in plugin if k.startswith("projectors.")} == {"text", "seq"}
    reloaded = run(model="TMF", dataset="tiny", config_dict=tmf_config, model_file=folder)

    def scores(c):
        return {k: v for k, v in c.items() if not k.endswith("_ms_per_sample")}

    assert scores(reloaded["candidate_test"]) == scores(cand)


def test_recboles_ranking_is_refused_before_any_data(fast_config, tiny_llm_dir):
    from recbole_speeder.config import Config

    with pytest.raises(ConfigError, match=r"eval_args mode 'full': TMF cannot rank the catalog"):
        Config(model="TMF", dataset="tiny", config_dict=dict(fast_config, llm_path=tiny_llm_dir,
                                                             eval_args={"mode": "full"}))
