r"""Speeder
################################################

Reference:
    "A Remarkably Efficient Paradigm to Multimodal Large Language Models for Sequential
    Recommendation" (Speeder), arXiv 2511.05885.

Pipeline (data flows one way): frozen item features (text / vision / seq, section 2.3) ->
MRC/MoME fused vector e_mm per item (eqs 1-10, 18) -> hybrid prompt with one placeholder per
history item, candidate and PPT item, history placeholders + PPL vector p_i (eqs 15-17) ->
causal LLM with LoRA -> the answer, read at the last position:

- ``answer_head: index`` (the paper, Fig. 3): the logits of the candidate labels, one token
  (t_out = 1); the loss is cross-entropy on the answer token (eq 19);
- ``answer_head: score`` (not in the paper): a hidden state scored against each candidate's own
  fused vector (:mod:`~recbole_speeder.model.layers.candidate_head`), read at the last history
  item's placeholder (``score_readout: last_item``, the default), at the answer position
  (``answer``) or at both; cross-entropy over every item (``score_loss: catalog``, the default) or
  over the training candidates (``candidates``); no label has to be bound to its item.
  Read at the last history item, the prompt holds no candidate, so the same hidden state scores
  any item: ``full_sort_predict`` ranks the whole catalog and ``predict`` any (sequence, item)
  pairs, for RecBole's ranking evaluation (``eval_args`` mode ``full`` / ``uniN`` / ``popN``).

Training mixes the recommendation task with the positional proxy task PPT (eqs 13-14) and,
in the stages ``reconstruction_stages`` (stage 1 by default, as section 2.5 asks), the
reconstruction task: one item vector in, its title out
(:mod:`~recbole_speeder.prompts.reconstruction`). The three MPO stages (section 2.5) are run
by :class:`~recbole_speeder.trainer.speeder_trainer.SpeederTrainer` through
:meth:`Speeder.set_stage`, after the table of :mod:`~recbole_speeder.model.layers.mpo`.

``ppt_layout: shared`` asks the PPT question after the recommendation answer in the same row
(the history is encoded once; the causal mask keeps the recommendation answer blind to it),
``separate`` in a prompt of its own (the paper's form). ``ppt_question`` picks eq 14's distance
question, the order question (does a come before b?) or a curriculum from the order question to
the distance one over the run's training steps (``ppt_curriculum_end``); ``ppt_weight`` weighs
the PPT loss (~: the mean over all answers, as eq 19 over one batch of answers), ``ppt_stages``
names the MPO stages that ask PPT, and ``ppt_ratio`` above 1 asks more than one question per
sequence. Every validation reports each loss term's mean over the steps since the last one
(``loss_rec``, ``loss_ppt``, ``loss_distill`` x its weight, ``loss_recon`` x its weight).
``prompt_packing`` runs a batch's prompts as one padding-free row (:mod:`~recbole_speeder.llm.packing`).
"""

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateScores
from recbole_speeder.llm.answers import (answer_token_logprobs, label_answer_loss, label_scores, pair_logits,
                                         parse_label_answer)
from recbole_speeder.llm.backbone import compile_module
from recbole_speeder.llm.decoding import generate_answers, head_logits, hidden_at
from recbole_speeder.model.abstract_llm import LLMSequentialRecommender, setting
from recbole_speeder.model.layers.candidate_head import CandidateHead
from recbole_speeder.model.layers.distillation import SequenceDistillation
from recbole_speeder.model.layers.mpo import STAGE_MODALITIES, STAGE_PARTS, stage_plan
from recbole_speeder.model.layers.mrc import MRC, rescale_to_norm
from recbole_speeder.model.layers.spae import PositionPrompts, ppt_answer, sample_ppt
from recbole_speeder.prompts.base import build_inputs_embeds, to_device
from recbole_speeder.prompts.hybrid import HybridPrompt, shared_question_order
from recbole_speeder.prompts.reconstruction import ReconstructionPrompt

logger = logging.getLogger(__name__)


def distills(config):
    """Whether the run distills SASRec into the LLM (``distill_weight`` > 0; a malformed value is
    refused when the model reads it)."""
    try:
        return float(config["distill_weight"] or 0) > 0
    except (TypeError, ValueError):
        return False


def ppt_stages(config):
    """The MPO stages that ask PPT questions (``ppt_stages``), checked."""
    stages = tuple(int(s) for s in config["ppt_stages"] or ())
    if any(s not in STAGE_PARTS for s in stages):
        raise ConfigError(f"ppt_stages must list stages of 1, 2, 3 (got {list(stages)}).")
    return stages


def ppt_weights(config):
    """``ppt_weight`` as None (the mean over all answers) or the weight of MPO stages 1, 2, 3."""
    weight = config["ppt_weight"]
    if weight is None:
        return None
    weights = list(weight) if isinstance(weight, (list, tuple)) else [weight] * len(STAGE_PARTS)
    try:
        weights = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        weights = ()
    if len(weights) != len(STAGE_PARTS) or any(not w >= 0 for w in weights):
        raise ConfigError(f"ppt_weight must be ~, a number >= 0 or a list of {len(STAGE_PARTS)} such numbers "
                          f"(the weights of stages 1, 2, 3); got {weight!r}.")
    return weights


class Speeder(LLMSequentialRecommender):
    """Speeder: MRC-fused item vectors in a hybrid prompt, SPAE (PPL + PPT), one-token answers."""

    side_info = ("item_features",)

    @classmethod
    def side_info_for(cls, config):
        """The item titles too when the reconstruction task trains in some stage; the frozen
        SASRec too when it is distilled (``distill_weight`` > 0)."""
        return (cls.side_info + (("item_titles",) if config["reconstruction_stages"] else ())
                + (("sequence_teacher",) if distills(config) else ()))

    @classmethod
    def check_config(cls, config):
        """What Config checks before any data is read: the backbone's path, the MPO plan."""
        super().check_config(config)
        stage_plan(config["mpo_stages"], config["stage_epochs"])
        if config["answer_head"] == "score" and config["eval_mode"] == "generate":
            raise ConfigError("eval_mode: generate reads a generated label; answer_head: score ranks the "
                              "candidates and needs eval_mode: constrained.")
        if distills(config) and not int(config["seq_encoder_epochs"] or 0) > 0:
            raise ConfigError("distill_weight > 0 distills the SASRec of the seq features, which "
                              f"seq_encoder_epochs: {config['seq_encoder_epochs']} leaves untrained: train it "
                              "(seq_encoder_epochs >= 1) or set distill_weight: 0.")
        ppt_stages(config)
        ppt_weights(config)
        if not 0 < float(config["ppt_curriculum_end"]) <= 1:
            raise ConfigError(f"ppt_curriculum_end is a share of the run's training steps, in (0, 1] "
                              f"(got {config['ppt_curriculum_end']}).")

    @classmethod
    def ranks_catalog(cls, config):
        """The scoring head read at the last history item: its prompt ends with the history (no
        candidate in view), so every item can be scored from one hidden state."""
        return config["answer_head"] == "score" and str(config["score_readout"]) == "last_item"

    @classmethod
    def why_no_ranking(cls, config):
        if config["answer_head"] != "score":
            return ("answer_head: index names one of the candidates in its prompt; answer_head: score with "
                    "score_readout: last_item ranks every item")
        return (f"score_readout: {config['score_readout']} reads a prompt that lists the candidates; "
                "score_readout: last_item ranks every item")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        features = self.dataset_side_info(dataset, "item_features")
        if not features.modalities:
            raise ConfigError("Speeder needs item features (modalities: text / vision / seq); none were loaded.")
        self.feature_modalities = features.modalities
        for m in self.feature_modalities:
            self.register_buffer(f"feature_{m}", features.tensors[m].float(), persistent=False)
            self.register_buffer(f"mask_{m}", features.masks[m].bool(), persistent=False)
        # choices (item_vector_norm, answer_head, score_loss, ppt_layout, eval_mode) are checked
        # by Config against the properties' annotations, before any data is read
        self.item_vector_norm = config["item_vector_norm"]
        self.answer_head = config["answer_head"]
        self.score_loss = config["score_loss"]
        self.score_readout = str(config["score_readout"])
        # a readout at the last history item sees nothing after it (causal attention): the
        # recommendation prompts end there (a PPT row of ppt_layout shared asks its question there)
        self.history_only = self.answer_head == "score" and self.score_readout == "last_item"

        self.llm, self.tokenizer = self.load_llm(config)
        if self.item_vector_norm == "token":  # mean L2 norm of the token-embedding rows
            weight = self.llm.get_input_embeddings().weight.detach()
            self.register_buffer("token_norm", weight.float().norm(dim=1).mean(), persistent=False)
        hidden = self.llm.get_input_embeddings().embedding_dim
        self.mrc = MRC.from_config(config, features.dims, hidden)
        self.ppl = PositionPrompts(self.history_len, hidden, enabled=bool(config["use_ppl"]))
        if self.answer_head == "score":
            self.head = CandidateHead(hidden, readouts=2 if self.score_readout == "both" else 1)
        self.distill_weight = setting(config, "distill_weight", minimum=0.0, kind=float)
        if self.distill_weight > 0:
            teacher = self.dataset_side_info(dataset, "sequence_teacher")
            # frozen and kept out of the module tree: not trained, not in checkpoints
            self.__dict__["sequence_teacher"] = teacher
            self.distill = SequenceDistillation(hidden, int(teacher.hidden_size))
        # llm_compile also compiles the other networks of every training step (their operators
        # outnumber a compiled decoder's at a small backbone's shape, docs/benchmarks.md)
        for module in self._step_networks():
            compile_module(module, self.compile_mode, device=config["device"])
        self.prompt = self.shaped(HybridPrompt(
            self.tokenizer,
            prompt_template=config["prompt_template"],
            history_item_template=config["history_item_template"],
            candidate_item_template=config["candidate_item_template"],
            item_separator=config["item_separator"],
            ppt_template=config["ppt_template"],
            use_chat_template=config["use_chat_template"],
            candidate_labels=config["candidate_labels"],
            ppt_followup_template=config["ppt_followup_template"],
            ppt_order_template=config["ppt_order_template"],
            ppt_order_followup_template=config["ppt_order_followup_template"],
        ))
        self.register_buffer("label_ids", self.prompt.label_token_ids(self.num_candidates), persistent=False)
        plugin_lr = config["plugin_learning_rate"]
        try:
            self.plugin_learning_rate = None if plugin_lr is None else float(plugin_lr)
        except (TypeError, ValueError):
            self.plugin_learning_rate = float("nan")
        if self.plugin_learning_rate is not None and not self.plugin_learning_rate > 0:
            raise ConfigError(f"plugin_learning_rate must be a positive number or ~ (got {plugin_lr!r}).")
        self.use_ppt = bool(config["use_ppt"])
        self.ppt_ratio = setting(config, "ppt_ratio", minimum=0.0, kind=float)
        self.ppt_layout = str(config["ppt_layout"])
        self.ppt_question_positions = bool(config["ppt_question_positions"])
        self.ppt_question = str(config["ppt_question"])  # a choice, checked by Config
        self.ppt_curriculum_end = float(config["ppt_curriculum_end"])
        self.ppt_stages = ppt_stages(config)
        self.ppt_weights = ppt_weights(config)
        self.training_progress = 0.0  # share of the run's training steps done (set by the trainer)
        self.prompt_packing = bool(config["prompt_packing"])
        self.eval_mode = config["eval_mode"]
        self.max_new_tokens = int(config["generation_max_new_tokens"])
        self._init_reconstruction(config, dataset)
        self.stage = None
        self.active_modalities = self.feature_modalities
        self._fused_cache = None
        self._ppt_counts = self._new_ppt_counts()
        self._loss_sums, self._loss_steps = {}, {}  # loss term -> sum on the device, steps (valid_epoch_report)

    @staticmethod
    def _new_ppt_counts():
        return {"correct": 0, "total": 0, "skipped": 0, "correct_order": 0, "total_order": 0}

    def _init_reconstruction(self, config, dataset):
        """The reconstruction task of MPO stage 1 (section 2.5): settings and prompts."""
        self.reconstruction_stages = tuple(int(s) for s in config["reconstruction_stages"] or ())
        if any(s not in STAGE_PARTS for s in self.reconstruction_stages):
            raise ConfigError(f"reconstruction_stages must list stages of 1, 2, 3 (got {list(self.reconstruction_stages)}).")
        self.reconstruction = None
        if not self.reconstruction_stages:
            return
        self.reconstruction_ratio = setting(config, "reconstruction_ratio", minimum=0.0, kind=float)
        self.reconstruction_weight = setting(config, "reconstruction_weight", minimum=0.0, kind=float)
        self.reconstruction = self.shaped(ReconstructionPrompt(
            self.tokenizer, self.dataset_side_info(dataset, "item_titles"), template=config["reconstruction_template"],
            use_chat_template=config["use_chat_template"],
            title_max_tokens=setting(config, "title_max_tokens", minimum=1),
        ))
        titled = np.flatnonzero([bool(str(t).strip()) for t in self.reconstruction.titles])
        titled = titled[titled > 0]
        count = min(len(titled), setting(config, "reconstruction_eval_items", minimum=0))
        rng = np.random.default_rng(int(config["candidate_seed"]))  # the same items in every run
        self.reconstruction_eval_items = torch.as_tensor(np.sort(rng.choice(titled, count, replace=False)))

    # -- MPO ------------------------------------------------------------------------------
    def stage_modalities(self, stage):
        return tuple(m for m in STAGE_MODALITIES[stage] if m in self.feature_modalities)

    def set_stage(self, stage):
        """Feed the stage's modalities and make exactly its parts (+ LoRA, PPL, the scoring
        head) trainable."""
        modalities = self.stage_modalities(stage)
        if not modalities:
            raise ConfigError(f"MPO stage {stage} has none of its modalities {STAGE_MODALITIES[stage]} in this run.")
        self.stage = stage
        self.active_modalities = modalities
        self.mrc.set_trainable(STAGE_PARTS[stage])
        for name, p in self.llm.named_parameters():
            p.requires_grad_("lora_" in name)
        for module in (self.ppl, getattr(self, "head", None), getattr(self, "distill", None)):
            for p in module.parameters() if module is not None else ():
                p.requires_grad_(True)
        self._fused_cache = None

    def _step_networks(self):
        """The networks besides the decoder that run in a training step: MRC, the scoring head,
        the SASRec teacher and the distillation projection (those that are built)."""
        networks = [self.mrc] + ([self.head] if self.answer_head == "score" else [])
        return networks + ([self.sequence_teacher, self.distill] if self.distill_weight > 0 else [])

    def reconstructs(self):
        """Whether the reconstruction task trains in the current stage."""
        return self.reconstruction is not None and self.stage in self.reconstruction_stages

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

    def _all_item_vectors(self):
        """e_mm of every item [n_items, H] (row i = item id i); cached at inference."""
        device = self.label_ids.device
        if self.training:
            return self.fuse(torch.arange(self.n_items, device=device))
        if self._fused_cache is None:  # one batched pass over all items, reused at inference
            all_ids = torch.arange(self.n_items, device=device)
            self._fused_cache = torch.cat([self.fuse(chunk) for chunk in all_ids.split(4096)])
        return self._fused_cache

    def _item_vectors(self, batch, catalog=False):
        """(vectors of the batch's placeholders [S, H], vectors of the items the scoring head
        scores or None): the candidates' [B, C, H] (extras ``score_ids``), or with ``catalog``
        (a recommendation batch under ``score_loss: catalog``) every item's [n_items, H] in
        training. In training one MRC pass over the batch's distinct items (found on the host,
        :meth:`_on_device`), or over every item for the catalog loss; at inference one pass over
        all items, cached until the weights change."""
        extras = batch.extras or {}
        scored = extras.get("score_ids")
        if not self.training:
            table = self._all_item_vectors()
            return table[batch.slot_item_ids()], (None if scored is None else table[scored])
        if catalog:
            table = self._all_item_vectors()  # one MRC pass serves the prompt and the scores
            return table[batch.slot_item_ids()], table
        if "fuse_ids" not in extras:  # a batch that did not come through _on_device
            unique, inverse = torch.unique(batch.slot_item_ids(), return_inverse=True)
            return self.fuse(unique)[inverse], None
        fused = self.fuse(extras["fuse_ids"])
        vectors = fused[extras["fuse_inverse"]]
        if scored is None:
            return vectors, None
        return vectors, fused[extras["score_inverse"]].view(*scored.shape, -1)

    # -- one decoder pass over a prompt batch ---------------------------------------------
    def _on_device(self, batch, pack):
        """A host batch, packed when ``pack``, with its distinct items (for :meth:`_item_vectors`
        in training: the placeholders' and the scored candidates'), on the model's device in one copy."""
        if pack:
            batch = batch.pack()
        if self.training:
            slot_ids = batch.slot_item_ids().numpy()
            scored = (batch.extras or {}).get("score_ids")
            ids = slot_ids if scored is None else np.concatenate([slot_ids, scored.numpy().reshape(-1)])
            unique, inverse = np.unique(ids, return_inverse=True)
            inverse = torch.from_numpy(inverse.reshape(-1))
            batch.extras = dict(batch.extras or {}, fuse_ids=torch.from_numpy(unique),
                                fuse_inverse=inverse[:len(slot_ids)], score_inverse=inverse[len(slot_ids):])
        return batch.to(self.label_ids.device)

    def _answer_hidden(self, batch, embeds, names=("rec",)):
        """name -> last hidden states [K, H] at the batch's answers of that name, one decoder pass."""
        pairs = [batch.answer(name) for name in names]
        rows = torch.cat([r for r, _ in pairs]) if len(pairs) > 1 else pairs[0][0]
        positions = torch.cat([p for _, p in pairs]) if len(pairs) > 1 else pairs[0][1]
        hidden = hidden_at(self.llm, embeds, rows, positions, attention_mask=batch.decoder_mask(),
                           packing=batch.packing)
        return dict(zip(names, hidden.split([r.shape[0] for r, _ in pairs])))

    def _readout_names(self):
        """The answers the scoring head reads (``score_readout``), in the head's order."""
        return {"answer": ("rec",), "last_item": ("last_item",), "both": ("rec", "last_item")}[self.score_readout]

    def _scores(self, hidden, scored):
        """The scoring head's scores from the hidden states of its readouts."""
        first, *rest = (hidden[name] for name in self._readout_names())
        return self.head(first, scored, *rest)

    def _forward(self, batch, names=("rec",)):
        """(name -> answer hidden states, vectors the scoring head scores, device batch,
        inputs_embeds) of a host batch (packed when ``prompt_packing``, except for generation).
        With the scoring head, the answers its readouts need are added to ``names``."""
        if self.answer_head == "score":
            names = tuple(names) + tuple(n for n in self._readout_names() if n not in names)
        pack = self.prompt_packing and (self.training or self.eval_mode == "constrained")
        batch = self._on_device(batch, pack)
        vectors, scored = self._item_vectors(
            batch, catalog=self.answer_head == "score" and self.score_loss == "catalog")
        embeds = build_inputs_embeds(self.llm, batch, vectors, self.ppl)
        return self._answer_hidden(batch, embeds, names), scored, batch, embeds

    # -- training -------------------------------------------------------------------------
    def set_training_progress(self, share):
        """The share of the run's training steps done before the coming step (the trainer sets it
        before every step): where ``ppt_question: curriculum`` stands."""
        self.training_progress = float(share)

    def order_question_share(self):
        """The probability that a PPT question is the order one: 0 for ``distance``, 1 for
        ``order``; with ``curriculum`` it falls linearly from 1 at the first training step to 0 at
        ``ppt_curriculum_end`` of the run's training steps, and stays 0 after it."""
        if self.ppt_question != "curriculum":
            return float(self.ppt_question == "order")
        return max(0.0, 1.0 - self.training_progress / self.ppt_curriculum_end)

    def asks_ppt(self):
        """Whether this step asks PPT questions: ``use_ppt``, ``ppt_ratio`` > 0 and the current
        MPO stage among ``ppt_stages`` (any stage before :meth:`set_stage`)."""
        return self.use_ppt and self.ppt_ratio > 0 and (self.stage is None or self.stage in self.ppt_stages)

    def _questions_of(self, rng):
        """How many PPT questions the next sequence gets: one with probability ``ppt_ratio`` up to
        1; above 1, its whole part and one more with the probability of its fraction."""
        if self.ppt_ratio <= 1:
            return int(rng.random() < self.ppt_ratio)
        whole = int(self.ppt_ratio)
        return whole + int(rng.random() < self.ppt_ratio - whole)

    def _ppt_prompts(self, histories):
        """PPT questions for about ``ppt_ratio`` of the sequences (eqs 13-14): (rows, a/b/c
        items [P, 3], is_yes [P], a/b/c 1-based history positions [P, 3], question per row) on
        the host, rows ascending (a row once per question); None when there is none."""
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
        rows, abc, labels, positions, questions = [], [], [], [], []
        order_share = self.order_question_share()
        for i, history in enumerate(histories):
            count = self._questions_of(rng)
            items = np.asarray(history, dtype=np.int64)
            for _ in range(count):
                sample = sample_ppt(items, rng)
                if sample is None:  # fewer than 3 distinct items: none of its questions
                    self._ppt_counts["skipped"] += count
                    break
                if 0 < order_share < 1:  # a draw only where both questions can be asked
                    question = "order" if rng.random() < order_share else "distance"
                else:
                    question = "order" if order_share >= 1 else "distance"
                rows.append(i)
                abc.append([items[sample.a_pos], items[sample.b_pos], items[sample.c_pos]])
                labels.append(ppt_answer(question, sample))
                positions.append([sample.a_pos + 1, sample.b_pos + 1, sample.c_pos + 1])
                questions.append(question)
        if not rows:
            return None
        return (rows, np.asarray(abc, dtype=np.int64), np.asarray(labels, dtype=bool),
                np.asarray(positions, dtype=np.int64), questions)

    def _training_batch(self, histories, candidates, target_pos):
        """The host batch of one training step: the recommendation prompts and, with PPT, the
        questions of :meth:`_ppt_prompts` in the ``ppt_layout``; extras ``rec_target`` (label
        token per row), ``rec_target_pos`` (the target's candidate column per row),
        ``ppt_target`` (yes / no token per question, answer ``"ppt"`` order) and, where the run
        may ask the order question, ``ppt_order`` (1 for an order question, same order)."""
        extras = {"rec_target": self.prompt.label_token_ids(self.num_candidates)[target_pos],
                  "rec_target_pos": target_pos}
        if self.answer_head == "score" and self.score_loss == "candidates":
            extras["score_ids"] = candidates
        ppt = self._ppt_prompts(histories) if self.asks_ppt() else None
        if ppt is None:
            batch = self.prompt.build(histories, candidates, self.history_only)
            batch.extras = extras
            return batch
        rows, abc, is_yes, positions, questions = ppt
        positions = positions if self.ppt_question_positions else None
        if self.ppt_layout == "shared":
            batch = self.prompt.build_shared(histories, candidates, target_pos, rows, abc, positions,
                                             history_only=self.history_only, questions=questions)
            order = shared_question_order(rows)  # the answers' order (further questions last)
            is_yes, questions = is_yes[order], [questions[k] for k in order]
        else:
            batch = self.prompt.build(histories, candidates, self.history_only).concat(
                self.prompt.build_ppt([histories[i] for i in rows], abc, positions, questions), self.prompt.pad_id)
        extras["ppt_target"] = torch.from_numpy(np.where(is_yes, self.prompt.yes_id, self.prompt.no_id))
        if self.ppt_question != "distance":
            extras["ppt_order"] = torch.tensor([q == "order" for q in questions], dtype=torch.long)
        batch.extras = extras
        return batch

    def _ppt_loss(self, hidden, target, order=None, order_count=0):
        """The PPT answers' mean cross-entropy (eq 19 on the yes / no token); accuracy counted on
        the device (read once per epoch by :meth:`valid_epoch_report`), also of the order
        questions apart (``order``: 1 per order question, ``order_count`` of them)."""
        logits = head_logits(self.llm, hidden)
        with torch.no_grad():
            pair = pair_logits(logits, self.prompt.yes_id, self.prompt.no_id).argmax(dim=1)
            predicted = torch.where(pair == 0, self.prompt.yes_id, self.prompt.no_id)
            hits = predicted == target
            self._ppt_counts["correct"] = self._ppt_counts["correct"] + hits.sum()
            if order is not None:
                self._ppt_counts["correct_order"] = self._ppt_counts["correct_order"] + (hits & order.bool()).sum()
        self._ppt_counts["total"] += target.shape[0]
        self._ppt_counts["total_order"] += order_count
        return label_answer_loss(logits, target)

    def loss_terms(self, interaction):
        """(name -> loss, name -> answers) of one training step, each loss unweighted: ``rec``
        (the recommendation answers: eq 19 for label answers; the cross-entropy over the
        candidates' or every item's scores with ``answer_head: score``), ``ppt`` (the PPT
        questions of about ``ppt_ratio`` of the sequences, eqs 13-14, in the same forward pass),
        ``distill`` (SASRec's distillation) and ``recon`` (the reconstruction task in its
        stages), each where it runs; answers counted for ``rec`` and ``ppt``. Prompts are built
        on the host and reach the device in one copy; nothing in the step waits for the device."""
        histories = self.recent_history(interaction)
        candidates, target_pos = self.training_candidates(interaction, device="cpu")
        batch = self._training_batch(histories, candidates, target_pos)
        host_order = batch.extras.get("ppt_order")
        names = ("rec", "ppt") if "ppt_target" in batch.extras else ("rec",)
        if self.distill_weight > 0:  # read at the last history item whatever the answer head
            names += ("last_item",)
        hidden, scored, batch, _ = self._forward(batch, names)
        if self.answer_head == "index":
            rec = label_answer_loss(head_logits(self.llm, hidden["rec"]), batch.extras["rec_target"])
        else:
            scores = self._scores(hidden, scored)
            if self.score_loss == "catalog":
                scores[:, 0] = float("-inf")  # [PAD] is never an answer
                target = to_device([interaction[self.POS_ITEM_ID]], scores.device)[0]
            else:
                target = batch.extras["rec_target_pos"]
            rec = F.cross_entropy(scores, target)
        terms, sizes = {"rec": rec}, {"rec": len(histories)}
        if "ppt" in hidden:
            target = batch.extras["ppt_target"]
            terms["ppt"] = self._ppt_loss(hidden["ppt"], target, batch.extras.get("ppt_order"),
                                          0 if host_order is None else int(host_order.sum()))
            sizes["ppt"] = target.shape[0]
        if self.distill_weight > 0:
            terms["distill"] = self._distillation_loss(interaction, hidden["last_item"])
        if self.reconstructs() and self.reconstruction_weight > 0:
            terms["recon"] = self._reconstruction_loss(histories)
        return terms, sizes

    def ppt_weight(self):
        """The PPT loss's weight in the current stage, or None (the mean over all answers)."""
        if self.ppt_weights is None:
            return None
        return self.ppt_weights[(self.stage or len(self.ppt_weights)) - 1]

    def calculate_loss(self, interaction):
        """The step's loss from :meth:`loss_terms`: the recommendation and PPT answers' mean
        cross-entropy over all their answers (eq 19 as one batch of answers gives it), or with
        ``ppt_weight`` L_rec + ppt_weight x L_ppt; plus ``distill_weight`` x L_distill and
        ``reconstruction_weight`` x L_recon. Each term is also summed on the device for
        :meth:`valid_epoch_report`."""
        terms, sizes = self.loss_terms(interaction)
        loss = terms["rec"]
        if "ppt" in terms:
            weight = self.ppt_weight()
            if weight is None:
                num_rec, num_ppt = sizes["rec"], sizes["ppt"]
                loss = (loss * num_rec + terms["ppt"] * num_ppt) / (num_rec + num_ppt)
            else:
                loss = loss + weight * terms["ppt"]
        if "distill" in terms:
            loss = loss + self.distill_weight * terms["distill"]
        if "recon" in terms:
            loss = loss + self.reconstruction_weight * terms["recon"]
        self._sum_loss_terms(terms)
        return loss

    def _sum_loss_terms(self, terms):
        """Add the step's loss terms to their sums on the device (no host read)."""
        with torch.no_grad():
            for name, value in terms.items():
                value = value.detach().float()
                total = self._loss_sums.get(name)
                # a new tensor either way: a compiled network's output may be overwritten by its next call
                self._loss_sums[name] = value.clone() if total is None else total + value
                self._loss_steps[name] = self._loss_steps.get(name, 0) + 1

    def _distillation_loss(self, interaction, last_hidden):
        """1 - cos between the projected hidden state at the last history item and the frozen
        SASRec's representation of the same sequence (:mod:`~recbole_speeder.model.layers.distillation`)."""
        teacher = self.sequence_teacher
        device = last_hidden.device
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        with torch.no_grad():
            target = teacher(*to_device([interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]], device))
        return self.distill(last_hidden, target)

    def _reconstruction_prompts(self, histories):
        """Distinct history items of the batch, about ``reconstruction_ratio`` per sequence."""
        if self.reconstruction_ratio <= 0:
            return None
        flat = np.concatenate([np.asarray(h, dtype=np.int64).reshape(-1) for h in histories])
        items = torch.unique(torch.from_numpy(flat))
        count = min(len(items), max(1, math.ceil(self.reconstruction_ratio * len(histories))))
        chosen = items[torch.randperm(len(items))[:count]]
        return self.reconstruction.build(chosen)

    def _reconstruction_logprobs(self, batch, labels, return_hits=False):
        batch = self._on_device(batch, pack=False)
        vectors, _ = self._item_vectors(batch)
        embeds = build_inputs_embeds(self.llm, batch, vectors)
        return answer_token_logprobs(self.llm, embeds, batch.attention_mask, labels.to(embeds.device),
                                     return_hits=return_hits)

    def _reconstruction_loss(self, histories):
        """Teacher-forced cross-entropy of the titles of items given as vectors (section 2.5)."""
        built = self._reconstruction_prompts(histories)
        if built is None:
            return torch.zeros((), device=self.label_ids.device)
        logprobs, _ = self._reconstruction_logprobs(*built)
        return -logprobs.mean()

    @torch.no_grad()
    def reconstruction_accuracy(self, batch_size=64):
        """Token accuracy and exact-title rate of the reconstruction on the fixed evaluation
        items, under teacher forcing (all title tokens arg-max = greedy decoding gives the title)."""
        hits_all, rows_all = [], []
        items = self.reconstruction_eval_items
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            self.begin_step()
            _, rows, hits = self._reconstruction_logprobs(*self.reconstruction.build(chunk), return_hits=True)
            hits_all.append(hits.cpu())
            rows_all.append(rows.cpu() + start)
        if not hits_all:
            return {}
        hits, rows = torch.cat(hits_all), torch.cat(rows_all)
        misses = torch.zeros(len(items), dtype=torch.long).index_add_(0, rows, (~hits).long())
        return {"recon_token_acc": round(float(hits.float().mean()), 4),
                "recon_exact": round(float((misses == 0).float().mean()), 4)}

    def valid_epoch_report(self):
        """Since the last report: PPT accuracy and skipped questions (the paper's Figure 5; with
        ``ppt_question: curriculum`` also of the order and the distance questions apart), each loss
        term's mean over the steps it ran in (``loss_rec``, ``loss_ppt``, ``loss_distill`` x
        ``distill_weight``, ``loss_recon`` x ``reconstruction_weight``; one read of the device);
        then the reconstruction accuracy."""
        counts, self._ppt_counts = self._ppt_counts, self._new_ppt_counts()
        sums, steps, self._loss_sums, self._loss_steps = self._loss_sums, self._loss_steps, {}, {}
        report = {}
        if self.use_ppt:
            acc = int(counts["correct"]) / counts["total"] if counts["total"] else 0.0
            report.update(ppt_acc=round(acc, 4), ppt_skipped=counts["skipped"])
            if self.ppt_question == "curriculum":
                correct_order, order = int(counts["correct_order"]), counts["total_order"]
                distance = counts["total"] - order
                if order:
                    report["ppt_acc_order"] = round(correct_order / order, 4)
                if distance:
                    report["ppt_acc_distance"] = round((int(counts["correct"]) - correct_order) / distance, 4)
        if sums:
            weights = {"distill": self.distill_weight, "recon": getattr(self, "reconstruction_weight", 1.0)}
            values = torch.stack([sums[name] for name in sums]).tolist()
            for name, value in zip(sums, values):
                report[f"loss_{name}"] = round(weights.get(name, 1.0) * value / steps[name], 4)
        if self.reconstruction is not None and len(self.reconstruction_eval_items):
            report.update(self.reconstruction_accuracy())
        return report

    # -- evaluation -----------------------------------------------------------------------
    def _history_readout(self, histories):
        """The scoring head's readouts (name -> hidden states [B, H]) of history-only prompts: the
        prompt cut after its last history item, where no candidate is in view."""
        none = np.zeros((len(histories), self.num_candidates), dtype=np.int64)  # laid out, then cut away
        hidden, _, _, _ = self._forward(self.prompt.build(histories, none, history_only=True))
        return hidden

    def _require_catalog_ranking(self, method):
        if not self.history_only:
            settings = {"answer_head": self.answer_head, "score_readout": self.score_readout}
            raise NotImplementedError(f"Speeder.{method}: {self.why_no_ranking(settings)}.")

    @torch.no_grad()
    def full_sort_predict(self, interaction):
        """Scores [B, n_items] of every item (column i = item id i): the scoring head's query at the
        last history item against every item's fused vector e_mm (eq 10), fused once per evaluation
        pass (:meth:`_all_item_vectors`) and scored in one matrix product."""
        self._require_catalog_ranking("full_sort_predict")
        hidden = self._history_readout(self.recent_history(interaction))
        return self._scores(hidden, self._all_item_vectors())

    @torch.no_grad()
    def predict(self, interaction):
        """Scores [R] of the rows' items (``ITEM_ID``): each distinct history of the batch is encoded
        once (RecBole's sampled evaluation repeats a history once per sampled item)."""
        self._require_catalog_ranking("predict")
        seq = interaction[self.ITEM_SEQ].cpu().numpy()
        lengths = interaction[self.ITEM_SEQ_LEN].cpu().numpy()
        rows, inverse = np.unique(np.concatenate([seq, lengths[:, None]], axis=1), axis=0, return_inverse=True)
        hidden = self._history_readout(self.last_items(rows[:, :-1], rows[:, -1].tolist()))
        inverse = torch.as_tensor(inverse.reshape(-1), device=self.label_ids.device)
        items = self._all_item_vectors()[interaction[self.ITEM_ID].to(self.label_ids.device)]
        return self._scores({name: h[inverse] for name, h in hidden.items()}, items[:, None, :])[:, 0]

    @torch.no_grad()
    def candidate_scores(self, interaction, candidates):
        histories = self.recent_history(interaction)
        batch = self.prompt.build(histories, candidates, self.history_only)
        if self.answer_head == "score":
            batch.extras = {"score_ids": candidates.cpu()}
        hidden, scored, batch, embeds = self._forward(batch)
        valid = torch.ones(len(histories), dtype=torch.bool, device=candidates.device)
        if self.answer_head == "score":
            scores = self._scores(hidden, scored)
            return CandidateScores(scores.float().to(candidates.device), valid, True)
        if self.eval_mode == "constrained":
            scores = label_scores(head_logits(self.llm, hidden["rec"]), self.label_ids).float()
            return CandidateScores(scores, valid.to(scores.device), True)
        texts = generate_answers(self.llm, self.tokenizer, embeds, batch.attention_mask, self.max_new_tokens)
        labels = self.prompt.candidate_labels(self.num_candidates)
        chosen = [parse_label_answer(text, self.num_candidates, labels) for text in texts]
        scores = torch.zeros(len(chosen), self.num_candidates, device=candidates.device)
        for row, choice in enumerate(chosen):
            if choice is not None:
                scores[row, choice] = 1.0
        valid = torch.tensor([c is not None for c in chosen], device=candidates.device)
        return CandidateScores(scores, valid, False, answers=texts)
