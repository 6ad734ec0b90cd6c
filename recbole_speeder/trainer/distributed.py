"""Data-parallel training of the LLM recommenders with Hugging Face ``accelerate``.

Launch the usual run script under ``accelerate launch --num_processes N`` or
``torchrun --nproc_per_node N``. When the launcher sets ``WORLD_SIZE`` > 1, each process:

- gets its device from the launcher (``cuda:LOCAL_RANK``, or the CPU when ``gpu_id`` is empty
  or no GPU exists); ``gpu_id`` is not written to ``CUDA_VISIBLE_DEVICES`` (choose GPUs with
  the environment of the launch). RecBole's own multi-process path (``local_rank`` in the
  config, NCCL initialised inside ``Config._init_device``, its ``DistributedSampler``) stays
  off: ``accelerate.Accelerator`` owns the process group (``distributed_backend``);
- trains on its shard of every epoch: the RecBole loader's own shuffled batches, batch i going
  to process i mod N (``accelerate``'s ``BatchSamplerShard``; the last round wraps around so
  every process runs the same number of steps). A process batch is ``train_batch_size``, so
  one optimizer step sees N x ``train_batch_size`` sequences;
- computes its loss inside a DDP-wrapped module (:class:`LossForward`), so gradients are
  averaged over the processes before every optimizer step; the wrapping is redone whenever
  the set of trainable parameters changes (the MPO stages);
- evaluates its share of the evaluation batches; the per-sequence ranks are gathered and put
  back in order, so every process returns the metrics one process would give;
- leaves logs, checkpoints, candidate sets and feature caches to process 0 (the others wait,
  then read what it wrote).

With ``WORLD_SIZE`` unset or 1, :func:`context_for` returns :data:`SINGLE`, whose methods hand
everything back unchanged: a single-process run never imports or touches ``accelerate``.
Only plain data parallelism (DDP) is supported; FSDP / DeepSpeed set up with
``accelerate config`` are refused (evaluation calls the model outside its forward).
"""

import contextlib
import logging
import shutil
import warnings

import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateEvaluator
from recbole_speeder.launch import launched_world_size

BACKENDS = ("auto", "nccl", "gloo")


class SingleProcess:
    """The context of an ordinary run: every method hands its input back unchanged."""

    enabled = False
    num_processes = 1
    process_index = 0
    is_main_process = True

    def main_process_first(self):
        return contextlib.nullcontext()

    def wait_for_everyone(self):
        pass

    def broadcast_object(self, obj):
        return obj

    def sum(self, value):
        return value

    def batches_per_process(self, loader):
        return len(loader)

    def shard(self, loader):
        return loader

    def loss_function(self, model):
        return model.calculate_loss

    def candidate_evaluator(self, config):
        return CandidateEvaluator(config)

    def seed_process(self, config):
        pass

    def silence_trainer(self, trainer):
        pass


SINGLE = SingleProcess()


class LossForward(torch.nn.Module):
    """``model.calculate_loss`` as a module's forward: DDP prepares its gradient all-reduce in
    ``forward``, and the recommenders compute their training loss outside ``forward``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, interaction):
        return self.model.calculate_loss(interaction)


class Distributed(SingleProcess):
    """One process of a launched data-parallel run (see the module doc)."""

    enabled = True

    def __init__(self, config):
        from accelerate import Accelerator, DistributedType
        from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

        backend = str(config["distributed_backend"] or "auto").lower()
        if backend not in BACKENDS:
            raise ConfigError(f"distributed_backend must be one of {', '.join(BACKENDS)} (got '{backend}').")
        device = torch.device(config["device"])
        if backend == "nccl" and device.type != "cuda":
            raise ConfigError("distributed_backend: nccl needs GPUs; this run is on the CPU (use gloo or auto).")
        handlers = [
            # the item-feature buffers are constant: no need to broadcast them at every step;
            # trainable parts may sit idle in a step (e.g. the vision adapter on text-only data)
            DistributedDataParallelKwargs(find_unused_parameters=True, broadcast_buffers=False),
        ]
        if backend != "auto":
            handlers.append(InitProcessGroupKwargs(backend=backend))
        try:
            # precision is the model's (llm_dtype), as in a single-process run
            self.accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="no", kwargs_handlers=handlers)
        except ValueError as err:
            raise ConfigError(f"distributed_backend: {err}") from None
        if self.accelerator.distributed_type not in (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU):
            raise ConfigError(
                f"Launched with accelerate's {self.accelerator.distributed_type.value} setup; recbole-speeder "
                "supports plain data parallelism only (MULTI_GPU / MULTI_CPU). Run `accelerate config` again "
                "without FSDP / DeepSpeed, or launch with torchrun."
            )
        if torch.device(self.accelerator.device) != device and device.type == "cuda":
            raise ConfigError(f"Process device {device} differs from accelerate's {self.accelerator.device}.")
        self.num_processes = self.accelerator.num_processes
        self.process_index = self.accelerator.process_index
        self.is_main_process = self.accelerator.is_main_process
        self.device = device
        self.seed = int(config["seed"])
        self._wrapped, self._wrapped_for = None, None
        self._shards = {}

    # -- coordination --------------------------------------------------------------------
    def main_process_first(self):
        """Process 0 runs the block first (it writes caches), then the others (they read them)."""
        return self.accelerator.main_process_first()

    def wait_for_everyone(self):
        self.accelerator.wait_for_everyone()

    def broadcast_object(self, obj):
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([obj], from_process=0)[0]

    def sum(self, value):
        """Sum of a number over the processes (same type back)."""
        total = self.accelerator.reduce(torch.tensor([float(value)], device=self.device), reduction="sum")
        return type(value)(total.item())

    def gather_objects(self, items):
        """Concatenation of every process's list ``items``, in process order."""
        from accelerate.utils import gather_object

        return gather_object(items)

    # -- training -------------------------------------------------------------------------
    def batches_per_process(self, loader):
        return len(self.shard(loader))

    def shard(self, loader):
        """This process's share of the RecBole ``loader``'s shuffled batches (module doc)."""
        if id(loader) not in self._shards:
            from accelerate.data_loader import BatchSamplerShard

            batches = BatchSamplerShard(
                loader.batch_sampler, num_processes=self.num_processes, process_index=self.process_index,
                split_batches=False, even_batches=True,
            )
            # a generator of its own: the loader must not draw from the global RNG
            self._shards[id(loader)] = (loader, torch.utils.data.DataLoader(
                list(range(loader.sample_size)), batch_sampler=batches, collate_fn=loader.collate_fn,
                num_workers=loader.num_workers, generator=torch.Generator().manual_seed(self.seed),
            ))
        return self._shards[id(loader)][1]

    def loss_function(self, model):
        """DDP-wrapped ``model.calculate_loss``; rewrapped when the trainable set changes."""
        trainable = tuple(id(p) for p in model.parameters() if p.requires_grad)
        if self._wrapped is None or self._wrapped_for != (id(model), trainable):
            self._wrapped = None
            self.accelerator.free_memory()  # drop the previous wrapper (and its gradient hooks)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
                self._wrapped = self.accelerator.prepare_model(LossForward(model), device_placement=False)
            self._wrapped_for = (id(model), trainable)
        return self._wrapped

    # -- evaluation and output --------------------------------------------------------------
    def candidate_evaluator(self, config):
        return ShardedCandidateEvaluator(config, self)

    def seed_process(self, config):
        """Seed ``seed + process index`` (as RecBole does per rank): after the model is built
        (same initial weights everywhere), each process draws its own training randomness."""
        from recbole.utils import init_seed

        init_seed(config["seed"] + self.process_index, config["reproducibility"])

    def silence_trainer(self, trainer):
        """Processes other than 0 write no TensorBoard files (RecBole opens one per trainer)."""
        if self.is_main_process:
            return
        writer = getattr(trainer, "tensorboard", None)
        if writer is not None and hasattr(writer, "log_dir"):
            writer.close()
            shutil.rmtree(writer.log_dir, ignore_errors=True)
        trainer.tensorboard = _NoTensorboard()


class _NoTensorboard:
    """Accepts TensorBoard calls and writes nothing (processes other than 0)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class ShardedCandidateEvaluator(CandidateEvaluator):
    """:class:`CandidateEvaluator` over N processes: batch i is scored by process i mod N, the
    per-sequence ranks are gathered and re-ordered by their row offset (each row exactly once),
    and the metrics are computed from all rows, so they equal a single process's."""

    def __init__(self, config, dist):
        super().__init__(config)
        self.dist = dist

    def keep_batch(self, index):
        return index % self.dist.num_processes == self.dist.process_index

    def collect(self, rows, ranked):
        rows = sorted(self.dist.gather_objects(rows), key=lambda row: row[0])
        return rows, all(self.dist.gather_objects([ranked]))


_CONTEXT = None


def context_for(config):
    """The process's context: :data:`SINGLE`, or one :class:`Distributed` per launched process."""
    global _CONTEXT
    if launched_world_size() <= 1:
        return SINGLE
    if _CONTEXT is None:
        _CONTEXT = Distributed(config)
    return _CONTEXT


def init_process_logging(config):
    """RecBole's ``init_logger`` on process 0; the others print errors only and write no file."""
    from recbole.utils import init_logger

    if context_for(config).is_main_process:
        init_logger(config)
        return
    handler = logging.StreamHandler()
    handler.setLevel(logging.ERROR)
    logging.basicConfig(level=logging.ERROR, handlers=[handler])
