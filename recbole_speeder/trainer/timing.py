"""Training-time bookkeeping shared by every trainer the plugin hands out: the per-sample training
time, the GPU's busy share, and the run's wall time by phase (:class:`PhaseClock`)."""

import contextlib
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


def _synchronize():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class PhaseClock:
    """Wall seconds of a run by phase (data, features, model, fit, test...; inside ``fit``: train,
    valid, checkpoint), each phase timed with the GPU synchronised at both ends, so a phase holds
    the GPU work it queued. A phase entered again adds up (``counts`` says how often); phases may
    nest (``fit`` holds ``train``). :meth:`describe` is the run's one log line of where the
    seconds went."""

    def __init__(self):
        self.seconds = {}
        self.counts = {}
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name):
        _synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            _synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.counts[name] = self.counts.get(name, 0) + 1

    def total(self):
        """Seconds since the clock was made."""
        return time.perf_counter() - self.started

    def as_dict(self):
        """``{phase: seconds}`` plus ``total`` (rounded to 0.1 s), for the run's result."""
        out = {name: round(value, 1) for name, value in self.seconds.items()}
        out["total"] = round(self.total(), 1)
        return out

    def describe(self, inner=("train", "valid", "checkpoint")):
        """One line: each top-level phase's seconds, ``fit`` with its ``inner`` phases and the rest
        of it (stage switches, best-weight loads), and the total."""
        parts = []
        for name, value in self.seconds.items():
            if name in inner:
                continue
            text = f"{name} {value:.1f} s"
            if name == "fit":
                shown = [(n, self.seconds[n], self.counts[n]) for n in inner if n in self.seconds]
                rest = value - sum(v for _, v, _ in shown)
                text += " (" + ", ".join(f"{n} {v:.1f} s in {c}" for n, v, c in shown) + f", other {rest:.1f} s)"
            parts.append(text)
        return "Wall time by phase: " + " | ".join(parts) + f" | total {self.total():.1f} s"


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
    _phase_clock = None

    @property
    def phase_clock(self):
        """The run's :class:`PhaseClock` (``quick_start.run`` hands the trainer its own; a trainer
        used alone makes one): training epochs, validations and checkpoint writes are its
        ``train``, ``valid`` and ``checkpoint`` phases."""
        if self._phase_clock is None:
            self._phase_clock = PhaseClock()
        return self._phase_clock

    @phase_clock.setter
    def phase_clock(self, clock):
        self._phase_clock = clock

    def _valid_epoch(self, *args, **kwargs):
        with self.phase_clock.phase("valid"):
            return super()._valid_epoch(*args, **kwargs)

    def _save_checkpoint(self, *args, **kwargs):
        with self.phase_clock.phase("checkpoint"):
            return super()._save_checkpoint(*args, **kwargs)

    @property
    def gpu_busy(self):
        """The run's :class:`GpuBusySampler` (made at the first training epoch)."""
        if self._gpu_busy is None:
            self._gpu_busy = GpuBusySampler(self.config["device"])
        return self._gpu_busy

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        _synchronize()
        start = time.perf_counter()
        with self.phase_clock.phase("train"), self.gpu_busy:
            loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
            _synchronize()
        self.train_seconds += time.perf_counter() - start
        # trainers that stop an epoch early say how many samples they saw
        self.train_samples += getattr(self, "epoch_samples", None) or len(train_data._dataset)
        return loss

    def fit(self, *args, **kwargs):
        outcome = super().fit(*args, **kwargs)
        if self.train_samples:
            self.logger.info(self.gpu_busy.describe())
        return outcome
