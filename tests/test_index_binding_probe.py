"""benchmarks/index_binding.py: case drawing, prompt text, and a run on a tiny Llama (CPU)."""

import random

import pytest
import torch

from conftest import load_benchmark_script


@pytest.fixture(scope="module")
def probe_module():
    return load_benchmark_script("index_binding")


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    from recbole_speeder.llm.backbone import load_tokenizer

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaForCausalLM(config).eval(), tokenizer


def test_the_repeated_title_sits_at_the_answer_position(probe_module):
    titles = [f"Movie {i}" for i in range(40)]
    rng = random.Random(3)
    for _ in range(50):
        past, shown, answer = probe_module.make_case(titles, rng, history=4, candidates=5)
        assert len(past) == 4 and len(shown) == 5
        assert shown[answer] == past[-1]
        assert len(set(past) | set(shown)) == 8  # 4 history + 4 other candidates, all distinct
    again = probe_module.make_case(titles, random.Random(3), 4, 5)
    assert again == probe_module.make_case(titles, random.Random(3), 4, 5)


def test_case_text_labels_history_and_candidates(probe_module):
    text = probe_module.case_text(["Up", "Heat"], ["Fargo", "Heat"], ("A", "B"))
    assert "1: Up, 2: Heat." in text and "A: Fargo, B: Heat." in text and "letter" in text
    assert "number" in probe_module.case_text(["Up"], ["Up", "Heat"], ("1", "2"))


def test_embedded_titles_are_read(probe_module):
    titles = probe_module.read_titles(probe_module.embedded_item_file(), "movie_title")
    assert len(titles) > 1000 and "Toy Story" in titles


def test_probe_runs_on_a_tiny_llama_and_repeats(probe_module, tiny_llama, capsys):
    model, tokenizer = tiny_llama
    argv = ["--cases", "12", "--batch", "5", "--history", "3", "--candidates", "4", "--labels", "digits,letters,titles"]
    assert probe_module.main(argv, model=model, tokenizer=tokenizer) == 0
    first = capsys.readouterr().out
    assert "| digits | 12 |" in first and "| letters | 12 |" in first and "| titles | 12 |" in first
    assert "0.250 |" in first
    assert probe_module.main(argv, model=model, tokenizer=tokenizer) == 0
    assert capsys.readouterr().out == first  # same seed, same cases, same numbers
    titles = probe_module.read_titles(probe_module.embedded_item_file(), "movie_title")
    accuracy, top_share = probe_module.probe(model, tokenizer, titles, "digits", cases=12, history=3,
                                             candidates=4, batch_size=5)
    assert 0.0 <= accuracy <= 1.0 and accuracy * 12 == round(accuracy * 12)
    assert 0.25 <= top_share <= 1.0 and top_share * 12 == round(top_share * 12)  # 12 picks over 4 labels


def test_title_answers_score_the_mean_log_probability_of_each_title(probe_module, tiny_llama):
    """Padded, batched title scores equal the mean log p(title tokens + eos) of each pair alone."""
    model, tokenizer = tiny_llama
    texts = ["Which film? 1: Heat, 2: Toy Story (1995)", "Which one? 1: Up, 2: Fargo"]
    shown = [["Heat", "Toy Story (1995)"], ["Up", "Fargo"]]
    scores = probe_module.title_answer_scores(model, tokenizer, texts, shown, add_special_tokens=True)
    assert scores.shape == (2, 2)
    with torch.no_grad():
        for b, text in enumerate(texts):
            prompt_ids = tokenizer(text).input_ids
            for j, title in enumerate(shown[b]):
                answer = tokenizer(title, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
                ids = torch.tensor([prompt_ids + answer])
                logprobs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
                picked = logprobs.gather(1, ids[0, 1:, None])[-len(answer):]
                assert scores[b, j].item() == pytest.approx(picked.mean().item(), abs=1e-4)
    text = probe_module.case_text(["Up"], ["Up", "Heat"], ("1", "2"), "title")
    assert "Answer with the title of one candidate only." in text


def test_bad_input_gives_a_message(probe_module, tiny_llama, tmp_path, capsys):
    model, tokenizer = tiny_llama
    assert probe_module.main(["--labels", "digit"], model=model, tokenizer=tokenizer) == 2
    assert "--labels 'digit'" in capsys.readouterr().err
    assert probe_module.main(["--item-file", str(tmp_path / "none.item")], model=model, tokenizer=tokenizer) == 2
    assert "no such file" in capsys.readouterr().err
    item = tmp_path / "x.item"
    item.write_text("item_id:token\ttitle:token_seq\n1\tA\n2\tB\n")
    assert probe_module.main(["--item-file", str(item)], model=model, tokenizer=tokenizer) == 2
    assert "no column 'movie_title'" in capsys.readouterr().err
    assert probe_module.main(["--item-file", str(item), "--title-field", "title"], model=model,
                             tokenizer=tokenizer) == 2
    assert "needs 9 distinct titles; the item file has 2" in capsys.readouterr().err
    corrupt = tmp_path / "bad.item"
    corrupt.write_bytes(b"item_id:token\tmovie_title:token_seq\n1\t\xff\xfe\n")
    assert probe_module.main(["--item-file", str(corrupt)], model=model, tokenizer=tokenizer) == 2
    assert "Cannot read item file" in capsys.readouterr().err
