"""Training-time bookkeeping shared by every trainer the plugin hands out."""

import threading
import time

import torch

GPU_BUSY_INTERVAL_S = 0.2  # NVML's utilisation counter covers the last 1/6 s to 1 s


class GpuBusySampler:
    """The share of wall time a GPU ran kernels while the block runs: NVML's utilisation
    (``torch.cuda.utilization``, the percent of the last sample period in which a kernel ran) read
    every :data:`GPU_BUSY_INTERVAL_S` seconds by a background thread. :attr:`why_not` says why
    there is no figure (no GPU, or no NVML: ``pip install nvidia-ml-py``)."""

    def __init__(self, device):
        self.samples = []
        self.device = torch.device(device) if device is not None else None
        self.why_not = None
        if self.device is None or self.device.type != "cuda" or not torch.cuda.is_available():
            self.why_not = "no GPU"
        else:
            try:
                torch.cuda.utilization(self.device)
            except Exception as err:  # pynvml missing, or NVML not loadable
                self.why_not = f"NVML unavailable ({type(err).__name__}; pip install nvidia-ml-py)"
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.why_not is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _sample(self):
        while not self._stop.wait(GPU_BUSY_INTERVAL_S):
            self.samples.append(torch.cuda.utilization(self.device))

    def share(self):
        """The mean busy share (0..1) of the samples so far, or None."""
        return sum(self.samples) / (100.0 * len(self.samples)) if self.samples else None

    def describe(self):
        """One line for the log: the busy share, or why there is none."""
        share = self.share()
        if share is None:
            return f"GPU busy: n/a ({self.why_not or 'no sample: the training ran shorter than one interval'})"
        return (f"GPU busy: {100 * share:.0f}% of the training wall time (NVML, {len(self.samples)} samples; "
                "well below 100% means the host does not keep the GPU fed)")


class TrainTimeMixin:
    """Adds ``train_seconds`` and ``train_samples`` (summed over epochs) to a RecBole trainer, and
    the GPU's busy share of the training time (:class:`GpuBusySampler`, logged after each ``fit``).

    Only the training epochs are timed (not validation), with the device synchronised, so
    ``train_seconds / train_samples`` is the per-sample training time of the benchmark table.
    """

    train_seconds = 0.0
    train_samples = 0
    epoch_samples = None
    _gpu_busy = None

    @property
    def gpu_busy(self):
        """The run's :class:`GpuBusySampler` (made at the first training epoch)."""
        if self._gpu_busy is None:
            self._gpu_busy = GpuBusySampler(self.config["device"])
        return self._gpu_busy

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        with self.gpu_busy:
            loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        self.train_seconds += time.perf_counter() - start
        # trainers that stop an epoch early say how many samples they saw
        self.train_samples += getattr(self, "epoch_samples", None) or len(train_data._dataset)
        return loss

    def fit(self, *args, **kwargs):
        outcome = super().fit(*args, **kwargs)
        if self.train_samples:
            self.logger.info(self.gpu_busy.describe())
        return outcome
