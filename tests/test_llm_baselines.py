"""LLM baselines (TALLRec, LLaRA, ZeroShot): title prompts, answer matching, scoring, runs."""

import os

import pandas as pd
import pytest
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.llm.answers import IGNORE, answer_token_logprobs, match_title, title_scores
from recbole_speeder.quick_start import run

TITLES = ["Toy Story", "Toy Story 2", "Brake Pad Set", "Oil Filter", "Seat Cover"]


# -- answer matching ------------------------------------------------------------------------
@pytest.mark.parametrize("answer, expected", [
    ("Oil Filter", 3),                                    # exact title
    ("oil filter.", 3),                                   # case and punctuation ignored
    ("The user will buy the Brake Pad Set next", 2),      # title with extra words
    ("Toy Story 2", 1),                                   # a longer title hides the shorter one inside it
    ("Toy Story", 0),
    ("Oil Filter or Seat Cover", None),                   # two titles named
    ("Toy Story and Toy Story 2", None),                  # the shorter one also stands alone
    ("a nice lamp", None),                                # none named
    ("Oil Filtering kit", None),                          # only whole words count
    ("", None),
    ("Seat Cover\nOil Filter", 4),                        # only the first line counts
])
def test_match_title_rules(answer, expected):
    assert match_title(answer, TITLES) == expected


def test_match_title_refuses_a_title_two_candidates_share():
    assert match_title("Oil Filter", ["Oil Filter", "Seat Cover", "oil filter"]) is None


# -- a LLaRA model on the tiny dataset (built once) ---------------------------------------------
@pytest.fixture(scope="module")
def llara(tmp_path_factory, tiny_llm_dir):
    """(config, train_data, model) of LLaRA on tiny with a 1-epoch SASRec and the tiny Llama."""
    import shutil

    from recbole.data import data_preparation

    from recbole_speeder.config import Config
    from recbole_speeder.model.llara import LLaRA
    from recbole_speeder.quick_start import attach_side_info
    from recbole_speeder.utils import create_dataset
    from conftest import FAST, HERE

    home = tmp_path_factory.mktemp("llara-home")
    shutil.copytree(os.path.join(HERE, "data", "tiny"), home / "dataset" / "tiny")
    config = Config(model="LLaRA", dataset="tiny", config_dict=dict(
        FAST, data_path=str(home / "dataset"), checkpoint_dir=str(home / "saved"), llm_path=tiny_llm_dir,
        history_len=4, seq_encoder_epochs=1, seq_encoder_hidden=16, title_max_tokens=8, steps_per_epoch=3))
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    attach_side_info(config, train_data._dataset, train_data, LLaRA)
    torch.manual_seed(0)
    return config, train_data, LLaRA(config, train_data._dataset)


def test_prompts_show_titles_and_llara_places_one_embedding_token_after_each(llara):
    config, train_data, model = llara
    prompt, dataset = model.prompt, train_data._dataset
    histories, candidates = [[1, 2, 3], [4, 5]], [[6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]
    batch, labels = prompt.build(histories, candidates, hybrid=[True, False], answers=[8, 14])
    assert labels is not None
    # titles are the .item file's, through the internal ids
    table = pd.read_csv(os.path.join(config["data_path"], "tiny.item"), sep="\t", dtype=str)
    by_token = dict(zip(table["item_id:token"], table["title:token_seq"]))
    for item in (1, 6, 15):
        assert prompt.titles[item] == by_token[dataset.id2token(dataset.iid_field, item)]
    text = prompt.render(batch, row=1)
    for item in histories[1] + candidates[1]:
        assert prompt.title_text(item) in text
    assert "[item" not in text  # text-only row: no placeholder
    # hybrid row: one placeholder right after every history and candidate title
    row = batch.item_ids[0]
    slots = row.nonzero().squeeze(1).tolist()
    assert row[slots].tolist() == histories[0] + candidates[0]
    for pos in slots:
        item = int(row[pos])
        ids = prompt.title_ids(item)
        assert batch.input_ids[0, pos - len(ids):pos].tolist() == ids
    # labels: the answer's title + end of sequence at the end of each row, nothing else
    for b, answer in enumerate([8, 14]):
        target = labels[b][labels[b] != IGNORE].tolist()
        assert target == prompt.answer_ids(answer)
        assert batch.input_ids[b, -len(target):].tolist() == target


def test_the_trained_answer_format_parses_back_to_its_candidate(llara):
    _, _, model = llara
    prompt = model.prompt
    for items in ([1, 2, 3, 4, 5], [10, 11, 12, 13, 14], [20, 25, 30, 35, 40]):
        titles = [prompt.title_text(i) for i in items]
        for position, item in enumerate(items):
            answer = model.tokenizer.decode(prompt.answer_ids(item), skip_special_tokens=True)
            assert match_title(answer, titles) == position


def test_teacher_forced_logprobs_agree_with_the_full_forward(llara):
    _, _, model = llara
    model.eval()
    batch, labels = model.prompt.build([[1, 2], [3, 4, 5]], [[6, 7, 8, 9, 10], [6, 7, 8, 9, 10]],
                                       hybrid=[True, True], answers=[7, 9])
    with torch.no_grad():
        embeds, batch = model.embed(batch)
        logprobs, rows = answer_token_logprobs(model.llm, embeds, batch.attention_mask, labels, chunk_rows=3)
        position_ids = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        full = model.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                         position_ids=position_ids).logits.log_softmax(-1)
    expected, expected_rows = [], []
    for b in range(2):
        for t in (labels[b] != IGNORE).nonzero().squeeze(1).tolist():
            expected.append(full[b, t - 1, labels[b, t]])
            expected_rows.append(b)
    assert rows.tolist() == expected_rows
    assert torch.allclose(logprobs, torch.stack(expected), atol=1e-4)
    # title_scores: per-row mean and sum of the same numbers, shaped [B / C, C]
    for reduce in ("mean", "sum"):
        scores = title_scores(model.llm, embeds, batch.attention_mask, labels, 2, reduce)
        per_row = [torch.stack([e for e, r in zip(expected, expected_rows) if r == b]) for b in range(2)]
        want = torch.stack([p.mean() if reduce == "mean" else p.sum() for p in per_row]).view(1, 2)
        assert torch.allclose(scores, want, atol=1e-4)


def test_llara_curriculum_grows_from_text_to_hybrid_prompts(llara):
    from recbole_speeder.trainer import LLaRATrainer

    config, train_data, model = llara
    model.train()
    model.start_curriculum(10)
    torch.manual_seed(0)
    assert model.hybrid_probability() == 0.0 and not any(model.hybrid_rows(50))
    model.curriculum_step = 5
    assert model.hybrid_probability() == pytest.approx(0.5)
    assert 10 < sum(model.hybrid_rows(200)) < 190
    model.curriculum_step = 10
    assert all(model.hybrid_rows(20))
    model.curriculum_step = 0
    model.eval()
    assert model.hybrid_probability() == 1.0  # evaluation always uses hybrid prompts
    # the trainer hands the schedule over: steps_per_epoch x epochs
    trainer = LLaRATrainer(config, model)
    trainer._build_scheduler(train_data, trainer.epochs)
    assert model.curriculum_total_steps == 3 * config["epochs"] and model.curriculum_step == 0


# -- end to end -------------------------------------------------------------------------------
@pytest.fixture
def baseline_config(fast_config, tiny_llm_dir):
    return dict(fast_config, llm_path=tiny_llm_dir, epochs=1, steps_per_epoch=2, train_batch_size=8,
                eval_batch_size=64, history_len=4, title_max_tokens=8, generation_max_new_tokens=6,
                seq_encoder_epochs=1, seq_encoder_hidden=16)


def _assert_generation_metrics(cand):
    assert cand["n"] == 60 and 0.0 <= cand["valid_ratio"] <= 1.0
    assert cand["vhr@1"] == pytest.approx(cand["valid_ratio"] * cand["hr@1"], abs=1e-3)
    assert "mrr" not in cand  # free generation ranks nothing


def test_tallrec_trains_lora_and_generates_titles(baseline_config):
    result = run(model="TALLRec", dataset="tiny", config_dict=baseline_config)
    _assert_generation_metrics(result["candidate_test"])
    folder = result["saved_model_file"]
    assert os.path.isfile(os.path.join(folder, "adapter", "adapter_config.json"))
    assert result["train_ms_per_sample"] > 0


@pytest.mark.slow
def test_llara_trains_projector_and_ranks_by_title_likelihood(baseline_config):
    from safetensors.torch import load_file

    result = run(model="LLaRA", dataset="tiny", config_dict=dict(baseline_config, eval_mode="constrained"))
    cand = result["candidate_test"]
    assert cand["n"] == 60 and cand["valid_ratio"] == 1.0 and {"ndcg@5", "mrr"} <= set(cand)
    plugin = load_file(os.path.join(result["saved_model_file"], "plugin.safetensors"))
    assert any(k.startswith("projector.") for k in plugin)
    reloaded = run(model="LLaRA", dataset="tiny", config_dict=dict(baseline_config, eval_mode="constrained"),
                   model_file=result["saved_model_file"])
    assert reloaded["candidate_test"]["mrr"] == cand["mrr"]


def test_zeroshot_runs_with_zero_epochs_and_no_adapter(baseline_config, workdir):
    result = run(model="ZeroShot", dataset="tiny", config_dict=dict(baseline_config, epochs=0, state="INFO"))
    _assert_generation_metrics(result["candidate_test"])
    # an untuned tiny LLM rarely names a candidate: the log shows what it said instead
    assert result["candidate_test"]["valid_ratio"] < 1.0
    log = "".join(p.read_text() for p in (workdir / "log").rglob("ZeroShot*.log"))
    assert "invalid answers (named no candidate, or several), first 3: '" in log
    assert result["candidate_valid"] is None and result["train_ms_per_sample"] is None
    folder = result["saved_model_file"]
    assert sorted(os.listdir(folder)) == ["plugin.safetensors", "trainer_state.pt"]  # untuned: no adapter
    with pytest.raises(ConfigError, match="epochs: 0"):
        run(model="ZeroShot", dataset="tiny", config_dict=dict(baseline_config, epochs=1))


def test_runs_started_in_the_same_second_get_their_own_checkpoint_folder(llara, monkeypatch):
    """RecBole names checkpoints by the start second; two trainers of that second must not share."""
    import recbole.trainer.trainer as recbole_trainer

    from recbole_speeder.utils import get_trainer

    config, _, model = llara
    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Nov-24-2026_00-00-00")
    state = torch.get_rng_state()
    trainer_class = get_trainer(config["MODEL_TYPE"], "LLaRA")
    first, second = trainer_class(config, model), trainer_class(config, model)
    assert torch.equal(torch.get_rng_state(), state)  # the suffix draws from no seeded generator
    names = {os.path.basename(t.saved_model_file) for t in (first, second)}
    assert len(names) == 2 and all(n.startswith("LLaRA-Nov-24-2026_00-00-00-") for n in names)


def test_warmup_then_cosine_or_constant_learning_rate(llara):
    from recbole_speeder.errors import ConfigError
    from recbole_speeder.trainer.llm_trainer import warmup_schedule
    from recbole_speeder.utils import get_trainer

    cosine, constant = warmup_schedule(100, 0.1), warmup_schedule(100, 0.1, "constant")
    for factor in (cosine, constant):  # 10 warm-up steps from lr/100 to lr
        assert factor(0) == pytest.approx(0.01) and factor(5) == pytest.approx(0.01 + 0.99 * 0.5)
        assert factor(10) == pytest.approx(1.0)
    assert cosine(55) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0)
    assert constant(55) == constant(100) == 1.0
    config, _, model = llara
    config["lr_schedule"] = "linear"
    try:
        with pytest.raises(ConfigError, match="lr_schedule must be one of cosine, constant"):
            get_trainer(config["MODEL_TYPE"], "LLaRA")(config, model)
    finally:
        config["lr_schedule"] = "cosine"
