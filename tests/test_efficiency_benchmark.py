"""benchmarks/efficiency.py on CPU with the tiny backbone (numbers are not targets)."""

import json

import pytest
import torch

from conftest import load_benchmark_script


@pytest.fixture(scope="module")
def efficiency():
    return load_benchmark_script("efficiency")


def test_titles_have_the_requested_token_count(efficiency):
    from recbole_speeder.llm.backbone import load_tokenizer
    from recbole_speeder.prompts.base import PromptBase

    tokenizer = load_tokenizer()
    titles = efficiency.make_titles(tokenizer, 20, 7, seed=1)
    piece = PromptBase(tokenizer).encode_piece
    assert len(set(titles)) > 1 and all(len(piece(t)) == 7 for t in titles)


@pytest.mark.slow
def test_benchmark_runs_every_model_on_cpu_and_writes_table_and_plot(efficiency, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert efficiency.main(["--backbone", "tiny", "--history", "2,4", "--batch", "4", "--micro-batch", "2",
                            "--steps", "1", "--warmup", "1", "--title-tokens", "4", "--items", "40",
                            "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads((out / "efficiency.json").read_text())
    rows = {(r["model"], r["n"]): r for r in result["rows"]}
    assert set(rows) == {(m, n) for m in ("Speeder", "LLaRA", "TMF", "TALLRec", "ZeroShot", "Backbone")
                         for n in (2, 4)}
    for (model, n), row in rows.items():
        assert row["infer_ms"] > 0 and row["infer_peak_mib"] > 0
        assert (row["train_ms"] is None) == (model == "ZeroShot")
    # prompt lengths: Speeder ~2 tokens per item, the title prompts ~title + 1 (LLaRA) or + 3 (TMF: text,
    # vision, seq) per item
    for n in (2, 4):
        assert rows[("Speeder", n)]["prompt_tokens"] < rows[("TALLRec", n)]["prompt_tokens"]
        assert rows[("LLaRA", n)]["prompt_tokens"] - rows[("TALLRec", n)]["prompt_tokens"] == n + 5
        assert rows[("TMF", n)]["prompt_tokens"] - rows[("LLaRA", n)]["prompt_tokens"] == 2 * (n + 5)
        assert rows[("Backbone", n)]["prompt_tokens"] == rows[("Speeder", n)]["prompt_tokens"]
    for model in ("LLaRA", "TMF", "TALLRec"):  # 4 more history titles of 4 tokens + separators
        assert rows[(model, 4)]["prompt_tokens"] > rows[(model, 2)]["prompt_tokens"] + 8
    # achieved TFLOP/s of Speeder and the bare backbone, from the counted prompt lengths
    for (model, n), row in rows.items():
        if model in ("Speeder", "Backbone"):
            assert row["train_tflops"] > 0 and row["infer_tflops"] > 0
            assert row["infer_tokens"] == pytest.approx(row["prompt_tokens"])
            assert row["train_tokens"] >= row["prompt_tokens"]  # PPT questions add tokens
        else:
            assert "train_tflops" not in row
    table = (out / "efficiency.md").read_text()
    assert "| Speeder | 2 |" in table and "| ZeroShot | 4 |" in table and "1.0x" in table
    assert "TFLOP/s" in table and "times faster than LLaRA" in table
    # Speeder's ratio to TMF, both measured in this process
    tmf_part = table.split("times faster than TMF per sample):")[1]
    for n in (2, 4):
        speeder, tmf = rows[("Speeder", n)], rows[("TMF", n)]
        assert (f"| Speeder | {n} | {tmf['train_ms'] / speeder['train_ms']:.1f}x | "
                f"{tmf['infer_ms'] / speeder['infer_ms']:.1f}x |") in tmf_part
    assert (out / "efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --replot redraws from the JSON alone, and merges runs split by model
    (out / "efficiency.md").unlink()
    assert efficiency.main(["--replot", str(out)]) == 0 and (out / "efficiency.md").is_file()
    for part, keep in (("a", {"Speeder"}), ("b", {"LLaRA", "TMF", "TALLRec", "ZeroShot", "Backbone"})):
        (tmp_path / part).mkdir()
        (tmp_path / part / "efficiency.json").write_text(json.dumps(
            dict(result, rows=[r for r in result["rows"] if r["model"] in keep])))
    merged = tmp_path / "merged"
    assert efficiency.main(["--replot", f"{tmp_path / 'b'},{tmp_path / 'a'}", "--out", str(merged)]) == 0
    assert (merged / "efficiency.md").read_text() == table


@pytest.mark.slow
def test_repeat_reports_the_median_and_range_and_matmul_precision_is_a_setting(efficiency, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert efficiency.main(["--backbone", "tiny", "--models", "Backbone", "--history", "2", "--batch", "2",
                            "--steps", "1", "--warmup", "0", "--repeat", "3", "--title-tokens", "4", "--items", "40",
                            "--device", "cpu", "--out", "rep"]) == 0
    result = json.loads((tmp_path / "rep" / "efficiency.json").read_text())
    (row,) = result["rows"]
    for phase in ("train", "infer"):
        runs = row[f"{phase}_ms_runs"]
        assert len(runs) == 3 and row[f"{phase}_ms"] == sorted(runs)[1]
    table = (tmp_path / "rep" / "efficiency.md").read_text()
    assert f"{row['train_ms']:.3f} ({min(row['train_ms_runs']):.3f}-{max(row['train_ms_runs']):.3f})" in table
    assert "timed 3 times" in table and result["meta"]["repeat"] == 3
    # --float32-matmul-precision is recorded, and runs with another precision are not merged into one table
    try:
        assert efficiency.main(["--backbone", "tiny", "--models", "Backbone", "--history", "2", "--batch", "2",
                                "--steps", "1", "--warmup", "0", "--title-tokens", "4", "--items", "40",
                                "--device", "cpu", "--float32-matmul-precision", "high", "--out", "high"]) == 0
    finally:  # a process-wide setting: the tests after this one run at the default
        torch.set_float32_matmul_precision("highest")
    assert "float32 matrix products at precision high" in (tmp_path / "high" / "efficiency.md").read_text()
    with pytest.raises(SystemExit, match="float32_matmul_precision"):
        efficiency.main(["--replot", f"{tmp_path / 'rep'},{tmp_path / 'high'}", "--out", "merged"])
    # the optimizer is a setting too: AdamW on the CPU (runs saved before it existed read as that), the fused
    # AdamW the trainer runs on a GPU is another table
    assert result["meta"]["optimizer"] == "AdamW" and "optimizer AdamW;" in table
    for name, optimizer in (("old", None), ("gpu", "AdamW, fused")):
        meta = {k: v for k, v in result["meta"].items() if k != "optimizer"}
        (tmp_path / name).mkdir()
        (tmp_path / name / "efficiency.json").write_text(json.dumps(
            dict(result, meta=dict(meta, **({"optimizer": optimizer} if optimizer else {})))))
    assert efficiency.main(["--replot", f"{tmp_path / 'rep'},{tmp_path / 'old'}", "--out", "same"]) == 0
    with pytest.raises(SystemExit, match="optimizer"):
        efficiency.main(["--replot", f"{tmp_path / 'rep'},{tmp_path / 'gpu'}", "--out", "merged"])


def test_bad_options_are_refused(efficiency):
    with pytest.raises(SystemExit):
        efficiency.parse_args(["--history", "5,x"])
    with pytest.raises(SystemExit):
        efficiency.parse_args(["--models", "Speeder,GPT5"])
    with pytest.raises(SystemExit):
        efficiency.parse_args(["--repeat", "0"])


@pytest.mark.slow
def test_set_changes_the_models_and_profile_writes_a_table(efficiency, tmp_path, monkeypatch):
    """``--set`` reaches the model's config (a shorter shown history gives shorter prompts),
    is recorded in the results, and ``--profile`` writes one training step's operator table
    (into a relative ``--out`` too: the models run in a temporary working directory)."""
    monkeypatch.chdir(tmp_path)
    common = ["--backbone", "tiny", "--models", "Speeder", "--history", "4", "--batch", "2", "--steps", "1",
              "--warmup", "0", "--title-tokens", "4", "--items", "40", "--device", "cpu"]
    assert efficiency.main(common + ["--out", str(tmp_path / "plain")]) == 0
    assert efficiency.main(common + ["--set", "history_len=2", "--set", "use_ppt=False", "--profile",
                                     "--out", "set"]) == 0
    plain = json.loads((tmp_path / "plain" / "efficiency.json").read_text())
    changed = json.loads((tmp_path / "set" / "efficiency.json").read_text())
    assert changed["meta"]["overrides"] == {"history_len": 2, "use_ppt": False}
    assert changed["rows"][0]["prompt_tokens"] < plain["rows"][0]["prompt_tokens"]
    assert "properties set: history_len=2, use_ppt=False" in (tmp_path / "set" / "efficiency.md").read_text()
    profile = (tmp_path / "set" / "profile-Speeder-n4.txt").read_text()
    assert "Self CPU" in profile and "aten::" in profile and "operators dispatched:" in profile
    assert changed["rows"][0]["profile"]["operators dispatched"] > 0
    # runs with different properties are not merged into one table
    with pytest.raises(SystemExit, match="other settings"):
        efficiency.merge_results([str(tmp_path / "plain"), str(tmp_path / "set")])


def test_set_refuses_malformed_and_unknown_keys(efficiency, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        efficiency.parse_args(["--set", "use_ppt"])
    assert "--set" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    from recbole_speeder.errors import ConfigError

    with pytest.raises(ConfigError, match="use_ppt"):
        efficiency.main(["--backbone", "tiny", "--models", "Speeder", "--history", "2", "--batch", "2",
                         "--steps", "1", "--warmup", "0", "--title-tokens", "4", "--items", "40",
                         "--device", "cpu", "--set", "use_pptt=False", "--out", str(tmp_path / "x")])


def test_the_flop_count_is_the_written_formula(efficiency):
    """2 x P x L + causal attention 2 x layers x width x L^2; training 2x linear + 3x attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    terms = efficiency.decoder_flop_terms(LlamaForCausalLM(config))
    linear = 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64)  # q, k, v (2 kv heads), o, MLP
    assert terms == (linear, 2, 32)
    lengths = [3, 5]
    dense, attention = 2 * linear * 8, 2 * 2 * 32 * (9 + 25)
    assert efficiency.step_flops(terms, lengths, training=False) == dense + attention
    assert efficiency.step_flops(terms, lengths, training=True) == 2 * dense + 3 * attention
