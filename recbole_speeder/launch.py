"""What a launcher (``torchrun`` / ``accelerate launch``) tells a process, read before anything else.

The configuration needs this before the data and the model exist (``Config._init_device``):
the process's device and whether RecBole's own multi-process keys may be used. The training
side of a launched run is :mod:`recbole_speeder.trainer.distributed`.
"""

import os
import time

import torch

from recbole_speeder.errors import ConfigError


def launched_world_size():
    """Processes started by the launcher (``WORLD_SIZE``; 1 when not launched)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE must be an integer (got '{os.environ['WORLD_SIZE']}').") from None


def launched_rank():
    """This process's rank among the launched ones (0 when not launched)."""
    return int(os.environ.get("RANK", "0")) if launched_world_size() > 1 else 0


def wait_for_main_process(ready, what, timeout=600.0, poll=0.2):
    """Before the process group exists (while the configuration is read): a process other than
    0 waits until ``ready()`` is true, i.e. until process 0 has written ``what``, instead of
    writing it too. Raises :class:`ConfigError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise ConfigError(f"Process {launched_rank()} waited {timeout:.0f} s for process 0 to write {what}; "
                              "it did not (see process 0's error).")
        time.sleep(poll)


def check_recbole_ddp_keys(config_dict):
    """Refuse RecBole's own multi-process keys: ``local_rank`` makes RecBole's ``Config``
    start an NCCL process group itself, which would clash with the launcher's."""
    if "local_rank" in config_dict:
        raise ConfigError(
            "The key 'local_rank' starts RecBole's own multi-GPU mode, which recbole-speeder replaces. "
            "Launch with `accelerate launch --num_processes N run_recbole_speeder.py ...` or "
            "`torchrun --nproc_per_node N run_recbole_speeder.py ...` (they pass the rank in the environment)."
        )
    for key in ("nproc", "world_size"):
        value = config_dict.get(key)
        if value is not None and str(value).strip().lstrip("-").isdigit() and int(value) > 1:
            raise ConfigError(
                f"'{key}: {value}' asks for RecBole's own multi-process mode; launch N processes with "
                "`accelerate launch --num_processes N` or `torchrun --nproc_per_node N` instead."
            )


def init_launched_device(config_dict):
    """RecBole's ``_init_device`` for a launched process; False (nothing done) when not launched.

    Keeps RecBole in its single-process mode (``single_spec``, ``local_rank`` 0 on every
    process, so every process builds the same initial model) and picks ``cuda:LOCAL_RANK``.
    Processes other than 0 log errors only and show no progress bars.
    """
    if launched_world_size() <= 1:
        return False
    gpu_id = config_dict["gpu_id"]
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
    config_dict["gpu_id"] = gpu_id
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = bool(gpu_id) and torch.cuda.is_available()
    config_dict["device"] = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    config_dict["single_spec"] = True
    config_dict["local_rank"] = 0
    if int(os.environ.get("RANK", "0")) != 0:
        config_dict["state"] = "error"
        config_dict["show_progress"] = False
        config_dict["verbose"] = False
    return True
