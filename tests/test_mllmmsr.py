"""MLLM-MSR: item summaries, recurrent preference summaries, yes/no prompts and scores, runs."""

import math
import os
import shutil

import pytest
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.model.layers.preference_summary import FIRST_PREVIOUS, PreferenceSummarizer, summary_blocks
from recbole_speeder.llm.answers import pair_logits, yes_log_odds, yes_no_logits, yes_no_loss, yes_probability
from recbole_speeder.quick_start import run
from recbole_speeder.evaluation.candidate_eval import pessimistic_rank

from conftest import FAST, HERE, write_tiny_with_images


def _config(data_home, llm_dir, **overrides):
    from recbole_speeder.config import Config

    settings = dict(FAST, data_path=str(data_home), llm_path=llm_dir, history_len=3, summary_block_size=3,
                    summary_max_new_tokens=6, title_max_tokens=8, item_summary_max_tokens=16)
    settings.update(overrides)
    return Config(model="MLLMMSR", dataset="tiny", config_dict=settings)


def _train_dataset(config):
    from recbole.data import data_preparation

    from recbole_speeder.utils import create_dataset

    train_data, _, _ = data_preparation(config, create_dataset(config))
    return train_data


def _build(config, train_data):
    """MLLMMSR on ``train_data``'s dataset with its side information, as a run builds it."""
    from recbole_speeder.model.mllmmsr import MLLMMSR
    from recbole_speeder.quick_start import attach_side_info

    attach_side_info(config, train_data._dataset, train_data, MLLMMSR)
    return MLLMMSR(config, train_data._dataset)


@pytest.fixture(scope="module")
def mllmmsr(tmp_path_factory, tiny_llm_dir):
    """(config, train_data, model) of MLLMMSR on tiny with the tiny Llama."""
    home = tmp_path_factory.mktemp("mllmmsr-home")
    shutil.copytree(os.path.join(HERE, "data", "tiny"), home / "dataset" / "tiny")
    config = _config(home / "dataset", tiny_llm_dir)
    train_data = _train_dataset(config)
    torch.manual_seed(0)
    return config, train_data, _build(config, train_data)


# -- the recommendation prompt ----------------------------------------------------------------
def test_prompt_holds_summary_recent_titles_and_candidate_summary(mllmmsr):
    _, train_data, model = mllmmsr
    prompt = model.prompt
    batch = prompt.build(["likes red things", "likes blue things a lot"], [[1, 2, 3], [4]], [5, 6])
    assert batch.input_ids.shape[0] == 2 and not bool(batch.slot_mask.any())
    texts = [prompt.render(batch, row) for row in range(2)]
    # a dataset without images: an item summary is its title
    assert prompt.summaries[1:] == prompt.titles[1:] and "thing number" in prompt.titles[5]
    titles = "; ".join(prompt.tokenizer.decode(prompt.title_ids(i)) for i in (1, 2, 3))
    assert "A user's preferences: likes red things\n" in texts[0]
    assert f"latest purchases, oldest first: {titles}.\n" in texts[0]
    assert f"Candidate item: {prompt.summary_text(5)}.\n" in texts[0]
    assert f"oldest first: {prompt.tokenizer.decode(prompt.title_ids(4))}.\n" in texts[1]
    assert f"Candidate item: {prompt.summary_text(6)}.\n" in texts[1]
    # left padding: both prompts end with the same question at the last position
    for text in texts:
        assert text.endswith("Answer Yes or No.\nAnswer:")
    mask = batch.attention_mask
    assert bool(mask[:, -1].all()) and int(mask[0].sum()) != int(mask[1].sum()) and not bool(mask.all())
    # one-token answers that the tokenizer knows
    assert prompt.tokenizer.decode([prompt.yes_id]) == " Yes" and prompt.tokenizer.decode([prompt.no_id]) == " No"


# -- recurrent preference summaries ---------------------------------------------------------
def test_summary_blocks_cut_the_history_oldest_first():
    assert summary_blocks([1, 2, 3, 4, 5, 6, 7], 3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert summary_blocks([1, 2, 3], 3) == [[1, 2, 3]]
    assert summary_blocks([4, 5], 1) == [[4], [5]]
    assert summary_blocks([], 2) == []
    with pytest.raises(ConfigError, match="summary_block_size"):
        summary_blocks([1, 2], 0)


def _summarizer(model, root, block_size=3, describe=None):
    tokens = model.prompt.titles  # any stable per-item key
    return PreferenceSummarizer(model.llm, model.tokenizer, describe or model.prompt.summary_text, tokens, str(root),
                                {"name": "tiny-llama"}, block_size=block_size, max_new_tokens=6)


def test_recurrent_summaries_carry_the_previous_summary_block_by_block(mllmmsr, tmp_path):
    _, _, model = mllmmsr
    summarizer = _summarizer(model, tmp_path)
    history = [1, 2, 3, 4, 5, 6, 7]
    (final,) = summarizer.summarize([history])
    steps = summarizer.steps(history)
    assert summarizer.generated == 3 and len(steps) == 3 and final == steps[-1]
    previous = FIRST_PREVIOUS
    for block, summary in zip([[1, 2, 3], [4, 5, 6], [7]], steps):
        prompt = summarizer.block_prompt(previous, block)
        items = "; ".join(model.prompt.summary_text(i) for i in block)
        assert f"so far: {previous}\nItems the user bought next, oldest first: {items}\n" in prompt
        assert prompt.rstrip().endswith("assistant")  # the chat template's generation prompt
        # summary_k is the greedy continuation of exactly this prompt (one prompt per call here)
        assert summarizer._generate([prompt]) == [summary]
        previous = summary


def test_summaries_are_cached_shared_by_prefixes_and_invalidated(mllmmsr, tmp_path):
    _, _, model = mllmmsr
    summarizer = _summarizer(model, tmp_path)
    history = [1, 2, 3, 4, 5, 6, 7]
    first = summarizer.summarize([history, list(history)])
    assert summarizer.generated == 3 and first[0] == first[1]  # one generation per distinct prefix
    assert summarizer.summarize([history]) == first[:1] and summarizer.generated == 3  # cache hit
    summarizer.summarize([history[:6]])  # blocks 1-2 already summarised: nothing to generate
    assert summarizer.generated == 3
    summarizer.summarize([history + [8]])  # blocks 1-2 shared, block 3 is now [7, 8]
    assert summarizer.generated == 4
    summarizer.cache.flush()
    # a fresh summarizer (a later run) reads the cache from disk
    again = _summarizer(model, tmp_path)
    assert again.summarize([history]) == first[:1] and again.generated == 0
    # another block size is another cache; so are changed item descriptions
    other = _summarizer(model, tmp_path, block_size=2)
    assert other.cache.folder != again.cache.folder
    other.summarize([history])
    assert other.generated == 4
    renamed = _summarizer(model, tmp_path, describe=lambda item: f"thing {item}")
    renamed.summarize([history])
    assert renamed.generated == 3
    other.cache.flush()
    renamed.cache.flush()  # same identity as the first: its folder, new keys
    assert len([d for d in os.listdir(tmp_path) if d.startswith("preference_summary-")]) == 2


def test_summary_cache_follows_the_backbone_files_content_not_their_mtimes(mllmmsr, tmp_path):
    """A cache carried to another machine, where the same GGUF was converted again (new mtimes),
    is still found; a changed backbone file opens another cache."""
    config, train_data, _ = mllmmsr
    llm_dir = tmp_path / "llm"
    shutil.copytree(config["llm_path"], llm_dir)
    moved = _config(os.path.dirname(os.path.normpath(config["data_path"])), str(llm_dir))
    first = _build(moved, train_data).summarizer.cache.folder
    for name in os.listdir(llm_dir):
        os.utime(llm_dir / name, ns=(10**18, 10**18))
    assert _build(moved, train_data).summarizer.cache.folder == first
    with open(llm_dir / "config.json", "a") as f:
        f.write("\n")
    assert _build(moved, train_data).summarizer.cache.folder != first


# -- yes/no answers ---------------------------------------------------------------------------
def test_yes_no_scores_and_loss_from_hand_made_logits():
    yes, no = 4, 7
    logits = torch.zeros(4, 10)
    logits[0, [yes, no]] = torch.tensor([2.0, 0.0])
    logits[1, [yes, no]] = torch.tensor([0.0, 2.0])
    logits[2, [yes, no, 1]] = torch.tensor([1.0, 1.0, 9.0])  # other tokens do not matter
    logits[3, [yes, no]] = torch.tensor([40.0, 0.0])
    full = logits.softmax(-1)
    expected = full[:, yes] / (full[:, yes] + full[:, no])
    pair = pair_logits(logits, yes, no)
    p = yes_probability(pair)
    assert torch.allclose(p, expected, atol=1e-6)
    assert p[0].item() == pytest.approx(1 / (1 + math.exp(-2))) and p[2].item() == pytest.approx(0.5)
    assert torch.allclose(yes_log_odds(pair), torch.log(expected / (1 - expected)).clamp(max=40), atol=1e-4)
    # the loss is the binary log-loss of p (finite where p rounds to 1.0 in float32: row 3 says no)
    is_yes = torch.tensor([True, False, True, False])
    full64 = logits.double().softmax(-1)
    both = (full64[:, yes] + full64[:, no]).log()
    want = -torch.where(is_yes, full64[:, yes].log() - both, full64[:, no].log() - both).mean()
    assert yes_no_loss(pair, is_yes).item() == pytest.approx(want.item(), rel=1e-5)
    # ranking by log-odds: two confident candidates whose p both round to 1.0 stay ordered
    sure = torch.tensor([[30.0, 0.0], [40.0, 0.0], [0.0, 1.0]])
    assert yes_probability(sure)[0] == yes_probability(sure)[1] == 1.0
    scores = yes_log_odds(sure).view(1, 3)
    assert pessimistic_rank(scores, torch.tensor([1])).item() == 1
    assert pessimistic_rank(yes_probability(sure).view(1, 3), torch.tensor([1])).item() == 2


def test_yes_no_logits_are_the_full_forward_at_the_answer_position(mllmmsr):
    _, _, model = mllmmsr
    model.eval()
    batch = model.prompt.build(["likes red", "likes blue things a lot"], [[1, 2], [3]], [4, 5])
    with torch.no_grad():
        pair = yes_no_logits(model.llm, batch.input_ids, batch.attention_mask, model.prompt.yes_id, model.prompt.no_id)
        position_ids = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        full = model.llm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         position_ids=position_ids).logits[:, -1].float()
    assert torch.allclose(pair, pair_logits(full, model.prompt.yes_id, model.prompt.no_id), atol=1e-4)


def test_a_training_step_reaches_only_the_lora_weights(mllmmsr):
    _, train_data, model = mllmmsr
    model.train()
    interaction = next(iter(train_data))[torch.arange(4)]
    model.zero_grad()
    loss = model.calculate_loss(interaction)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads)
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n or "lora_A" in n)
    model.zero_grad()


# -- whole runs -------------------------------------------------------------------------------
@pytest.fixture
def mllmmsr_config(fast_config, tiny_llm_dir):
    return dict(fast_config, llm_path=tiny_llm_dir, epochs=1, steps_per_epoch=2, train_batch_size=8,
                eval_batch_size=32, history_len=3, summary_block_size=3, summary_max_new_tokens=6,
                title_max_tokens=8, item_summary_max_tokens=16)


@pytest.mark.slow
def test_mllmmsr_trains_lora_ranks_candidates_and_reuses_its_summaries(mllmmsr_config, workdir):
    result = run(model="MLLMMSR", dataset="tiny", config_dict=mllmmsr_config)
    cand = result["candidate_test"]
    assert cand["n"] == 60 and cand["valid_ratio"] == 1.0 and {"ndcg@5", "mrr"} <= set(cand)
    assert cand["summary_generated"] > 0 and cand["summary_ms_per_sample"] > 0
    assert cand["summary_train_ms_per_sample"] > 0 and result["train_ms_per_sample"] > 0
    assert os.path.isfile(os.path.join(result["saved_model_file"], "adapter", "adapter_config.json"))
    cache = [d for d in os.listdir(workdir / "dataset" / "tiny" / "features") if d.startswith("preference_summary-")]
    assert len(cache) == 1
    reloaded = run(model="MLLMMSR", dataset="tiny", config_dict=mllmmsr_config,
                   model_file=result["saved_model_file"])
    assert reloaded["candidate_test"]["mrr"] == cand["mrr"]
    assert reloaded["candidate_test"]["summary_generated"] == 0  # every summary came from the cache


@pytest.mark.slow
def test_summaries_are_made_in_full_generate_rounds(mllmmsr_config, monkeypatch):
    """Evaluation summarises its whole split in one call and training looks batches ahead: a
    generate round takes up to summary_batch_size prompts, however small the batches are."""
    from recbole_speeder.model.layers.preference_summary import PreferenceSummarizer

    from recbole_speeder.trainer.mllmmsr_trainer import MLLMMSRTrainer

    sizes, phase = {"train": [], "eval": []}, ["train"]
    real_generate, real_prepare = PreferenceSummarizer._generate, MLLMMSRTrainer.prepare_summaries

    def recorded(self, prompts):
        sizes[phase[0]].append(len(prompts))
        return real_generate(self, prompts)

    def evaluating(self, eval_data):
        phase[0] = "eval"
        return real_prepare(self, eval_data)

    monkeypatch.setattr(PreferenceSummarizer, "_generate", recorded)
    monkeypatch.setattr(MLLMMSRTrainer, "prepare_summaries", evaluating)
    result = run(model="MLLMMSR", dataset="tiny", config_dict=dict(
        mllmmsr_config, train_batch_size=4, steps_per_epoch=4, eval_batch_size=4, eval_step=0,
        summary_batch_size=32))
    assert result["candidate_test"]["n"] == 60
    assert max(sizes["eval"]) > 4  # one evaluation batch holds 4 sequences
    assert max(sizes["train"]) > 4  # training summarises the next 32 / 4 batches (here all 4) at once


@pytest.mark.slow
def test_prefill_summarises_every_training_history_before_the_first_epoch(mllmmsr_config, monkeypatch):
    """summary_prefill: every training sequence's history is summarised (and cached) before
    training, so the epochs generate none; with epochs: 0 a run only fills the cache."""
    from recbole_speeder.trainer.mllmmsr_trainer import MLLMMSRTrainer

    seen = {}
    real_epoch = MLLMMSRTrainer._train_epoch

    def epoch(self, train_data, *args, **kwargs):
        summarizer = self.model.summarizer
        seen.setdefault("before", summarizer.generated)
        windows = self.model.summary_windows(train_data._dataset.inter_feat)
        seen["cached"] = all(summarizer.prefix_keys(w)[-1] in summarizer.cache for w in windows if w)
        out = real_epoch(self, train_data, *args, **kwargs)
        seen["during"] = summarizer.generated - seen["before"]
        return out

    monkeypatch.setattr(MLLMMSRTrainer, "_train_epoch", epoch)
    result = run(model="MLLMMSR", dataset="tiny", config_dict=dict(
        mllmmsr_config, summary_prefill=True, summary_batch_size=16, train_batch_size=4, steps_per_epoch=3))
    assert seen["before"] > 0 and seen["cached"] and seen["during"] == 0
    assert result["candidate_test"]["summary_train_ms_per_sample"] > 0
    # a run of 0 epochs is a prefill only: it ends with the test result of the untrained adapters
    only = run(model="MLLMMSR", dataset="tiny", config_dict=dict(mllmmsr_config, summary_prefill=True, epochs=0))
    assert only["candidate_test"]["n"] == 60 and only["candidate_test"]["summary_generated"] == 0


@pytest.mark.parametrize("overrides, message", [
    ({"summary_block_size": 0}, "summary_block_size must be at least 1"),
    ({"negatives_per_positive": 5}, "negatives_per_positive=5 exceeds"),
    ({"prompt_template": "Summary {summary}. Answer:"}, r"\{candidate\} exactly once"),
    ({"summary_template": "Just {items}."}, r"\{previous\} exactly once"),
    ({"answer_yes": " Yes indeed"}, "single token"),
    ({"answer_no": False}, "answer_no must be a non-empty quoted string"),
])
def test_bad_settings_are_config_errors(tmp_path, tiny_llm_dir, overrides, message):
    shutil.copytree(os.path.join(HERE, "data", "tiny"), tmp_path / "dataset" / "tiny")
    with pytest.raises(ConfigError, match=message):  # typed keys fail in Config already, the others later
        config = _config(tmp_path / "dataset", tiny_llm_dir, **overrides)
        _build(config, _train_dataset(config))


# -- item summaries from images ---------------------------------------------------------------
@pytest.fixture
def tiny_with_images(tmp_path):
    """tiny with an image column: items i1-i3 have pictures, the others none."""
    return write_tiny_with_images(tmp_path / "dataset")


def test_item_summaries_join_titles_with_imagenet_words_and_are_cached(tiny_with_images):
    from recbole_speeder.features.image_summary import ImageLabeler, _imagenet_descriptions, item_summaries
    from recbole_speeder.data.item_table import item_titles

    config = _config(tiny_with_images, "unused", image_summary_topk=2)
    dataset = _train_dataset(config)._dataset
    titles = item_titles(config, dataset)
    summaries, described = item_summaries(config, dataset, titles)
    assert described == 3
    names = set(_imagenet_descriptions())
    token_of = {t: i for i, t in enumerate(dataset.field2id_token[dataset.iid_field])}
    for token in ("i1", "i2", "i3"):
        title, words = summaries[token_of[token]].split(". Image: ")
        assert title == titles[token_of[token]]
        assert len(words.split(", ")) == 2 and set(words.split(", ")) <= names
    assert summaries[token_of["i4"]] == titles[token_of["i4"]]  # no image: the title alone
    # second call: every description comes from the cache, the classifier is never loaded
    labeler = ImageLabeler(topk=2)
    assert item_summaries(config, dataset, titles, summarizer=labeler) == (summaries, 3) and labeler.model is None
    # a changed image file is described again
    image = tiny_with_images / "tiny" / "images" / "i2.png"
    os.utime(image, ns=(os.stat(image).st_atime_ns, os.stat(image).st_mtime_ns + 10**9))
    assert item_summaries(config, dataset, titles, summarizer=labeler)[0] == summaries and labeler.model is not None
    # no image summariser: titles only
    plain, none = item_summaries(_config(tiny_with_images, "unused", image_summarizer="none"), dataset, titles)
    assert none == 0 and plain[1:] == titles[1:]
    with pytest.raises(ConfigError, match="image_summarizer '/no/such/captioner'"):
        item_summaries(_config(tiny_with_images, "unused", image_summarizer="/no/such/captioner"), dataset, titles)


def test_benchmark_tables_show_the_summary_cost_only_when_a_run_reports_it(tmp_path):
    from recbole_speeder.benchmark import flatten, read_runs, write_tables

    def result(model, seed, **cand):
        return {"model": model, "dataset": "tiny", "seed": seed, "train_ms_per_sample": 1.0, "test_result": None,
                "candidate_test": {"hr@1": 0.5, "valid_ratio": 1.0, "vhr@1": 0.5, "infer_ms_per_sample": 2.0, **cand}}

    plain = [row for s in (1, 2) for row in flatten(result("SASRec", s))]
    table, base = write_tables(plain, str(tmp_path / "a"))
    assert "summary" not in table
    summarised = [row for s in (1, 2)
                  for row in flatten(result("MLLMMSR", s, summary_ms_per_sample=3.0 + s, summary_train_ms_per_sample=5.0))]
    table, base = write_tables(read_runs([base + "-runs.csv"]) + summarised, str(tmp_path / "b"))
    header, _, sasrec, mllmmsr = table.strip().splitlines()[2:]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[-2:] == ["summary_train_ms_per_sample", "summary_ms_per_sample"]
    assert sasrec.rstrip(" |").endswith("| - | -")
    assert mllmmsr.rstrip(" |").endswith("5.000 ± 0.000 | 4.500 ± 0.707")
