"""benchmarks/ppt_probe.py: questions as eq 14 / order, and a few steps on a tiny Llama (CPU)."""

import json

import numpy as np

from conftest import load_benchmark_script

from recbole_speeder.model.layers.spae import ppt_label


def test_questions_follow_the_history():
    probe = load_benchmark_script("ppt_probe")
    for task in ("ppt", "order"):
        for history, abc, yes in probe.questions(np.random.default_rng(0), 50, 6, 40, task):
            assert len(set(history.tolist())) == 6 and history.min() >= 1 and len(set(abc.tolist())) == 3
            a, b, c = (int(np.flatnonzero(history == item)[0]) for item in abc)
            assert yes == (ppt_label(a, b, c) if task == "ppt" else a < b)


def test_probe_runs_and_the_order_control_trains(tmp_path, capsys):
    probe = load_benchmark_script("ppt_probe")
    argv = ["--variants", "lora-1e-3,order-full-1e-3", "--histories", "5", "--steps", "16", "--eval-every", "8",
            "--batch", "8", "--eval-size", "16", "--items", "30", "--feature-dim", "8", "--hidden", "32",
            "--layers", "1", "--heads", "2", "--out", str(tmp_path)]
    rows = probe.main(argv)
    printed = capsys.readouterr().out
    assert [r["variant"] for r in rows] == ["lora-1e-3", "order-full-1e-3"]
    assert "| lora-1e-3 | 5 |" in printed and "| order-full-1e-3 | 5 |" in printed and "acc@8 | acc@16" in printed
    for r in rows:
        assert [s for s, _ in r["accuracy"]] == [8, 16]
        assert all(0.0 <= a <= 1.0 for _, a in r["accuracy"]) and 0.5 <= r["majority"] <= 1.0
    order = rows[1]
    assert order["loss"][-1] < order["loss"][0]  # the order control trains
    assert (tmp_path / "ppt_probe.md").read_text() in printed
    saved = json.loads((tmp_path / "ppt_probe.json").read_text())
    assert [r["variant"] for r in saved["rows"]] == ["lora-1e-3", "order-full-1e-3"]


def test_hint_lora_variants_run_on_the_random_llama_by_default(tmp_path):
    probe = load_benchmark_script("ppt_probe")
    assert probe.VARIANTS["order-hint-lora-1e-3"] == ("order", "lora", 1e-3, True, True)
    assert probe.VARIANTS["hint-lora-1e-3"] == ("ppt", "lora", 1e-3, True, True)
    argv = ["--variants", "order-hint-lora-1e-3", "--histories", "5", "--steps", "2", "--eval-every", "2",
            "--batch", "4", "--eval-size", "8", "--items", "30", "--feature-dim", "8", "--hidden", "32",
            "--layers", "1", "--heads", "2", "--out", str(tmp_path)]
    (row,) = probe.main(argv)
    assert (row["task"], row["training"], row["hint"]) == ("order", "lora", True)
    saved = json.loads((tmp_path / "ppt_probe.json").read_text())
    assert saved["args"]["llm_path"] is None and "random Llama" in (tmp_path / "ppt_probe.md").read_text()


def test_item_features_replace_the_random_rows_and_bad_files_are_one_message(tmp_path):
    import pytest
    import torch

    probe = load_benchmark_script("ppt_probe")
    rows = np.random.default_rng(0).normal(3.0, 2.0, size=(40, 6)).astype(np.float32)
    np.save(tmp_path / "items.npy", rows)
    base = ["--items", "30", "--item-features", str(tmp_path / "items.npy")]
    kept = probe.item_features(probe.parse_args(base))
    assert kept.shape == (31, 6) and torch.all(kept[0] == 0)  # row 0 is padding
    assert torch.allclose(kept[1:], torch.from_numpy(rows[:30]) / np.sqrt(np.mean(rows[:30] ** 2)))
    standard = probe.item_features(probe.parse_args(base + ["--feature-scaling", "standardize"]))[1:]
    assert torch.allclose(standard.mean(0), torch.zeros(6), atol=1e-5)
    assert torch.allclose(standard.std(0, unbiased=False), torch.ones(6), atol=1e-4)
    assert probe.item_features(probe.parse_args(["--items", "30", "--feature-dim", "8"])).shape == (31, 8)
    with pytest.raises(SystemExit, match="at least --items 50 rows"):
        probe.item_features(probe.parse_args(["--items", "50", "--item-features", str(tmp_path / "items.npy")]))
    (tmp_path / "bad.npy").write_text("not an array")
    with pytest.raises(SystemExit, match="bad.npy: not a readable .npy file"):
        probe.item_features(probe.parse_args(["--item-features", str(tmp_path / "bad.npy")]))
    argv = base + ["--variants", "order-full-1e-3", "--histories", "5", "--steps", "2", "--eval-every", "2",
                   "--batch", "4", "--eval-size", "8", "--hidden", "32", "--layers", "1", "--heads", "2"]
    (row,) = probe.main(argv)
    assert row["trainable"] > 0 and 0.0 <= row["accuracy"][-1][1] <= 1.0
