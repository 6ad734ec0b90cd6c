"""Norms behind ``item_vector_norm: token``: the mean L2 norm of SmolLM2's input token embeddings
and of the fused item vectors e_mm of an untrained MRC on ml-100k, per MPO stage's modalities
(text features from the backbone itself, as in recipes/ml-100k-gpu.yaml; SASRec features of 1
epoch, as in the CPU quick profile). Run from the repository root:

    PYTHONPATH=. python docs/results/2026-11-24-cpu/item_vector_norms.py
"""
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

import recbole_speeder.compat  # noqa: F401
from recbole_speeder.config import Config
from recbole_speeder.features.loader import load_item_features
from recbole_speeder.utils import create_dataset, get_model

config = Config(model="Speeder", dataset="ml-100k",
                config_file_list=["recbole_speeder/properties/quick/cpu.yaml"],
                config_dict={"text_encoder": "llm", "device": "cpu", "use_gpu": False})
init_seed(config["seed"], config["reproducibility"])
train_data, _, _ = data_preparation(config, create_dataset(config))
train_data._dataset.item_features = load_item_features(config, train_data._dataset, train_data)
model = get_model("Speeder")(config, train_data._dataset).eval()
tokens = model.llm.get_input_embeddings().weight.float().norm(dim=1)
print(f"token embeddings: mean L2 norm {tokens.mean():.2f} over {len(tokens)} rows")
ids = torch.arange(1, model.n_items)
with torch.no_grad():
    for stage in (1, 3):
        model.set_stage(stage)
        fused = model.fuse(ids).norm(dim=1)
        print(f"fused item vectors, stage {stage} modalities {model.active_modalities}: "
              f"mean L2 norm {fused.mean():.2f} (min {fused.min():.2f}, max {fused.max():.2f}) over {len(ids)} items")
