"""The two evaluation protocols a run can report, and where their numbers sit in one result.

- The candidate protocol (paper, section 3.1; :mod:`~recbole_speeder.evaluation.candidate_eval`):
  every model, on the stored candidate sets; HR@1, ValidRatio, VHR@1, NDCG@k, MRR.
- RecBole's ranking evaluation (``eval_args`` mode ``full``, ``uniN`` or ``popN``; Recall@K,
  NDCG@K, MRR@K, Hit@K, ... from RecBole's collector and metrics): every model that scores any
  item, i.e. RecBole's models and an LLM model whose ``ranks_catalog(config)`` is true (Speeder's
  scoring head read at the last history item, whose prompt holds no candidate).

An LLM model that only chooses among the candidates of its prompt (Speeder's label answer,
LLaRA, TMF, TALLRec, ZeroShot, MLLM-MSR) is scored on the candidate protocol alone; a run that asks
it for RecBole's ranking (an ``eval_args`` with a ``mode``) is refused before any data is read
(:func:`check_eval_protocol`).

The LLM trainer's result of a run that reports both is RecBole's metrics under RecBole's names
(``ndcg@10``), with the candidate metrics in ``result["candidates"]``
(:data:`CANDIDATES`); :func:`split_result` gives the two apart, as a RecBole model's run reports
them (``test_result`` and ``candidate_test``). ``valid_metric`` picks the early-stopping metric
among both: a RecBole metric name (``NDCG@10``) where the run ranks, else a candidate metric.
"""

from recbole_speeder.errors import ConfigError

CANDIDATES = "candidates"  # key of the candidate metrics in a result that holds both protocols


def ranking_metric_names(config):
    """The result keys of RecBole's ranking evaluation under ``config`` (``recall@10``...)."""
    metrics = config["metrics"] or []
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    topk = config["topk"] or []
    topk = [topk] if isinstance(topk, int) else list(topk)
    names = {m.lower() for m in metrics}
    names |= {f"{m.lower()}@{k}" for m in metrics for k in topk}
    return names


def candidate_metric_names(config):
    """The metric keys of the candidate protocol under ``config``."""
    return {"hr@1", "valid_ratio", "vhr@1", "mrr"} | {f"ndcg@{k}" for k in (config["candidate_topk"] or [])}


def ranks_catalog(model_class, config):
    """Whether runs of ``model_class`` under ``config`` get RecBole's ranking evaluation: an LLM
    model says so (``ranks_catalog``); RecBole's models always do."""
    says = getattr(model_class, "ranks_catalog", None)
    return True if says is None else bool(says(config))


def check_eval_protocol(model_name, model_class, config, given):
    """Refuse, in one line, an LLM model that cannot rank being asked for RecBole's ranking
    (``eval_args`` with a ``mode`` among the user's settings ``given``), and a ``valid_metric``
    that names a ranking metric such a model cannot report."""
    if getattr(model_class, "ranks_catalog", None) is None or ranks_catalog(model_class, config):
        return
    why = getattr(model_class, "why_no_ranking", lambda cfg: "it chooses among the candidates in its prompt")(config)
    asked = given.get("eval_args")
    if isinstance(asked, dict) and "mode" in asked:
        raise ConfigError(
            f"eval_args mode {asked['mode']!r}: {model_name} cannot rank the catalog or sampled items ({why}); "
            f"remove eval_args' mode to score it on the candidate protocol (candidate_num candidates per "
            f"sequence: HR@1, ValidRatio, VHR@1).")
    metric = str(config["valid_metric"]).lower()
    if metric in ranking_metric_names(config) and metric not in candidate_metric_names(config):
        raise ConfigError(
            f"valid_metric {config['valid_metric']!r} is a metric of RecBole's ranking evaluation, which "
            f"{model_name} cannot give ({why}); use a candidate metric such as vhr@1.")


def metric_value(result, name):
    """Metric ``name`` of a trainer's result: RecBole's metric of that name where the run ranks, else
    the candidate protocol's (or another number of the validation, such as ``ppt_acc``)."""
    if name in result and not isinstance(result[name], dict):
        return result[name]
    candidates = result.get(CANDIDATES) or {}
    if name in candidates:
        return candidates[name]
    known = sorted(set(result) - {CANDIDATES, "n"} | set(candidates) - {"n"})
    raise ConfigError(f"valid_metric {name!r} is not among this run's validation metrics: {', '.join(known)}.")


def split_result(result):
    """(RecBole's ranking metrics or None, the candidate metrics or None) of a trainer's result."""
    if result is None or CANDIDATES not in result:
        return None, result
    ranking = {k: v for k, v in result.items() if k != CANDIDATES}
    return ranking, result[CANDIDATES]


RECBOLE_PREFIX = "recbole:"  # before a ranking metric named as a candidate one (RecBole's ndcg@5 is another number)


def flat_metrics(result):
    """Every number of a result in one flat dict, for curves, TensorBoard and tables: the candidate
    metrics under their names, then RecBole's, prefixed with :data:`RECBOLE_PREFIX` where a
    candidate metric has the same name."""
    ranking, candidates = split_result(result)
    flat = dict(candidates or {})
    for name, value in (ranking or {}).items():
        flat[RECBOLE_PREFIX * (name in flat) + name] = value
    return flat
