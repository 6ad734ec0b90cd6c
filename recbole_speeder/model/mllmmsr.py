r"""MLLMMSR
################################################

Reference:
    Yuyang Ye et al. "Harnessing Multimodal Large Language Models for Multimodal Sequential
    Recommendation." arXiv 2408.09698, 2024 (AAAI 2025).

MLLM-MSR on the plugin's backbone, candidate sets and metrics, in three steps:

1. item summaries (section 3.2): each item image turned into words and joined with the
   title (:mod:`recbole_speeder.features.image_summary`; ``image_summarizer``), cached per item
   and attached to the dataset as its ``item_summaries`` side information;
2. recurrent user-preference summaries (section 3.3): the history cut into blocks of
   ``summary_block_size`` items, a running summary updated block by block by the *base*
   backbone (:mod:`recbole_speeder.model.layers.preference_summary`), cached per history prefix;
3. pointwise supervised fine-tuning with LoRA (section 3.4): the prompt holds the preference
   summary, the latest ``history_len`` titles and *one* candidate
   (:mod:`recbole_speeder.prompts.preference`); the answer is yes (the true next item) or
   no (``negatives_per_positive`` items from the training candidates); the loss is the
   cross-entropy over the two answer tokens (:mod:`recbole_speeder.llm.answers`).

Evaluation scores each of the shared candidates with p = p(yes) / (p(yes) + p(no)) and ranks
them (ValidRatio 1, like constrained decoding), one prompt per (sequence, candidate). Summaries
are generated on first need (training batches, or all sequences of a split before it is
evaluated, see :class:`~recbole_speeder.trainer.mllmmsr_trainer.MLLMMSRTrainer`); their time is
kept apart from training and inference time.
"""

import os

import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateScores
from recbole_speeder.features.cache import folder_digest
from recbole_speeder.llm.answers import yes_log_odds, yes_no_logits, yes_no_loss
from recbole_speeder.model.abstract_llm import LLMSequentialRecommender, setting
from recbole_speeder.model.layers.preference_summary import PreferenceSummarizer
from recbole_speeder.prompts.preference import PreferencePrompt


class MLLMMSR(LLMSequentialRecommender):
    """Item summaries + recurrent preference summaries + pointwise yes/no LoRA fine-tuning."""

    side_info = ("item_titles", "item_summaries")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.negatives = setting(config, "negatives_per_positive", minimum=1)
        if self.negatives > self.num_candidates - 1:
            raise ConfigError(f"negatives_per_positive={self.negatives} exceeds the candidate_num - 1 = "
                              f"{self.num_candidates - 1} negatives drawn per training sequence.")
        block_size = setting(config, "summary_block_size", minimum=1)
        self.summary_history_len = (self.max_seq_length if config["summary_history_len"] is None
                                    else setting(config, "summary_history_len", minimum=1))

        self.llm, self.tokenizer = self.load_llm(config)
        base = self.llm.get_base_model()
        # the backbone's files by content, not mtime: a cache carried to another machine, where the
        # same GGUF was converted again, stays valid
        backbone = {"name": str(config["llm_path"]),
                    "files": folder_digest(str(base.config.name_or_path)), "dtype": str(base.dtype)}
        self.prompt = self.shaped(PreferencePrompt(
            self.tokenizer, self.dataset_side_info(dataset, "item_titles"),
            self.dataset_side_info(dataset, "item_summaries"), prompt_template=config["prompt_template"],
            item_separator=config["item_separator"], use_chat_template=config["use_chat_template"],
            title_max_tokens=setting(config, "title_max_tokens", minimum=1),
            item_summary_max_tokens=setting(config, "item_summary_max_tokens", minimum=1),
            answer_yes=config["answer_yes"], answer_no=config["answer_no"],
        ))
        self.summarizer = PreferenceSummarizer(
            self.llm, self.tokenizer, self.prompt.summary_text, dataset.field2id_token[dataset.iid_field],
            os.path.join(config["data_path"], "features"), backbone, block_size=block_size,
            max_new_tokens=setting(config, "summary_max_new_tokens", minimum=1),
            template=config["summary_template"], use_chat_template=config["summary_use_chat_template"],
            item_separator=config["item_separator"], batch_size=setting(config, "summary_batch_size", minimum=1),
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
