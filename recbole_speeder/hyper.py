"""Hyper-parameter search, RecBole's way: a params file, RecBole's ``HyperTuning`` (hyperopt),
the plugin's ``objective_function``.

    python run_hyper.py --model=SASRec --dataset=ml-100k --params_file=hyper.test
    python run_hyper.py --model=Speeder --dataset=ml-100k --params_file=speeder.hyper \
        --config_files=recbole_speeder/properties/recipes/ml-100k-gpu.yaml --algo=random --max_evals=8

The params file is RecBole's: one parameter a line, ``<key> <kind> <values>``::

    learning_rate loguniform -8,0          # exp(uniform(-8, 0))
    hidden_size choice [32,64,128]
    dropout_prob uniform 0.1,0.5
    train_batch_size quniform 64,512,64    # round(uniform(64, 512) / 64) * 64, an integer

Blank lines and ``#`` comments are skipped. ``--algo``: ``exhaustive`` (every combination of
the ``choice`` lines; RecBole's default), ``random`` or ``bayes`` (TPE) for ``--max_evals``
trials; ``--early_stop`` trials without progress end the search. Each trial is one
:func:`~recbole_speeder.quick_start.objective_function` (train, validate, test) with the
trial's values over the fixed ``--config_files`` and ``--key=value`` settings; the best trial is
the one with the best validation score (``valid_metric``). The search draws from ``--seed``, so
the same command gives the same trials.

The result file (``--output_file``, written atomically) starts with ``#`` lines (the search,
the best parameters and score) and holds a tab-separated table, one row per trial: its
parameters, its validation score, RecBole's valid and test metrics (``valid:`` / ``test:``) and
the candidate-protocol test metrics (``candidate:``). ``pandas.read_csv(path, sep="\\t",
comment="#")`` reads it.
"""

import ast
import math
import os
from logging import getLogger

import recbole_speeder.compat as compat  # numpy/pandas/torch adaptations first
from recbole_speeder.atomic import atomic_write_text
from recbole_speeder.config import check_keys
from recbole_speeder.errors import ConfigError
from recbole_speeder.quick_start import objective_function

KINDS = {"choice": None, "uniform": 2, "loguniform": 2, "quniform": 3}
ALGOS = ("exhaustive", "random", "bayes")


def read_params_file(path):
    """``[(key, kind, values)]`` of a params file; a bad line is a ConfigError naming file and line."""
    if not os.path.isfile(path):
        raise ConfigError(f"--params_file: '{path}' does not exist.")
    params = []
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.split()
            where = f"{path}, line {number}"
            if len(parts) < 3:
                raise ConfigError(f"{where}: '{text}' is not '<key> <kind> <values>' "
                                  "(e.g. learning_rate loguniform -8,0).")
            key, kind, value = parts[0], parts[1], "".join(parts[2:])
            if kind not in KINDS:
                raise ConfigError(f"{where}: unknown kind '{kind}'; kinds are {', '.join(KINDS)}.")
            if kind == "choice":
                try:
                    values = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    raise ConfigError(f"{where}: choice needs a list such as [0.01,0.001] or "
                                      f"['[64,64]','[128]'] (got {value}).") from None
                if not isinstance(values, (list, tuple)) or not values:
                    raise ConfigError(f"{where}: choice needs a non-empty list (got {value}).")
                values = list(values)
            else:
                try:
                    values = [float(v) for v in value.split(",")]
                except ValueError:
                    values = []
                if len(values) != KINDS[kind] or values[0] >= values[1] or (kind == "quniform" and values[2] <= 0):
                    shape = "low,high,q" if kind == "quniform" else "low,high"
                    raise ConfigError(f"{where}: {kind} needs {shape} with low < high (got {value}).")
            if key in {p[0] for p in params}:
                raise ConfigError(f"{where}: '{key}' is given twice.")
            params.append((key, kind, values))
    if not params:
        raise ConfigError(f"--params_file: '{path}' lists no parameter.")
    check_keys({key: None for key, _, _ in params}, f"params file '{path}'")
    return params


def build_space(params):
    """The hyperopt space of :func:`read_params_file`'s parameters (as RecBole's HyperTuning builds it)."""
    from hyperopt import hp

    space = {}
    for key, kind, values in params:
        if kind == "choice":
            space[key] = hp.choice(key, values)
        elif kind == "uniform":
            space[key] = hp.uniform(key, *values)
        elif kind == "loguniform":
            space[key] = hp.loguniform(key, *values)
        else:
            space[key] = hp.quniform(key, *values)
    return space


def _hyper_tuning_class():
    try:
        import hyperopt  # noqa: F401
        from recbole.trainer.hyper_tuning import HyperTuning
    except ImportError:
        raise ConfigError("Hyper-parameter search needs hyperopt (pip install hyperopt==0.3.0; "
                          "requirements.txt pins it).") from None
    compat.install_hyperopt_rng_shim()

    class Search(HyperTuning):
        """RecBole's ``HyperTuning`` with the plugin's params-file checks, seeded trials, a result
        table and its best trial kept even when a score is 0."""

        def __init__(self, objective, params, fixed_config_file_list, algo, max_evals, early_stop, seed):
            if algo not in ALGOS:
                raise ConfigError(f"--algo must be one of {', '.join(ALGOS)} (got '{algo}').")
            self.quantized = {key for key, kind, _ in params if kind == "quniform"}
            super().__init__(objective, space=build_space(params), fixed_config_file_list=fixed_config_file_list,
                             algo=algo, max_evals=max_evals, early_stop=early_stop)
            self.seed = int(seed)
            self.rows = []
            self.bigger = True

        def trial(self, params):
            import hyperopt

            params = {k: int(v) if k in self.quantized and float(v).is_integer() else v for k, v in params.items()}
            getLogger().info(f"hyper-parameter trial {len(self.rows) + 1}: {params}")
            result = self.objective_function(dict(params), self.fixed_config_file_list)
            self.model, score, self.bigger = result["model"], result["best_valid_score"], result["valid_score_bigger"]
            params_str = self.params2str(params)
            self.params_list.append(params_str)
            self.params2result[params_str] = result
            self.score_list.append(score)
            self.rows.append((params, result))
            better = score is not None and (
                self.best_score is None or (score > self.best_score if self.bigger else score < self.best_score))
            if better:
                self.best_score, self.best_params, self.best_test_result = score, params, result["test_result"]
            loss = math.inf if score is None else (-score if self.bigger else score)
            return {"loss": loss, "status": hyperopt.STATUS_OK}

        def run(self):
            import numpy as np
            from hyperopt import fmin

            fmin(self.trial, self.space, algo=self.algo, max_evals=self.max_evals, early_stop_fn=self.early_stop_fn,
                 rstate=np.random.default_rng(self.seed), show_progressbar=False)

    return Search


def _number(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def result_table(search, description):
    """The text of the result file: ``#`` lines, then one tab-separated row per trial."""
    keys = list(search.rows[0][0]) if search.rows else []
    metric_columns = []
    for _, result in search.rows:
        for prefix, values in (("valid", result["best_valid_result"]), ("test", result["test_result"]),
                               ("candidate", result.get("candidate_test"))):
            for name in (values or {}):
                if name != "n" and f"{prefix}:{name}" not in metric_columns:
                    metric_columns.append(f"{prefix}:{name}")
    lines = [f"# {description}",
             f"# best params: {search.params2str(search.best_params) if search.best_params else '(none)'}",
             f"# best valid score: {_number(search.best_score) if search.best_score is not None else '(none)'}"
             f" ({'bigger' if search.bigger else 'smaller'} is better)",
             "\t".join(["trial"] + keys + ["valid_score"] + metric_columns)]
    for number, (params, result) in enumerate(search.rows, start=1):
        values = {}
        for prefix, metrics in (("valid", result["best_valid_result"]), ("test", result["test_result"]),
                                ("candidate", result.get("candidate_test"))):
            values.update({f"{prefix}:{k}": v for k, v in (metrics or {}).items()})
        row = [str(number)] + [str(params[k]) for k in keys] + [_number(result["best_valid_score"])]
        row += [_number(values[c]) if values.get(c) is not None else "" for c in metric_columns]
        lines.append("\t".join(row))
    return "\n".join(lines) + "\n"


def hyper_search(model, dataset, params_file, config_file_list=None, overrides=None, output_file=None,
                 algo="exhaustive", max_evals=100, early_stop=10, seed=2020):
    """Search ``params_file``'s space for ``model`` on ``dataset``; write ``output_file``.

    Returns ``(best params, best valid score, path of the result file)``.
    """
    params = read_params_file(params_file)
    fixed = dict(overrides or {}, model=model, dataset=dataset)
    clash = sorted(set(fixed) & {key for key, _, _ in params})
    if clash:
        raise ConfigError(f"{', '.join(clash)} is set on the command line and searched in {params_file}; "
                          "give it in one place.")
    for path in config_file_list or []:
        if not os.path.isfile(path):
            raise ConfigError(f"Config file '{path}' does not exist.")

    def objective(config_dict, config_files):
        return objective_function(config_dict=dict(fixed, **config_dict), config_file_list=config_files)

    search = _hyper_tuning_class()(objective, params, config_file_list, algo, max_evals, early_stop, seed)
    search.run()
    output_file = output_file or f"hyper-{model}-{dataset}.result"
    description = (f"hyper-parameter search: {model} on {dataset}, params file {params_file}, algo {algo}, "
                   f"{len(search.rows)} trial(s), seed {seed}")
    atomic_write_text(output_file, result_table(search, description))
    return search.best_params, search.best_score, output_file
