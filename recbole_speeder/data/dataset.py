"""RecBole dataset classes with the pandas-3 fix of :mod:`recbole_speeder.compat`."""

from recbole.data.dataset import Dataset, SequentialDataset

from recbole_speeder.compat import PandasCompatMixin


class SpeederDataset(PandasCompatMixin, Dataset):
    """RecBole's ``Dataset``, loading correctly under pandas 3."""


class SpeederSequentialDataset(PandasCompatMixin, SequentialDataset):
    """RecBole's ``SequentialDataset``, loading correctly under pandas 3.

    With ``benchmark_filename`` (the paper's 7:2:1 split of sequences), every row of the
    ``.train/.valid/.test.inter`` files is one sequence: ``item_id_list`` is its history and
    ``item_id`` its target. Otherwise RecBole's data augmentation makes every prefix of a
    user's sequence a sample (leave-one-out ``LS`` split).
    """
