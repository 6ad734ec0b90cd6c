r"""MLLMMSR
################################################

Reference:
    Yuyang Ye et al. "Harnessing Multimodal Large Language Models for Multimodal Sequential
    Recommendation." arXiv 2408.09698, 2024 (AAAI 2025).

MLLM-MSR on the plugin's backbone, candidate sets and metrics, in three steps:

1. item summaries (section 3.2): each item image turned into words and joined with the
   title (:mod:`recbole_speeder.features.image_summary`; ``image_summarizer``), cached per item;
2. recurrent user-preference summaries (section 3.3): the history cut into blocks of
   ``summary_block_size`` items, a running summary updated block by block by the *base*
   backbone (:mod:`recbole_speeder.model.preference_summary`), cached per history prefix;
3. pointwise supervised fine-tuning with LoRA (section 3.4): the prompt holds the preference
   summary, the latest ``history_len`` titles and *one* candidate
   (:mod:`recbole_speeder.model.preference_prompt`); the answer is yes (the true next item) or
   no (``negatives_per_positive`` items from the training candidates); the loss is the
   cross-entropy over the two answer tokens (:mod:`recbole_speeder.model.yes_no_answer`).

Evaluation scores each of the shared candidates with p = p(yes) / (p(yes) + p(no)) and ranks
them (ValidRatio 1, like constrained decoding), one prompt per (sequence, candidate). Summaries
are generated on first need (training batches, or all sequences of a split before it is
evaluated, see :class:`~recbole_speeder.trainer.mllmmsr_trainer.MLLMMSRTrainer`); their time is
kept apart from training and inference time.
"""

import os

import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.features.image_summary import item_summaries
from recbole_speeder.features.text import folder_signature
from recbole_speeder.model.abstract_llm import LLMSequentialRecommender
from recbole_speeder.model.backbone import apply_lora, load_backbone
from recbole_speeder.model.preference_prompt import DEFAULT_PREFERENCE_PROMPT, PreferencePrompt
from recbole_speeder.model.preference_summary import PreferenceSummarizer
from recbole_speeder.model.title_prompt import item_titles
from recbole_speeder.model.yes_no_answer import yes_log_odds, yes_no_logits, yes_no_loss
from recbole_speeder.trainer.candidate_eval import CandidateScores


def _setting(config, key, default, minimum=None, kind=int):
    """``config[key]`` as ``kind`` (``default`` when unset), ConfigError when invalid."""
    value = config[key]
    if value is None:
        value = default
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a{'n integer' if kind is int else ' number'} (got {config[key]!r}).") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum} (got {value}).")
    return value


class MLLMMSR(LLMSequentialRecommender):
    """Item summaries + recurrent preference summaries + pointwise yes/no LoRA fine-tuning."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.negatives = _setting(config, "negatives_per_positive", 1, minimum=1)
        if self.negatives > self.num_candidates - 1:
            raise ConfigError(f"negatives_per_positive={self.negatives} exceeds the candidate_num - 1 = "
                              f"{self.num_candidates - 1} negatives drawn per training sequence.")
        block_size = _setting(config, "summary_block_size", 5, minimum=1)
        self.summary_history_len = _setting(config, "summary_history_len", self.max_seq_length, minimum=1)

        llm, tokenizer = load_backbone(config["llm_path"], dtype=config["llm_dtype"], device=config["device"])
        for p in llm.parameters():
            p.requires_grad_(False)
        backbone = {"name": str(config["llm_path"] or "default"), "loaded_from": str(llm.config.name_or_path),
                    "files": folder_signature(str(llm.config.name_or_path)), "dtype": str(llm.dtype)}
        self.llm = apply_lora(llm, r=config["lora_r"], alpha=config["lora_alpha"], dropout=config["lora_dropout"],
                              target_modules=config["lora_target_modules"])
        self.tokenizer = tokenizer

        titles = item_titles(config, dataset)
        summaries, self.items_with_image_words = item_summaries(config, dataset, titles)
        separator = "; " if config["item_separator"] is None else config["item_separator"]
        self.prompt = PreferencePrompt(
            tokenizer, titles, summaries, prompt_template=config["prompt_template"] or DEFAULT_PREFERENCE_PROMPT,
            item_separator=separator, use_chat_template=config["use_chat_template"],
            title_max_tokens=_setting(config, "title_max_tokens", 24, minimum=1),
            item_summary_max_tokens=_setting(config, "item_summary_max_tokens", 48, minimum=1),
            answer_yes=" Yes" if config["answer_yes"] is None else config["answer_yes"],
            answer_no=" No" if config["answer_no"] is None else config["answer_no"],
        )
        self.summarizer = PreferenceSummarizer(
            self.llm, tokenizer, self.prompt.summary_text, dataset.field2id_token[dataset.iid_field],
            os.path.join(config["data_path"], "features"), backbone, block_size=block_size,
            max_new_tokens=_setting(config, "summary_max_new_tokens", 48, minimum=1),
            template=config["summary_template"],
            use_chat_template=True if config["summary_use_chat_template"] is None else config["summary_use_chat_template"],
            item_separator=separator, batch_size=_setting(config, "summary_batch_size", 32, minimum=1),
        )

    # -- inputs ---------------------------------------------------------------------------
    def summary_windows(self, interaction):
        """The items each preference summary covers: the last ``summary_history_len``."""
        seq = interaction[self.ITEM_SEQ]
        lengths = interaction[self.ITEM_SEQ_LEN].tolist()
        return [seq[i, max(0, n - self.summary_history_len):n].tolist() for i, n in enumerate(lengths)]

    def preference_summaries(self, interaction):
        """Preference summary text of every sequence of the batch (cached, see the module doc)."""
        return self.summarizer.summarize(self.summary_windows(interaction))

    def _yes_no(self, summaries, histories, candidates):
        batch = self.prompt.build(summaries, histories, candidates)
        batch = batch.to(self.llm.get_input_embeddings().weight.device)
        return yes_no_logits(self.llm, batch.input_ids, batch.attention_mask, self.prompt.yes_id, self.prompt.no_id)

    # -- training -------------------------------------------------------------------------
    def calculate_loss(self, interaction):
        """Yes for the true next item, no for ``negatives_per_positive`` training negatives."""
        histories = self.recent_history(interaction)
        summaries = self.preference_summaries(interaction)
        candidates, target_pos = self.training_candidates(interaction)
        rows, is_yes = [], []
        for b, (items, pos) in enumerate(zip(candidates.tolist(), target_pos.tolist())):
            negatives = [item for j, item in enumerate(items) if j != pos][: self.negatives]
            for item, yes in [(items[pos], True)] + [(n, False) for n in negatives]:
                rows.append((summaries[b], histories[b], item))
                is_yes.append(yes)
        pair = self._yes_no(*zip(*rows))
        return yes_no_loss(pair, torch.tensor(is_yes, device=pair.device))

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def candidate_scores(self, interaction, candidates):
        """Candidates ranked by p = p(yes) / (p(yes) + p(no)); the scores are its log-odds
        (same order, no ties from p rounding to 1.0 in float32)."""
        histories = self.recent_history(interaction)
        summaries = self.preference_summaries(interaction)
        size, num = candidates.shape
        items = candidates.reshape(-1).tolist()
        pair = self._yes_no([s for s in summaries for _ in range(num)],
                            [h for h in histories for _ in range(num)], items)
        scores = yes_log_odds(pair).view(size, num).to(candidates.device)
        return CandidateScores(scores, torch.ones(size, dtype=torch.bool, device=candidates.device), True)
