"""Training-time bookkeeping shared by every trainer the plugin hands out."""

import time

import torch


class TrainTimeMixin:
    """Adds ``train_seconds`` and ``train_samples`` (summed over epochs) to a RecBole trainer.

    Only the training epochs are timed (not validation), with the device synchronised, so
    ``train_seconds / train_samples`` is the per-sample training time of the benchmark table.
    """

    train_seconds = 0.0
    train_samples = 0
    epoch_samples = None

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.train_seconds += time.perf_counter() - start
        # trainers that stop an epoch early say how many samples they saw
        self.train_samples += getattr(self, "epoch_samples", None) or len(train_data._dataset)
        return loss
