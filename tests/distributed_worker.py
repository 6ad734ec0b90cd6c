"""One process of tests/test_distributed.py, started by ``torchrun --nproc_per_node=2``.

    torchrun --standalone --nproc_per_node=2 tests/distributed_worker.py OUT_DIR CONFIG_JSON

1. ``step``: builds Speeder and its SpeederTrainer as quick_start does, runs one training step
   through ``LLMTrainer._train_epoch`` (sharded batch, DDP loss) with the global RNG seeded
   ``1000 + rank``, and saves the batch it saw, the initial trainable weights, the gradients
   and the updated weights to ``OUT_DIR/step-rank<r>.pt``;
2. ``run``: the whole ``quick_start.run`` (train, validate, checkpoint, test), result saved to
   ``OUT_DIR/run-rank<r>.json``.
With no launcher (WORLD_SIZE unset) :func:`build` gives the single-process pieces.
"""

import json
import os
import sys

import torch

import recbole_speeder.compat  # noqa: F401
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_speeder.config import Config
from recbole_speeder.quick_start import attach_side_info, run
from recbole_speeder.trainer.distributed import context_for
from recbole_speeder.utils import create_dataset, get_model, get_trainer

STEP_SEED = 1000


def build(config_dict):
    """(config, train_data, model, trainer) of Speeder, built in quick_start's order."""
    config = Config(model="Speeder", dataset="tiny", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dist = context_for(config)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model_class = get_model("Speeder")
    with dist.main_process_first():
        attach_side_info(config, train_data._dataset, train_data, model_class)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = model_class(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], "Speeder")(config, model)
    return config, train_data, model, trainer


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def one_step(config_dict, out_dir):
    config, train_data, model, trainer = build(config_dict)
    dist = trainer.dist
    trainer._enter_stage(1)
    trainer.epochs = 1
    trainer._build_scheduler(train_data, 1)
    before = trainable(model)
    # the batch this process will train on (the shuffle generator is put back afterwards)
    state = train_data.generator.get_state()
    batch = next(iter(dist.shard(train_data)))
    train_data.generator.set_state(state)
    torch.manual_seed(STEP_SEED + dist.process_index)
    loss = trainer._train_epoch(train_data, 0)
    torch.save({
        "batch": {k: v.cpu() for k, v in batch.interaction.items()},
        "before": before,
        "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None},
        "after": trainable(model),
        "loss": loss,
        "epoch_samples": trainer.epoch_samples,
        "steps": trainer._steps_in_epoch(train_data),
    }, os.path.join(out_dir, f"step-rank{dist.process_index}.pt"))


def whole_run(config_dict, out_dir):
    result = run(model="Speeder", dataset="tiny", config_dict=config_dict)
    rank = int(os.environ.get("RANK", "0"))
    keep = ("candidate_valid", "candidate_test", "saved_model_file", "train_ms_per_sample")
    with open(os.path.join(out_dir, f"run-rank{rank}.json"), "w") as f:
        json.dump({k: result[k] for k in keep}, f)


if __name__ == "__main__":
    out_dir, config_json = sys.argv[1], sys.argv[2]
    config_dict = json.loads(config_json)
    one_step(config_dict, out_dir)
    whole_run(config_dict, out_dir)
