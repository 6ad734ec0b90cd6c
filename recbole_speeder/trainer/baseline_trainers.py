"""Trainers of the LLM baselines: :class:`LLMTrainer` plus what each baseline needs.

- ``TALLRecTrainer``: :class:`LLMTrainer` as it is (LoRA, warm-up + cosine, candidate
  validation, checkpoint folders).
- ``LLaRATrainer``: also drives LLaRA's curriculum (text-only -> hybrid prompts): before
  training it hands the model the schedule's total steps and the step reached (non-zero
  when resuming), see :class:`~recbole_speeder.model.llara.LLaRA`; TMF, LLaRA with one item
  token per modality, trains with it (``TMFTrainer``).
- ``ZeroShotTrainer``: for a model with nothing to train (``epochs: 0``). RecBole's ``fit``
  then only saves the checkpoint of "epoch -1" (the untuned model: no adapter, an empty
  ``plugin.safetensors``) and ``evaluate`` loads it back, as for any other model.
"""

from recbole_speeder.errors import ConfigError
from recbole_speeder.trainer.llm_trainer import LLMTrainer

TALLRecTrainer = LLMTrainer


class LLaRATrainer(LLMTrainer):
    def _build_scheduler(self, train_data, epochs):
        super()._build_scheduler(train_data, epochs)
        per_epoch = self._steps_in_epoch(train_data)
        self.model.start_curriculum(per_epoch * max(1, self.epochs), per_epoch * self.start_epoch)


TMFTrainer = LLaRATrainer


class _NothingToOptimize:
    """Stands in for the optimizer of a model without trainable parameters (empty state)."""

    param_groups = []

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        if state:
            raise ConfigError("This checkpoint holds optimizer state, but the model has nothing to train.")

    def zero_grad(self, set_to_none=True):
        pass


class ZeroShotTrainer(LLMTrainer):
    def _build_optimizer(self, **kwargs):
        if not any(p.requires_grad for p in self.model.parameters()):
            return _NothingToOptimize()
        return super()._build_optimizer(**kwargs)

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if isinstance(self.optimizer, _NothingToOptimize):
            if self.epochs - self.start_epoch > 0:
                raise ConfigError(f"{self.config['model']} is not fine-tuned: set epochs: 0 (got {self.epochs}).")
            self.scheduler = False  # no schedule to build (LLMTrainer.fit builds one when None)
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
