"""One process of tests/test_distributed.py, started by ``torchrun --nproc_per_node=2`` or
``accelerate launch --multi_gpu --num_processes 2``.

    torchrun --standalone --nproc_per_node=2 tests/distributed_worker.py OUT_DIR CONFIG_JSON

1. ``step``: builds Speeder and its SpeederTrainer as quick_start does, runs one training step
   through ``LLMTrainer._train_epoch`` (sharded batch, DDP loss) with the global RNG seeded
   ``1000 + rank``, and saves the batch it saw, the initial trainable weights, the gradients
   and the updated weights to ``OUT_DIR/step-rank<r>.pt``;
2. ``run``: the whole ``quick_start.run`` (train, validate, checkpoint, test), result saved to
   ``OUT_DIR/run-rank<r>.json``; whether the process group still exists when the process exits
   (after the plugin's own exit hook) goes to ``OUT_DIR/exit-rank<r>.json``.
Every file the process opens for writing (or renames into place) under the working directory,
outside OUT_DIR, is listed in ``OUT_DIR/writes-rank<r>.json`` (a ``sys.addaudithook`` hook).
With no launcher (WORLD_SIZE unset) :func:`build` gives the single-process pieces.
"""

import atexit
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
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def audit_writes(root, exclude):
    """A list that an audit hook fills with the paths under ``root`` (not under ``exclude``)
    that this process opens for writing or creates by renaming."""
    root, exclude = os.path.realpath(root), os.path.realpath(exclude)
    seen = []

    def keep(path):
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.path.realpath(os.fsdecode(path))
        if path.startswith(root + os.sep) and not path.startswith(exclude + os.sep):
            seen.append(os.path.relpath(path, root))

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE_FLAGS:
                keep(path)
        elif event in ("os.rename", "os.replace"):
            keep(args[1])

    sys.addaudithook(hook)
    return seen


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
    from torch.distributed.tensor import DTensor

    sharded = sorted(n for n, p in model.named_parameters() if isinstance(p, DTensor))
    frozen_in_layers = sorted(n for n, p in model.named_parameters()
                              if ".layers." in n and "lora_" not in n and not p.requires_grad)
    torch.save({
        "sharded": sharded,
        "frozen_in_layers": frozen_in_layers,
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
    keep = ("candidate_valid", "candidate_test", "test_result", "saved_model_file", "train_ms_per_sample")
    with open(os.path.join(out_dir, f"run-rank{rank}.json"), "w") as f:
        json.dump({k: result[k] for k in keep}, f)


def record_exit(out_dir):
    """At exit, after every exit hook registered later (the plugin's), whether the process
    group is still there."""
    def record():
        with open(os.path.join(out_dir, f"exit-rank{os.environ.get('RANK', '0')}.json"), "w") as f:
            json.dump({"process_group_left": torch.distributed.is_initialized()}, f)

    atexit.register(record)


if __name__ == "__main__":
    out_dir, config_json = sys.argv[1], sys.argv[2]
    writes = audit_writes(os.getcwd(), out_dir)
    record_exit(out_dir)  # registered first, so it runs last
    config_dict = json.loads(config_json)
    one_step(config_dict, out_dir)
    whole_run(config_dict, out_dir)
    with open(os.path.join(out_dir, f"writes-rank{os.environ.get('RANK', '0')}.json"), "w") as f:
        json.dump(sorted(set(writes)), f)
