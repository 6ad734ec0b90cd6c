"""RecBole dataset classes of the plugin: the pandas-3 fix and the models' side information.

The LLM models need more about an item than its id: frozen-encoder features (Speeder,
LLaRA), titles (the title baselines, MLLM-MSR) and item summaries (MLLM-MSR). As in
RecBole-GNN, the dataset carries the extra data a model declares: a model class lists what
it needs in ``side_info`` (names of :data:`SIDE_INFO`), the run attaches exactly that
(:func:`recbole_speeder.quick_start.attach_side_info`) before the model is built, and the
model reads it with :meth:`SideInfoMixin.side_info` (the run attaches it to the training
split, the dataset the model is built from).
"""

from recbole.data.dataset import Dataset, SequentialDataset

from recbole_speeder.compat import PandasCompatMixin
from recbole_speeder.errors import ConfigError

SIDE_INFO = {
    "item_features": "frozen-encoder features per item (features.loader.ItemFeatures)",
    "item_titles": "title per internal item id (data.item_table.item_titles)",
    "item_summaries": "title + image words per internal item id (features.image_summary.item_summaries)",
}


class SideInfoMixin:
    """Side information per item, attached by the run and read by the model."""

    _side_info = None

    def attach_side_info(self, **values):
        """Attach side information by name (see :data:`SIDE_INFO`)."""
        unknown = sorted(set(values) - set(SIDE_INFO))
        if unknown:
            raise ValueError(f"unknown side information {unknown}; known: {sorted(SIDE_INFO)}")
        if self._side_info is None:
            self._side_info = {}
        self._side_info.update(values)

    def side_info(self, name, model_name="the model"):
        """The attached side information ``name``; a ConfigError says what is missing."""
        if name not in SIDE_INFO:
            raise ValueError(f"unknown side information {name!r}; known: {sorted(SIDE_INFO)}")
        if not self._side_info or name not in self._side_info:
            raise ConfigError(f"{model_name} needs the {name} ({SIDE_INFO[name]}), and none were attached "
                              "to the dataset: declare it in the model's side_info and build the model through "
                              "recbole_speeder.quick_start (attach_side_info).")
        return self._side_info[name]


class SpeederDataset(PandasCompatMixin, Dataset):
    """RecBole's ``Dataset``, loading correctly under pandas 3."""


class SpeederSequentialDataset(SideInfoMixin, PandasCompatMixin, SequentialDataset):
    """RecBole's ``SequentialDataset``, loading correctly under pandas 3, with side information.

    With ``benchmark_filename`` (the paper's 7:2:1 split of sequences), every row of the
    ``.train/.valid/.test.inter`` files is one sequence: ``item_id_list`` is its history and
    ``item_id`` its target. Otherwise RecBole's data augmentation makes every prefix of a
    user's sequence a sample (leave-one-out ``LS`` split).
    """
