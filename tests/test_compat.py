"""The RecBole 1.2.1 adaptations (numpy 2, pandas 3, torch >= 2.6) and that they change no result."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import recbole_speeder.compat as compat
from recbole_speeder.config import Config
from recbole_speeder.quick_start import run
from recbole_speeder.utils import create_dataset


def test_stack_is_the_new_one():
    # these tests are only meaningful on the stack the adaptations are for
    assert int(np.__version__.split(".")[0]) >= 2
    assert int(pd.__version__.split(".")[0]) >= 3
    assert tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 6)


def test_numpy_aliases_recbole_uses():
    compat.install_numpy_aliases()
    assert np.float is float and np.int is int and np.object is object
    assert np.long is np.int64 and np.bool is np.bool_  # numpy 2 has these itself: left alone
    from recbole.data.interaction import _convert_to_tensor  # uses np.float at run time

    assert _convert_to_tensor([1.5, 2.5]).tolist() == [1.5, 2.5]


def test_recbole_import_leaves_anomaly_detection_off():
    # RecBole's SINE module turns anomaly detection on for the whole process when imported;
    # a fresh interpreter shows what importing the plugin and a RecBole model leaves behind
    code = ("import recbole_speeder.compat, torch; "
            "from recbole.model.sequential_recommender.sasrec import SASRec; "
            "import recbole.model.sequential_recommender.sine; print(torch.is_anomaly_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_left_padded_rows_attend_to_something(tmp_path):
    # CUDA's SDPA returns NaN for a query row that may attend to no key, and transformers 5
    # builds such rows for left padding; the plugin's backbones get masks without them
    from transformers import LlamaConfig, LlamaForCausalLM

    from recbole_speeder.llm.backbone import load_backbone, load_tokenizer

    tokenizer = load_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, _ = load_backbone(str(tmp_path), device="cpu")
    seen = []
    model.model.layers[0].self_attn.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["attention_mask"]), with_kwargs=True)
    padding = torch.tensor([[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        out = model(input_ids=torch.randint(5, 100, (2, 5)), attention_mask=padding).logits
    mask = seen[0]
    assert mask.dtype == torch.bool and bool(mask.any(dim=-1).all())
    # real positions keep the causal, padding-aware mask
    assert mask[0, 0, 4].tolist() == [False, False, False, True, True]
    assert mask[1, 0, 2].tolist() == [True, True, True, False, False]
    assert torch.isfinite(out).all()


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / "ckpt.pth"
    compat.atomic_torch_save({"best_valid_score": compat.to_plain(np.float64(0.5)), "w": torch.ones(2)}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["best_valid_score"] == 0.5 and type(loaded["best_valid_score"]) is float
    assert not list(tmp_path.glob(".tmp-*"))


def test_pandas3_fills_nan_and_empty_sequences(workdir):
    folder = workdir / "dataset" / "holes"
    folder.mkdir(parents=True)
    rows = ["user_id:token\titem_id:token\trating:float\ttags:token_seq\ttimestamp:float"]
    for u in range(1, 6):
        for i in range(1, 8):
            rating = "" if (u, i) == (2, 3) else str(float(i))
            tags = "" if (u, i) == (1, 1) else f"t{i} x"
            rows.append(f"u{u}\ti{i}\t{rating}\t{tags}\t{u * 100 + i}")
    (folder / "holes.inter").write_text("\n".join(rows) + "\n")
    config = Config(model="BPR", dataset="holes", config_dict={
        "data_path": str(workdir / "dataset"), "gpu_id": "", "load_col": None, "normalize_all": False,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})
    dataset = create_dataset(config)
    feat = dataset.inter_feat  # still a DataFrame before build()
    ratings = feat["rating"].to_numpy()
    assert not np.isnan(ratings).any()  # RecBole fills NaN floats with the column mean
    mean = np.mean([float(i) for u in range(1, 6) for i in range(1, 8) if (u, i) != (2, 3)])
    filled = ratings[(feat["user_id"].to_numpy() == dataset.token2id("user_id", "u2"))
                     & (feat["item_id"].to_numpy() == dataset.token2id("item_id", "i3"))]
    assert filled.tolist() == [pytest.approx(mean)]
    lengths = feat["tags"].map(len).to_numpy()
    assert sorted(lengths)[:2] == [0, 2]  # the one empty cell is an empty sequence, the rest hold 2


@pytest.mark.slow
def test_results_equal_recbole_itself(fast_config):
    """The plugin's run() and RecBole's own classes give the same numbers."""
    from recbole.config import Config as RecBoleConfig
    from recbole.data import create_dataset as recbole_create_dataset
    from recbole.data import data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    class StockConfig(RecBoleConfig):
        def compatibility_settings(self):  # RecBole's own version fails on numpy 2
            compat.install_numpy_aliases()

    settings = dict(fast_config, load_col={"inter": ["user_id", "item_id", "timestamp"]},
                    train_neg_sample_args=None, data_path=fast_config["data_path"])
    ours = run(model="SASRec", dataset="tiny", config_dict=settings, saved=False)

    config = StockConfig(model="SASRec", dataset="tiny", config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    dataset = recbole_create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model("SASRec")(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    best_valid, _ = trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    theirs = trainer.evaluate(test_data, load_best_model=False)
    assert ours["best_valid_score"] == best_valid
    assert dict(ours["test_result"]) == dict(theirs)


def test_a_runs_warnings_hold_none_of_those_compat_made_harmless(fast_config):
    import warnings

    settings = dict(fast_config, epochs=1, load_col={"inter": ["user_id", "item_id", "timestamp"],
                                                     "item": ["item_id", "title"]})  # a token_seq column
    harmless = {"ChainedAssignmentError", "Pandas4Warning"}
    config = Config(model="SASRec", dataset="tiny", config_dict=settings)
    with warnings.catch_warnings(record=True) as unfiltered:  # the control: RecBole's loading raises them
        warnings.simplefilter("always")
        create_dataset(config)
    assert harmless <= {w.category.__name__ for w in unfiltered}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the run puts the compat filters in front again
        run(model="SASRec", dataset="tiny", config_dict=settings)
    assert not harmless & {w.category.__name__ for w in caught}, [str(w.message)[:80] for w in caught]
    assert not [w for w in caught if "GradScaler" in str(w.message)]


def test_reproducibility_means_deterministic_kernels(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        compat.init_seed(2020, True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own setting is kept
        compat.init_seed(2020, True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
        compat.init_seed(2020, False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
    finally:
        compat.init_seed(2020, True)  # RecBole's default, as every other test runs
