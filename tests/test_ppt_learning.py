"""Is PPT wired right, and the settings that try to make it learnable (issue 39).

A PPT row decodes back to its history positions with eq 14's label; the PPT loss alone reaches
LoRA, PPL and MRC in every MPO stage; the counted accuracy and the loss terms are hand counts;
``ppt_question`` / ``ppt_curriculum_end`` / ``ppt_stages`` / ``ppt_ratio`` > 1 change which
questions a batch asks, ``ppt_weight`` how the loss weighs them.
"""

import os
import sys

import pytest
import torch
import torch.nn.functional as F

from recbole_speeder.config import Config
from recbole_speeder.errors import ConfigError
from recbole_speeder.prompts.base import build_inputs_embeds

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed_worker import build  # noqa: E402


@pytest.fixture
def speeder_config(fast_config, tiny_llm_dir):
    return dict(fast_config, llm_path=tiny_llm_dir, train_batch_size=8, eval_batch_size=16, mome_dim=16,
                mome_heads=2, history_len=5, modalities=["text"], text_encoder="llm", seq_encoder_epochs=1,
                seq_encoder_hidden=16, ppt_ratio=1.0, mome_dropout=0.0, lora_dropout=0.0,
                reconstruction_stages=[], prompt_packing=False)


def training_batch(model, interaction, seed):
    """The host batch of :meth:`Speeder.calculate_loss` for ``interaction`` under torch seed ``seed``."""
    torch.manual_seed(seed)
    histories = model.recent_history(interaction)
    candidates, target_pos = model.training_candidates(interaction, device="cpu")
    return model._training_batch(histories, candidates, target_pos)


def decode(model, batch):
    """Per PPT answer, in answer order: (question, the row's history items, (a, b, c) items, the
    history positions carried by a, b, c's placeholders), read off the batch and its text."""
    slot_rows = batch.slot_positions()[0]
    items, carried = batch.slot_item_ids(), batch.slot_history_index()
    out = []
    for row in batch.answer("ppt")[0].tolist():
        mine = (slot_rows == row).nonzero().flatten()  # the row's placeholders in position order
        abc = [int(items[s]) for s in mine[-3:]]  # the question names a, b, c last
        history = [int(items[s]) for s in mine[:-3] if carried[s] > 0]  # candidates carry no position
        assert [int(carried[s]) for s in mine[:-3] if carried[s] > 0] == list(range(1, len(history) + 1))
        text = model.prompt.render(batch, row)
        a, b, c = (f"[item {i}]" for i in abc)
        if (text.endswith(f"Gap {a}-{b} at most gap to {c}?")
                or f"the items {a}, {b} and {c}. Are the first two" in text):
            question = "distance"
        else:
            assert text.endswith(f"Of {a}, {b}, {c}: first before second?") or (
                f"the items {a}, {b} and {c}. Does the first come before the second" in text), text
            question = "order"
        out.append((question, history, abc, [int(carried[s]) for s in mine[-3:]]))
    return out


def check_labels(model, batch):
    """Every PPT answer's target is eq 14's (distance) or idx_a < idx_b (order) for the positions
    of a, b, c in its row's history (an item stands at its latest occurrence); returns the
    questions asked, in answer order."""
    decoded = decode(model, batch)
    targets = batch.extras["ppt_target"].tolist()
    assert len(targets) == len(decoded) > 0
    for (question, history, abc, carried), target in zip(decoded, targets):
        position = {item: k + 1 for k, item in enumerate(history)}  # the latest occurrence wins
        assert len(set(abc)) == 3 and set(abc) <= set(history)
        pa, pb, pc = (position[i] for i in abc)
        yes = abs(pa - pb) <= abs(pb - pc) if question == "distance" else pa < pb
        assert target == (model.prompt.yes_id if yes else model.prompt.no_id)
        assert carried == ([pa, pb, pc] if model.ppt_question_positions else [0, 0, 0])
    if "ppt_order" in batch.extras:
        assert batch.extras["ppt_order"].tolist() == [int(q == "order") for q, *_ in decoded]
    return [q for q, *_ in decoded]


@pytest.mark.parametrize("layout,question,positions,extra", [
    ("shared", "distance", False, {}),
    ("separate", "distance", True, {}),
    ("shared", "order", True, {}),
    ("separate", "order", False, {}),
    # two or three questions per sequence, the label answer's whole shared row (candidates, label, question)
    ("shared", "curriculum", True, {"ppt_ratio": 2.5, "answer_head": "index"}),
    ("separate", "curriculum", False, {"ppt_ratio": 2.5}),
])
def test_a_ppt_row_decodes_to_its_history_positions_and_the_label_of_its_question(
        speeder_config, layout, question, positions, extra):
    _, train_data, model, _ = build(dict(speeder_config, ppt_layout=layout, ppt_question=question,
                                         ppt_question_positions=positions, **extra))
    model.set_training_progress(0.2)  # curriculum: both questions (order share 0.6)
    asked, answers = [], set()
    for seed, interaction in zip((7, 8, 9), train_data):
        batch = training_batch(model, interaction, seed)
        asked += check_labels(model, batch)
        answers |= set(batch.extras["ppt_target"].tolist())
        histories = [list(map(int, h)) for h in model.recent_history(interaction)]
        rows = batch.answer("ppt")[0].tolist()
        for row, (_, history, _, _) in zip(rows, decode(model, batch)):
            assert history in histories
            if layout == "shared" and row < len(histories):  # the question of sequence b is in row b
                assert history == histories[row]
        if extra.get("ppt_ratio", 1) > 1:  # further questions: rows of their own, after the batch's
            assert len(rows) > len(set(rows) & set(range(len(histories))))
    assert answers == {model.prompt.yes_id, model.prompt.no_id}
    assert set(asked) == ({"distance", "order"} if question == "curriculum" else {question})


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_the_ppt_loss_alone_reaches_lora_ppl_and_mrc_in_every_stage(speeder_config, layout):
    _, train_data, model, _ = build(dict(speeder_config, ppt_layout=layout))
    for name, param in model.llm.named_parameters():
        if "lora_B" in name:  # LoRA starts with B = 0, where no gradient reaches A
            torch.nn.init.normal_(param, std=0.5)
    interaction = next(iter(train_data))
    model.train()
    for stage in (1, 2, 3):
        model.set_stage(stage)
        model.zero_grad()
        torch.manual_seed(stage)
        terms, sizes = model.loss_terms(interaction)
        assert sizes["ppt"] > 0
        terms["ppt"].backward()
        lora = {n: p.grad for n, p in model.llm.named_parameters() if "lora_" in n}
        assert lora and all(g is not None and g.norm() > 0 for g in lora.values()), stage
        assert model.ppl.prompts.grad is not None and model.ppl.prompts.grad.norm() > 0
        mrc = [p.grad for p in model.mrc.parameters() if p.requires_grad]
        assert any(g is not None and g.norm() > 0 for g in mrc)
        # the recommendation's own parts get nothing from it
        assert all(p.grad is None or p.grad.norm() == 0 for p in model.head.parameters())


def test_ppt_acc_and_loss_ppt_are_the_hand_counts_of_fixed_batches(speeder_config):
    """Two training steps; the report gives the share of PPT answers whose larger yes / no logit
    is the target (a plain forward of the same batches, counted by hand) and their mean
    cross-entropy; the next report starts from zero."""
    _, train_data, model, _ = build(dict(speeder_config, distill_weight=0.0))
    model.set_stage(1)
    model.train()
    yes, no = model.prompt.yes_id, model.prompt.no_id
    hits, total, losses = 0, 0, []
    for seed, interaction in zip((7, 8), train_data):
        torch.manual_seed(seed)
        with torch.no_grad():
            model.calculate_loss(interaction)
        batch = training_batch(model, interaction, seed)  # the same candidates and questions
        with torch.no_grad():
            embeds = build_inputs_embeds(model.llm, batch, model._item_vectors(batch)[0], model.ppl)
            position_ids = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
            logits = model.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                               position_ids=position_ids).logits[batch.answer("ppt")].float()
        target = batch.extras["ppt_target"]
        for row, answer in zip(logits.tolist(), target.tolist()):
            hits += (row[yes] >= row[no]) == (answer == yes)
            total += 1
        losses.append(F.cross_entropy(logits, target).item())
    report = model.valid_epoch_report()
    assert total > 0 and report["ppt_acc"] == round(hits / total, 4)
    assert report["loss_ppt"] == pytest.approx(sum(losses) / len(losses), abs=2e-4)
    assert {"loss_rec", "loss_ppt"} <= set(report) and "loss_distill" not in report
    again = model.valid_epoch_report()
    assert again["ppt_acc"] == 0.0 and not any(k.startswith("loss_") for k in again)


def test_the_loss_terms_and_ppt_weight(speeder_config):
    """calculate_loss combines loss_terms: the mean over all answers (ppt_weight ~), or
    L_rec + w L_ppt with w per stage; the report gives each term's mean over its steps, distillation
    and reconstruction times their weights."""
    config = dict(speeder_config, distill_weight=0.5, reconstruction_stages=[1], reconstruction_weight=2.0)
    for weight in (None, [0.0, 1.0, 3.0]):
        _, train_data, model, _ = build(dict(config, ppt_weight=weight))
        model.train()
        seen, loss_terms = [], model.loss_terms
        model.loss_terms = lambda interaction: seen.append(loss_terms(interaction)) or seen[-1]
        for stage, seed, interaction in zip((1, 1, 3), (7, 8, 9), train_data):
            model.set_stage(stage)
            torch.manual_seed(seed)
            loss = model.calculate_loss(interaction)
            terms, sizes = seen[-1]
            assert ("recon" in terms) == (stage == 1) and {"rec", "ppt", "distill"} <= set(terms)
            if weight is None:
                expected = (terms["rec"] * sizes["rec"] + terms["ppt"] * sizes["ppt"]) / (sizes["rec"] + sizes["ppt"])
            else:
                expected = terms["rec"] + weight[stage - 1] * terms["ppt"]
            expected = expected + 0.5 * terms["distill"] + (2.0 * terms["recon"] if stage == 1 else 0)
            assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
        report = model.valid_epoch_report()

        def mean(name):
            values = [t[name].item() for t, _ in seen if name in t]
            return sum(values) / len(values)

        assert report["loss_rec"] == pytest.approx(mean("rec"), abs=1e-4)
        assert report["loss_ppt"] == pytest.approx(mean("ppt"), abs=1e-4)
        assert report["loss_distill"] == pytest.approx(0.5 * mean("distill"), abs=1e-4)
        assert report["loss_recon"] == pytest.approx(2.0 * mean("recon"), abs=1e-4)  # stage 1's two steps


def test_the_curriculum_moves_each_row_from_the_order_to_the_distance_question(speeder_config):
    """ppt_question: curriculum: at the first step every question is the order one, half-way to
    ppt_curriculum_end both are asked, from ppt_curriculum_end on only the distance one."""
    _, train_data, model, _ = build(dict(speeder_config, ppt_question="curriculum", ppt_curriculum_end=0.4,
                                         ppt_ratio=3.0))
    interaction = next(iter(train_data))
    asked = {}
    for progress in (0.0, 0.2, 0.4, 0.9):
        model.set_training_progress(progress)
        asked[progress] = check_labels(model, training_batch(model, interaction, 7))
    assert set(asked[0.0]) == {"order"}
    assert set(asked[0.2]) == {"order", "distance"}
    assert set(asked[0.4]) == set(asked[0.9]) == {"distance"}
    # the same draws ask the same items: only the question (and so the label) changes
    assert [len(a) for a in asked.values()] == [len(asked[0.0])] * 4


def test_the_trainer_tells_the_model_how_far_the_run_is(speeder_config):
    """Before every training step the share of the run's steps done (across the MPO stages)."""
    _, train_data, model, trainer = build(dict(speeder_config, stage_epochs=[1, 1, 2], steps_per_epoch=2))
    shares = []
    model.set_training_progress = shares.append
    trainer._enter_stage(3)
    trainer.epochs = 2
    trainer._build_scheduler(train_data, 2)
    trainer._train_epoch(train_data, 1)
    assert shares == pytest.approx([3 / 4, 3.5 / 4])
    assert trainer.run_progress(0, 0, 2) == pytest.approx(2 / 4)


def test_ppt_stages_leave_the_other_stages_without_ppt(speeder_config):
    _, train_data, model, _ = build(dict(speeder_config, ppt_stages=[1, 2]))
    interaction = next(iter(train_data))
    for stage, asks in ((1, True), (2, True), (3, False)):
        model.set_stage(stage)
        assert model.asks_ppt() == asks
        batch = training_batch(model, interaction, 7)
        assert ("ppt_target" in batch.extras) == asks and ("ppt" in (batch.answers or {})) == asks
    model.set_stage(3)
    model.train()
    torch.manual_seed(7)
    terms, _ = model.loss_terms(interaction)
    assert "ppt" not in terms


@pytest.mark.parametrize("key,value,match", [
    ("ppt_question", "both", r"ppt_question: 'both' is not one of distance, order, curriculum"),
    ("ppt_stages", [1, 4], r"ppt_stages must list stages of 1, 2, 3"),
    ("ppt_weight", [1.0, 2.0], r"ppt_weight must be ~, a number >= 0 or a list of 3"),
    ("ppt_weight", -1.0, r"ppt_weight"),
    ("ppt_curriculum_end", 1.5, r"ppt_curriculum_end .* in \(0, 1\]"),
    ("ppt_ratio", -0.5, r"ppt_ratio"),
])
def test_bad_ppt_settings_are_refused_before_any_data_is_read(speeder_config, key, value, match):
    with pytest.raises(ConfigError, match=match):
        Config(model="Speeder", dataset="tiny", config_dict=dict(speeder_config, **{key: value}))
