r"""Speeder
################################################

Reference:
    "A Remarkably Efficient Paradigm to Multimodal Large Language Models for Sequential
    Recommendation" (Speeder), arXiv 2511.05885.

Pipeline (data flows one way): frozen item features (text / vision / seq, section 2.3) ->
MRC/MoME fused vector e_mm per item (eqs 1-10, 18) -> hybrid prompt with one placeholder per
history item, candidate and PPT item, history placeholders + PPL vector p_i (eqs 15-17) ->
causal LLM with LoRA -> logits of the answer token only -> the candidate's index (t_out = 1).
Training mixes the recommendation task with the positional proxy task PPT (eqs 13-14); the
loss is cross-entropy on the answer token (eq 19). ``ppt_layout: shared`` asks the PPT question
after the recommendation answer in the same row (the history is encoded once; the causal mask
keeps the recommendation answer blind to it), ``separate`` in a prompt of its own (the paper's
form). ``prompt_packing`` runs a batch's prompts as one padding-free row
(:mod:`~recbole_speeder.llm.packing`). The three MPO stages (section 2.5) are
run by :class:`~recbole_speeder.trainer.speeder_trainer.SpeederTrainer` through
:meth:`Speeder.set_stage`, after the table of :mod:`~recbole_speeder.model.layers.mpo`.
"""

import logging

import numpy as np
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateScores
from recbole_speeder.llm.answers import label_answer_loss, label_scores, pair_logits, parse_label_answer
from recbole_speeder.llm.decoding import generate_answers, head_logits, hidden_at
from recbole_speeder.model.abstract_llm import LLMSequentialRecommender
from recbole_speeder.model.layers.mpo import STAGE_MODALITIES, STAGE_PARTS
from recbole_speeder.model.layers.mrc import ITEM_VECTOR_NORMS, MRC, rescale_to_norm
from recbole_speeder.model.layers.spae import PositionPrompts, sample_ppt
from recbole_speeder.prompts.base import build_inputs_embeds
from recbole_speeder.prompts.hybrid import HybridPrompt

logger = logging.getLogger(__name__)

PPT_LAYOUTS = ("shared", "separate")


class Speeder(LLMSequentialRecommender):
    """Speeder: MRC-fused item vectors in a hybrid prompt, SPAE (PPL + PPT), one-token answers."""

    side_info = ("item_features",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        features = self.dataset_side_info(dataset, "item_features")
        if not features.modalities:
            raise ConfigError("Speeder needs item features (modalities: text / vision / seq); none were loaded.")
        self.feature_modalities = features.modalities
        for m in self.feature_modalities:
            self.register_buffer(f"feature_{m}", features.tensors[m].float(), persistent=False)
            self.register_buffer(f"mask_{m}", features.masks[m].bool(), persistent=False)
        self.item_vector_norm = config["item_vector_norm"]
        if self.item_vector_norm not in ITEM_VECTOR_NORMS:
            raise ConfigError(f"item_vector_norm: '{self.item_vector_norm}' is not one of "
                              f"{', '.join(ITEM_VECTOR_NORMS)}.")

        self.llm, self.tokenizer = self.load_llm(config)
        if self.item_vector_norm == "token":  # mean L2 norm of the token-embedding rows
            weight = self.llm.get_input_embeddings().weight.detach()
            self.register_buffer("token_norm", weight.float().norm(dim=1).mean(), persistent=False)
        hidden = self.llm.get_input_embeddings().embedding_dim
        self.mrc = MRC.from_config(config, features.dims, hidden)
        self.ppl = PositionPrompts(self.history_len, hidden, enabled=bool(config["use_ppl"]))
        self.prompt = HybridPrompt(
            self.tokenizer,
            prompt_template=config["prompt_template"],
            history_item_template=config["history_item_template"],
            candidate_item_template=config["candidate_item_template"],
            item_separator=config["item_separator"],
            ppt_template=config["ppt_template"],
            use_chat_template=config["use_chat_template"],
            candidate_labels=config["candidate_labels"],
            ppt_followup_template=config["ppt_followup_template"],
        )
        self.register_buffer("label_ids", self.prompt.label_token_ids(self.num_candidates), persistent=False)
        plugin_lr = config["plugin_learning_rate"]
        try:
            self.plugin_learning_rate = None if plugin_lr is None else float(plugin_lr)
        except (TypeError, ValueError):
            self.plugin_learning_rate = float("nan")
        if self.plugin_learning_rate is not None and not self.plugin_learning_rate > 0:
            raise ConfigError(f"plugin_learning_rate must be a positive number or ~ (got {plugin_lr!r}).")
        self.use_ppt = bool(config["use_ppt"])
        self.ppt_ratio = float(config["ppt_ratio"])
        self.ppt_layout = str(config["ppt_layout"])
        if self.ppt_layout not in PPT_LAYOUTS:
            raise ConfigError(f"ppt_layout must be one of {', '.join(PPT_LAYOUTS)} (got '{self.ppt_layout}').")
        self.prompt_packing = bool(config["prompt_packing"])
        self.eval_mode = config["eval_mode"]
        if self.eval_mode not in ("constrained", "generate"):
            raise ConfigError(f"eval_mode must be constrained or generate (got '{self.eval_mode}').")
        self.max_new_tokens = int(config["generation_max_new_tokens"])
        self.active_modalities = self.feature_modalities
        self._fused_cache = None
        self._ppt_counts = {"correct": 0, "total": 0, "skipped": 0}

    # -- MPO ------------------------------------------------------------------------------
    def stage_modalities(self, stage):
        return tuple(m for m in STAGE_MODALITIES[stage] if m in self.feature_modalities)

    def set_stage(self, stage):
        """Feed the stage's modalities and make exactly its parts (+ LoRA, PPL) trainable."""
        modalities = self.stage_modalities(stage)
        if not modalities:
            raise ConfigError(f"MPO stage {stage} has none of its modalities {STAGE_MODALITIES[stage]} in this run.")
        self.active_modalities = modalities
        self.mrc.set_trainable(STAGE_PARTS[stage])
        for name, p in self.llm.named_parameters():
            p.requires_grad_("lora_" in name)
        for p in self.ppl.parameters():
            p.requires_grad_(True)
        self._fused_cache = None

    def optimizer_groups(self):
        """LoRA at ``learning_rate``; MRC and PPL, which start from random weights, at
        ``plugin_learning_rate`` when it is set (not in the paper, which gives one rate)."""
        if self.plugin_learning_rate is None:
            return super().optimizer_groups()
        trainable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        lora = [p for n, p in trainable if n.startswith("llm.")]
        plugin = [p for n, p in trainable if not n.startswith("llm.")]
        return [{"params": lora}, {"params": plugin, "lr": self.plugin_learning_rate}]

    # -- item vectors ---------------------------------------------------------------------
    def fuse(self, item_ids):
        """e_mm of ``item_ids`` [N] through MRC with the active modalities (eq 10), rescaled
        to the mean token-embedding norm with ``item_vector_norm: token``."""
        features = {m: getattr(self, f"feature_{m}")[item_ids] for m in self.active_modalities}
        masks = {m: getattr(self, f"mask_{m}")[item_ids] for m in self.active_modalities}
        fused = self.mrc(features, masks, self.active_modalities)
        if self.item_vector_norm == "token":
            fused = rescale_to_norm(fused, self.token_norm)
        return fused

    def train(self, mode=True):
        self._fused_cache = None  # weights will change: cached vectors go stale
        return super().train(mode)

    def _slot_vectors(self, batch):
        """Item vector of every placeholder of a batch on the device: in training one MRC pass
        over the batch's distinct items (found on the host, :meth:`_on_device`); at inference
        one pass over all items, cached until the weights change."""
        if not self.training:
            if self._fused_cache is None:  # one batched pass over all items, reused at inference
                all_ids = torch.arange(self.n_items, device=self.label_ids.device)
                self._fused_cache = torch.cat([self.fuse(chunk) for chunk in all_ids.split(4096)])
            return self._fused_cache[batch.slot_item_ids()]
        extras = batch.extras or {}
        if "fuse_ids" in extras:
            return self.fuse(extras["fuse_ids"])[extras["fuse_inverse"]]
        unique, inverse = torch.unique(batch.slot_item_ids(), return_inverse=True)
        return self.fuse(unique)[inverse]

    # -- one decoder pass over a prompt batch ---------------------------------------------
    def _on_device(self, batch, pack):
        """A host batch, packed when ``pack``, with its distinct items (for :meth:`_slot_vectors`
        in training), on the model's device in one copy."""
        if pack:
            batch = batch.pack()
        if self.training:
            unique, inverse = np.unique(batch.slot_item_ids().numpy(), return_inverse=True)
            batch.extras = dict(batch.extras or {}, fuse_ids=torch.from_numpy(unique),
                                fuse_inverse=torch.from_numpy(inverse.reshape(-1)))
        return batch.to(self.label_ids.device)

    def _embeds(self, batch):
        return build_inputs_embeds(self.llm, batch, self._slot_vectors(batch), self.ppl)

    def _answer_hidden(self, batch, embeds, names=("rec",)):
        """name -> last hidden states [K, H] at the batch's answers of that name, one decoder pass."""
        pairs = [batch.answer(name) for name in names]
        rows = torch.cat([r for r, _ in pairs]) if len(pairs) > 1 else pairs[0][0]
        positions = torch.cat([p for _, p in pairs]) if len(pairs) > 1 else pairs[0][1]
        hidden = hidden_at(self.llm, embeds, rows, positions, attention_mask=batch.decoder_mask(),
                           packing=batch.packing)
        return dict(zip(names, hidden.split([r.shape[0] for r, _ in pairs])))

    def _logits(self, batch):
        """(label logits [B, V] at each row's recommendation answer, device batch, inputs_embeds).
        Generation reads the padded batch, so only constrained scoring packs."""
        batch = self._on_device(batch, self.prompt_packing and self.eval_mode == "constrained")
        embeds = self._embeds(batch)
        return head_logits(self.llm, self._answer_hidden(batch, embeds)["rec"]), batch, embeds

    # -- training -------------------------------------------------------------------------
    def _ppt_prompts(self, histories):
        """PPT questions for about ``ppt_ratio`` of the sequences (eqs 13-14): (rows, a/b/c
        items [P, 3], is_yes [P]) on the host, rows ascending; None when there is none."""
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
        rows, abc, labels = [], [], []
        for i, history in enumerate(histories):
            if rng.random() >= self.ppt_ratio:
                continue
            items = np.asarray(history, dtype=np.int64)
            sample = sample_ppt(items, rng)
            if sample is None:
                self._ppt_counts["skipped"] += 1
                continue
            rows.append(i)
            abc.append([items[sample.a_pos], items[sample.b_pos], items[sample.c_pos]])
            labels.append(sample.label)
        if not rows:
            return None
        return rows, np.asarray(abc, dtype=np.int64), np.asarray(labels, dtype=bool)

    def _training_batch(self, histories, candidates, target_pos):
        """The host batch of one training step: the recommendation prompts and, with PPT, the
        questions of :meth:`_ppt_prompts` in the ``ppt_layout``; extras ``rec_target`` (label
        token per row), ``rec_target_pos`` (the target's candidate column per row) and
        ``ppt_target`` (yes / no token per question, answer ``"ppt"`` order)."""
        extras = {"rec_target": self.prompt.label_token_ids(self.num_candidates)[target_pos],
                  "rec_target_pos": target_pos}
        ppt = self._ppt_prompts(histories) if self.use_ppt and self.ppt_ratio > 0 else None
        if ppt is None:
            batch = self.prompt.build(histories, candidates)
            batch.extras = extras
            return batch
        rows, abc, is_yes = ppt
        ppt_target = torch.from_numpy(np.where(is_yes, self.prompt.yes_id, self.prompt.no_id))
        if self.ppt_layout == "shared":
            batch = self.prompt.build_shared(histories, candidates, target_pos, rows, abc)
        else:
            batch = self.prompt.build(histories, candidates).concat(
                self.prompt.build_ppt([histories[i] for i in rows], abc), self.prompt.pad_id)
        batch.extras = dict(extras, ppt_target=ppt_target)
        return batch

    def _with_ppt_loss(self, rec_loss, num_rec, hidden, target):
        """Eq 19 over the recommendation and PPT answers together: the mean cross-entropy of
        all ``num_rec + P`` answers (as one batch of answers would give); PPT accuracy counted
        on the device (read once per epoch by :meth:`valid_epoch_report`)."""
        logits = head_logits(self.llm, hidden)
        num_ppt = target.shape[0]
        with torch.no_grad():
            pair = pair_logits(logits, self.prompt.yes_id, self.prompt.no_id).argmax(dim=1)
            predicted = torch.where(pair == 0, self.prompt.yes_id, self.prompt.no_id)
            correct = (predicted == target).sum()
        self._ppt_counts["correct"] = self._ppt_counts["correct"] + correct
        self._ppt_counts["total"] += num_ppt
        return (rec_loss * num_rec + label_answer_loss(logits, target) * num_ppt) / (num_rec + num_ppt)

    def calculate_loss(self, interaction):
        """Eq 19 on the recommendation prompts, plus the PPT questions (eqs 13-14) of about
        ``ppt_ratio`` of the sequences: one forward pass over both, mean cross-entropy over
        all their answers. Prompts are built on the host and reach the device in one copy;
        nothing in the step waits for the device."""
        histories = self.recent_history(interaction)
        candidates, target_pos = self.training_candidates(interaction, device="cpu")
        batch = self._on_device(self._training_batch(histories, candidates, target_pos), self.prompt_packing)
        names = ("rec", "ppt") if "ppt_target" in batch.extras else ("rec",)
        hidden = self._answer_hidden(batch, self._embeds(batch), names)
        loss = label_answer_loss(head_logits(self.llm, hidden["rec"]), batch.extras["rec_target"])
        if "ppt" not in hidden:
            return loss
        return self._with_ppt_loss(loss, len(histories), hidden["ppt"], batch.extras["ppt_target"])

    def valid_epoch_report(self):
        """PPT accuracy and skipped sequences since the last report (the paper's Figure 5)."""
        counts, self._ppt_counts = self._ppt_counts, {"correct": 0, "total": 0, "skipped": 0}
        if not self.use_ppt:
            return {}
        acc = int(counts["correct"]) / counts["total"] if counts["total"] else 0.0
        return {"ppt_acc": round(acc, 4), "ppt_skipped": counts["skipped"]}

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def candidate_scores(self, interaction, candidates):
        histories = self.recent_history(interaction)
        logits, batch, embeds = self._logits(self.prompt.build(histories, candidates))
        if self.eval_mode == "constrained":
            scores = label_scores(logits, self.label_ids).float()
            return CandidateScores(scores, torch.ones(len(histories), dtype=torch.bool, device=scores.device), True)
        texts = generate_answers(self.llm, self.tokenizer, embeds, batch.attention_mask, self.max_new_tokens)
        labels = self.prompt.candidate_labels(self.num_candidates)
        chosen = [parse_label_answer(text, self.num_candidates, labels) for text in texts]
        scores = torch.zeros(len(chosen), self.num_candidates, device=candidates.device)
        for row, choice in enumerate(chosen):
            if choice is not None:
                scores[row, choice] = 1.0
        valid = torch.tensor([c is not None for c in chosen], device=candidates.device)
        return CandidateScores(scores, valid, False, answers=texts)
