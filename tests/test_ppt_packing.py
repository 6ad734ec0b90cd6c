"""PPT in the recommendation row (ppt_layout: shared) and padding-free packing (issue 18)."""

import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from recbole_speeder.errors import ConfigError
from recbole_speeder.llm.backbone import apply_lora, load_tokenizer
from recbole_speeder.llm.decoding import head_logits, hidden_at
from recbole_speeder.model.layers.spae import PositionPrompts
from recbole_speeder.prompts.base import build_inputs_embeds
from recbole_speeder.prompts.hybrid import HybridPrompt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed_worker import build  # noqa: E402

HISTORIES = [[5, 6, 7, 8, 9], [8, 9], [3, 4, 5, 6], [10, 11, 12]]
CANDIDATES = [[11, 12, 13], [21, 22, 23], [14, 15, 16], [17, 18, 19]]
TARGET_POS = [2, 0, 1, 1]
PPT_ROWS = [0, 2, 3]
ABC = [[9, 5, 7], [6, 3, 4], [12, 10, 11]]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def prompt(tokenizer):
    return HybridPrompt(tokenizer)


def tiny_llm(tokenizer, lora=False):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         attn_implementation="sdpa")
    model = LlamaForCausalLM(config)
    if lora:
        model = apply_lora(model, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
        for name, param in model.named_parameters():
            if "lora_B" in name:  # make the adapters matter
                torch.nn.init.normal_(param, std=0.5)
    return model.eval()


def answer_logits(model, batch, table, ppl=None, names=("rec",)):
    """name -> logits at the batch's answers (item vectors from ``table``, one decoder pass)."""
    embeds = build_inputs_embeds(model, batch, table[batch.slot_item_ids()], ppl)
    pairs = [batch.answer(n) for n in names]
    hidden = hidden_at(model, embeds, torch.cat([r for r, _ in pairs]), torch.cat([p for _, p in pairs]),
                       attention_mask=batch.decoder_mask(), packing=batch.packing)
    return dict(zip(names, head_logits(model, hidden).split([len(r) for r, _ in pairs])))


def test_shared_rows_put_both_answers_where_they_belong(prompt, tokenizer):
    batch = prompt.build_shared(HISTORIES, CANDIDATES, TARGET_POS, PPT_ROWS, ABC)
    labels = prompt.label_token_ids(3)
    rows, positions = batch.answer("rec")
    assert rows.tolist() == [0, 1, 2, 3]
    last = batch.input_ids.shape[1] - 1
    for b in range(4):
        if b in PPT_ROWS:  # the recommendation answer is read in the middle: the target's label follows it
            assert positions[b] < last
            assert batch.input_ids[b, positions[b] + 1] == labels[TARGET_POS[b]]
        else:  # a row without PPT ends with its recommendation prompt
            assert positions[b] == last
    ppt_rows, ppt_positions = batch.answer("ppt")
    assert ppt_rows.tolist() == PPT_ROWS and (ppt_positions == last).all()
    # the recommendation part of a shared row is exactly the recommendation prompt
    plain = prompt.build(HISTORIES, CANDIDATES)
    for b in range(4):
        rec = plain.input_ids[b][plain.attention_mask[b].bool()]
        keep = batch.attention_mask[b].bool()
        start = int((~keep).sum())
        assert torch.equal(batch.input_ids[b, start:start + len(rec)], rec)
    text = prompt.render(batch, 0)
    assert text.endswith("only.3\nGap [item 9]-[item 5] at most gap to [item 7]?")
    assert text.count("[item 5]") == 2  # the history once, and b
    # a, b, c carry no position prompt; history items 1..n do
    hist = batch.slot_history_index()[batch.slot_positions()[0] == 0]
    assert hist.tolist() == [1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0]


def test_with_the_chat_template_the_question_is_a_new_user_turn(tokenizer):
    prompt = HybridPrompt(tokenizer, use_chat_template=True)
    batch = prompt.build_shared([[5, 6, 7]], [[11, 12, 13]], [1], [0], [[7, 5, 6]])
    text = prompt.render(batch)
    answer = text.index("<|im_start|>assistant\n2<|im_end|>")
    assert text.index("<|im_start|>user\nGap [item 7]-[item 5] at most gap to [item 6]?") > answer
    assert text.endswith("gap to [item 6]?<|im_end|>\n<|im_start|>assistant\n")
    rows, positions = batch.answer("rec")
    assert batch.input_ids[0, positions[0] + 1] == prompt.label_token_ids(3)[1]


@pytest.mark.parametrize("packed", [False, True])
def test_the_recommendation_answer_does_not_see_the_ppt_question(prompt, tokenizer, packed):
    """Causality: a shared row gives its recommendation answer the logits of the row without PPT."""
    model = tiny_llm(tokenizer)
    table = 3 * torch.randn(30, 32)
    ppl = PositionPrompts(n_max=10, hidden=32)
    shared = prompt.build_shared(HISTORIES, CANDIDATES, TARGET_POS, PPT_ROWS, ABC)
    plain = prompt.build(HISTORIES, CANDIDATES)
    if packed:
        shared, plain = shared.pack(), plain.pack()
    with torch.no_grad():
        with_ppt = answer_logits(model, shared, table, ppl, names=("rec", "ppt"))
        without = answer_logits(model, plain, table, ppl)
    assert with_ppt["rec"].shape == (4, len(tokenizer)) and with_ppt["ppt"].shape == (3, len(tokenizer))
    assert torch.allclose(with_ppt["rec"], without["rec"], atol=1e-5)
    # ... and the PPT answer does depend on the question
    other = prompt.build_shared(HISTORIES, CANDIDATES, TARGET_POS, PPT_ROWS, [[5, 9, 7], [6, 3, 4], [12, 10, 11]])
    with torch.no_grad():
        changed = answer_logits(model, other.pack() if packed else other, table, ppl, names=("rec", "ppt"))
    assert (changed["ppt"][0] - with_ppt["ppt"][0]).abs().max() > 1e-5
    assert torch.allclose(changed["ppt"][1:], with_ppt["ppt"][1:], atol=1e-5)


@pytest.mark.parametrize("packed", [False, True])
def test_history_only_rows_end_at_the_history_and_ask_ppt_right_after_it(prompt, tokenizer, packed):
    """score_readout last_item (history_only): every row is the prompt cut after its last history
    item; a PPT row goes on with the follow-up question there. The readout at the last history
    item gets the hidden state of the whole prompt (causality), the PPT answer is the row's end."""
    batch = prompt.build_shared(HISTORIES, CANDIDATES, TARGET_POS, PPT_ROWS, ABC, history_only=True)
    whole = prompt.build(HISTORIES, CANDIDATES)
    text = prompt.render(batch, 0)
    assert text.endswith("5: [item 9]\nGap [item 9]-[item 5] at most gap to [item 7]?")
    assert "candidates" not in text and "[item 11]" not in text
    assert "candidates" not in prompt.render(batch, 1)
    rows, last = batch.answer("last_item")
    assert torch.equal(batch.answer("rec")[1], last)  # the recommendation is read at the last history item
    for b, history in enumerate(HISTORIES):
        assert batch.item_ids[b, last[b]] == history[-1] and batch.history_index[b, last[b]] == len(history)
    ppt_rows, ppt_at = batch.answer("ppt")
    assert ppt_rows.tolist() == PPT_ROWS and (ppt_at == batch.input_ids.shape[1] - 1).all()
    slot_rows = batch.slot_positions()[0]
    for k, b in enumerate(PPT_ROWS):  # the row's slots: its history, then a, b, c
        assert batch.slot_item_ids()[slot_rows == b].tolist() == HISTORIES[b] + ABC[k]
    model = tiny_llm(tokenizer)
    table = 3 * torch.randn(30, 32)
    ppl = PositionPrompts(n_max=10, hidden=32)
    if packed:
        batch, whole = batch.pack(), whole.pack()

    def hidden(b, name):
        embeds = build_inputs_embeds(model, b, table[b.slot_item_ids()], ppl)
        return hidden_at(model, embeds, *b.answer(name), attention_mask=b.decoder_mask(), packing=b.packing)

    with torch.no_grad():
        assert torch.allclose(hidden(batch, "last_item"), hidden(whole, "last_item"), atol=1e-5)


def test_the_default_ppt_question_adds_fourteen_tokens_after_the_history(prompt):
    """The speed measured for the default (docs/benchmarks.md, "Llama-2-7B shape") assumes a PPT row
    is its cut recommendation prompt plus 14 tokens: 11 of text and a, b, c (SmolLM2 tokenizer)."""
    cut = prompt.build(HISTORIES, CANDIDATES, history_only=True)
    shared = prompt.build_shared(HISTORIES, CANDIDATES, TARGET_POS, PPT_ROWS, ABC, history_only=True)
    lengths = shared.attention_mask.sum(1) - cut.attention_mask.sum(1)
    assert lengths.tolist() == [14 if b in PPT_ROWS else 0 for b in range(len(HISTORIES))]


@pytest.mark.parametrize("lora", [False, True])
def test_packing_gives_the_padded_logits_and_gradients(prompt, tokenizer, lora):
    model = tiny_llm(tokenizer, lora=lora)
    # prompts of five lengths, two of them twice: recommendation, PPT and shared rows
    padded = prompt.build_shared(HISTORIES, CANDIDATES, TARGET_POS, PPT_ROWS, ABC).concat(
        prompt.build_ppt([[5, 6, 7], [8, 9, 10, 11]], [[5, 6, 7], [11, 9, 8]]), prompt.pad_id)
    assert padded.has_padding()
    packed = padded.pack()
    assert packed.input_ids.shape == (1, int(padded.attention_mask.sum()))
    assert packed.decoder_mask() is None and padded.decoder_mask() is not None
    lengths = sorted(padded.attention_mask.sum(dim=1).tolist())
    assert list(packed.packing.lengths) == lengths
    assert packed.packing.cu_seqlens.tolist() == [0, *np.cumsum(lengths).tolist()]
    assert [g[1] for g in packed.packing.groups] == [len([n for n in lengths if n == m]) for m in sorted(set(lengths))]
    # the same tokens sit at every answer and placeholder
    for name in ("rec", "ppt"):
        assert torch.equal(padded.input_ids[padded.answer(name)], packed.input_ids[packed.answer(name)])
    assert torch.equal(padded.slot_item_ids(), packed.slot_item_ids())
    assert torch.equal(padded.slot_history_index(), packed.slot_history_index())

    table = torch.randn(30, 32)
    ppl = PositionPrompts(n_max=10, hidden=32)
    results = []
    for batch in (padded, packed):
        vectors = table.clone().requires_grad_(True)
        logits = answer_logits(model, batch, vectors, ppl, names=("rec", "ppt"))
        (logits["rec"].logsumexp(dim=1).sum() + logits["ppt"][:, :7].sum()).backward()
        results.append((logits, vectors.grad))
    (a, grad_a), (b, grad_b) = results
    for name in ("rec", "ppt"):
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    assert torch.allclose(grad_a, grad_b, atol=1e-5)


def test_packing_keeps_the_extras_and_leaves_unpadded_batches_alone(prompt):
    same = prompt.build([[5, 6, 7], [8, 9, 10]], [[11, 12, 13], [14, 15, 16]])
    assert not same.has_padding() and same.pack() is same and same.decoder_mask() is None
    batch = prompt.build([[5, 6, 7], [8, 9]], [[11, 12, 13], [14, 15, 16]])
    batch.extras = {"rec_target": torch.tensor([4, 5])}
    packed = batch.pack()
    assert packed.packing.groups == ((0, 1, packed.packing.lengths[0]), (packed.packing.lengths[0], 1,
                                                                          packed.packing.lengths[1]))
    assert packed.extras["rec_target"].tolist() == [4, 5]
    moved = packed.to("cpu")
    assert moved.packing.lengths == packed.packing.lengths and moved.extras["rec_target"].tolist() == [4, 5]
    assert torch.equal(moved.answer("rec")[1], packed.answer("rec")[1])


@pytest.fixture
def speeder_config(fast_config, tiny_llm_dir):
    return dict(fast_config, llm_path=tiny_llm_dir, train_batch_size=8, eval_batch_size=16, mome_dim=16,
                mome_heads=2, history_len=5, modalities=["text"], text_encoder="llm", ppt_ratio=0.6,
                mome_dropout=0.0, lora_dropout=0.0)


@pytest.mark.parametrize("layout,packing", [("shared", True), ("shared", False), ("separate", True),
                                            ("separate", False)])
def test_speeder_losses_are_the_cross_entropy_at_both_answers(speeder_config, layout, packing):
    """calculate_loss = mean cross-entropy of the recommendation and PPT answers, read from the
    model's plain forward (full logits of the padded rows) at the positions the batch names."""
    _, train_data, model, _ = build(dict(speeder_config, ppt_layout=layout, prompt_packing=packing,
                                         reconstruction_stages=[], answer_head="index", distill_weight=0.0))
    model.set_stage(1)
    model.train()
    interaction = next(iter(train_data))
    torch.manual_seed(7)
    loss = model.calculate_loss(interaction)
    torch.manual_seed(7)  # the same candidates and PPT questions again
    histories = model.recent_history(interaction)
    candidates, target_pos = model.training_candidates(interaction, device="cpu")
    batch = model._on_device(model._training_batch(histories, candidates, target_pos), pack=False)
    assert "ppt_target" in batch.extras  # ppt_ratio 0.6 of 8 sequences: some PPT questions
    embeds = build_inputs_embeds(model.llm, batch, model._item_vectors(batch)[0], model.ppl)
    position_ids = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    full = model.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=position_ids).logits
    rec = full[batch.answer("rec")].float()
    ppt = full[batch.answer("ppt")].float()
    assert len(rec) == len(histories)
    label_ids = model.prompt.label_token_ids(model.num_candidates)
    assert torch.equal(batch.extras["rec_target"], label_ids[target_pos])
    assert set(batch.extras["ppt_target"].tolist()) <= {model.prompt.yes_id, model.prompt.no_id}
    expected = F.cross_entropy(torch.cat([rec, ppt]), torch.cat([batch.extras["rec_target"], batch.extras["ppt_target"]]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    if layout == "shared":  # the rows hold the target's label right after the recommendation answer
        rows, positions = batch.answer("rec")
        ppt_rows = batch.answer("ppt")[0]
        assert torch.equal(batch.input_ids[ppt_rows, positions[ppt_rows] + 1], batch.extras["rec_target"][ppt_rows])
    else:  # PPT questions are rows of their own after the recommendation rows
        assert batch.answer("ppt")[0].min() == len(histories)
    report = model.valid_epoch_report()
    assert report["ppt_skipped"] >= 0 and 0.0 <= report["ppt_acc"] <= 1.0


def test_ppt_layout_refuses_unknown_values(speeder_config):
    with pytest.raises(ConfigError, match=r"ppt_layout: 'both' is not one of shared, separate"):
        build(dict(speeder_config, ppt_layout="both"))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_ppt_question_positions_give_a_b_c_their_own_position_prompts(speeder_config, layout):
    """ppt_question_positions: each PPT question's a, b, c placeholder carries the history position
    of the same item (so it gets that p_i in build_inputs_embeds); off (the paper's form) they
    carry none. The questions, answers and the rest of the batch are the same either way."""
    batches = {}
    for on in (False, True):
        _, train_data, model, _ = build(dict(speeder_config, ppt_layout=layout, ppt_question_positions=on,
                                             reconstruction_stages=[], prompt_packing=False))
        interaction = next(iter(train_data))
        torch.manual_seed(7)
        histories = model.recent_history(interaction)
        candidates, target_pos = model.training_candidates(interaction, device="cpu")
        batches[on] = model._training_batch(histories, candidates, target_pos)
    off, on = batches[False], batches[True]
    assert torch.equal(off.input_ids, on.input_ids) and torch.equal(off.item_ids, on.item_ids)
    assert torch.equal(off.extras["ppt_target"], on.extras["ppt_target"])
    changed = (on.history_index != off.history_index).nonzero().tolist()
    assert len(changed) == 3 * len(on.extras["ppt_target"]) > 0  # a, b, c of every question, nothing else
    for row, col in changed:
        position = int(on.history_index[row, col])
        own = (off.history_index[row] == position).nonzero().flatten()  # that history slot of the row
        assert off.history_index[row, col] == 0 and len(own) == 1
        assert on.item_ids[row, col] == on.item_ids[row, own[0]]
        assert col > own.max()  # the question comes after the history
