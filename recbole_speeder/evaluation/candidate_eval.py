"""Candidate-protocol evaluation (paper section 3.1) for any model of the plugin or RecBole.

For each evaluation sequence the model sees the fixed candidate set of
:mod:`recbole_speeder.data.candidates` and either scores the candidates or names one:

- a model with ``candidate_scores(interaction, candidates)`` (the LLM models) returns a
  :class:`CandidateScores`: ``scores`` [B, C] (higher is better), ``valid`` [B] (the answer
  named exactly one candidate) and ``ranked`` (whether ``scores`` rank all candidates, as in
  constrained decoding, or only mark the chosen one, as in free generation);
- any other model (GRU4Rec, SASRec, BERT4Rec, ...) is scored with ``full_sort_predict``,
  gathered at the candidates, or, for a model without full ranking (DIN, DIEN), with
  ``predict`` on each (sequence, candidate) pair; its ValidRatio is 1.

Metrics: HR@1 = correct / valid answers, ValidRatio = valid answers / all,
VHR@1 = ValidRatio x HR@1 = correct / all, and, when the scores rank the candidates,
NDCG@k and MRR over the candidates (invalid answers count as misses). The rank of the true
item is pessimistic: candidates with the same score are ranked before it, so a model that
gives every candidate the same score never scores a hit.
"""

import time
from dataclasses import dataclass
from logging import getLogger

import torch

INVALID_EXAMPLES = 3  # generated answers that named no candidate, logged after each evaluation


@dataclass
class CandidateScores:
    scores: torch.Tensor  # [B, C]
    valid: torch.Tensor  # [B] bool
    ranked: bool = True
    answers: list = None  # generated texts (free generation), to show what invalid answers look like


def score_candidates(model, interaction, candidates):
    """Scores of ``candidates`` [B, C] for the sequences in ``interaction``."""
    if hasattr(model, "candidate_scores"):
        model.begin_step()  # the LLM models: one evaluation batch (CUDA graphs, llm_compile)
        return model.candidate_scores(interaction, candidates)
    try:
        scores = model.full_sort_predict(interaction)
    except NotImplementedError:  # DIN, DIEN: no full ranking, one score per (sequence, item)
        valid = torch.ones_like(candidates[:, 0], dtype=torch.bool)
        return CandidateScores(scores=_predict_candidates(model, interaction, candidates), valid=valid)
    return catalog_candidate_scores(scores, candidates)


def catalog_candidate_scores(scores, candidates):
    """The :class:`CandidateScores` of ``candidates`` [B, C] read off scores of every item [B, n_items]."""
    valid = torch.ones_like(candidates[:, 0], dtype=torch.bool)
    return CandidateScores(scores=scores.view(candidates.shape[0], -1).gather(1, candidates), valid=valid)


def _predict_candidates(model, interaction, candidates):
    """``model.predict`` on every (sequence, candidate) pair -> scores [B, C]."""
    from recbole.data.interaction import Interaction

    rows, num = candidates.shape
    pairs = interaction.repeat_interleave(num)
    pairs.update(Interaction({model.ITEM_ID: candidates.reshape(-1)}))
    return model.predict(pairs).view(rows, num)


def pessimistic_rank(scores, target_pos):
    """1-based rank of the target column; ties are ranked before the target."""
    target = scores.gather(1, target_pos[:, None])
    others = torch.ones_like(scores, dtype=torch.bool).scatter_(1, target_pos[:, None], False)
    return 1 + ((scores > target) | ((scores == target) & others)).sum(dim=1)


def candidate_metrics(ranks, valid, topk=(3, 5), ranked=True):
    """HR@1 / ValidRatio / VHR@1 (+ NDCG@k, MRR when ``ranked``) from per-row ranks."""
    n = max(len(ranks), 1)
    valid = valid.bool()
    correct = (ranks == 1) & valid
    n_valid = int(valid.sum())
    result = {
        "hr@1": float(correct.sum()) / n_valid if n_valid else 0.0,
        "valid_ratio": n_valid / n,
        "vhr@1": float(correct.sum()) / n,
    }
    if ranked:
        ranks = ranks.double()
        for k in topk:
            gain = torch.where(valid & (ranks <= k), 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
            result[f"ndcg@{k}"] = float(gain.sum()) / n
        result["mrr"] = float(torch.where(valid, 1.0 / ranks, torch.zeros_like(ranks)).sum()) / n
    return result


class CandidateEvaluator:
    """Runs a model over an evaluation dataloader and its candidate set."""

    def __init__(self, config):
        self.device = config["device"]
        self.topk = list(config["candidate_topk"] or [])
        self.decimals = config["metric_decimal_place"] or 4
        self.invalid_examples = []  # of the current evaluation

    @torch.no_grad()
    def evaluate(self, model, eval_data, candidate_set):
        """Metrics dict plus ``n`` and ``infer_ms_per_sample`` (whole pass, device synchronised)."""
        model.eval()
        self.invalid_examples = []
        self.sync()
        start = time.perf_counter()
        rows, ranked, offset = self.score_batches(model, eval_data, candidate_set)
        rows, ranked = self.collect(rows, ranked)
        self.sync()
        result = self.summarize(rows, ranked, offset, candidate_set, time.perf_counter() - start)
        if self.invalid_examples:
            getLogger().info("invalid answers (named no candidate, or several), first %d: %s",
                             len(self.invalid_examples), " | ".join(repr(t) for t in self.invalid_examples))
        return result

    def keep_batch(self, index):
        """Whether this process scores batch ``index`` (all of them in one process)."""
        return True

    def collect(self, rows, ranked):
        """The (offset, ranks, valid) rows of every process (just this one's here)."""
        return rows, ranked

    def score_batches(self, model, eval_data, candidate_set):
        """(offset, ranks, valid) per kept batch, whether all scores ranked, rows seen."""
        rows, ranked, offset = [], True, 0
        for index, batch in enumerate(eval_data):
            interaction = batch[0] if isinstance(batch, tuple) else batch
            size = len(interaction)
            if self.keep_batch(index):
                candidates = candidate_set.item_ids[offset : offset + size].to(self.device)
                out = score_candidates(model, interaction.to(self.device), candidates)
                rows.append(self.rank_rows(out, candidate_set, offset))
                ranked = ranked and out.ranked
                self._keep_invalid_examples(out)
            offset += size
        return rows, ranked, offset

    @staticmethod
    def rank_rows(out, candidate_set, offset):
        """(offset, ranks [B], valid [B]) on the host of one batch's :class:`CandidateScores`, the
        rows ``offset``.. of ``candidate_set``."""
        target_pos = candidate_set.target_pos[offset : offset + len(out.scores)].to(out.scores.device)
        return offset, pessimistic_rank(out.scores.float(), target_pos).cpu(), out.valid.cpu()

    def _keep_invalid_examples(self, out):
        if out.answers is None:
            return
        for text, ok in zip(out.answers, out.valid.tolist()):
            if not ok and len(self.invalid_examples) < INVALID_EXAMPLES:
                self.invalid_examples.append(text)

    def summarize(self, rows, ranked, offset, candidate_set, elapsed):
        """Metrics over ``rows``, which must cover every row of the split exactly once, in order."""
        covered = 0
        for row_offset, ranks, _ in rows:
            if row_offset != covered:
                raise RuntimeError(f"evaluation: rows from {covered} to {row_offset} missing or repeated")
            covered += len(ranks)
        if offset != len(candidate_set) or covered != offset:
            raise RuntimeError(f"evaluation saw {offset} rows ({covered} scored), the candidate set has {len(candidate_set)}")
        ranks = torch.cat([r for _, r, _ in rows])
        valids = torch.cat([v for _, _, v in rows])
        result = candidate_metrics(ranks, valids, self.topk, ranked)
        result = {k: round(v, self.decimals) for k, v in result.items()}
        result["n"] = offset
        result["infer_ms_per_sample"] = round(1000.0 * elapsed / max(offset, 1), 4)
        return result

    def sync(self):
        """Wait for the device (a timed pass ends when its kernels have)."""
        if torch.cuda.is_available() and str(self.device).startswith("cuda"):
            torch.cuda.synchronize()
