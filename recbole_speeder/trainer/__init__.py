"""Plugin trainers, found by name as ``<Model>Trainer`` (RecBole's habit)."""

from recbole_speeder.trainer.llm_trainer import LLMTrainer
from recbole_speeder.trainer.speeder_trainer import SpeederTrainer
from recbole_speeder.trainer.baseline_trainers import LLaRATrainer, TALLRecTrainer, TMFTrainer, ZeroShotTrainer
from recbole_speeder.trainer.mllmmsr_trainer import MLLMMSRTrainer
