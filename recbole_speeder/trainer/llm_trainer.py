"""Trainer of the LLM recommenders: candidate-set validation, LoRA checkpoints, warm-up + cosine.

Differences from RecBole's ``Trainer`` (whose ``fit`` loop, early stopping and logging are
kept):

- validation and test score the stored candidate sets (:mod:`recbole_speeder.data.candidates`)
  with :class:`~recbole_speeder.evaluation.candidate_eval.CandidateEvaluator`; a model that ranks
  the catalog (``ranks_catalog``) also gets RecBole's own ranking evaluation (``Trainer.evaluate``,
  its collector and metrics, under ``eval_args``' mode), and in mode ``full`` the candidate scores
  are read off the same full-sort scores, one pass for both protocols
  (:mod:`recbole_speeder.evaluation.protocols`); early stopping follows ``valid_metric`` among
  all of them (default ``vhr@1``);
- only parameters with ``requires_grad`` are optimised, in the model's ``optimizer_groups``
  (Speeder's MRC and PPL may take ``plugin_learning_rate``), by Adam / AdamW in their fused form
  on a GPU; the learning rate warms up linearly
  from lr/100 over ``warmup_ratio`` of the steps, then decays with a cosine (paper, section 2.5)
  or, with ``lr_schedule: constant``, stays;
- ``steps_per_epoch`` caps the batches of an epoch (random batches, the loader shuffles);
- a training batch stays on the host (the models build their prompts there and move them to the
  GPU in one non-blocking copy) and a step's loss is read once the next step is queued, so the
  host never waits for the GPU inside an epoch; a NaN loss still stops training, one step later
  than RecBole's check;
- a checkpoint is a folder ``saved/<Model>-<time>-<6 random hex digits>``
  (:mod:`~recbole_speeder.trainer.checkpoint`: LoRA adapters in peft's format, the plugin's
  own weights, the trainer state with the random generators and the data order, so that a
  resumed run continues the interrupted one), written atomically and loaded strictly;
- under ``accelerate launch`` / ``torchrun`` (``WORLD_SIZE`` > 1) training batches are sharded,
  the loss runs in DDP, evaluation is sharded and gathered, and only process 0 writes
  checkpoints (:mod:`recbole_speeder.trainer.distributed`); one process changes nothing.
"""

import inspect
import itertools
import math
import time

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.trainer import Trainer
from recbole.utils import set_color
from tqdm import tqdm

from recbole_speeder.compat import to_plain
from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import catalog_candidate_scores
from recbole_speeder.evaluation.protocols import CANDIDATES, flat_metrics, metric_value, ranks_catalog
from recbole_speeder.trainer.checkpoint import (
    ResumeStateMixin, is_checkpoint, load_trainable, read_trainer_state, unique_checkpoint_name, write_checkpoint,
)
from recbole_speeder.trainer.curves import curve_row, run_log_file, write_curves
from recbole_speeder.trainer.distributed import context_for
from recbole_speeder.trainer.timing import TrainTimeMixin


LR_SCHEDULES = ("cosine", "constant")


def warmup_schedule(total_steps, warmup_ratio, decay="cosine"):
    """LR multiplier: linear from 1/100 to 1 over the warm-up, then a cosine decay to 0 over the
    remaining steps (``cosine``, paper section 2.5) or 1 until the end (``constant``)."""
    if decay not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)} (got '{decay}').")
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step):
        if step < warmup:
            return 0.01 + 0.99 * step / warmup
        if decay == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def fused_adam(optimizer, device_types=("cuda",)):
    """``optimizer`` rebuilt in its fused form when it is RecBole's Adam or AdamW (``learner``) and
    all its parameters are on ``device_types``: one kernel then updates every parameter of a group,
    where the multi-tensor form launches about fifteen per group, which a small backbone's step,
    bounded by its host, pays for (docs/benchmarks.md). Anything else is returned as it is."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if (type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or not params
            or any(p.device.type not in device_types for p in params)):
        return optimizer
    groups = [dict(group, fused=True, foreach=None) for group in optimizer.param_groups]
    accepted = inspect.signature(type(optimizer)).parameters  # AdamW's defaults hold one key it does not take
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    return type(optimizer)(groups, **dict(defaults, fused=True, foreach=None))


class _LLMTrainerCore(ResumeStateMixin, Trainer):
    """RecBole trainer for models that set ``candidate_only = True`` (see the module doc)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.dist = context_for(config)
        self.dist.silence_trainer(self)
        # a folder of its own (runs started in the same second share RecBole's name); every
        # process must name the same folder: process 0's
        unique = unique_checkpoint_name(self.saved_model_file, extension="")
        self.saved_model_file = self.dist.broadcast_object(unique)
        self.valid_metric = config["valid_metric"].lower()
        self.valid_metric_bigger = True
        self.best_valid_score = -math.inf
        self.steps_per_epoch = config["steps_per_epoch"]
        self.warmup_ratio = float(config["warmup_ratio"])
        self.lr_schedule = config["lr_schedule"]
        warmup_schedule(1, self.warmup_ratio, self.lr_schedule)  # a bad name fails before training
        # self.evaluator stays RecBole's (ranking metrics); the candidate protocol has its own
        self.candidate_evaluator = self.dist.candidate_evaluator(config)
        self.ranks_catalog = ranks_catalog(type(model), config)
        self.candidate_sets = {}  # split -> CandidateSet (quick_start.run sets both)
        self.candidate_data = {}  # split -> a loader of the split's sequences in the sets' order
        self._candidate_pass = None  # (rows, CandidateSet) while a full-sort pass also ranks the candidates
        self.scheduler = None
        self._pending_scheduler_state = None
        self.valid_curves = []  # one point per validation (trainer/curves.py, Figure 5)

    # -- optimisation -------------------------------------------------------------------
    def _build_optimizer(self, **kwargs):
        groups = [g for g in self.model.optimizer_groups() if g["params"]]
        if not groups:
            raise ConfigError(f"{self.config['model']}: no trainable parameters.")
        return fused_adam(super()._build_optimizer(params=groups, **kwargs))

    def _steps_in_epoch(self, train_data):
        batches = self.dist.batches_per_process(train_data)
        return min(batches, self.steps_per_epoch or batches)

    def _build_scheduler(self, train_data, epochs):
        total = self._steps_in_epoch(train_data) * max(1, epochs)
        factor = warmup_schedule(total, self.warmup_ratio, self.lr_schedule)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        if self._pending_scheduler_state:  # resumed: continue the saved schedule
            self.scheduler.load_state_dict(self._pending_scheduler_state)
            self._pending_scheduler_state = None
            # a new LambdaLR sets the first step's rate; the next step uses the saved schedule's
            for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
                group["lr"] = lr

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if self.scheduler is None:
            self._build_scheduler(train_data, self.epochs)  # one schedule over all epochs
        outcome = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        log_file = run_log_file()
        if self.dist.is_main_process and log_file and saved:
            write_curves(self.valid_curves, log_file)
        return outcome

    def _restores_process_rng(self):
        """Launched processes keep their own per-process seeds (one process's state is saved) and
        restore the data order only."""
        return not self.dist.enabled

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._epoch_idx = epoch_idx
        self.model.train()
        steps = self._steps_in_epoch(train_data)
        total_loss, self.epoch_samples = 0.0, 0
        loss_of = self.dist.loss_function(self.model)
        train_data = self.dist.shard(train_data)
        batches = tqdm(train_data, total=steps, ncols=100, desc=f"Train {epoch_idx:>4}") if show_progress else train_data
        queued = None  # the loss of the step before, read once the next step is queued
        progress = getattr(self.model, "set_training_progress", None)
        for step, interaction in enumerate(self._training_batches(batches, steps)):
            # the batch stays on the host: the models build their prompts there and move them in one
            # non-blocking copy (a copy to the GPU here would wait for the step still running there)
            self.optimizer.zero_grad()
            self.model.begin_step()
            if progress is not None:
                progress(self.run_progress(epoch_idx, step, steps))
            loss = loss_of(interaction)
            loss.backward()
            if self.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            total_loss += self._loss_value(queued)
            queued = loss.detach()
            self.epoch_samples += len(interaction)
        total_loss += self._loss_value(queued)
        if self.dist.enabled:  # all processes' samples; the mean loss over them
            self.epoch_samples = self.dist.sum(self.epoch_samples)
            total_loss = self.dist.sum(total_loss) / self.dist.num_processes
        return total_loss / max(1, min(steps, len(train_data)))

    def run_epochs(self):
        """Training epochs of the whole run (Speeder: of all its MPO stages)."""
        return self.epochs

    def run_progress(self, epoch_idx, step, steps):
        """The share of the run's training steps done before step ``step`` of ``steps`` of epoch
        ``epoch_idx`` (epochs counted on across stages, as :meth:`tensorboard_step` counts them)."""
        return (self.tensorboard_step(epoch_idx) + step / max(1, steps)) / max(1, self.run_epochs())

    def _loss_value(self, loss):
        """A step's loss as a number (0 for none), read one step late so that the host never waits
        for the step it has just queued; a NaN loss stops training by RecBole's own check (one step
        later than RecBole, which checks every loss before its backward pass)."""
        if loss is None:
            return 0.0
        self._check_nan(loss)
        return loss.item()

    def _training_batches(self, batches, steps):
        """The epoch's first ``steps`` batches (a subclass may look at them before training on them)."""
        return itertools.islice(batches, steps)

    # -- evaluation ---------------------------------------------------------------------
    def _valid_epoch(self, valid_data, show_progress=False):
        result = self._evaluate(valid_data, "valid", show_progress)
        epoch_hook = getattr(self.model, "valid_epoch_report", None)
        if epoch_hook is not None:  # beside the candidate metrics (the validation curves of Figure 5)
            (result.get(CANDIDATES) or result).update(epoch_hook())
        step = self.tensorboard_step(getattr(self, "_epoch_idx", 0))
        self.log_scalars("Valid", result, step)
        self.valid_curves.append(curve_row(step, getattr(self, "stage", None), flat_metrics(result)))
        score = metric_value(result, self.valid_metric)
        self._last_valid = (score, result)  # the mixin's _valid_epoch is not reached from here
        return score, result

    def _evaluate(self, eval_data, split, show_progress=False):
        """The metrics of one split: the candidate protocol's, or for a model that ranks the catalog
        RecBole's ranking metrics (``Trainer.evaluate``) with the candidate metrics under
        ``result["candidates"]``; in mode ``full`` both come from one pass over the split."""
        candidate_set = self.candidate_sets.get(split)
        if not self.ranks_catalog:
            return self.candidate_evaluator.evaluate(self.model, eval_data, candidate_set)
        one_pass = candidate_set is not None and isinstance(eval_data, FullSortEvalDataLoader)
        rows = []  # (offset, ranks, valid) per batch, filled by _full_sort_batch_eval in one pass
        self._candidate_pass = (rows, candidate_set) if one_pass else None
        self.candidate_evaluator.sync()
        start = time.perf_counter()
        try:
            with self.dist.full_weights(self.model):  # every process ranks every row (no gather)
                result = dict(Trainer.evaluate(self, eval_data, load_best_model=False, show_progress=show_progress))
        finally:
            self._candidate_pass = None
        self.candidate_evaluator.sync()
        elapsed = time.perf_counter() - start
        if one_pass:
            offset = sum(len(ranks) for _, ranks, _ in rows)
            result[CANDIDATES] = self.candidate_evaluator.summarize(rows, True, offset, candidate_set, elapsed)
        elif candidate_set is not None:  # a sampled mode: the candidate protocol on its own loader
            result[CANDIDATES] = self.candidate_evaluator.evaluate(self.model, self.candidate_data[split], candidate_set)
        return result

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's full-sort batch (``full_sort_predict``, then [PAD] and history masked); during a
        one-pass evaluation the candidate ranks are read off the same scores first."""
        interaction, history_index, positive_u, positive_i = batched_data
        self.model.begin_step()
        scores = self.model.full_sort_predict(interaction.to(self.device)).view(-1, self.tot_item_num).float()
        if self._candidate_pass is not None:
            rows, candidate_set = self._candidate_pass
            offset = sum(len(ranks) for _, ranks, _ in rows)
            candidates = candidate_set.item_ids[offset: offset + len(scores)].to(scores.device)
            rows.append(self.candidate_evaluator.rank_rows(catalog_candidate_scores(scores, candidates),
                                                           candidate_set, offset))
        scores[:, 0] = -np.inf
        if history_index is not None:
            scores[history_index] = -np.inf
        return interaction, scores, positive_u, positive_i

    def _neg_sample_batch_eval(self, batched_data):
        self.model.begin_step()
        return super()._neg_sample_batch_eval(batched_data)

    # -- TensorBoard (RecBole's writer: log_tensorboard/<run>/) -----------------------------
    def tensorboard_step(self, epoch_idx):
        """The x of an epoch's scalars (Speeder counts on across its MPO stages)."""
        return epoch_idx

    def _add_train_loss_to_tensorboard(self, epoch_idx, losses, tag="Loss/Train"):
        super()._add_train_loss_to_tensorboard(self.tensorboard_step(epoch_idx), losses, tag)

    def log_scalars(self, prefix, result, step):
        """Every number of a result dict (candidate metrics, PPT accuracy, RecBole's ranking
        metrics...) as ``<prefix>/<name>`` (names of :func:`~recbole_speeder.evaluation.protocols.flat_metrics`)."""
        for name, value in flat_metrics(result or {}).items():
            if name != "n" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.tensorboard.add_scalar(f"{prefix}/{name}", value, step)
        if hasattr(self.tensorboard, "flush"):
            self.tensorboard.flush()

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False, split="test"):
        if load_best_model:
            self.load_weights(model_file or self.saved_model_file)
        return self._evaluate(eval_data, split, show_progress)

    # -- checkpoints --------------------------------------------------------------------
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if self.dist.is_main_process:
            self._write_checkpoint(epoch, verbose=verbose, **kwargs)
        self.dist.wait_for_everyone()  # the others load it next (best weights, next MPO stage)

    def _write_checkpoint(self, epoch, verbose=True, **kwargs):
        folder = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "config": {"model": self.config["model"], "dataset": self.config["dataset"]},
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": to_plain(self._best_result_so_far()),
            "optimizer": to_plain(self.optimizer.state_dict()),
            "scheduler": to_plain(self.scheduler.state_dict()) if self.scheduler else None,
            **self._random_state(),
            **self._extra_state(),
        }
        write_checkpoint(folder, self.model, state)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {folder}")

    def _extra_state(self):
        return {}

    def load_weights(self, folder):
        if not is_checkpoint(folder):
            raise ConfigError(f"'{folder}' is not a checkpoint folder of {self.config['model']} (no trainer_state.pt).")
        load_trainable(self.model, folder)
        self.logger.info(f"Loading model parameters from {folder}")

    def resume_checkpoint(self, resume_file):
        folder = str(resume_file)
        self.load_weights(folder)
        state = read_trainer_state(folder, self.device)
        self.saved_model_file = folder
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        # the metrics of that best epoch: a resumed run that does not beat it still reports them
        self.best_valid_result = state.get("best_valid_result")
        saved_groups, groups = len(state["optimizer"]["param_groups"]), len(self.optimizer.param_groups)
        if saved_groups != groups:
            raise ConfigError(f"--resume: '{folder}' was trained with {saved_groups} optimizer parameter group(s), "
                              f"this run has {groups}; resume with the settings it was trained with "
                              f"(plugin_learning_rate makes a second group).")
        self.optimizer.load_state_dict(state["optimizer"])
        self._pending_scheduler_state = state.get("scheduler")
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")
        self._expect_random_state(state, folder)
        return state


class LLMTrainer(TrainTimeMixin, _LLMTrainerCore):
    """RecBole trainer for models that set ``candidate_only = True`` (see the module doc)."""
