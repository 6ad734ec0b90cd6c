"""A resumed run continues the interrupted one; checkpoints clean what a killed write left;
TensorBoard files hold the candidate metrics and PPT accuracy of every epoch."""

import glob
import os
import shutil

import pytest
import torch

from recbole_speeder.quick_start import run
from recbole_speeder.trainer.checkpoint import read_trainer_state
from recbole_speeder.trainer.llm_trainer import LLMTrainer
from recbole_speeder.trainer.speeder_trainer import SpeederTrainer

from conftest import FAST, HERE


class Stop(Exception):
    """Stands in for a kill right after a checkpoint was written."""


SPEEDER = dict(FAST, mpo_stages=[1, 3], stage_epochs=[1, 0, 2], steps_per_epoch=2, train_batch_size=4, mome_dim=16,
               mome_heads=2, history_len=5, seq_encoder_epochs=1, seq_encoder_hidden=16, ppt_ratio=0.5,
               modalities=["text", "seq"], text_encoder="llm")


def _record_losses(monkeypatch):
    """[(stage, epoch, loss)] of every training epoch of the runs that follow."""
    losses = []
    train_epoch = LLMTrainer._train_epoch

    def recording(self, train_data, epoch_idx, *args, **kwargs):
        loss = train_epoch(self, train_data, epoch_idx, *args, **kwargs)
        losses.append((self.stage, epoch_idx, loss))
        return loss

    monkeypatch.setattr(LLMTrainer, "_train_epoch", recording)
    return losses


def _without_timing(result):
    return {k: v for k, v in result.items() if k != "infer_ms_per_sample"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_llm_dir):
    """One whole tiny Speeder run (stage 1, then stage 3 of two epochs), its losses and its folder."""
    root = tmp_path_factory.mktemp("uninterrupted")
    shutil.copytree(os.path.join(HERE, "data", "tiny"), root / "dataset" / "tiny")
    config = dict(SPEEDER, data_path=str(root / "dataset"), llm_path=tiny_llm_dir)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        losses = _record_losses(monkeypatch)
        result = run(model="Speeder", dataset="tiny", config_dict=config)
    return config, result, losses, root


def test_resumed_run_gives_the_uninterrupted_runs_losses_and_metrics(uninterrupted, monkeypatch, tmp_path):
    config, whole, whole_losses, _ = uninterrupted
    assert [(s, e) for s, e, _ in whole_losses] == [(1, 0), (3, 0), (3, 1)]
    monkeypatch.chdir(tmp_path)
    config = dict(config, data_path=str(tmp_path / "dataset"))
    shutil.copytree(os.path.join(HERE, "data", "tiny"), tmp_path / "dataset" / "tiny")

    save = SpeederTrainer._save_checkpoint
    written, leftovers = [], []

    def stop_after_first_stage3_epoch(self, epoch, *args, **kwargs):
        if self.stage == 3 and epoch == 0:
            # a kill during a checkpoint write leaves a temporary folder beside it: the next
            # write of that checkpoint removes it, and leaves another target's alone
            run_dir = os.path.dirname(self.saved_model_file)
            stale, other = os.path.join(run_dir, ".tmp-stage3-k1lled"), os.path.join(run_dir, ".tmp-stage2-k1lled")
            for folder in (stale, other):
                os.makedirs(folder)
            open(os.path.join(stale, "plugin.safetensors"), "wb").close()
            leftovers.extend([stale, other])
        save(self, epoch, *args, **kwargs)
        written.append(self.saved_model_file)
        if self.stage == 3 and epoch == 0:
            raise Stop()

    with monkeypatch.context() as patch:
        patch.setattr(SpeederTrainer, "_save_checkpoint", stop_after_first_stage3_epoch)
        with pytest.raises(Stop):
            run(model="Speeder", dataset="tiny", config_dict=config)
    stage3 = written[-1]
    assert stage3.endswith("stage3")
    stale, other = leftovers
    assert not os.path.exists(stale) and os.path.isdir(other)
    assert not glob.glob(os.path.join(os.path.dirname(stage3), ".tmp-stage3-*"))
    # the checkpoint of a best epoch carries that epoch's validation metrics (RecBole records
    # them only after it saved), so a resumed run that never beats it still reports them
    best = read_trainer_state(stage3)["best_valid_result"]
    best = best["candidates"]  # Speeder's defaults rank the catalog: the candidate metrics sit in their own part
    assert best["n"] > 0 and best["vhr@1"] == read_trainer_state(stage3)["best_valid_score"]

    losses = _record_losses(monkeypatch)
    resumed = run(model="Speeder", dataset="tiny", config_dict=config, resume_file=stage3)
    assert losses == [whole_losses[-1]]  # stage 3, epoch 1: the same loss, to the last bit
    assert _without_timing(resumed["candidate_test"]) == _without_timing(whole["candidate_test"])
    # the best validation too, whichever side of the interruption its epoch was
    assert _without_timing(resumed["candidate_valid"]) == _without_timing(whole["candidate_valid"])


def test_tensorboard_holds_candidate_metrics_and_ppt_accuracy_per_epoch(uninterrupted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, result, _, root = uninterrupted
    folders = {os.path.dirname(f) for f in glob.glob(str(root / "log_tensorboard" / "*" / "events.out.tfevents.*"))}
    scalars = {}
    for folder in folders:
        events = EventAccumulator(folder)
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    # one validation per epoch: stage 1's, then stage 3's two epochs, counted on: steps 0, 1, 2
    for tag in ("Valid/vhr@1", "Valid/hr@1", "Valid/mrr", "Valid/ppt_acc"):
        assert sorted(step for step, _ in scalars[tag]) == [0, 1, 2], tag
    best = max(value for step, value in scalars["Valid/vhr@1"] if step >= 1)  # stage 3's best epoch
    assert best == pytest.approx(result["candidate_valid"]["vhr@1"])
    assert [0, 1, 2] == sorted(step for step, _ in scalars["Loss/Train"])[-3:]
    assert scalars["Test/vhr@1"][0][1] == pytest.approx(result["candidate_test"]["vhr@1"])


# -- RecBole's own models: the same exactness, RecBole's .pth ----------------------------------------
RECBOLE = dict(FAST, epochs=4, seed=2020, MAX_ITEM_LIST_LENGTH=10)


def _record_recbole_losses(monkeypatch, stop_at=None):
    """[(epoch, loss)] of every training epoch of the runs that follow; ``stop_at``: the epoch at
    whose start the run is stopped (a kill after the epochs before it and their checkpoints)."""
    from recbole.trainer import Trainer

    losses = []
    train_epoch = Trainer._train_epoch

    def recording(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == stop_at:
            raise Stop()
        loss = train_epoch(self, train_data, epoch_idx, *args, **kwargs)
        losses.append((epoch_idx, loss))
        return loss

    monkeypatch.setattr(Trainer, "_train_epoch", recording)
    return losses


# SASRec with CE over all items; GRU4Rec with BPR draws negatives (numpy's generator)
@pytest.mark.parametrize("model, settings", [("SASRec", {}), ("GRU4Rec", {"loss_type": "BPR"})])
def test_recbole_model_killed_after_epoch_2_and_resumed_equals_the_straight_run(fast_config, monkeypatch, model,
                                                                              settings):
    config = dict(fast_config, **RECBOLE, **settings)
    with monkeypatch.context() as patch:
        straight_losses = _record_recbole_losses(patch)
        straight = run(model=model, dataset="tiny", config_dict=config)
    with monkeypatch.context() as patch:
        _record_recbole_losses(patch, stop_at=2)
        with pytest.raises(Stop):
            run(model=model, dataset="tiny", config_dict=config)
    (checkpoint,) = set(glob.glob(os.path.join("saved", f"{model}-*.pth"))) - {straight["saved_model_file"]}
    state = torch.load(checkpoint, weights_only=True)  # RecBole's keys and the resume state
    assert state["epoch"] == 1 and {"state_dict", "optimizer", "rng", "data_order", "best_valid_result"} <= set(state)

    with monkeypatch.context() as patch:
        resumed_losses = _record_recbole_losses(patch)
        resumed = run(model=model, dataset="tiny", config_dict=config, resume_file=checkpoint)
    assert resumed_losses == straight_losses[2:]  # epochs 2 and 3, to the last bit
    assert resumed["test_result"] == straight["test_result"]
    assert _without_timing(resumed["candidate_test"]) == _without_timing(straight["candidate_test"])
    assert resumed["best_valid_result"] == straight["best_valid_result"]


def test_recbole_checkpoint_without_the_resume_state_resumes_and_says_it_is_not_exact(fast_config, monkeypatch):
    """A .pth written before the random states were saved (or by RecBole itself) still resumes."""
    from recbole_speeder.trainer.curves import run_log_file

    config = dict(fast_config, **dict(RECBOLE, epochs=2))
    with monkeypatch.context() as patch:
        _record_recbole_losses(patch, stop_at=1)
        with pytest.raises(Stop):
            run(model="SASRec", dataset="tiny", config_dict=config)
    (checkpoint,) = glob.glob(os.path.join("saved", "SASRec-*.pth"))
    state = torch.load(checkpoint, weights_only=True)
    torch.save({k: v for k, v in state.items() if k not in ("rng", "data_order", "scheduler", "best_valid_result")},
               checkpoint)
    losses = _record_recbole_losses(monkeypatch)
    run(model="SASRec", dataset="tiny", config_dict=config, resume_file=checkpoint)
    assert [epoch for epoch, _ in losses] == [1]
    with open(run_log_file()) as f:
        log = f.read()
    assert f"{checkpoint} holds no random states and data order" in log and "the resumed run is not exact" in log


def test_runs_started_in_the_same_second_write_and_reload_their_own_checkpoints(fast_config, monkeypatch):
    """RecBole names a .pth by the second its run started; two runs of that second, one checkpoint_dir."""
    import recbole.trainer.trainer as recbole_trainer
    from recbole.trainer import Trainer

    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Dec-04-2026_15-04-31")
    reloaded = []
    evaluate = Trainer.evaluate

    def recording(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model:
            reloaded.append(model_file or self.saved_model_file)
        return evaluate(self, eval_data, load_best_model, model_file, show_progress)

    monkeypatch.setattr(Trainer, "evaluate", recording)
    runs = [run(model="SASRec", dataset="tiny", config_dict=dict(fast_config, epochs=1, seed=seed))
            for seed in (1, 2)]
    files = [r["saved_model_file"] for r in runs]
    assert len(set(files)) == 2 and all(os.path.basename(f).startswith("SASRec-Dec-04-2026_15-04-31-") for f in files)
    assert sorted(glob.glob(os.path.join("saved", "*.pth"))) == sorted(files)
    assert reloaded == files  # each run reloaded the file it wrote, and only that one
    weights = [torch.load(f, weights_only=True)["state_dict"]["item_embedding.weight"] for f in files]
    assert not torch.equal(*weights)


def test_a_checkpoint_save_killed_mid_write_leaves_no_temporary_after_the_next_run(fast_config, workdir):
    from test_atomic import killed_write

    (workdir / "saved").mkdir()
    killed_write("file", workdir / "saved" / "SASRec-Dec-04-2026_15-04-31-0a1b2c.pth")
    assert glob.glob(os.path.join("saved", ".tmp-*.pth"))
    result = run(model="SASRec", dataset="tiny", config_dict=dict(fast_config, epochs=1))
    assert os.listdir("saved") == [os.path.basename(result["saved_model_file"])]
