"""What every LLM-driven sequential recommender of the plugin shares.

The backbone (``llm_path``, ``llm_dtype``, ``llm_tokenizer``) is loaded frozen and, for the
fine-tuned models, wrapped with LoRA adapters (``lora_*``; paper section 2.5) by
:meth:`LLMSequentialRecommender.load_llm`; those keys live in ``properties/llm.yaml``, which
every LLM model reads. A model lists the side information it reads from the dataset in
``side_info`` (:mod:`recbole_speeder.data.dataset`).

Most LLM recommenders choose among the candidates written in their prompt and cannot score a
whole catalog; they are trained and scored on candidate sets (paper, section 3.1):

- training: each sequence gets its true next item plus ``candidate_num - 1`` random items not
  in its history, in a random order drawn from torch's global generator (seeded by RecBole's
  ``init_seed``, so the same seed gives the same sets);
- evaluation: ``candidate_scores(interaction, candidates)`` on the stored sets of
  :mod:`recbole_speeder.data.candidates`, returning a
  :class:`~recbole_speeder.evaluation.candidate_eval.CandidateScores`.

A model that can score any item without it being in the prompt says so in
:meth:`LLMSequentialRecommender.ranks_catalog` and implements ``full_sort_predict`` / ``predict``;
its runs then also get RecBole's ranking evaluation (:mod:`recbole_speeder.evaluation.protocols`).

The last ``history_len`` items of the RecBole history are shown to the LLM.
"""

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_speeder.errors import ConfigError
from recbole_speeder.llm.backbone import apply_lora, check_llm_path, compile_decoder, load_backbone, mark_step_begin


def setting(config, key, minimum=None, kind=int):
    """``config[key]`` as ``kind``; a ConfigError names the key when it is not one or is below ``minimum``."""
    try:
        value = kind(config[key])
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a{'n integer' if kind is int else ' number'} (got {config[key]!r}).") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum} (got {value}).")
    return value


class LLMSequentialRecommender(SequentialRecommender):
    """Base of the LLM recommenders: backbone + LoRA, history cut, training candidates, no full ranking."""

    input_type = InputType.POINTWISE
    candidate_only = True  # scored on candidate sets only; no RecBole full-ranking metrics
    side_info = ()  # what the model reads from the dataset (names of data.dataset.SIDE_INFO)
    property_files = ("llm.yaml",)  # read by Config before properties/model/<Model>.yaml

    @classmethod
    def check_config(cls, config):
        """What Config checks before any data is read (beside the typed keys): the backbone's path."""
        check_llm_path(config["llm_path"])
        if config.get("llm_tokenizer"):
            check_llm_path(config["llm_tokenizer"], "llm_tokenizer")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.num_candidates = int(config["candidate_num"])
        self.history_len = int(config["history_len"] or self.max_seq_length)
        self.compile_mode = config["llm_compile"] or "none"  # torch.compile of the networks (llm_compile)
        self.prompt_length_multiple = setting(config, "prompt_length_multiple", minimum=1)
        if self.history_len < 1:
            raise ConfigError(f"history_len must be at least 1 (got {self.history_len}).")
        if self.n_items - 1 < self.num_candidates:
            raise ConfigError(
                f"candidate_num={self.num_candidates} needs at least that many items; the dataset has {self.n_items - 1}."
            )

    @classmethod
    def ranks_catalog(cls, config):
        """Whether the model scores any item under ``config`` (``full_sort_predict`` / ``predict``),
        so that RecBole's ranking evaluation (``eval_args`` mode) applies: not here."""
        return False

    @classmethod
    def why_no_ranking(cls, config):
        """Why the model cannot rank the catalog under ``config`` (for the refusal's message)."""
        return "it chooses among the candidates written in its prompt"

    @classmethod
    def side_info_for(cls, config):
        """The side information this model reads under ``config`` (``side_info`` by default)."""
        return cls.side_info

    def shaped(self, prompt):
        """``prompt`` (a prompt builder) padding its left-padded batches to a multiple of
        ``prompt_length_multiple`` tokens."""
        prompt.length_multiple = self.prompt_length_multiple
        return prompt

    def load_llm(self, config, lora=True):
        """(backbone, tokenizer): the LLM frozen, with trainable LoRA adapters when ``lora``, its
        decoder compiled with ``llm_compile``."""
        llm, tokenizer = load_backbone(config["llm_path"], dtype=config["llm_dtype"], device=config["device"],
                                       tokenizer=config["llm_tokenizer"])
        for p in llm.parameters():
            p.requires_grad_(False)
        if lora:
            llm = apply_lora(llm, r=config["lora_r"], alpha=config["lora_alpha"], dropout=config["lora_dropout"],
                             target_modules=config["lora_target_modules"])
        return compile_decoder(llm, self.compile_mode), tokenizer

    def begin_step(self):
        """Called by the trainer before each training step and by the evaluator before each
        batch: marks the step for CUDA graphs under ``llm_compile: reduce-overhead``
        (:func:`~recbole_speeder.llm.backbone.mark_step_begin`)."""
        mark_step_begin(self.compile_mode)

    def dataset_side_info(self, dataset, name):
        """Side information ``name`` of the dataset (one of this model's ``side_info``)."""
        return dataset.side_info(name, type(self).__name__)

    def optimizer_groups(self):
        """Trainable weights as optimizer parameter groups; one group at the trainer's
        ``learning_rate`` here (a model with parts of their own learning rate overrides it)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def recent_history(self, interaction):
        """The last ``history_len`` items of every sequence: list of int64 numpy arrays, oldest
        first (one copy of the batch's sequences to the host, where prompts are built; numpy
        slices, so that a row costs no tensor operator)."""
        return self.last_items(interaction[self.ITEM_SEQ].cpu().numpy(), interaction[self.ITEM_SEQ_LEN].tolist())

    def last_items(self, seq, lengths):
        """The last ``history_len`` items of each row of ``seq`` [B, L] (numpy) of length ``lengths``."""
        return [seq[i, max(0, n - self.history_len) : n] for i, n in enumerate(lengths)]

    def training_candidates(self, interaction, device=None):
        """(candidates [B, C], target_pos [B]) on ``device`` (default: the interaction's): the
        target at a random position among C-1 random items that are neither the target nor in
        the sequence's history (history items are allowed only when too few other items exist).

        Drawn for the whole batch at once: 4(C-1) random items per row, of which the first C-1
        that are allowed (not the target, not in the history, not drawn before in the row) are
        the negatives; a row left short (a small catalog) is drawn again item by item."""
        num = self.num_candidates
        targets = interaction[self.POS_ITEM_ID].cpu()
        histories = interaction[self.ITEM_SEQ].cpu()
        draws = torch.randint(1, self.n_items, (len(targets), 4 * max(1, num - 1)))
        allowed = (draws != targets[:, None]) & ~(draws[:, :, None] == histories[:, None, :]).any(-1)
        earlier = torch.ones(draws.shape[1], draws.shape[1], dtype=torch.bool).tril(-1)
        allowed &= ~((draws[:, :, None] == draws[:, None, :]) & earlier).any(-1)
        first = torch.argsort((~allowed).to(torch.int8), dim=1, stable=True)[:, : num - 1]
        negatives = torch.gather(draws, 1, first)
        for row in torch.nonzero(allowed.sum(1) < num - 1).flatten().tolist():
            negatives[row] = torch.tensor(self._negatives_one_by_one(int(targets[row]), histories[row].tolist()))
        positions = torch.randint(0, num, (len(targets),))
        at_target = torch.arange(num)[None, :] == positions[:, None]
        candidates = torch.empty(len(targets), num, dtype=torch.long)
        candidates[at_target] = targets
        candidates[~at_target] = negatives.reshape(-1)
        device = interaction[self.POS_ITEM_ID].device if device is None else device
        return candidates.to(device), positions.to(device)

    def _negatives_one_by_one(self, target, history):
        """C-1 allowed negatives of one row (see :meth:`training_candidates`), drawn until found."""
        num = self.num_candidates
        banned = {0, target} | set(history)
        if self.n_items - len(banned) < num - 1:
            banned = {0, target}
        negatives = []
        while len(negatives) < num - 1:
            for item in torch.randint(1, self.n_items, (2 * num,)).tolist():
                if item not in banned and len(negatives) < num - 1:
                    banned.add(item)
                    negatives.append(item)
        return negatives

    def calculate_loss(self, interaction):
        raise NotImplementedError

    def candidate_scores(self, interaction, candidates):
        raise NotImplementedError

    def predict(self, interaction):
        raise NotImplementedError(f"{type(self).__name__} scores candidate sets (candidate_scores), not single items.")

    def full_sort_predict(self, interaction):
        raise NotImplementedError(f"{type(self).__name__} scores candidate sets (candidate_scores), not all items.")

