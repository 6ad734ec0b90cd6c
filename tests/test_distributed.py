"""Data-parallel Speeder on 2 CPU processes (torchrun, gloo) against one process.

One ``torchrun --nproc_per_node=2`` launch of tests/distributed_worker.py runs one training
step through the trainer (sharded batches, DDP loss) and then a whole ``run()``; this test
then repeats the step in one process on the union of the two batches and scores the saved
checkpoint in one process.
"""

import glob
import json
import os
import subprocess
import sys

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_speeder.config import Config
from recbole_speeder.errors import ConfigError
from recbole_speeder.quick_start import run
from recbole_speeder.trainer.distributed import SINGLE, context_for

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from distributed_worker import STEP_SEED, build  # noqa: E402


@pytest.fixture
def dist_config(fast_config, tiny_llm_dir, monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    return dict(
        fast_config, llm_path=tiny_llm_dir, modalities=["text"], text_encoder="llm", mpo_stages=[1],
        stage_epochs=[1, 1, 1], steps_per_epoch=1, train_batch_size=8, eval_batch_size=16, mome_dim=16,
        mome_heads=2, history_len=5, ppt_ratio=0.5,
    )


def _launch_two_processes(config_dict, workdir):
    out = workdir / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(HERE, "distributed_worker.py"), str(out), json.dumps(config_dict)]
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    steps = [torch.load(out / f"step-rank{r}.pt", weights_only=False) for r in (0, 1)]
    runs = [json.loads((out / f"run-rank{r}.json").read_text()) for r in (0, 1)]
    return steps, runs


def _without_timing(result):
    return {k: v for k, v in result.items() if k != "infer_ms_per_sample"}


def test_two_processes_match_one(dist_config, workdir):
    steps, runs = _launch_two_processes(dist_config, workdir)

    # -- what only process 0 writes --------------------------------------------------------
    assert len(os.listdir("log/Speeder")) == 1
    assert len(os.listdir("saved")) == 1
    event_pids = {os.path.basename(f).split(".")[-2] for f in glob.glob("log_tensorboard/*/events.out.tfevents.*")}
    assert len(event_pids) == 1  # process 1 opened no TensorBoard writer

    # -- one training step: sharding, gradient all-reduce, identical updates ---------------
    rows = [set(zip(*(s["batch"][k].tolist() for k in ("user_id", "item_id", "timestamp")))) for s in steps]
    assert len(rows[0]) == len(rows[1]) == 8 and not rows[0] & rows[1]  # disjoint shards of 8
    assert steps[0]["epoch_samples"] == 16 and steps[0]["steps"] == 1
    for name in steps[0]["after"]:
        assert torch.equal(steps[0]["grads"][name], steps[1]["grads"][name]), name
        assert torch.equal(steps[0]["after"][name], steps[1]["after"][name]), name

    # one process: the same initial weights (same seed), the mean loss of the two batches
    config, train_data, model, trainer = build(dist_config)
    assert trainer.dist is SINGLE
    trainer._enter_stage(1)
    trainer.epochs = 1
    trainer._build_scheduler(train_data, 1)
    params = dict(model.named_parameters())
    assert set(steps[0]["before"]) == {n for n, p in params.items() if p.requires_grad}
    for name, value in steps[0]["before"].items():
        assert torch.equal(params[name].detach(), value), name
    model.train()
    trainer.optimizer.zero_grad()
    first_half = None
    for rank, step in enumerate(steps):
        torch.manual_seed(STEP_SEED + rank)
        loss = model.calculate_loss(Interaction(step["batch"]))
        (loss / 2).backward()
        if first_half is None:
            first_half = {n: params[n].grad.clone() for n in steps[0]["grads"]}
    lora_name = next(n for n in steps[0]["grads"] if "lora_B" in n)
    assert not torch.allclose(2 * first_half[lora_name], steps[0]["grads"][lora_name], rtol=1e-3)
    for name, grad in steps[0]["grads"].items():
        torch.testing.assert_close(params[name].grad, grad, rtol=1e-4, atol=1e-7, msg=name)
    trainer.optimizer.step()
    for name, value in steps[0]["after"].items():
        torch.testing.assert_close(params[name].detach(), value, rtol=1e-4, atol=1e-7, msg=name)

    # -- candidate metrics: the same on both processes and in one process ----------------------
    two = [_without_timing(r["candidate_test"]) for r in runs]
    assert two[0] == two[1] and two[0]["n"] == 60
    assert runs[0]["saved_model_file"] == runs[1]["saved_model_file"]
    one = run(model="Speeder", dataset="tiny", config_dict=dist_config, model_file=runs[0]["saved_model_file"])
    assert _without_timing(one["candidate_test"]) == two[0]


def test_one_process_uses_no_accelerate(dist_config, monkeypatch):
    config = Config(model="Speeder", dataset="tiny", config_dict=dist_config)
    assert context_for(config) is SINGLE and config["single_spec"]
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert context_for(config) is SINGLE


@pytest.mark.parametrize("key, value", [("local_rank", 0), ("nproc", 2), ("world_size", 4)])
def test_recbole_own_multi_gpu_keys_are_refused(dist_config, key, value):
    with pytest.raises(ConfigError, match="torchrun"):
        Config(model="Speeder", dataset="tiny", config_dict=dict(dist_config, **{key: value}))
