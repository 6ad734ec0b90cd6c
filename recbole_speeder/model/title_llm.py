"""What the title-answering LLM baselines share (TALLRec, LLaRA, zero-shot LLM).

Same backbone, LoRA, candidate sets and protocol as Speeder
(:class:`~recbole_speeder.model.abstract_llm.LLMSequentialRecommender`); what differs is the
prompt (item titles, :mod:`~recbole_speeder.prompts.title`) and the answer: the chosen
candidate's title (:mod:`~recbole_speeder.llm.answers`).

- training: next-token cross-entropy on the answer title + end of sequence (teacher
  forcing, LM head on the answer positions only);
- ``eval_mode: generate`` (default, the baselines' papers): greedy decoding of at most
  ``generation_max_new_tokens`` tokens, matched against the candidate titles; an answer that
  names no candidate or several is invalid (ValidRatio < 1);
- ``eval_mode: constrained``: every candidate's title is scored by the sum or mean
  (``title_score``) of its tokens' log-probabilities; the candidates are ranked, ValidRatio 1.

Subclasses set ``fine_tuned`` (LoRA or none) and may override :meth:`hybrid_rows` /
:meth:`slot_vectors` to put item embeddings into the prompt (LLaRA).
"""

import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateScores
from recbole_speeder.llm.answers import match_title, title_answer_loss, title_scores
from recbole_speeder.llm.decoding import generate_answers
from recbole_speeder.model.abstract_llm import LLMSequentialRecommender
from recbole_speeder.prompts.base import build_inputs_embeds
from recbole_speeder.prompts.title import TitlePrompt


class TitleLLMRecommender(LLMSequentialRecommender):
    """Base of the LLM baselines whose answer is a candidate title (see the module doc)."""

    fine_tuned = True  # LoRA adapters on the backbone
    side_info = ("item_titles",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.llm, self.tokenizer = self.load_llm(config, lora=self.fine_tuned)
        self.prompt = self.shaped(TitlePrompt(
            self.tokenizer, self.dataset_side_info(dataset, "item_titles"), prompt_template=config["prompt_template"],
            item_separator=config["item_separator"], use_chat_template=config["use_chat_template"],
            title_max_tokens=config["title_max_tokens"],
        ))
        self.eval_mode = config["eval_mode"]
        if self.eval_mode not in ("constrained", "generate"):
            raise ConfigError(f"eval_mode must be generate or constrained (got '{self.eval_mode}').")
        self.title_score = config["title_score"]
        if self.title_score not in ("mean", "sum"):
            raise ConfigError(f"title_score must be mean or sum (got '{self.title_score}').")
        self.max_new_tokens = int(config["generation_max_new_tokens"])

    # -- hooks for hybrid prompts (LLaRA) -------------------------------------------------
    def hybrid_rows(self, size):
        """Which rows of a batch carry item-embedding placeholders: none for titles only."""
        return None

    def slot_vectors(self, item_ids):
        """[S, H] vectors of the placeholders' items (only called when there are some)."""
        raise NotImplementedError(f"{type(self).__name__} has no item-embedding placeholders.")

    def embed(self, batch):
        """inputs_embeds of a :class:`PromptBatch` (placeholders replaced by their vectors)."""
        batch = batch.to(self.llm.get_input_embeddings().weight.device)
        if bool(batch.slot_mask.any()):
            vectors = self.slot_vectors(batch.slot_item_ids())
        else:
            vectors = torch.zeros(0, self.llm.get_input_embeddings().embedding_dim, device=batch.input_ids.device)
        return build_inputs_embeds(self.llm, batch, vectors), batch

    # -- training -------------------------------------------------------------------------
    def calculate_loss(self, interaction):
        histories = self.recent_history(interaction)
        candidates, target_pos = self.training_candidates(interaction)
        targets = candidates.gather(1, target_pos[:, None]).squeeze(1).tolist()
        batch, labels = self.prompt.build(histories, candidates, self.hybrid_rows(len(histories)), answers=targets)
        embeds, batch = self.embed(batch)
        return title_answer_loss(self.llm, embeds, batch.attention_mask, labels.to(embeds.device))

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def candidate_scores(self, interaction, candidates):
        histories = self.recent_history(interaction)
        size, num = candidates.shape
        hybrid = self.hybrid_rows(size)
        if self.eval_mode == "constrained":
            rows = [h for h in histories for _ in range(num)]
            answers = candidates.reshape(-1).tolist()
            repeated = candidates.repeat_interleave(num, dim=0)
            flags = None if hybrid is None else [f for f in hybrid for _ in range(num)]
            batch, labels = self.prompt.build(rows, repeated, flags, answers=answers)
            embeds, batch = self.embed(batch)
            scores = title_scores(self.llm, embeds, batch.attention_mask, labels.to(embeds.device), num,
                                  self.title_score)
            return CandidateScores(scores.to(candidates.device),
                                   torch.ones(size, dtype=torch.bool, device=candidates.device), True)
        batch, _ = self.prompt.build(histories, candidates, hybrid)
        embeds, batch = self.embed(batch)
        texts = generate_answers(self.llm, self.tokenizer, embeds, batch.attention_mask, self.max_new_tokens)
        scores = torch.zeros(size, num, device=candidates.device)
        valid = torch.zeros(size, dtype=torch.bool, device=candidates.device)
        for row, (text, items) in enumerate(zip(texts, candidates.tolist())):
            choice = match_title(text, [self.prompt.title_text(i) for i in items])
            if choice is not None:
                scores[row, choice] = 1.0
                valid[row] = True
        return CandidateScores(scores, valid, False, answers=texts)
