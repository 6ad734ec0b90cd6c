r"""LLaRA
################################################

Reference:
    Jiayi Liao et al. "LLaRA: Large Language-Recommendation Assistant." SIGIR 2024.

Hybrid item representation: every history item and candidate is written as its title
followed by one placeholder token whose input embedding is the item's SASRec embedding
(the ``item_features`` side information, 'seq' modality, trained on the run's training split) mapped to
the LLM width by a small MLP projector (Linear, GELU, Linear). The answer is the chosen
candidate's title (:mod:`recbole_speeder.model.title_llm`): LoRA + projector are trained
with cross-entropy on the answer tokens; evaluation generates a title and matches it
(``eval_mode: generate``, the paper's protocol) or ranks the candidates by the
log-likelihood of their titles (``eval_mode: constrained``).

Curriculum prompt tuning (LLaRA's curriculum learning): training starts from text-only prompts and
moves to hybrid prompts. Each training sequence gets the hybrid prompt with probability
``p = min(1, step / (curriculum_ratio * total_steps))`` (linear in the optimisation step,
independently per sequence), text-only otherwise; ``step`` and ``total_steps`` are set by
:class:`~recbole_speeder.trainer.LLaRATrainer`. Without a trainer (or with
``curriculum_ratio: 0``) and at evaluation every prompt is hybrid.
"""

import torch
from torch import nn

from recbole_speeder.errors import ConfigError
from recbole_speeder.model.title_llm import TitleLLMRecommender


def item_projector(dim, hidden):
    """LLaRA's projector of an item feature to the LLM width: Linear, GELU, Linear."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))


class LLaRA(TitleLLMRecommender):
    """Titles + projected SASRec embeddings in the prompt, title answers, curriculum."""

    fine_tuned = True
    side_info = ("item_titles", "item_features")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.build_item_tokens(self.dataset_side_info(dataset, "item_features"),
                               self.llm.get_input_embeddings().embedding_dim)
        self.curriculum_ratio = float(config["curriculum_ratio"])
        if not 0.0 <= self.curriculum_ratio <= 1.0:
            raise ConfigError(f"curriculum_ratio must lie in [0, 1] (got {self.curriculum_ratio}).")
        self.curriculum_step = 0
        self.curriculum_total_steps = None

    # -- curriculum -----------------------------------------------------------------------
    def start_curriculum(self, total_steps, step=0):
        """Called by the trainer before training: the schedule's length and current step."""
        self.curriculum_total_steps = int(total_steps)
        self.curriculum_step = int(step)

    def hybrid_probability(self):
        """Probability that a training prompt is hybrid at the current step (1 at evaluation)."""
        if not self.training or self.curriculum_total_steps is None or self.curriculum_ratio == 0:
            return 1.0
        return min(1.0, self.curriculum_step / (self.curriculum_ratio * max(1, self.curriculum_total_steps)))

    def hybrid_rows(self, size):
        p = self.hybrid_probability()
        if p >= 1.0:
            return [True] * size
        return (torch.rand(size) < p).tolist()

    def calculate_loss(self, interaction):
        loss = super().calculate_loss(interaction)
        self.curriculum_step += 1
        return loss

    # -- item tokens ----------------------------------------------------------------------
    def build_item_tokens(self, features, hidden):
        """The item features and projectors behind the placeholders (LLaRA: the seq features, one
        projector, one placeholder per item)."""
        if "seq" not in features.modalities:
            raise ConfigError("LLaRA needs the seq item features (SASRec embeddings): set modalities: [seq].")
        self.register_buffer("feature_seq", features.tensors["seq"].float(), persistent=False)
        self.projector = item_projector(features.dims["seq"], hidden).to(self.feature_seq.device)

    def slot_vectors(self, item_ids):
        return self.projector(self.feature_seq[item_ids.to(self.feature_seq.device)])
