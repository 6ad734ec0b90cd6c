"""The few adaptations RecBole 1.2.1 needs on today's numpy / pandas / torch.

RecBole 1.2.1 was written for numpy 1, pandas 1/2 and torch < 2.6. This module is the one
place where the plugin adapts it; nothing in site-packages is edited.

1. numpy >= 2 removed the aliases ``np.float``, ``np.int``, ``np.long``, ``np.bool`` ... that
   RecBole uses at run time (``recbole.data.interaction``, ``recbole.evaluator.metrics``).
   RecBole's own ``Config.compatibility_settings`` tries to add them from ``np.float_``,
   which numpy 2 removed too, so ``Config()`` fails. :func:`install_numpy_aliases` adds the
   aliases from names that exist in both numpy 1 and 2; :class:`recbole_speeder.config.Config`
   calls it instead of RecBole's version.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``. RecBole pickles its whole
   ``Config`` object (and numpy scalars) into checkpoints, so ``Trainer.evaluate(
   load_best_model=True)`` and ``resume_checkpoint`` fail. :class:`CheckpointCompatMixin`
   writes checkpoints that hold only tensors and plain Python values, atomically, so that
   RecBole's unchanged loading code works with ``weights_only=True``. A damaged or foreign file
   then fails with ``pickle.UnpicklingError`` too: :data:`TORCH_LOAD_ERRORS` lists what the
   plugin's own readers of torch files catch.
3. pandas 3 (copy-on-write) turns ``df[col].fillna(..., inplace=True)`` into a silent no-op,
   and ``Series.agg(len)`` now returns the length of the Series instead of one length per
   row. RecBole relies on the first in ``Dataset._fill_nan`` and ``Dataset._load_feat`` and
   on the second in ``Dataset._remap`` and ``SequentialDataset._benchmark_presets`` (the
   ``token_seq`` fields). :class:`PandasCompatMixin` re-implements ``_fill_nan``, ``_remap``
   and ``_benchmark_presets`` with per-row ``map(len)`` and assignments; ``_load_feat`` offers
   no seam, so :func:`install_pandas_shim` gives the module ``recbole.data.dataset.dataset``
   a pandas namespace whose ``read_csv`` already returns ``""`` for empty ``*_seq`` cells (and
   whose errors name the file and line: a value that is not a number, a short ``.inter`` line).
   (``_normalize`` / ``_discretization`` of ``float_seq`` fields also use ``agg(len)``; the
   plugin loads no such field.)
4. ``recbole.quick_start`` imports ``ray`` at module level (``ray<=2.6.3`` has no wheel for
   Python 3.12 and breaks on numpy 2). The plugin never imports ``recbole.quick_start``;
   :mod:`recbole_speeder.quick_start` provides ``run`` / ``objective_function`` itself.
5. ``recbole.model.sequential_recommender.sine`` calls ``torch.autograd.set_detect_anomaly(True)``
   at import, and importing any RecBole sequential model imports it. Anomaly mode records a
   Python stack trace for every autograd op: an LLM training step ran several times slower
   (on the CPU, half of a step's time went to formatting tracebacks).
   :func:`undo_global_anomaly_mode` imports that package once and switches the mode back off.
6. Warnings that these adaptations made harmless are filtered once, here
   (:func:`quiet_harmless_warnings`), so that a run's log shows what matters: pandas 3's
   ``ChainedAssignmentError`` on ``df[field].fillna(..., inplace=True)`` in RecBole's
   ``dataset.py`` (the no-op of item 3, whose cells the shim already filled), pandas'
   ``Pandas4Warning`` on RecBole's ``inplace=`` calls (they still work in pandas 3), and torch's
   ``FutureWarning`` on RecBole's ``torch.cuda.amp.GradScaler`` (still works; the scaler is off
   unless ``enable_scaler``). Only warnings raised from RecBole's own modules are filtered.
7. ``reproducibility: True`` (RecBole's default) makes RecBole's ``init_seed`` seed every
   generator and choose deterministic cuDNN kernels; on today's GPUs that is not enough (cuBLAS
   and attention kernels). :func:`init_seed` adds ``torch.use_deterministic_algorithms(True,
   warn_only=True)`` (an operation without a deterministic kernel warns instead of failing) and
   ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (set before the run's first CUDA call, unless the user set
   it); ``reproducibility: False`` switches both off again (and lets cuDNN benchmark).
8. RecBole's ``HyperTuning`` (``recbole.trainer.hyper_tuning``) seeds its exhaustive search with
   ``np.random.RandomState``; hyperopt >= 0.2.7 draws with ``Generator`` methods
   (``rng.integers``) and fails. :func:`install_hyperopt_rng_shim` gives that module a numpy
   namespace whose ``random.RandomState(seed)`` is ``np.random.default_rng(seed)`` (the plugin's
   :mod:`recbole_speeder.hyper` calls it).
9. Not RecBole but the LLM stack: transformers 5 builds SDPA masks in which a left-padding
   query row attends to no key at all (the fix older versions applied was retired), and
   CUDA's SDPA kernels return NaN for such rows; the NaN then spreads through the next
   layer (``0 * NaN``). Long left-padded title prompts (TALLRec, LLaRA) hit it on the GPU as
   "Training loss is nan". :func:`install_padding_safe_sdpa_mask` wraps transformers' "sdpa"
   mask function so that a row with no allowed key may attend to every key; only padding
   positions change, and nothing reads their outputs.
"""

import os
import pickle
import types
import warnings

import numpy as np
import pandas as pd
import torch

from recbole_speeder.atomic import atomic_write

_NUMPY_ALIASES = {
    "bool": bool,
    "int": int,
    "float": float,
    "complex": complex,
    "object": object,
    "str": str,
    "long": int,
    "unicode": str,
}


def install_numpy_aliases():
    """Add the numpy-1 aliases RecBole 1.2.1 uses, only where numpy lacks them."""
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def to_plain(value):
    """Turn numpy scalars into Python numbers so ``weights_only`` loading accepts them."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def atomic_torch_save(obj, path):
    """``torch.save`` into a temporary file beside ``path``, then rename it into place."""
    atomic_write(path, lambda f: torch.save(obj, f))


# What torch.load(weights_only=True) raises on a damaged, truncated or foreign file.
TORCH_LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError)


class CheckpointCompatMixin:
    """Trainer mixin: checkpoints loadable with ``torch.load(weights_only=True)``, written atomically.

    The saved dict keeps RecBole's keys; ``config`` becomes ``{"model": name}`` (the only
    entry RecBole's ``resume_checkpoint`` reads) and numpy scalars become Python numbers.
    """

    def _checkpoint_state(self, epoch):
        return {
            "config": {"model": self.config["model"], "dataset": self.config["dataset"]},
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": to_plain(self.model.other_parameter()),
            "optimizer": to_plain(self.optimizer.state_dict()),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        atomic_torch_save(self._checkpoint_state(epoch), saved_model_file)
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")


class PandasCompatMixin:
    """Dataset mixin: RecBole's pandas-dependent steps written for pandas 2 and 3 alike."""

    def _fill_nan(self):
        from recbole.utils import FeatureType

        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
                else:
                    dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                    feat[field] = feat[field].apply(
                        lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                    )

    def _remap(self, remap_list):
        from recbole.utils import FeatureType

        if len(remap_list) == 0:
            return
        tokens, split_point = self._concat_remaped_tokens(remap_list)
        new_ids_list, mp = pd.factorize(tokens)
        new_ids_list = np.split(new_ids_list + 1, split_point)
        mp = np.array(["[PAD]"] + list(mp))
        token_id = {t: i for i, t in enumerate(mp)}
        for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
            if field not in self.field2id_token:
                self.field2id_token[field] = mp
                self.field2token_id[field] = token_id
            if ftype == FeatureType.TOKEN:
                feat[field] = new_ids
            elif ftype == FeatureType.TOKEN_SEQ:
                split_point = np.cumsum(feat[field].map(len).to_numpy())[:-1]
                feat[field] = np.split(new_ids, split_point)

    def _benchmark_presets(self):
        from recbole.utils import FeatureSource, FeatureType

        list_suffix = self.config["LIST_SUFFIX"]
        for field in self.inter_feat:
            if field + list_suffix in self.inter_feat:
                setattr(self, f"{field}_list_field", field + list_suffix)
        self.set_field_property(self.item_list_length_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        self.inter_feat[self.item_list_length_field] = self.inter_feat[self.item_id_list_field].map(len)


def _read_csv_with_empty_seq_cells(*args, **kwargs):
    """``pd.read_csv`` that returns ``""`` (not NaN) in empty ``field:*_seq`` columns, and whose
    errors name the atomic file and line (:func:`check_atomic_file`)."""
    path = args[0] if args else kwargs.get("filepath_or_buffer")
    try:
        df = pd.read_csv(*args, **kwargs)
    except (ValueError, UnicodeDecodeError) as err:  # pandas' ParserError is a ValueError
        raise _atomic_file_error(path, kwargs, err) from None
    if isinstance(path, str) and df.isna().to_numpy().any():
        check_atomic_file(path, kwargs.get("delimiter") or kwargs.get("sep") or "\t", kwargs.get("encoding"))
    for column in df.columns:
        if str(column).endswith("seq"):
            df[column] = df[column].fillna("")
    return df


def _numeric(column):
    return str(column).split(":", 1)[-1] in ("float", "int")


def _atomic_file_error(path, kwargs, err):
    """The first cell of ``path`` that is not a number in a numeric column, named; else ``err``."""
    from recbole_speeder.errors import DataError

    if isinstance(path, str) and os.path.isfile(path):
        sep = kwargs.get("delimiter") or kwargs.get("sep") or "\t"
        with open(path, "r", encoding=kwargs.get("encoding") or "utf-8", errors="replace") as f:
            header = f.readline().rstrip("\r\n").split(sep)
            numeric = [(i, c) for i, c in enumerate(header) if _numeric(c)]
            for number, line in enumerate(f, start=2):
                fields = line.rstrip("\r\n").split(sep)
                for i, column in numeric:
                    value = fields[i].strip() if i < len(fields) else ""
                    if not value:
                        continue
                    try:
                        float(value)
                    except ValueError:
                        return DataError(f"{path}, line {number}: column '{column}' holds {value!r}, which is not a "
                                         "number; fix or remove that line.")
    return DataError(f"Cannot read {path}: {err}")


def check_atomic_file(path, sep="\t", encoding=None, shown=5):
    """Lines of an ``.inter`` file with fewer fields than its header end in a DataError naming how
    many and the first line numbers (RecBole would fill their empty cells silently: a float
    column with its mean timestamp, a token with [PAD]); in other atomic files they are logged."""
    from logging import getLogger

    from recbole_speeder.errors import DataError

    with open(path, "r", encoding=encoding or "utf-8", errors="replace") as f:
        width = len(f.readline().rstrip("\r\n").split(sep))
        short = [n for n, line in enumerate(f, start=2)
                 if line.strip() and len(line.rstrip("\r\n").split(sep)) < width]
    if not short:
        return
    first = ", ".join(str(n) for n in short[:shown]) + (", ..." if len(short) > shown else "")
    message = (f"{path}: {len(short)} line(s) have fewer than the header's {width} fields (line {first}); "
               "RecBole would fill the missing cells (a float column with its mean)")
    if path.endswith(".inter"):
        raise DataError(message + ". Fix or remove those lines.")
    getLogger().warning(message + ".")


def install_pandas_shim():
    """Point ``recbole.data.dataset.dataset.pd`` at pandas with the read_csv above."""
    import recbole.data.dataset.dataset as recbole_dataset_module

    if getattr(recbole_dataset_module.pd, "_speeder_shim", False):
        return
    shim = types.SimpleNamespace(**{k: getattr(pd, k) for k in dir(pd) if not k.startswith("__")})
    shim.read_csv = _read_csv_with_empty_seq_cells
    shim._speeder_shim = True
    recbole_dataset_module.pd = shim


CUBLAS_WORKSPACE = ":4096:8"


def init_seed(seed, reproducibility):
    """RecBole's ``init_seed``; with ``reproducibility`` deterministic kernels on the GPU too (item 7)."""
    from recbole.utils import init_seed as recbole_init_seed

    if reproducibility:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS starts
    recbole_init_seed(seed, reproducibility)
    torch.use_deterministic_algorithms(bool(reproducibility), warn_only=True)


def quiet_harmless_warnings():
    """Filter the warnings of item 6, raised from RecBole's modules only; idempotent (a filter
    that is there already moves to the front). Called at import and by every run."""
    chained = getattr(pd.errors, "ChainedAssignmentError", None)
    if chained is not None:
        warnings.filterwarnings("ignore", category=chained, module=r"recbole\.data\.dataset\.dataset")
    pandas4 = getattr(pd.errors, "Pandas4Warning", None)
    if pandas4 is not None:
        warnings.filterwarnings("ignore", category=pandas4, module=r"recbole\.")
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler", category=FutureWarning,
                            module=r"recbole\.trainer")


def install_hyperopt_rng_shim():
    """Point ``recbole.trainer.hyper_tuning.np`` at numpy with ``random.RandomState = default_rng`` (item 8)."""
    import recbole.trainer.hyper_tuning as hyper_tuning

    if getattr(hyper_tuning.np, "_speeder_shim", False):
        return
    names = (k for k in dir(np.random) if not k.startswith("__"))
    random_namespace = types.SimpleNamespace(**{k: getattr(np.random, k) for k in names})
    random_namespace.RandomState = np.random.default_rng
    shim = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    shim.random = random_namespace
    shim._speeder_shim = True
    hyper_tuning.np = shim


def undo_global_anomaly_mode():
    """Import RecBole's sequential models (so SINE's import-time switch has run) and turn
    anomaly detection back off; later imports of the package run nothing again."""
    import recbole.model.sequential_recommender  # noqa: F401

    torch.autograd.set_detect_anomaly(False)


def _padding_safe(sdpa_mask):
    def padding_safe_sdpa_mask(*args, **kwargs):
        mask = sdpa_mask(*args, **kwargs)
        if not torch.is_tensor(mask) or mask.dtype != torch.bool:
            return mask
        return mask | ~mask.any(dim=-1, keepdim=True)

    padding_safe_sdpa_mask.speeder_padding_safe = True
    return padding_safe_sdpa_mask


def install_padding_safe_sdpa_mask():
    """Make transformers' SDPA masks free of all-masked query rows (item 9); idempotent.
    Called where the plugin loads or builds a backbone, so RecBole-only runs skip transformers."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    current = ALL_MASK_ATTENTION_FUNCTIONS["sdpa"]
    if not getattr(current, "speeder_padding_safe", False):
        AttentionMaskInterface.register("sdpa", _padding_safe(current))


install_numpy_aliases()
install_pandas_shim()
undo_global_anomaly_mode()
quiet_harmless_warnings()
