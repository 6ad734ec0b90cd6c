"""Data-parallel Speeder on 2 CPU processes (gloo) against one process.

One launch of tests/distributed_worker.py (``torchrun --nproc_per_node=2`` with DDP;
``accelerate launch --multi_gpu --num_processes 2`` with ``distributed_strategy: fsdp``) runs
one training step through the trainer (sharded batches, DDP loss; FSDP-sharded backbone) and
then a whole ``run()``; the test then repeats the step in one process on the union of the two
batches and scores the saved checkpoint in one process. The worker also lists every file each
process wrote (only process 0 may write) and whether the process group was destroyed.
"""

import glob
import json
import os
import socket
import subprocess
import sys
import types

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_speeder.config import Config
from recbole_speeder.errors import ConfigError
from recbole_speeder.quick_start import run
from recbole_speeder.trainer.distributed import SINGLE, Distributed, check_strategy, context_for

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


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_two_processes(config_dict, workdir, launcher="torchrun"):
    out = workdir / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    else:  # accelerate's launcher, as a user types it (no `accelerate config` file needed)
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_free_port())]
    command += [os.path.join(HERE, "distributed_worker.py"), str(out), json.dumps(config_dict)]
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "destroy_process_group() was not called" not in proc.stderr
    steps = [torch.load(out / f"step-rank{r}.pt", weights_only=False) for r in (0, 1)]
    runs = [json.loads((out / f"run-rank{r}.json").read_text()) for r in (0, 1)]
    writes = [json.loads((out / f"writes-rank{r}.json").read_text()) for r in (0, 1)]
    for r in (0, 1):  # the plugin's exit hook destroyed the process group
        assert json.loads((out / f"exit-rank{r}.json").read_text()) == {"process_group_left": False}
    return steps, runs, writes


def _without_timing(result):
    return {k: v for k, v in result.items() if k != "infer_ms_per_sample"}


def _check_only_process_0_writes(writes):
    logs = [name for name in os.listdir("log/Speeder") if name.endswith(".log")]
    assert len(logs) == 1  # and beside it only its validation curves (process 0's)
    stem = logs[0][: -len(".log")]
    assert sorted(os.listdir("log/Speeder")) == sorted([logs[0], stem + "-curves.csv", stem + "-curves.png"])
    assert len(os.listdir("saved")) == 1
    event_pids = {os.path.basename(f).split(".")[-2] for f in glob.glob("log_tensorboard/*/events.out.tfevents.*")}
    assert len(event_pids) == 1  # process 1 kept no TensorBoard writer
    assert any(w.startswith("saved") for w in writes[0]) and any(w.startswith("log") for w in writes[0])
    # process 1: only the TensorBoard file RecBole's Trainer opens, removed again (silence_trainer)
    for path in writes[1]:
        assert path.startswith("log_tensorboard" + os.sep) and not os.path.exists(path), path


def _check_step_matches_one_process(steps, dist_config):
    """The step of each process against one process on the union of the two batches."""
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
    assert set(steps[0]["grads"]) == {n for n, p in params.items() if p.grad is not None}
    for name, grad in steps[0]["grads"].items():
        torch.testing.assert_close(params[name].grad, grad, rtol=1e-4, atol=1e-7, msg=name)
    trainer.optimizer.step()
    for name, value in steps[0]["after"].items():
        torch.testing.assert_close(params[name].detach(), value, rtol=1e-4, atol=1e-7, msg=name)


def _check_metrics_match_one_process(runs, dist_config):
    two = [_without_timing(r["candidate_test"]) for r in runs]
    assert two[0] == two[1] and two[0]["n"] == 60
    assert runs[0]["saved_model_file"] == runs[1]["saved_model_file"]
    one = run(model="Speeder", dataset="tiny", config_dict=dist_config, model_file=runs[0]["saved_model_file"])
    assert _without_timing(one["candidate_test"]) == two[0]
    # RecBole's full-sort ranking: every process ranks every sequence; the metrics of one process
    assert runs[0]["test_result"] == runs[1]["test_result"] and "ndcg@10" in runs[0]["test_result"]
    assert {k: float(v) for k, v in one["test_result"].items()} == pytest.approx(runs[0]["test_result"], abs=1e-4)


@pytest.mark.slow
def test_two_processes_match_one(dist_config, workdir):
    """torchrun, DDP."""
    steps, runs, writes = _launch_two_processes(dist_config, workdir)
    assert steps[0]["sharded"] == []
    _check_only_process_0_writes(writes)
    _check_step_matches_one_process(steps, dist_config)
    _check_metrics_match_one_process(runs, dist_config)


@pytest.mark.slow
def test_fsdp_under_accelerate_launch_matches_one(dist_config, workdir):
    """accelerate launch, distributed_strategy: fsdp (the backbone's decoder layers sharded)."""
    config = dict(dist_config, distributed_strategy="fsdp")
    steps, runs, writes = _launch_two_processes(config, workdir, launcher="accelerate")
    for step in steps:  # every frozen decoder-layer weight, nothing else
        assert step["sharded"] and step["sharded"] == step["frozen_in_layers"]
    _check_only_process_0_writes(writes)
    _check_step_matches_one_process(steps, config)
    _check_metrics_match_one_process(runs, config)


def test_one_process_uses_no_accelerate(dist_config, monkeypatch):
    config = Config(model="Speeder", dataset="tiny", config_dict=dist_config)
    assert context_for(config) is SINGLE and config["single_spec"]
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert context_for(config) is SINGLE


@pytest.mark.parametrize("key, value", [("local_rank", 0), ("nproc", 2), ("world_size", 4)])
def test_recbole_own_multi_gpu_keys_are_refused(dist_config, key, value):
    with pytest.raises(ConfigError, match="torchrun"):
        Config(model="Speeder", dataset="tiny", config_dict=dict(dist_config, **{key: value}))


def test_strategy_and_accelerate_sharding_are_checked():
    assert check_strategy({"distributed_strategy": None}, {}) == "ddp"
    assert check_strategy({"distributed_strategy": "FSDP"}, {}) == "fsdp"
    with pytest.raises(ConfigError, match="distributed_strategy must be one of ddp, fsdp"):
        check_strategy({"distributed_strategy": "zero3"}, {})
    for var in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        with pytest.raises(ConfigError, match="distributed_strategy: fsdp"):
            check_strategy({"distributed_strategy": "ddp"}, {var: "true"})


def test_fsdp_refuses_models_that_call_the_backbone_unevenly():
    class MLLMMSR:  # generates summaries inside training steps
        pass

    context = types.SimpleNamespace(_fsdp={})
    with pytest.raises(ConfigError, match="fsdp trains Speeder, LLaRA, TALLRec only"):
        Distributed.shard_backbone(context, MLLMMSR())


def test_other_processes_wait_for_process_0_to_copy_a_dataset(fast_config, workdir, monkeypatch):
    """Process 1 of a launch does not copy ml-100k from the recbole package: it waits for
    process 0's copy (here a thread that copies it half a second later)."""
    import threading

    import recbole_speeder.config as config_module
    from recbole_speeder.data.prepare.registry import ensure_dataset_files
    from recbole_speeder.launch import wait_for_main_process

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    home = str(workdir / "home")

    def not_here(*args):
        raise AssertionError("process 1 copied the dataset")

    monkeypatch.setattr(config_module, "ensure_dataset_files", not_here)
    process_0 = threading.Timer(0.5, ensure_dataset_files, (home, "ml-100k"))
    process_0.start()
    try:
        config = Config(model="SASRec", dataset="ml-100k", config_dict=dict(fast_config, data_path=home))
    finally:
        process_0.join()
    assert os.path.isfile(os.path.join(config["data_path"], "ml-100k.item"))
    with pytest.raises(ConfigError, match="waited 0 s for process 0 to write x"):
        wait_for_main_process(lambda: False, "x", timeout=0.2, poll=0.05)


@pytest.mark.slow
def test_mllmmsr_summary_prefill_is_shared_by_two_processes(fast_config, tiny_llm_dir, workdir):
    """MLLM-MSR's summary_prefill under torchrun: each process summarises the histories of its
    first blocks and then reads the other's, so that no training summary is made twice."""
    import yaml

    config = dict(fast_config, llm_path=tiny_llm_dir, epochs=1, steps_per_epoch=2, train_batch_size=8,
                  eval_batch_size=32, history_len=3, summary_block_size=3, summary_max_new_tokens=4,
                  title_max_tokens=8, item_summary_max_tokens=16, summary_prefill=True, summary_batch_size=64)
    (workdir / "mllmmsr.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(os.path.dirname(HERE), "run_recbole_speeder.py"), "--model=MLLMMSR", "--dataset=tiny",
               "--config_files=mllmmsr.yaml"]
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    (folder,) = glob.glob(str(workdir / "dataset" / "tiny" / "features" / "preference_summary-*"))
    parts = [json.load(open(path))["entries"] for path in glob.glob(os.path.join(folder, "part-*.json"))]
    writers = {os.path.basename(path).split("-")[3] for path in glob.glob(os.path.join(folder, "part-*.json"))}
    assert len(writers) == 2  # both processes summarised
    from test_mllmmsr import _build, _train_dataset

    one = Config(model="MLLMMSR", dataset="tiny", config_dict=config)
    train_data = _train_dataset(one)
    model = _build(one, train_data)
    keys = [k for w in model.summary_windows(train_data._dataset.inter_feat) for k in model.summarizer.prefix_keys(w)]
    assert set(keys) <= set().union(*parts)  # every training history was summarised ...
    for key in set(keys):  # ... once: the training epoch read the other process's summaries
        assert sum(key in part for part in parts) == 1, key
