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
    "sequence_teacher": "the frozen SASRec trained for the seq features (features.sequential.load_sequence_teacher)",
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
    ``item_id`` its target; a history longer than ``MAX_ITEM_LIST_LENGTH`` keeps its most
    recent ``MAX_ITEM_LIST_LENGTH`` items, as RecBole's augmentation does on the leave-one-out
    path (the items cut off still count as the user's in the candidate sets:
    :attr:`items_cut_from_histories`). Otherwise RecBole's data augmentation makes every prefix
    of a user's sequence a sample (leave-one-out ``LS`` split).
    """

    items_cut_from_histories = None  # {user id: set of item ids} the history cut removed

    def _benchmark_presets(self):
        self._cut_long_histories()
        super()._benchmark_presets()

    def _cut_long_histories(self):
        """Keep the last ``MAX_ITEM_LIST_LENGTH`` entries of every ``*_list`` column."""
        limit = int(self.config["MAX_ITEM_LIST_LENGTH"])
        suffix = self.config["LIST_SUFFIX"]
        cut = {}
        for field in list(self.inter_feat.columns):
            if not field.endswith(suffix) or field[: -len(suffix)] not in self.inter_feat.columns:
                continue
            lengths = self.inter_feat[field].map(len)
            if field == self.iid_field + suffix and (lengths > limit).any():
                long_rows = self.inter_feat.loc[(lengths > limit).to_numpy()]
                for uid, seq in zip(long_rows[self.uid_field], long_rows[field]):
                    cut.setdefault(int(uid), set()).update(int(i) for i in seq[:-limit])
                self.logger.info(f"{int((lengths > limit).sum())} of {len(lengths)} histories are longer than "
                                 f"MAX_ITEM_LIST_LENGTH={limit}: their most recent {limit} items are kept")
            self.inter_feat[field] = [seq[-limit:] if len(seq) > limit else seq for seq in self.inter_feat[field]]
            self.field2seqlen[field] = min(int(self.field2seqlen.get(field, limit) or limit), limit)
        self.items_cut_from_histories = cut


def sequential_dataset_class(model_name):
    """The dataset class of a sequential model: :class:`SpeederSequentialDataset`, on top of
    RecBole's own ``<Model>Dataset`` where RecBole has one (DIEN's adds negative item lists)."""
    import recbole.data.dataset as recbole_datasets

    own = getattr(recbole_datasets, f"{model_name}Dataset", None)
    if own is None or not issubclass(own, SequentialDataset) or own is SequentialDataset:
        return SpeederSequentialDataset
    return type(f"Speeder{own.__name__}", (SpeederSequentialDataset, own), {})
