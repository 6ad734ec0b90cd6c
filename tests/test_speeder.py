"""Speeder end to end on the tiny dataset with a tiny Llama built in the test."""

import os
import sys

import pytest
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.quick_start import run

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed_worker import build  # noqa: E402


@pytest.fixture
def speeder_config(fast_config, tiny_llm_dir):
    return dict(
        fast_config, llm_path=tiny_llm_dir, stage_epochs=[1, 1, 1], steps_per_epoch=3, train_batch_size=8,
        eval_batch_size=16, mome_dim=16, mome_heads=2, history_len=5, seq_encoder_epochs=1,
        seq_encoder_hidden=16, ppt_ratio=0.5,
    )


@pytest.mark.parametrize("answer_head", ["score", "index"])
def test_speeder_trains_three_stages_and_reports_candidate_metrics(speeder_config, workdir, answer_head):
    result = run(model="Speeder", dataset="tiny", config_dict=dict(speeder_config, answer_head=answer_head))
    cand = result["candidate_test"]
    assert cand["n"] == 60 and cand["valid_ratio"] == 1.0
    assert cand["vhr@1"] == pytest.approx(cand["hr@1"])
    assert {"ndcg@5", "mrr"} <= set(cand)
    assert "ppt_acc" in result["candidate_valid"]
    run_dir = os.path.dirname(result["saved_model_file"])
    # tiny has no images: stage 2 trains on text only, and every stage keeps its checkpoint
    assert sorted(os.listdir(run_dir)) == ["stage1", "stage2", "stage3"]
    stage = os.path.join(run_dir, "stage3")
    assert {"adapter", "plugin.safetensors", "trainer_state.pt"} <= set(os.listdir(stage))
    assert os.path.isfile(os.path.join(stage, "adapter", "adapter_config.json"))
    state = torch.load(os.path.join(stage, "trainer_state.pt"), weights_only=True)
    assert state["stage"] == 3


def test_speeder_checkpoint_round_trip_and_resume(speeder_config):
    trained = run(model="Speeder", dataset="tiny", config_dict=speeder_config)
    loaded = run(model="Speeder", dataset="tiny", config_dict=speeder_config, model_file=trained["saved_model_file"])
    assert loaded["candidate_test"]["mrr"] == trained["candidate_test"]["mrr"]
    stage2 = os.path.join(os.path.dirname(trained["saved_model_file"]), "stage2")
    resumed = run(model="Speeder", dataset="tiny", config_dict=speeder_config, resume_file=stage2)
    assert resumed["candidate_test"]["n"] == 60
    with pytest.raises(ConfigError, match=r"--resume: .*stage2.* 1 optimizer parameter group.*this run has 2"):
        run(model="Speeder", dataset="tiny", config_dict=dict(speeder_config, plugin_learning_rate=1e-3),
            resume_file=stage2)


@pytest.mark.slow
def test_llm_compile_trains_and_scores_as_the_eager_decoder(speeder_config):
    """``llm_compile: default`` (real inductor on the CPU) compiles the decoder, MRC, the scoring head,
    the SASRec teacher and the distillation projection: one stage-3 epoch with left padding ends at
    the eager run's numbers when nothing random runs inside them (compiled dropout draws its own
    random numbers), and a compiled run with dropout repeats its own numbers."""
    config = dict(speeder_config, mpo_stages=[3], stage_epochs=[0, 0, 1], prompt_packing=False, lora_dropout=0.0,
                  mome_dropout=0.0)
    eager = run(model="Speeder", dataset="tiny", config_dict=config)
    compiled = run(model="Speeder", dataset="tiny", config_dict=dict(config, llm_compile="default"))
    for split in ("candidate_valid", "candidate_test"):
        assert compiled[split]["vhr@1"] == eager[split]["vhr@1"]
        assert compiled[split]["mrr"] == pytest.approx(eager[split]["mrr"], abs=1e-4)
    _, _, model, _ = build(dict(config, llm_compile="default"))
    compiled_modules = [model.mrc, model.head, model.sequence_teacher, model.distill, model.llm.get_base_model().model]
    assert all(m._compiled_call_impl is not None for m in compiled_modules)
    dropout = dict(config, llm_compile="default", lora_dropout=0.05, mome_dropout=0.1)
    first, second = (run(model="Speeder", dataset="tiny", config_dict=dropout) for _ in range(2))
    def scores(result):
        return {k: v for k, v in result["candidate_test"].items() if not k.endswith("_ms_per_sample")}

    assert scores(first) == scores(second)
    with pytest.raises(ConfigError, match="llm_compile"):
        run(model="Speeder", dataset="tiny", config_dict=dict(config, llm_compile="fastest"))


@pytest.mark.slow
def test_reduce_overhead_marks_every_training_step_and_evaluation_batch(speeder_config, monkeypatch):
    """Under ``llm_compile: reduce-overhead`` (CUDA graphs) every training step and every evaluation
    batch starts with ``torch.compiler.cudagraph_mark_step_begin``, so that a compiled network's
    outputs stay valid until the next one (on the CPU inductor compiles without graphs; the marks
    are the same); other modes mark nothing."""
    from recbole_speeder.model.speeder import Speeder

    marks, seen = [], []
    mark = torch.compiler.cudagraph_mark_step_begin
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: (marks.append(1), mark())[1])
    for name in ("calculate_loss", "full_sort_predict"):  # the evaluation of a run that ranks the catalog
        method = getattr(Speeder, name)

        def watched(self, *args, _method=method, _name=name):
            seen.append((_name, len(marks)))
            return _method(self, *args)

        monkeypatch.setattr(Speeder, name, watched)
    config = dict(speeder_config, mpo_stages=[3], stage_epochs=[0, 0, 1], prompt_packing=False)
    run(model="Speeder", dataset="tiny", config_dict=config)
    assert marks == [] and seen
    seen.clear()
    run(model="Speeder", dataset="tiny", config_dict=dict(config, llm_compile="reduce-overhead"))
    assert {name for name, _ in seen} == {"calculate_loss", "full_sort_predict"}
    counts = [count for _, count in seen]
    assert counts[0] >= 1 and all(b > a for a, b in zip(counts, counts[1:]))  # a new mark before each call


def test_generation_mode_counts_invalid_answers(speeder_config):
    result = run(model="Speeder", dataset="tiny", config_dict=dict(
        speeder_config, answer_head="index", eval_mode="generate", mpo_stages=[3], stage_epochs=[0, 0, 1]))
    cand = result["candidate_test"]
    assert set(cand) >= {"hr@1", "valid_ratio", "vhr@1"} and "mrr" not in cand
    assert cand["vhr@1"] == pytest.approx(cand["valid_ratio"] * cand["hr@1"], abs=1e-3)


def test_item_vector_norm_token_rescales_fused_vectors_to_the_token_scale(speeder_config):
    _, _, model, _ = build(dict(speeder_config, modalities=["text"], text_encoder="llm"))
    assert model.item_vector_norm == "none"
    model.eval()
    ids = torch.arange(1, model.n_items)
    feats = {m: getattr(model, f"feature_{m}")[ids] for m in model.active_modalities}
    masks = {m: getattr(model, f"mask_{m}")[ids] for m in model.active_modalities}
    with torch.no_grad():
        assert torch.equal(model.fuse(ids), model.mrc(feats, masks, model.active_modalities))

    _, _, model, _ = build(dict(speeder_config, modalities=["text"], text_encoder="llm", item_vector_norm="token"))
    model.eval()
    token_norm = model.llm.get_input_embeddings().weight.float().norm(dim=1).mean()
    assert model.token_norm.item() == pytest.approx(token_norm.item())
    with torch.no_grad():
        norms = model.fuse(ids).norm(dim=1)
        raw = model.mrc(feats, masks, model.active_modalities).norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, token_norm.item()), atol=1e-4)
    assert not torch.allclose(raw, norms, atol=1e-2)  # the rescaling did something
    assert "token_norm" not in model.state_dict()


def test_item_vector_norm_refuses_unknown_values(speeder_config):
    with pytest.raises(ConfigError, match=r"item_vector_norm.*'unit'.*none, token"):
        build(dict(speeder_config, modalities=["text"], text_encoder="llm", item_vector_norm="unit"))
    with pytest.raises(ConfigError, match="item_vector_nrom.*item_vector_norm"):
        build(dict(speeder_config, item_vector_nrom="token"))


def test_plugin_learning_rate_gives_mrc_and_ppl_their_own_rate(speeder_config):
    config = dict(speeder_config, modalities=["text"], text_encoder="llm", warmup_ratio=0.0)
    _, train_data, model, trainer = build(config)
    trainer._enter_stage(1)
    (group,) = trainer.optimizer.param_groups  # ~: one rate for everything, as in the paper
    assert group["lr"] == pytest.approx(2e-4)

    _, train_data, model, trainer = build(dict(config, plugin_learning_rate=3e-3))
    trainer._enter_stage(1)
    lora, plugin = trainer.optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert lora["lr"] == pytest.approx(2e-4) and plugin["lr"] == pytest.approx(3e-3)
    assert {names[id(p)] for p in lora["params"]} == {
        n for n, p in model.llm.named_parameters(prefix="llm") if p.requires_grad}
    assert all("lora_" in names[id(p)] for p in lora["params"])
    plugin_names = {names[id(p)] for p in plugin["params"]}
    assert plugin_names == {n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("llm.")}
    assert any(n.startswith("mrc.") for n in plugin_names) and any(n.startswith("ppl.") for n in plugin_names)
    trainer._build_scheduler(train_data, 1)  # the schedule scales both groups
    trainer.optimizer.step()
    trainer.scheduler.step()
    assert plugin["lr"] / lora["lr"] == pytest.approx(15.0)


def test_plugin_learning_rate_refuses_non_positive_values(speeder_config):
    with pytest.raises(ConfigError, match=r"plugin_learning_rate.*positive.*-0\.1"):
        build(dict(speeder_config, plugin_learning_rate=-0.1))
    with pytest.raises(ConfigError, match=r"plugin_learning_rate.*positive.*'fast'"):
        build(dict(speeder_config, plugin_learning_rate="fast"))


def test_score_head_ranks_candidates_without_labels(speeder_config):
    """answer_head: score trains the head with the rest and ranks every candidate (ValidRatio 1);
    the catalog loss scores every item; free generation is refused (there is no label to read)."""
    for score_loss in ("candidates", "catalog"):
        result = run(model="Speeder", dataset="tiny", config_dict=dict(
            speeder_config, answer_head="score", score_loss=score_loss))
        cand = result["candidate_test"]
        assert cand["valid_ratio"] == 1.0 and {"ndcg@5", "mrr"} <= set(cand)
    with pytest.raises(ConfigError, match="answer_head: score .*eval_mode: constrained"):
        run(model="Speeder", dataset="tiny", config_dict=dict(speeder_config, answer_head="score",
                                                               eval_mode="generate"))
    with pytest.raises(ConfigError, match="answer_head: 'title' is not one of index, score"):
        run(model="Speeder", dataset="tiny", config_dict=dict(speeder_config, answer_head="title"))


def test_score_head_scores_are_the_candidates_vectors(speeder_config, workdir):
    """The head scores candidate c by its own fused vector: permuting the candidates permutes
    the scores, and the loss reaches MRC through the candidates' vectors."""
    config, train_data, model, _ = build(dict(speeder_config, answer_head="score", score_readout="answer"))
    model.set_stage(3)
    interaction = next(iter(train_data))
    model.eval()
    candidates = torch.tensor([[1, 2, 3, 4, 5]]).repeat(len(interaction), 1)
    scores = model.candidate_scores(interaction, candidates).scores
    flipped = model.candidate_scores(interaction, candidates.flip(1)).scores
    # the prompt lists the candidates in another order, so the hidden state may differ; the
    # head itself must map each candidate to its own vector
    batch = model.prompt.build(model.recent_history(interaction), candidates)
    batch.extras = {"score_ids": candidates}
    hidden, scored, _, _ = model._forward(batch)
    assert torch.equal(scored, model._all_item_vectors()[candidates])
    direct = model.head(hidden["rec"], scored)
    assert torch.allclose(scores, direct, atol=1e-5) and scores.shape == flipped.shape
    model.train()
    model.zero_grad()
    model.calculate_loss(interaction).backward()
    assert model.head.proj.weight.grad.abs().sum() > 0
    assert model.mrc.out_adapter.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("readout", ["last_item", "both"])
def test_score_readouts_read_the_last_history_item(speeder_config, workdir, readout):
    """score_readout: the query is W h at the last history placeholder (and + W' h at the answer
    position with both); the scores equal the projection, cosine and temperature done by hand,
    packed or padded, and the loss reaches each projection."""
    import torch.nn.functional as F

    from recbole_speeder.llm.decoding import decoder_hidden
    from recbole_speeder.prompts.base import build_inputs_embeds

    config, train_data, model, _ = build(dict(speeder_config, answer_head="score", score_readout=readout))
    assert (model.head.second_proj is not None) == (readout == "both")
    model.set_stage(3)
    model.eval()
    interaction = next(iter(train_data))
    histories = model.recent_history(interaction)
    candidates = torch.tensor([[1, 2, 3, 4, 5]]).repeat(len(interaction), 1)
    scores = model.candidate_scores(interaction, candidates).scores

    batch = model.prompt.build(histories, candidates)
    rows, last = batch.answer("last_item")
    for b, (row, at) in enumerate(zip(rows.tolist(), last.tolist())):  # the last history placeholder
        assert row == b and batch.history_index[b, at] == len(histories[b])
        assert batch.item_ids[b, at] == histories[b][-1] and batch.history_index[b, at + 1:].max() == 0
    with torch.no_grad():
        table = model._all_item_vectors()
        embeds = build_inputs_embeds(model.llm, batch, table[batch.slot_item_ids()], model.ppl)
        hidden = decoder_hidden(model.llm, embeds, batch.attention_mask).float()
        head = model.head
        query = F.linear(hidden[rows, last], head.proj.weight, head.proj.bias)
        if readout == "both":
            query = (F.linear(hidden[:, -1], head.proj.weight, head.proj.bias)
                     + F.linear(hidden[rows, last], head.second_proj.weight, head.second_proj.bias))
        keys = table[candidates].float()
        cosine = (query[:, None] * keys).sum(-1) / (query.norm(dim=-1)[:, None] * keys.norm(dim=-1))
        expected = head.logit_scale.exp() * cosine
    # expected comes from the whole prompt; with last_item the model's prompts end at the last
    # history item (shorter rows, the same scores: nothing after it is in view)
    assert torch.allclose(scores, expected, atol=1e-4)
    assert model.history_only == (readout == "last_item")
    cut = model.prompt.build(histories, candidates, history_only=True)
    assert cut.input_ids.shape[1] < batch.input_ids.shape[1] and torch.equal(*(
        b.item_ids[b.answer("last_item")] for b in (cut, batch)))
    model.prompt_packing = not model.prompt_packing  # the other batch form gives the same scores
    assert torch.allclose(model.candidate_scores(interaction, candidates).scores, scores, atol=1e-4)

    model.train()
    model.use_ppt = False  # a PPT row cut after the history asks its question there: another PPT input
    losses = []
    for history_only in (model.history_only, False):  # the recommendation loss too (same dropout draws)
        model.history_only = history_only
        torch.manual_seed(0)
        model.zero_grad()
        loss = model.calculate_loss(interaction)
        loss.backward()
        losses.append(loss.detach())
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    assert model.head.proj.weight.grad.abs().sum() > 0
    if readout == "both":
        assert model.head.second_proj.weight.grad.abs().sum() > 0


def test_catalog_loss_is_cross_entropy_over_every_item(speeder_config, workdir):
    """score_loss: catalog (the default): the training loss is the cross-entropy of the true next
    item among the scores of every item but [PAD], each scored by its own fused vector from the
    last history item's hidden state, computed here by hand (no dropout, so the draws agree)."""
    import torch.nn.functional as F

    from recbole_speeder.llm.decoding import decoder_hidden
    from recbole_speeder.prompts.base import build_inputs_embeds

    config, train_data, model, _ = build(dict(speeder_config, use_ppt=False, mome_dropout=0.0, lora_dropout=0.0,
                                              distill_weight=0.0))  # its own term: the distillation test
    assert (model.answer_head, model.score_loss, model.score_readout) == ("score", "catalog", "last_item")
    model.set_stage(3)  # not a reconstruction stage: the loss is the recommendation loss alone
    model.train()
    interaction = next(iter(train_data))
    loss = model.calculate_loss(interaction)

    histories = model.recent_history(interaction)
    candidates, _ = model.training_candidates(interaction, device="cpu")
    batch = model.prompt.build(histories, candidates, history_only=True)
    rows, last = batch.answer("last_item")
    table = model.fuse(torch.arange(model.n_items))
    embeds = build_inputs_embeds(model.llm, batch, table[batch.slot_item_ids()], model.ppl)
    hidden = decoder_hidden(model.llm, embeds, batch.attention_mask).float()[rows, last]
    query = F.normalize(model.head.proj(hidden), dim=-1)
    scores = model.head.logit_scale.exp() * query @ F.normalize(table.float(), dim=-1).T
    assert scores.shape == (len(interaction), model.n_items)
    scores[:, 0] = float("-inf")
    expected = F.cross_entropy(scores, interaction[model.POS_ITEM_ID])
    assert torch.allclose(loss, expected, atol=1e-4)
    model.score_loss = "candidates"  # the other loss ranks the few training candidates: another number
    assert not torch.allclose(model.calculate_loss(interaction), expected, atol=1e-3)


def test_training_candidates_hold_the_target_and_allowed_negatives(speeder_config):
    """The batch's training candidates, drawn at once: the target at target_pos, C-1 distinct
    negatives that are neither the target nor in the history; a history that leaves too few other
    items gets history items (drawn one by one); the same seed draws the same sets."""
    from recbole.data.interaction import Interaction

    _, _, model, _ = build(speeder_config)
    num, n = model.num_candidates, model.n_items
    rows = 256
    gen = torch.Generator().manual_seed(0)
    targets = torch.randint(1, n, (rows,), generator=gen)
    seq = torch.zeros(rows, n, dtype=torch.long)
    seq[:, :10] = torch.randint(1, n, (rows, 10), generator=gen)
    seq[-1, : n - 3] = torch.tensor([i for i in range(1, n) if i != int(targets[-1])][: n - 3])  # all but 2 items
    interaction = Interaction({model.POS_ITEM_ID: targets, model.ITEM_SEQ: seq,
                               model.ITEM_SEQ_LEN: (seq > 0).sum(1)})
    torch.manual_seed(1)
    candidates, target_pos = model.training_candidates(interaction, device="cpu")
    assert candidates.shape == (rows, num) and set(target_pos.tolist()) == set(range(num))
    for b in range(rows):
        row = candidates[b].tolist()
        assert row[target_pos[b]] == targets[b] and len(set(row)) == num and min(row) >= 1
        negatives = set(row) - {int(targets[b])}
        if b < rows - 1:
            assert not negatives & set(seq[b].tolist()), b
        else:  # too few items outside this history: history items are allowed
            assert negatives & set(seq[b].tolist())
    torch.manual_seed(1)
    again = model.training_candidates(interaction, device="cpu")
    assert torch.equal(again[0], candidates) and torch.equal(again[1], target_pos)


def test_distillation_pulls_the_last_item_state_to_the_cached_sasrec(speeder_config, workdir):
    """distill_weight: the loss adds weight x (1 - cos(D h_last + d, SASRec's representation of the
    sequence)), computed here by hand; the teacher is the frozen SASRec of the seq features (its
    item embeddings are those features), cached, out of the checkpoint; D trains in every stage."""
    import glob

    import torch.nn.functional as F

    config_dict = dict(speeder_config, use_ppt=False, mome_dropout=0.0, lora_dropout=0.0, distill_weight=0.5)
    config, train_data, model, _ = build(config_dict)
    teacher = model.sequence_teacher
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert not any(k.startswith("sequence_teacher") for k in model.state_dict())
    seq_row = model.feature_seq[1:]
    assert torch.allclose(teacher.item_embedding.weight[1:].float().cpu(), seq_row)
    cached = glob.glob(os.path.join(config["data_path"], "features", "seq-teacher-*.pt"))
    assert len(cached) == 1

    model.set_stage(3)
    model.train()
    interaction = next(iter(train_data))
    loss = model.calculate_loss(interaction)
    model.distill_weight = 0.0
    without = model.calculate_loss(interaction)
    histories = model.recent_history(interaction)
    candidates, _ = model.training_candidates(interaction, device="cpu")
    batch = model.prompt.build(histories, candidates, history_only=True)
    hidden, _, _, _ = model._forward(batch)
    with torch.no_grad():
        target = teacher(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    student = model.distill.proj(hidden["last_item"].float())
    expected = without + 0.5 * (1 - F.cosine_similarity(student, target, dim=-1)).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    model.distill_weight = 0.5
    for stage in (1, 3):
        model.set_stage(stage)
        model.zero_grad()
        model.calculate_loss(interaction).backward()
        assert model.distill.proj.weight.grad.abs().sum() > 0

    # a second run reads the cached teacher: the same weights, no training, no random draws
    from recbole_speeder.features.sequential import load_sequence_teacher
    from recbole_speeder.quick_start import sequence_model_for

    before = torch.get_rng_state()
    again = load_sequence_teacher(config, train_data._dataset, train_data, sequence_model_for(config))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), teacher.state_dict().values()))
    # a damaged cache file is trained again and replaced, not a traceback
    with open(cached[0], "wb") as f:
        f.write(b"not a torch file")
    retrained = load_sequence_teacher(config, train_data._dataset, train_data, sequence_model_for(config))
    assert set(torch.load(cached[0], weights_only=True)) == set(retrained.state_dict())
    # the paper's label answer distills the same hidden state (the last history item's, read beside
    # the answer), and D learns from it
    _, _, index_model, _ = build(dict(config_dict, answer_head="index"))
    index_model.set_stage(3)
    index_model.train()
    index_model.zero_grad()
    index_model.calculate_loss(interaction).backward()
    assert index_model.distill.proj.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="distill_weight"):
        run(model="Speeder", dataset="tiny", config_dict=dict(config_dict, distill_weight=-1.0))
    with pytest.raises(ConfigError, match="seq_encoder_epochs: 0 leaves untrained"):  # a random teacher
        run(model="Speeder", dataset="tiny", config_dict=dict(config_dict, seq_encoder_epochs=0))


def test_reconstruction_trains_in_its_stages_and_logs_accuracy(speeder_config, workdir):
    """Stage 1 adds the title-reconstruction loss; stage 3 (not in reconstruction_stages) does
    not; the logged token accuracy is the arg-max agreement at the title positions."""
    from recbole_speeder.llm.decoding import decoder_hidden, head_logits
    from recbole_speeder.prompts.base import build_inputs_embeds

    config, train_data, model, _ = build(dict(speeder_config, use_ppt=False, reconstruction_eval_items=6))
    interaction = next(iter(train_data))
    model.set_stage(1)
    assert model.reconstructs()
    torch.manual_seed(0)
    with_task = model.calculate_loss(interaction)
    torch.manual_seed(0)
    model.reconstruction_weight = 0.0
    without = model.calculate_loss(interaction)
    assert with_task > without
    # the catalog loss fuses every item for the recommendation prompts; the reconstruction
    # prompts fuse only their own items (one MRC pass over the catalog per step)
    fused_sizes, fuse = [], model.fuse
    model.fuse = lambda ids: fused_sizes.append(len(ids)) or fuse(ids)
    model.reconstruction_weight = 1.0
    model.calculate_loss(interaction)
    del model.fuse
    assert model.score_loss == "catalog" and fused_sizes[0] == model.n_items
    assert len(fused_sizes) == 2 and fused_sizes[1] < model.n_items
    model.set_stage(3)
    assert not model.reconstructs()
    # the prompt: one placeholder holding the item, labels on the title tokens + eos only
    batch, labels = model.reconstruction.build([3, 7])
    assert batch.slot_item_ids().tolist() == [3, 7]
    for row, item in enumerate([3, 7]):
        answer = labels[row][labels[row] != -100].tolist()
        assert answer == list(model.reconstruction.title_ids(item)) + [model.reconstruction.eos_id]
    # accuracy == arg-max of the full logits at the positions before each title token
    model.eval()
    items = model.reconstruction_eval_items
    assert len(items) == 6
    report = model.reconstruction_accuracy()
    batch, labels = model.reconstruction.build(items)
    with torch.no_grad():
        embeds = build_inputs_embeds(model.llm, batch, model._item_vectors(batch)[0])
        logits = head_logits(model.llm, decoder_hidden(model.llm, embeds, batch.attention_mask))
    predicted = logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    mask = target != -100
    assert report["recon_token_acc"] == pytest.approx(float((predicted == target)[mask].float().mean()), abs=1e-4)
    exact = [bool((predicted[b] == target[b])[mask[b]].all()) for b in range(len(items))]
    assert report["recon_exact"] == pytest.approx(sum(exact) / len(items), abs=1e-4)


def test_validation_curves_are_written_beside_the_log(speeder_config):
    """The paper's Figure 5: VHR@1, PPT and reconstruction accuracy after every validation, one
    row per validation across the MPO stages, in <log>-curves.csv (+ .png) beside the run's log."""
    import csv

    from recbole_speeder.trainer.curves import run_log_file

    result = run(model="Speeder", dataset="tiny", config_dict=dict(speeder_config, reconstruction_eval_items=4))
    stem = os.path.splitext(run_log_file())[0] + "-curves"
    with open(stem + ".csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["stage"] for r in rows] == ["1", "2", "3"]
    assert [r["validation"] for r in rows] == ["1", "2", "3"]
    assert {"vhr@1", "ppt_acc", "recon_token_acc", "recon_exact"} <= set(rows[0])
    assert float(rows[-1]["vhr@1"]) == pytest.approx(result["candidate_valid"]["vhr@1"], abs=1e-4)
    assert all(0.0 <= float(r[name]) <= 1.0 for r in rows for name in ("ppt_acc", "recon_token_acc"))
    with open(stem + ".png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_benchmark_job_keeps_its_curves_beside_its_row(speeder_config, workdir):
    """benchmark.py --jobs: each run's folder holds its Figure-5 curves (run-curves.csv / .png),
    the same as those beside RecBole's log, so that a results folder needs no log/ tree."""
    import json

    from recbole_speeder.benchmark import _run_one
    from recbole_speeder.trainer.curves import curve_files, run_log_file

    folder = workdir / "jobs" / "Speeder-2020"
    folder.mkdir(parents=True)
    spec = {"model": "Speeder", "dataset": "tiny", "config_dict": speeder_config}
    _run_one(json.dumps(spec), str(folder / "rows.json"))
    assert json.loads((folder / "rows.json").read_text())[0]["model"] == "Speeder"
    for path in curve_files(run_log_file()):
        with open(path, "rb") as f:
            assert (folder / ("run-curves" + os.path.splitext(path)[1])).read_bytes() == f.read()
    assert sorted(os.listdir(folder)) == ["rows.json", "run-curves.csv", "run-curves.png"]
