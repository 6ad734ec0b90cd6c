"""Timing of benchmarks/efficiency.py: the device (synchronisation, peak memory), the timed training
and inference steps with the optimizer they run, and one profiled training step with its host-side counts."""

import gc
import statistics
import time

import torch

from efficiency_inputs import _chunks


class Device:
    """Synchronisation and peak memory of the benchmark's device."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.memory_kind = "torch.cuda.max_memory_allocated" if self.cuda else "peak RSS (VmHWM, reset per measurement)"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.memory_kind = "peak RSS of the process (ru_maxrss, not resettable here)"

    def peak_mib(self):
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def free(self):
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()


def is_oom(err):
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def _timed(steps, samples, repeat, dev):
    """ms per sample of ``steps()`` (the timed steps, the device synchronised after them), measured
    ``repeat`` times: [ms per sample of each time]."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        steps()
        dev.sync()
        times.append(1000.0 * (time.perf_counter() - start) / samples)
    return times


def training_optimizer(params):
    """AdamW as the plugin's trainer runs it: fused on a GPU (``fused_adam``)."""
    from recbole_speeder.trainer.llm_trainer import fused_adam

    return fused_adam(torch.optim.AdamW(params, lr=1e-5))


def optimizer_setting(dev):
    """The optimizer of the timed steps, as the table's setting ``optimizer``: read from the one
    :func:`training_optimizer` builds for a parameter on the benchmark's device."""
    optimizer = training_optimizer([torch.zeros(1, device=dev.device, requires_grad=True)])
    return f"{type(optimizer).__name__}, fused" if optimizer.defaults.get("fused") else type(optimizer).__name__


def time_training(model, batches, warmup, micro, dev, repeat=1):
    """(ms per sample (the median of ``repeat`` timings of the same steps), peak MiB, every timing)
    of calculate_loss + backward + AdamW; None if nothing trains."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None, None, None
    optimizer = training_optimizer(params)
    model.train()

    def step(interaction):
        optimizer.zero_grad(set_to_none=True)
        for part, _ in _chunks(interaction, micro):
            # the batch stays on the host, as the plugin's trainer leaves it: the models move what
            # they need in non-blocking copies (trainer/llm_trainer.py)
            model.begin_step()  # as the trainer marks each step (CUDA graphs, llm_compile: reduce-overhead)
            loss = model.calculate_loss(part) * (len(part) / len(interaction))
            loss.backward()
        optimizer.step()

    for interaction in batches[:warmup]:
        step(interaction)
    dev.sync()
    dev.reset_peak()
    def timed_steps():
        for interaction in batches[warmup:]:
            step(interaction)

    times = _timed(timed_steps, sum(len(b) for b in batches[warmup:]), repeat, dev)
    optimizer.zero_grad(set_to_none=True)
    del optimizer
    return statistics.median(times), dev.peak_mib(), times


def profile_training(model, interaction, micro, dev, path, rows=30):
    """torch.profiler over one training step (after one untimed step): the operators with
    the most self time, written to ``path`` as a table (where the plugin's overhead goes)."""
    from torch.profiler import ProfilerActivity, profile

    from recbole_speeder.atomic import atomic_write_text

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = training_optimizer(params)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        for part, _ in _chunks(interaction, micro):
            model.begin_step()
            (model.calculate_loss(part) * (len(part) / len(interaction))).backward()  # host batch (time_training)
        optimizer.step()

    step()
    dev.sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])
    with profile(activities=activities) as prof:
        step()
        dev.sync()
    sort_by = "self_cuda_time_total" if dev.cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort_by, row_limit=rows, max_name_column_width=60)
    summary = profile_summary(prof)
    lines = [f"{k}: {v}" for k, v in summary.items()]
    atomic_write_text(path, table + "\nHost side of the step (what launches work and what waits for the device):\n"
                      + "\n".join(lines) + "\n")
    optimizer.zero_grad(set_to_none=True)
    return summary


SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::masked_select",
            "aten::unique_consecutive", "aten::is_nonzero")
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")
STREAM_SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def profile_summary(prof):
    """Counts of one profiled step: operators dispatched (aten ops not called by another aten
    op: from Python or from autograd), reads of a tensor value on the host (``.item()``,
    ``int(t)``, ``bool(t)``: a synchronisation on a GPU), other operators whose output size
    needs the device (nonzero, unique, masked_select), and on a GPU the kernel launches,
    stream synchronisations and memory copies."""
    dispatched = 0
    for event in prof.events():
        if event.name.startswith("aten::"):
            parent = event.cpu_parent
            if parent is None or not parent.name.startswith("aten::"):
                dispatched += 1
    counts = {}
    for event in prof.key_averages():
        counts[event.key] = counts.get(event.key, 0) + event.count
    summary = {
        "operators dispatched": dispatched,
        "host reads of tensor values (aten::_local_scalar_dense)": counts.get("aten::_local_scalar_dense", 0),
        "size-dependent operators (nonzero, unique, masked_select)": sum(
            counts.get(k, 0) for k in SYNC_OPS if k not in ("aten::_local_scalar_dense", "aten::is_nonzero")),
    }
    if any(k in counts for k in LAUNCHES):
        summary["kernel launches"] = sum(counts.get(k, 0) for k in LAUNCHES)
        summary["stream / device synchronisations"] = sum(counts.get(k, 0) for k in STREAM_SYNCS)
        summary["memory copies (cudaMemcpyAsync)"] = counts.get("cudaMemcpyAsync", 0)
    return summary


@torch.no_grad()
def time_inference(model, batches, candidates, warmup, micro, dev, prompt_length, repeat=1):
    """(ms per sample (the median of ``repeat`` timings), peak MiB, prompt tokens per sample, every
    timing) of candidate_scores."""
    model.eval()

    def step(interaction, cands):
        for part, part_cands in _chunks(interaction, micro, cands):
            model.begin_step()
            model.candidate_scores(part.to(dev.device), part_cands.to(dev.device))

    for interaction, cands in zip(batches[:warmup], candidates[:warmup]):
        step(interaction, cands)
    prompt_length.reset()
    dev.sync()
    dev.reset_peak()
    def timed_steps():
        for interaction, cands in zip(batches[warmup:], candidates[warmup:]):
            step(interaction, cands)

    times = _timed(timed_steps, sum(len(b) for b in batches[warmup:]), repeat, dev)
    return statistics.median(times), dev.peak_mib(), prompt_length.value, times
