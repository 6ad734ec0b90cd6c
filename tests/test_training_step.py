"""The LLM trainer's step waits for nothing on the device: the batch stays on the host (the models
move what they need in non-blocking copies) and a step's loss is read once the next one is queued;
the epoch's loss is still the mean of its steps' losses, and a NaN loss still stops training."""

import pytest
from recbole.data.interaction import Interaction

from recbole_speeder.model.speeder import Speeder
from recbole_speeder.quick_start import run

from conftest import FAST

STAGE_1 = dict(FAST, mpo_stages=[1], stage_epochs=[1, 0, 0], steps_per_epoch=3, train_batch_size=4, mome_dim=16,
               mome_heads=2, history_len=5, modalities=["text"], text_encoder="llm", distill_weight=0, ppt_ratio=0.5)


def _spy_losses(monkeypatch):
    """The loss of every training step, as calculate_loss returned it."""
    losses = []
    calculate_loss = Speeder.calculate_loss

    def recording(self, interaction):
        loss = calculate_loss(self, interaction)
        if self.training:
            losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(Speeder, "calculate_loss", recording)
    return losses


def test_the_batch_stays_on_the_host_and_the_epoch_loss_is_the_mean_of_its_steps(fast_config, tiny_llm_dir,
                                                                                monkeypatch):
    losses = _spy_losses(monkeypatch)
    moved = []
    to = Interaction.to

    def counting_to(self, *args, **kwargs):
        moved.append(args)
        return to(self, *args, **kwargs)

    monkeypatch.setattr(Interaction, "to", counting_to)
    epoch_losses = []
    from recbole_speeder.trainer.llm_trainer import LLMTrainer

    train_epoch = LLMTrainer._train_epoch

    def recording_epoch(self, *args, **kwargs):
        moved.clear()  # validation moves its batches; only training's count here
        loss = train_epoch(self, *args, **kwargs)
        epoch_losses.append((loss, list(moved)))
        return loss

    monkeypatch.setattr(LLMTrainer, "_train_epoch", recording_epoch)
    run(model="Speeder", dataset="tiny", config_dict=dict(STAGE_1, **fast_config, llm_path=tiny_llm_dir))
    (loss, moved_in_training), = epoch_losses
    assert len(losses) == 3
    assert loss == pytest.approx(sum(losses) / 3, rel=1e-6)
    assert moved_in_training == []  # the trainer hands the models the loader's host batches


def test_a_nan_loss_still_stops_training(fast_config, tiny_llm_dir, monkeypatch):
    calculate_loss = Speeder.calculate_loss

    def nan_on_second_step(self, interaction, calls=[]):
        calls.append(1)
        loss = calculate_loss(self, interaction)
        return loss * float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(Speeder, "calculate_loss", nan_on_second_step)
    with pytest.raises(ValueError, match="Training loss is nan"):
        run(model="Speeder", dataset="tiny", config_dict=dict(STAGE_1, **fast_config, llm_path=tiny_llm_dir))


def test_fused_adam_keeps_the_groups_and_steps_as_the_multi_tensor_form():
    """On a GPU the trainer's Adam / AdamW run fused (one kernel per group, not ~15): the rebuilt
    optimizer keeps every group's parameters and learning rate and takes the same step (checked on
    the CPU, where torch has the fused form too); other optimizers and devices are left alone."""
    import torch

    from recbole_speeder.trainer.llm_trainer import fused_adam

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))

    def groups(net):
        return [{"params": list(net[0].parameters())}, {"params": list(net[1].parameters()), "lr": 0.5}]

    plain_net, fused_net = model(), model()
    plain = torch.optim.AdamW(groups(plain_net), lr=0.1, weight_decay=0.01)
    fused = fused_adam(torch.optim.AdamW(groups(fused_net), lr=0.1, weight_decay=0.01), device_types=("cpu",))
    assert all(g["fused"] for g in fused.param_groups) and [g["lr"] for g in fused.param_groups] == [0.1, 0.5]
    assert [p for g in fused.param_groups for p in g["params"]] == list(fused_net.parameters())
    x = torch.randn(8, 4)
    for net, optimizer in ((plain_net, plain), (fused_net, fused)):
        for _ in range(3):
            optimizer.zero_grad()
            net(x).square().sum().backward()
            optimizer.step()
    for a, b in zip(plain_net.parameters(), fused_net.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    sgd = torch.optim.SGD(model().parameters(), lr=0.1)
    assert fused_adam(sgd, device_types=("cpu",)) is sgd
    on_cpu = torch.optim.Adam(model().parameters())
    assert fused_adam(on_cpu) is on_cpu  # default: fused on a GPU only
