"""Hybrid prompts: layout, placeholder embeddings, answer-position logits, answer parsing."""

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from recbole_speeder.errors import ConfigError
from recbole_speeder.llm.backbone import apply_lora, load_tokenizer
from recbole_speeder.llm.answers import label_answer_loss, label_scores, parse_label_answer
from recbole_speeder.llm.decoding import answer_logits, decode_answers, generate_answers
from recbole_speeder.prompts.base import build_inputs_embeds
from recbole_speeder.prompts.hybrid import HybridPrompt
from recbole_speeder.model.layers.spae import PositionPrompts


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()  # the offline SmolLM2 tokenizer (converted folder or GGUF)


@pytest.fixture(scope="module")
def prompt(tokenizer):
    return HybridPrompt(tokenizer)


def tiny_llm(tokenizer, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


def test_layout_places_items_in_order(prompt):
    batch = prompt.build([[5, 6, 7], [8, 9]], [[11, 12, 13, 14, 15], [21, 22, 23, 24, 25]])
    assert prompt.render(batch, 0) == (
        "Here is the purchase history of a user, oldest first: 1: [item 5], 2: [item 6], "
        "3: [item 7]. Which of these candidates will the user buy next? 1: [item 11], "
        "2: [item 12], 3: [item 13], 4: [item 14], 5: [item 15]. Answer with the number of "
        "one candidate only.")
    # row 1 is shorter: left padding, identical tail layout apart from one history item
    row0, row1 = batch.item_ids[0], batch.item_ids[1]
    assert row0[row0 > 0].tolist() == [5, 6, 7, 11, 12, 13, 14, 15]
    assert row1[row1 > 0].tolist() == [8, 9, 21, 22, 23, 24, 25]
    assert batch.history_index[0][row0 > 0].tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert batch.history_index[1][row1 > 0].tolist() == [1, 2, 0, 0, 0, 0, 0]
    pad = int((batch.attention_mask[1] == 0).sum())
    assert pad > 0 and batch.attention_mask[1, :pad].sum() == 0
    assert batch.attention_mask[:, -1].tolist() == [1, 1]
    assert batch.input_ids[0, -1] == batch.input_ids[1, -1]
    assert batch.answer_position == batch.input_ids.shape[1] - 1
    # placeholders are padded ids; no text token is mistaken for an item
    assert (batch.input_ids[batch.slot_mask] == prompt.pad_id).all()
    assert batch.slot_item_ids().tolist() == [5, 6, 7, 11, 12, 13, 14, 15,
                                              8, 9, 21, 22, 23, 24, 25]


def test_fixed_text_matches_tokenizer(prompt, tokenizer):
    """Text pieces are tokenised as the tokenizer reads them in a running text."""
    batch = prompt.build([[3]], [[4, 5]])
    ids = batch.input_ids[0][batch.attention_mask[0].bool()].tolist()
    slots = batch.item_ids[0][batch.attention_mask[0].bool()].tolist()
    first_slot = slots.index(3)
    head = tokenizer.encode("Here is the purchase history of a user, oldest first: 1: ",
                            add_special_tokens=False)
    assert ids[:first_slot] == head


def test_candidate_labels_are_single_tokens(prompt, tokenizer):
    for c in (2, 5, 9):
        labels = prompt.candidate_labels(c)
        assert labels == tuple(str(i) for i in range(1, c + 1))
        ids = prompt.label_token_ids(c).tolist()
        assert [tokenizer.decode([i]) for i in ids] == list(labels)
    # SmolLM2 splits "10" into "1", "0": from 10 candidates on the labels are letters
    assert len(tokenizer.encode("10", add_special_tokens=False)) == 2
    labels = prompt.candidate_labels(20)
    assert labels[0] == "A" and labels[-1] == "T"
    assert [tokenizer.decode([i]) for i in prompt.label_token_ids(20).tolist()] == list(labels)
    batch = prompt.build([[1]], [list(range(2, 22))])
    assert "T: [item 21]" in prompt.render(batch)
    with pytest.raises(ConfigError, match="26"):
        prompt.candidate_labels(27)
    assert tokenizer.decode([prompt.yes_id]) == "yes" and tokenizer.decode([prompt.no_id]) == "no"


def test_a_multi_token_answer_is_refused_and_a_spelled_one_explained(prompt):
    """A one-token answer the tokenizer splits is a ConfigError; when it spells the word letter by
    letter (what transformers 5.17 made of Gemma-3's GGUF tokenizer), the message says why."""
    assert prompt.single_token_id("yes") == prompt.yes_id
    with pytest.raises(ConfigError, match="into 2 tokens; the one-token answer needs a single token$"):
        prompt.single_token_id("yes please")
    with pytest.raises(ConfigError, match="into 4 tokens.*letter by letter.*transformers >= 5.23"):
        prompt.single_token_id("zqxj")


def test_ppt_layout(prompt):
    batch = prompt.build_ppt([[5, 6, 7, 8]], torch.tensor([[8, 5, 6]]))
    text = prompt.render(batch)
    assert "1: [item 5], 2: [item 6], 3: [item 7], 4: [item 8]" in text
    assert "Consider the items [item 8], [item 5] and [item 6]." in text
    # a, b, c carry no position prompt
    assert batch.slot_history_index().tolist() == [1, 2, 3, 4, 0, 0, 0]


def test_template_errors(tokenizer):
    with pytest.raises(ConfigError, match=r"prompt_template must contain \{candidates\}"):
        HybridPrompt(tokenizer, prompt_template="History: {history}.")
    with pytest.raises(ConfigError, match="unknown placeholders"):
        HybridPrompt(tokenizer, prompt_template="{history} {candidates} {user}")
    with pytest.raises(ConfigError, match="candidate_item_template must contain <item>"):
        HybridPrompt(tokenizer, candidate_item_template="{index}")
    with pytest.raises(ConfigError, match="candidate_labels"):
        HybridPrompt(tokenizer, candidate_labels="roman")
    custom = HybridPrompt(tokenizer, prompt_template="H {history} C {candidates} ->",
                          history_item_template="<item>", candidate_item_template="({index})<item>",
                          item_separator=" ")
    assert custom.render(custom.build([[4, 5]], [[6, 7]])) == "H [item 4] [item 5] C (1)[item 6] (2)[item 7] ->"


def test_chat_template_wraps_prompt(tokenizer):
    chat = HybridPrompt(tokenizer, use_chat_template=True)
    text = chat.render(chat.build([[4]], [[6, 7]]))
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    assert "1: [item 4]. Which" in text


def test_inputs_embeds_replace_placeholders(prompt, tokenizer):
    model = tiny_llm(tokenizer)
    batch = prompt.build([[5, 6, 7], [8, 9]], [[11, 12, 13], [21, 22, 23]])
    slots = batch.slot_mask
    vectors = torch.randn(int(slots.sum()), 32, requires_grad=True)
    ppl = PositionPrompts(n_max=10, hidden=32)
    embeds = build_inputs_embeds(model, batch, vectors, ppl)
    tokens = model.get_input_embeddings()(batch.input_ids)
    assert torch.equal(embeds[~slots], tokens[~slots])
    hist = batch.slot_history_index()
    expected = vectors + torch.where(hist[:, None] > 0, ppl.prompts[(hist - 1).clamp(min=0)], 0)
    assert torch.allclose(embeds[slots], expected)
    # the first history item of row 1 carries p_1, its first candidate no position prompt
    pos = (batch.item_ids[1] == 8).nonzero().item()
    k = batch.slot_item_ids().tolist().index(8)
    assert torch.allclose(embeds[1, pos], vectors[k] + ppl.prompts[0])
    embeds.sum().backward()
    assert vectors.grad is not None and torch.all(vectors.grad == 1)
    with pytest.raises(ValueError, match="slot_vectors"):
        build_inputs_embeds(model, batch, vectors[:-1].detach())


def test_answer_logits_equal_full_forward(prompt, tokenizer):
    model = tiny_llm(tokenizer)
    batch = prompt.build([[5, 6, 7], [8, 9]], [[11, 12, 13], [21, 22, 23]])
    vectors = torch.randn(int(batch.slot_mask.sum()), 32)
    with torch.no_grad():
        embeds = build_inputs_embeds(model, batch, vectors)
        position_ids = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        full = model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                     position_ids=position_ids).logits
        last = answer_logits(model, embeds, batch.attention_mask)
        assert last.shape == (2, len(tokenizer))
        assert torch.allclose(last, full[:, -1], atol=1e-5)
        # left padding does not change the shorter prompt's answer logits
        single = prompt.build([[8, 9]], [[21, 22, 23]])
        alone = answer_logits(model, build_inputs_embeds(model, single, vectors[6:]),
                              single.attention_mask)
        assert torch.allclose(alone[0], last[1], atol=1e-4)
        scores = label_scores(last, prompt.label_token_ids(3))
        assert torch.equal(scores, last[:, prompt.label_token_ids(3)])
        target = prompt.label_token_ids(3)[torch.tensor([2, 0])]
        assert torch.allclose(label_answer_loss(last, target), F.cross_entropy(full[:, -1], target))


def test_recommendation_and_ppt_prompts_share_one_forward(prompt, tokenizer):
    model = tiny_llm(tokenizer)
    rec = prompt.build([[5, 6, 7, 8, 9, 10]], [[11, 12, 13, 14, 15]])
    ppt = prompt.build_ppt([[5, 6, 7], [8, 9, 10]], [[5, 6, 7], [10, 9, 8]])
    both = rec.concat(ppt, prompt.pad_id)
    assert both.input_ids.shape[0] == 3
    for row, (source, k) in enumerate([(rec, 0), (ppt, 0), (ppt, 1)]):
        keep = both.attention_mask[row].bool()
        assert torch.equal(both.input_ids[row][keep], source.input_ids[k][source.attention_mask[k].bool()])
        assert torch.equal(both.item_ids[row][keep], source.item_ids[k][source.attention_mask[k].bool()])
        assert torch.equal(both.history_index[row][keep],
                           source.history_index[k][source.attention_mask[k].bool()])
    assert int((both.input_ids[~both.attention_mask.bool()] != prompt.pad_id).sum()) == 0
    vectors = torch.randn(int(both.slot_mask.sum()), 32)
    n_rec = int(rec.slot_mask.sum())
    with torch.no_grad():
        joint = answer_logits(model, build_inputs_embeds(model, both, vectors), both.attention_mask)
        alone = answer_logits(model, build_inputs_embeds(model, ppt, vectors[n_rec:]), ppt.attention_mask)
    assert torch.allclose(joint[1:], alone, atol=1e-4)


def test_answer_logits_through_lora(prompt, tokenizer):
    model = apply_lora(tiny_llm(tokenizer), r=4, alpha=8, dropout=0.0,
                       target_modules=["q_proj", "v_proj"])
    for name, param in model.named_parameters():
        if "lora_B" in name:  # make the adapters matter
            torch.nn.init.normal_(param, std=0.5)
    model.eval()
    batch = prompt.build([[5, 6, 7]], [[11, 12, 13]])
    vectors = torch.randn(int(batch.slot_mask.sum()), 32)
    with torch.no_grad():
        embeds = build_inputs_embeds(model, batch, vectors)
        full = model(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits[:, -1]
        last = answer_logits(model, embeds, batch.attention_mask)
        with model.disable_adapter():
            plain = answer_logits(model, embeds, batch.attention_mask)
    assert torch.allclose(last, full, atol=1e-5)
    assert not torch.allclose(last, plain, atol=1e-3)


def test_training_learns_the_answer(tokenizer):
    """Training on the answer-token loss makes a tiny LLM name the right candidates, read
    both by constrained scoring and by free generation. (A short template keeps the item
    positions visible to a randomly initialised 2-layer model.)"""
    prompt = HybridPrompt(tokenizer, prompt_template="{history}|{candidates}=",
                          history_item_template="<item>", item_separator="")
    model = tiny_llm(tokenizer, seed=1)
    table = torch.nn.Embedding(40, 32)
    histories = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11]]
    candidates = torch.tensor([[20, 21, 22], [23, 24, 25], [26, 27, 28], [29, 30, 31]])
    targets = torch.tensor([0, 2, 1, 2])
    batch = prompt.build(histories, candidates)
    label_ids = prompt.label_token_ids(3)
    optimizer = torch.optim.Adam([*model.parameters(), *table.parameters()], lr=1e-2)
    model.train()
    losses = []
    for _ in range(40):
        embeds = build_inputs_embeds(model, batch, table(batch.slot_item_ids()))
        loss = label_answer_loss(answer_logits(model, embeds, batch.attention_mask),
                           label_ids[targets])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 < 10 < losses[0]
    model.eval()
    with torch.no_grad():
        embeds = build_inputs_embeds(model, batch, table(batch.slot_item_ids()))
        scores = label_scores(answer_logits(model, embeds, batch.attention_mask),
                                    label_ids)
        assert scores.argmax(1).tolist() == targets.tolist()
        texts = generate_answers(model, tokenizer, embeds, batch.attention_mask)
    assert texts == [str(int(t) + 1) for t in targets]
    assert [parse_label_answer(t, 3) for t in texts] == targets.tolist()


def test_answers_end_at_the_first_end_of_sequence():
    """What a model generates after its end of sequence (here a new chat turn) is not part of
    the answer; it used to be decoded into it, so 'Evita<eos>assistant\nEvita...' named no title."""
    tokenizer = load_tokenizer()
    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    evita = tokenizer.encode("Evita", add_special_tokens=False)
    turn = tokenizer.encode("assistant\nApt Pupil", add_special_tokens=False)
    rows = [evita + [im_start] + turn, evita + [im_end] + turn, evita + turn, [im_end] + evita]
    assert decode_answers(tokenizer, rows, [im_start, im_end]) == ["Evita", "Evita", "Evitaassistant\nApt Pupil", ""]
    assert decode_answers(tokenizer, rows[:1], [im_end]) == ["Evitaassistant\nApt Pupil"]


def test_parse_label_answer():
    assert parse_label_answer("3", 5) == 2
    assert parse_label_answer(" 1", 5) == 0
    assert parse_label_answer("The answer is 4.", 5) == 3
    assert parse_label_answer("Candidate 2, candidate 2!", 5) == 1
    assert parse_label_answer("2 or 3", 5) is None
    assert parse_label_answer("none of them", 5) is None
    assert parse_label_answer("", 5) is None
    assert parse_label_answer("7", 5) is None
    assert parse_label_answer("0", 5) is None
    assert parse_label_answer("12", 20, labels=[chr(65 + i) for i in range(20)]) is None
    letters = [chr(65 + i) for i in range(12)]
    assert parse_label_answer("C", 12, labels=letters) == 2
    assert parse_label_answer("It is L", 12, labels=letters) == 11
    assert parse_label_answer("M", 12, labels=letters) is None
    assert parse_label_answer("B or C", 12, labels=letters) is None


def test_build_takes_unpadded_histories(prompt):
    histories = [torch.tensor([3, 4]), torch.tensor([5])]
    assert prompt.build(histories, [[6, 7], [8, 9]]).slot_item_ids().tolist() == [3, 4, 6, 7,
                                                                                  5, 8, 9]
    with pytest.raises(ValueError, match="padding"):
        prompt.build([torch.tensor([3, 4, 0])], [[6, 7]])
