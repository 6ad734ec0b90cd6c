"""MPO trainer of Speeder (paper, section 2.5): three stages, each a RecBole ``fit``.

The stages, their modalities and trainable parts are the table of
:mod:`recbole_speeder.model.layers.mpo`; ``mpo_stages`` picks the stages (the ablations
"w/o stage 1" = [2, 3], "w/o stages 1 & 2" = [3]) and ``stage_epochs`` their lengths.
Each stage gets a fresh optimizer and warm-up + cosine schedule, early stopping on
validation ``vhr@1`` and its own best checkpoint ``<run>/stage<k>``; the next stage starts
from that best checkpoint. A stage whose modalities the data lacks is skipped with a
message (stage 2 on a dataset without images trains on text only and says so).
``--resume=<run>/stage<k>`` continues stage k after its last saved epoch, then the rest.
"""

import math
import os

from recbole_speeder.errors import ConfigError
from recbole_speeder.model.layers.mpo import STAGE_MODALITIES, stage_plan
from recbole_speeder.trainer.checkpoint import is_checkpoint, read_trainer_state
from recbole_speeder.trainer.llm_trainer import LLMTrainer


class SpeederTrainer(LLMTrainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.run_dir = self.saved_model_file
        self.plan = stage_plan(config["mpo_stages"], config["stage_epochs"])
        self.stage = None
        self._resume_stage = None

    def _extra_state(self):
        return {"stage": self.stage}

    def tensorboard_step(self, epoch_idx):
        """Epochs of the earlier stages of the plan + this stage's epoch."""
        return sum(epochs for stage, epochs in self.plan if self.stage is not None and stage < self.stage) + epoch_idx

    def run_epochs(self):
        """The epochs of every stage of the plan."""
        return sum(epochs for _, epochs in self.plan)

    def _enter_stage(self, stage):
        self.stage = stage
        self.model.set_stage(stage)
        self.optimizer = self._build_optimizer()
        self.scheduler = None
        self.saved_model_file = os.path.join(self.run_dir, f"stage{stage}")

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        best_score, best_result = -math.inf, None
        previous = None
        for stage, epochs in self.plan:
            if self._resume_stage is not None and stage < self._resume_stage:
                previous = os.path.join(self.run_dir, f"stage{stage}")
                continue
            missing = set(STAGE_MODALITIES[stage]) - set(self.model.stage_modalities(stage))
            if not self.model.stage_modalities(stage):
                self.logger.warning(f"MPO stage {stage} skipped: none of its modalities are in this run.")
                continue
            if missing:
                self.logger.info(f"MPO stage {stage}: the data has no {', '.join(sorted(missing))}; "
                                 f"training on {', '.join(self.model.stage_modalities(stage))} only.")
            if self._resume_stage == stage:
                self._resume_stage = None  # optimizer, weights and epoch were restored already
            else:
                if previous is not None and saved:
                    self.load_weights(previous)
                self._enter_stage(stage)
                self.start_epoch, self.cur_step, self.best_valid_score = 0, 0, -math.inf
                self.best_valid_result = None
            self.epochs = epochs
            configured = self.config["eval_step"]  # <= 0: no validation, keep the last epoch
            self.eval_step = min(configured, epochs) if configured > 0 and epochs else 0
            self.logger.info(f"MPO stage {stage}: {epochs} epoch(s), trainable MRC parts "
                             f"{self.model.mrc.trainable_parts()} + LoRA + PPL")
            score, result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
            previous = self.saved_model_file
            best_score, best_result = score, result
        return best_score, best_result

    def resume_checkpoint(self, resume_file):
        folder = str(resume_file).rstrip("/")
        if not is_checkpoint(folder):
            raise ConfigError(f"--resume: '{folder}' is not a Speeder stage checkpoint (no trainer_state.pt).")
        state = read_trainer_state(folder)
        self.run_dir = os.path.dirname(folder)
        self._enter_stage(state["stage"])
        super().resume_checkpoint(folder)
        self.epochs = dict(self.plan).get(state["stage"], 0)
        self._resume_stage = state["stage"]
