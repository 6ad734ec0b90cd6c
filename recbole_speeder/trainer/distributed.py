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
  then read what it wrote);
- ends cleanly: ``quick_start.run`` ends with :meth:`Distributed.end_run` (every process waits
  for the others); when the process exits after a run that ended so, the process group is
  destroyed (:meth:`Distributed.close`, an ``atexit`` hook), so NCCL's communicators are freed
  in the same order everywhere and PyTorch's exit warning about ``destroy_process_group`` is not
  given. It is destroyed at exit, not at the end of ``run``, because a process group cannot be
  started twice in one process under ``torchrun`` (the second rendezvous reads the first's
  keys): several runs in one launched process share it. After a failed run nothing is waited
  for (the launcher stops the other processes). A script that uses this module without
  ``run`` calls :meth:`Distributed.close` at its end.

``distributed_strategy: fsdp`` shards the backbone's frozen decoder weights over the processes
with PyTorch's FSDP2 (``fully_shard`` on every decoder layer, see :meth:`Distributed.shard_backbone`);
the trainable weights (LoRA, MRC, PPL, projectors) stay whole on every process, their gradients
averaged by DDP as above, so optimizers and checkpoints are the same as with ``ddp``.
Evaluation gathers every layer's full weights once for the pass (:meth:`Distributed.full_weights`)
and shards them again after it. FSDP / DeepSpeed set up with ``accelerate config`` /
``accelerate launch --use_fsdp`` are refused (they would shard the trainable weights too and
replace the parameters the optimizer holds): use ``distributed_strategy: fsdp`` instead.

With ``WORLD_SIZE`` unset or 1, :func:`context_for` returns :data:`SINGLE`, whose methods hand
everything back unchanged: a single-process run never imports or touches ``accelerate``.
"""

import atexit
import contextlib
import logging
import os
import shutil
import warnings

import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateEvaluator
from recbole_speeder.launch import launched_world_size

BACKENDS = ("auto", "nccl", "gloo")
STRATEGIES = ("ddp", "fsdp")
# models whose training step calls the backbone exactly once on every process (FSDP gathers each
# layer's weights in every forward and backward: the processes must make the same calls).
# MLLMMSR also generates preference summaries inside training steps, a different number of
# tokens on each process; ZeroShot trains nothing.
FSDP_MODELS = ("Speeder", "LLaRA", "TALLRec")
# accelerate's own sharding setups (``accelerate config`` / ``accelerate launch --use_fsdp``)
ACCELERATE_SHARDING_ENV = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")


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

    def full_weights(self, model):
        return contextlib.nullcontext()

    def begin_run(self):
        pass

    def end_run(self):
        pass

    def close(self):
        pass


SINGLE = SingleProcess()


def check_strategy(config, environ=None):
    """``distributed_strategy`` of a launched run ('ddp' or 'fsdp'); refuses an unknown value
    and accelerate's own FSDP / DeepSpeed setups (module doc)."""
    environ = os.environ if environ is None else environ
    strategy = str(_key(config, "distributed_strategy") or "ddp").lower()
    if strategy not in STRATEGIES:
        raise ConfigError(f"distributed_strategy must be one of {', '.join(STRATEGIES)} (got '{strategy}').")
    for var in ACCELERATE_SHARDING_ENV:
        if str(environ.get(var, "")).lower() in ("1", "true", "yes"):
            kind = "FSDP" if "FSDP" in var else "DeepSpeed"
            raise ConfigError(
                f"Launched with accelerate's {kind} setup ({var}); recbole-speeder shards with its own "
                "`distributed_strategy: fsdp` (the backbone's frozen weights only) on a plain launch: "
                "`accelerate launch --multi_gpu --num_processes N ...` or `torchrun --nproc_per_node N ...` "
                "(run `accelerate config` again without FSDP / DeepSpeed, or pass --multi_gpu)."
            )
    return strategy


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

        self.strategy = check_strategy(config)
        backend = str(_key(config, "distributed_backend") or "auto").lower()
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
                "runs on plain data-parallel processes (MULTI_GPU / MULTI_CPU) and shards with its own "
                "`distributed_strategy: fsdp`. Run `accelerate config` again without FSDP / DeepSpeed, "
                "or launch with torchrun."
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
        self._fsdp = {}  # id(model) -> (model, its decoder layers sharded by shard_backbone)
        self.closed = False
        self._run_ended = False
        atexit.register(self._close_at_exit)

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
        """DDP-wrapped ``model.calculate_loss``; rewrapped when the trainable set (or
        :attr:`strategy`) changes. With ``distributed_strategy: fsdp`` the backbone is sharded
        first (once per model) and DDP leaves the sharded weights alone (they are frozen)."""
        if self.strategy == "fsdp":
            self.shard_backbone(model)
        trainable = tuple(id(p) for p in model.parameters() if p.requires_grad)
        if self._wrapped is None or self._wrapped_for != (id(model), trainable, self.strategy):
            self._wrapped = None
            self.accelerator.free_memory()  # drop the previous wrapper (and its gradient hooks)
            module = LossForward(model)
            sharded = [name for name, p in module.named_parameters() if _is_sharded(p)]
            if sharded:
                if any(p.requires_grad for p in module.parameters() if _is_sharded(p)):
                    raise ConfigError("distributed_strategy: fsdp shards the backbone's frozen weights only; "
                                      "a sharded weight was made trainable.")
                from torch.nn.parallel import DistributedDataParallel

                DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, sharded)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
                if sharded:
                    # accelerate refuses any module holding DTensors on GPUs (seen on 2 H200s,
                    # 2026-11-30), the ignored sharded ones included: wrap as it would, directly
                    self._wrapped = DistributedDataParallel(
                        module, device_ids=[self.device] if self.device.type == "cuda" else None,
                        find_unused_parameters=True, broadcast_buffers=False)
                else:
                    self._wrapped = self.accelerator.prepare_model(module, device_placement=False)
            self._wrapped_for = (id(model), trainable, self.strategy)
        return self._wrapped

    # -- FSDP (distributed_strategy: fsdp) ----------------------------------------------------
    def shard_backbone(self, model):
        """Shard ``model.llm``'s frozen decoder-layer weights over the processes with FSDP2
        (``fully_shard`` on every decoder layer, the decoder as their root); LoRA and every
        other trainable weight, the embeddings, the final norm and the LM head stay whole
        (they are read directly, outside the decoder's forward). Done once per model; returns
        the sharded layers."""
        if id(model) in self._fsdp:
            return self._fsdp[id(model)][1]
        name = type(model).__name__
        if name not in FSDP_MODELS:
            raise ConfigError(f"distributed_strategy: fsdp trains {', '.join(FSDP_MODELS)} only ({name} calls the "
                              "backbone a different number of times on each process); use ddp.")
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        from recbole_speeder.llm.decoding import causal_lm_parts

        decoder, _ = causal_lm_parts(model.llm)
        layers = getattr(decoder, "layers", None)
        if not isinstance(layers, torch.nn.ModuleList) or not len(layers):
            raise ConfigError(f"distributed_strategy: fsdp needs a decoder with a `layers` list; "
                              f"{type(decoder).__name__} has none.")
        mesh = init_device_mesh(self.device.type, (self.num_processes,))

        def kept_whole(module):
            return {p for n, p in module.named_parameters() if p.requires_grad or "lora_" in n}

        in_layers = set()
        for layer in layers:
            in_layers |= set(layer.parameters())
            fully_shard(layer, mesh=mesh, reshard_after_forward=True, ignored_params=kept_whole(layer))
        # the root: gathers nothing itself (embeddings and norm kept whole), lets the layers
        # free their gathered weights after each forward (a root FSDP module would keep its own)
        fully_shard(decoder, mesh=mesh, ignored_params={p for p in decoder.parameters() if p not in in_layers})
        self._fsdp[id(model)] = (model, list(layers))
        return self._fsdp[id(model)][1]

    @contextlib.contextmanager
    def full_weights(self, model):
        """Every sharded layer's full weights on every process for the block (gathered once),
        sharded again after it: evaluation and generation then call no collective per forward,
        so the processes may run different numbers of batches and tokens."""
        layers = self._fsdp.get(id(model), (None, ()))[1]
        for layer in layers:
            layer.set_reshard_after_forward(False, recurse=False)
            layer.unshard()
        try:
            yield
        finally:
            for layer in layers:
                layer.reshard()
                layer.set_reshard_after_forward(True, recurse=False)

    # -- end ------------------------------------------------------------------------------------
    def begin_run(self):
        """A run starts: until :meth:`end_run`, an exit is not a clean end."""
        self._run_ended = False

    def end_run(self):
        """A run ended on every process (they wait for each other here); the process group is
        destroyed when the process exits (module doc)."""
        self.wait_for_everyone()
        self._run_ended = True

    def _close_at_exit(self):
        if self._run_ended and not self.closed:
            self.close()

    def close(self):
        """Wait for every process, then destroy the process group (accelerate's state with it).
        No collective can follow in this process: a later :func:`context_for` refuses."""
        from accelerate.state import AcceleratorState, GradientState

        if self.closed:
            return
        self.accelerator.wait_for_everyone()
        self._wrapped, self._shards, self._fsdp = None, {}, {}
        self.accelerator.free_memory()
        self.accelerator.end_training()  # destroy_process_group()
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        self.closed = True
        atexit.unregister(self._close_at_exit)

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


def _key(config, name):
    """``config[name]``, None when unset (a RecBole Config or a plain dict)."""
    try:
        return config[name]
    except KeyError:
        return None


def _is_sharded(param):
    from torch.distributed.tensor import DTensor

    return isinstance(param, DTensor)


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

    def evaluate(self, model, eval_data, candidate_set):
        with self.dist.full_weights(model):  # FSDP: full weights for the pass
            return super().evaluate(model, eval_data, candidate_set)

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
    if _CONTEXT.closed:
        raise ConfigError("The process group of this launched process was closed (Distributed.close); "
                          "it cannot be started again in the same process.")
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
