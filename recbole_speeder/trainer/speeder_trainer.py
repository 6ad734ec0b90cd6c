"""MPO trainer of Speeder (paper, section 2.5): three stages, each a RecBole ``fit``.

Stage 1 feeds text only and trains T-FFN, A_t, A_f (+ LoRA, PPL); stage 2 adds vision and
trains all but S-FFN / A_s; stage 3 feeds all modalities and trains everything
(:data:`recbole_speeder.model.speeder.STAGE_PARTS`). ``mpo_stages`` picks the stages (the
ablations "w/o stage 1" = [2, 3], "w/o stages 1 & 2" = [3]) and ``stage_epochs`` their
lengths. Each stage gets a fresh optimizer and warm-up + cosine schedule, early stopping on
validation ``vhr@1`` and its own best checkpoint ``<run>/stage<k>``; the next stage starts
from that best checkpoint. A stage whose modalities the data lacks is skipped with a
message (stage 2 on a dataset without images trains on text only and says so).
``--resume=<run>/stage<k>`` continues stage k after its last saved epoch, then the rest.
"""

import math
import os

import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.trainer.llm_trainer import LLMTrainer


class SpeederTrainer(LLMTrainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.run_dir = self.saved_model_file
        stages = [int(s) for s in (config["mpo_stages"] or [1, 2, 3])]
        epochs = [int(e) for e in (config["stage_epochs"] or [1, 1, 1])]
        if not stages or any(s not in (1, 2, 3) for s in stages) or stages != sorted(set(stages)):
            raise ConfigError(f"mpo_stages must be an increasing list drawn from 1, 2, 3 (got {stages}).")
        if len(epochs) != 3:
            raise ConfigError(f"stage_epochs must list the epochs of stages 1, 2, 3 (got {epochs}).")
        self.plan = [(s, epochs[s - 1]) for s in stages]
        self.stage = None
        self._resume_stage = None

    def _extra_state(self):
        return {"stage": self.stage}

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
            missing = set(("text", "vision", "seq")[:stage]) - set(self.model.stage_modalities(stage))
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
        state_file = os.path.join(folder, "trainer_state.pt")
        if not os.path.isfile(state_file):
            raise ConfigError(f"--resume: '{folder}' is not a Speeder stage checkpoint (no trainer_state.pt).")
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        self.run_dir = os.path.dirname(folder)
        self._enter_stage(state["stage"])
        super().resume_checkpoint(folder)
        self.epochs = dict(self.plan).get(state["stage"], 0)
        self._resume_stage = state["stage"]
