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
   RecBole's unchanged loading code works with ``weights_only=True``.
3. pandas 3 (copy-on-write) turns ``df[col].fillna(..., inplace=True)`` into a silent no-op,
   and ``Series.agg(len)`` now returns the length of the Series instead of one length per
   row. RecBole relies on the first in ``Dataset._fill_nan`` and ``Dataset._load_feat`` and
   on the second in ``Dataset._remap`` and ``SequentialDataset._benchmark_presets`` (the
   ``token_seq`` fields). :class:`PandasCompatMixin` re-implements ``_fill_nan``, ``_remap``
   and ``_benchmark_presets`` with per-row ``map(len)`` and assignments; ``_load_feat`` offers
   no seam, so :func:`install_pandas_shim` gives the module ``recbole.data.dataset.dataset``
   a pandas namespace whose ``read_csv`` already returns ``""`` for empty ``*_seq`` cells.
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
6. Not RecBole but the LLM stack: transformers 5 builds SDPA masks in which a left-padding
   query row attends to no key at all (the fix older versions applied was retired), and
   CUDA's SDPA kernels return NaN for such rows; the NaN then spreads through the next
   layer (``0 * NaN``). Long left-padded title prompts (TALLRec, LLaRA) hit it on the GPU as
   "Training loss is nan". :func:`install_padding_safe_sdpa_mask` wraps transformers' "sdpa"
   mask function so that a row with no allowed key may attend to every key; only padding
   positions change, and nothing reads their outputs.
"""

import types

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
    """``pd.read_csv`` that returns ``""`` (not NaN) in empty ``field:*_seq`` columns."""
    df = pd.read_csv(*args, **kwargs)
    for column in df.columns:
        if str(column).endswith("seq"):
            df[column] = df[column].fillna("")
    return df


def install_pandas_shim():
    """Point ``recbole.data.dataset.dataset.pd`` at pandas with the read_csv above."""
    import recbole.data.dataset.dataset as recbole_dataset_module

    if getattr(recbole_dataset_module.pd, "_speeder_shim", False):
        return
    shim = types.SimpleNamespace(**{k: getattr(pd, k) for k in dir(pd) if not k.startswith("__")})
    shim.read_csv = _read_csv_with_empty_seq_cells
    shim._speeder_shim = True
    recbole_dataset_module.pd = shim


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
    """Make transformers' SDPA masks free of all-masked query rows (item 6); idempotent.
    Called where the plugin loads or builds a backbone, so RecBole-only runs skip transformers."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    current = ALL_MASK_ATTENTION_FUNCTIONS["sdpa"]
    if not getattr(current, "speeder_padding_safe", False):
        AttentionMaskInterface.register("sdpa", _padding_safe(current))


install_numpy_aliases()
install_pandas_shim()
undo_global_anomaly_mode()
