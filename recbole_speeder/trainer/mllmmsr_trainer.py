"""Trainer of MLLM-MSR: :class:`LLMTrainer` with the preference-summary cost kept apart.

MLLM-MSR's preference summaries (:mod:`recbole_speeder.model.layers.preference_summary`) are made
by the base backbone on first need and cached. This trainer

- with ``summary_prefill``, summarises the history of every training sequence before the first
  epoch (launched processes share the work), ``summary_batch_size`` histories per call, writing
  the cache after each call (a long prefill that is stopped keeps what it made; a later run,
  another seed or a resumed one, reads it);
- summarises ahead in training: the histories of the next ``summary_batch_size /
  train_batch_size`` batches in one call, so that its generate rounds are full too;
- subtracts the summarisation time spent inside training batches from the training time
  (``train_ms_per_sample`` stays the fine-tuning cost) and adds it to ``summary_train_seconds``;
- summarises every sequence of a split before scoring it, all in one call (so that every
  generate round holds ``summary_batch_size`` prompts, not one evaluation batch's), so that
  ``infer_ms_per_sample`` is the scoring cost alone; the evaluation result gets ``summary_ms_per_sample`` (summarisation time of
  this pass per sequence; near 0 when the summaries were cached by an earlier run),
  ``summary_generated`` (summaries generated in this pass) and, after training,
  ``summary_train_ms_per_sample`` (summarisation time per training sample);
- writes new summaries to the cache after every epoch and evaluation.
"""

import math
import time

import torch
from recbole.utils import set_color

from recbole_speeder.trainer.llm_trainer import LLMTrainer


class MLLMMSRTrainer(LLMTrainer):
    summary_train_seconds = 0.0

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if self.config["summary_prefill"]:
            self.prefill_summaries(train_data)
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    @torch.no_grad()
    def prefill_summaries(self, train_data):
        """Summarise the history of every training sequence (``summary_prefill``), in calls of
        ``summary_batch_size`` histories; the time counts as summary time of training. Launched
        processes share the histories by their first block, then read the others' summaries."""
        summarizer, dist = self.model.summarizer, self.dist
        windows = self.model.summary_windows(train_data._dataset.inter_feat)
        # histories that share a summary share their first block: one process makes all of them
        block = summarizer.block_size
        mine = [w for w in windows if hash(tuple(w[:block])) % dist.num_processes == dist.process_index]
        start, generated = time.perf_counter(), summarizer.generated
        for offset in range(0, len(mine), summarizer.batch_size):
            summarizer.summarize(mine[offset:offset + summarizer.batch_size])
            summarizer.cache.flush()
            self.logger.info(set_color("summary prefill", "green")
                             + f": {min(offset + summarizer.batch_size, len(mine))} / {len(mine)} training "
                             f"histories, {summarizer.generated - generated} summaries generated, "
                             f"{time.perf_counter() - start:.1f} s")
        if dist.enabled:
            dist.wait_for_everyone()
            summarizer.cache.reload()
        self.summary_train_seconds += time.perf_counter() - start

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        summarizer = self.model.summarizer
        before = summarizer.seconds
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        spent = summarizer.seconds - before
        self.train_seconds -= spent  # TrainTimeMixin timed the whole epoch, summaries included
        self.summary_train_seconds += spent
        summarizer.cache.flush()
        self.logger.info(set_color("preference summaries", "green")
                         + f": {spent:.1f} s in training epoch {epoch_idx} (not counted as training time), "
                         f"{len(summarizer.cache)} cached")
        return loss

    def _training_batches(self, batches, steps):
        ahead = max(1, math.ceil(self.model.summarizer.batch_size / int(self.config["train_batch_size"])))
        group = []
        for interaction in super()._training_batches(batches, steps):
            group.append(interaction)
            if len(group) == ahead:
                yield from self._summarised(group)
                group = []
        yield from self._summarised(group)

    @torch.no_grad()
    def _summarised(self, group):
        """``group`` of training batches, after summarising all their histories in one call."""
        windows = [w for interaction in group for w in self.model.summary_windows(interaction)]
        if windows:
            self.model.summarizer.summarize(windows)
        return group

    @torch.no_grad()
    def prepare_summaries(self, eval_data):
        """Summarise every sequence of ``eval_data``; the cost as result entries."""
        model, summarizer = self.model, self.model.summarizer
        generated = summarizer.generated
        start = time.perf_counter()
        windows = []  # the whole split in one call: each generate round takes summary_batch_size prompts
        for index, batch in enumerate(eval_data):
            if not self.candidate_evaluator.keep_batch(index):  # another process scores (and summarises) it
                continue
            windows += model.summary_windows(batch[0] if isinstance(batch, tuple) else batch)
        summarizer.summarize(windows)
        sequences = len(windows)
        elapsed = time.perf_counter() - start
        summarizer.cache.flush()
        report = {
            "summary_ms_per_sample": round(1000.0 * elapsed / max(sequences, 1), 4),
            "summary_generated": summarizer.generated - generated,
        }
        if self.train_samples:
            report["summary_train_ms_per_sample"] = round(1000.0 * self.summary_train_seconds / self.train_samples, 4)
        self.logger.info(set_color("preference summaries", "green")
                         + f": {elapsed:.1f} s for {sequences} sequences ({report['summary_generated']} generated)")
        return report

    def _valid_epoch(self, valid_data, show_progress=False):
        report = self.prepare_summaries(valid_data)
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        result.update(report)
        return score, result

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False, split="test"):
        report = self.prepare_summaries(eval_data)
        result = super().evaluate(eval_data, load_best_model=load_best_model, model_file=model_file,
                                  show_progress=show_progress, split=split)
        result.update(report)
        return result
