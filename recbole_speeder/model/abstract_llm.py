"""What every LLM-driven sequential recommender of the plugin shares.

An LLM recommender cannot score thousands of items per sequence; it is trained and scored on
candidate sets (paper, section 3.1):

- training: each sequence gets its true next item plus ``candidate_num - 1`` random items not
  in its history, in a random order drawn from torch's global generator (seeded by RecBole's
  ``init_seed``, so the same seed gives the same sets);
- evaluation: ``candidate_scores(interaction, candidates)`` on the stored sets of
  :mod:`recbole_speeder.data.candidates`, returning a
  :class:`~recbole_speeder.trainer.candidate_eval.CandidateScores`.

The last ``history_len`` items of the RecBole history are shown to the LLM.
"""

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_speeder.errors import ConfigError


class LLMSequentialRecommender(SequentialRecommender):
    """Base of the LLM recommenders: history cut, training candidates, no full ranking."""

    input_type = InputType.POINTWISE
    candidate_only = True  # scored on candidate sets only; no RecBole full-ranking metrics

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.num_candidates = int(config["candidate_num"])
        self.history_len = int(config["history_len"] or self.max_seq_length)
        if self.history_len < 1:
            raise ConfigError(f"history_len must be at least 1 (got {self.history_len}).")
        if self.n_items - 1 < self.num_candidates:
            raise ConfigError(
                f"candidate_num={self.num_candidates} needs at least that many items; the dataset has {self.n_items - 1}."
            )

    def optimizer_groups(self):
        """Trainable weights as optimizer parameter groups; one group at the trainer's
        ``learning_rate`` here (a model with parts of their own learning rate overrides it)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def recent_history(self, interaction):
        """The last ``history_len`` items of every sequence: list of LongTensors, oldest first."""
        seq = interaction[self.ITEM_SEQ]
        lengths = interaction[self.ITEM_SEQ_LEN].tolist()
        return [seq[i, max(0, n - self.history_len) : n] for i, n in enumerate(lengths)]

    def training_candidates(self, interaction):
        """(candidates [B, C], target_pos [B]): the target at a random position among C-1
        random items that are neither the target nor in the sequence's history (history
        items are allowed only when too few other items exist)."""
        num = self.num_candidates
        rows, positions = [], []
        for target, history in zip(interaction[self.POS_ITEM_ID].tolist(), interaction[self.ITEM_SEQ].tolist()):
            banned = {0, target} | set(history)
            if self.n_items - len(banned) < num - 1:
                banned = {0, target}
            negatives = []
            while len(negatives) < num - 1:
                for item in torch.randint(1, self.n_items, (2 * num,)).tolist():
                    if item not in banned and len(negatives) < num - 1:
                        banned.add(item)
                        negatives.append(item)
            position = int(torch.randint(0, num, (1,)))
            negatives.insert(position, target)
            rows.append(negatives)
            positions.append(position)
        device = interaction[self.POS_ITEM_ID].device
        return torch.tensor(rows, device=device), torch.tensor(positions, device=device)

    def calculate_loss(self, interaction):
        raise NotImplementedError

    def candidate_scores(self, interaction, candidates):
        raise NotImplementedError

    def predict(self, interaction):
        raise NotImplementedError(f"{type(self).__name__} scores candidate sets (candidate_scores), not single items.")

    def full_sort_predict(self, interaction):
        raise NotImplementedError(f"{type(self).__name__} scores candidate sets (candidate_scores), not all items.")

