"""Checkpoints of the LLM recommenders: one folder per checkpoint, written atomically.

    <checkpoint>/
        adapter/             the LoRA adapters in peft's own format (``save_pretrained``);
                             absent for a model without LoRA (ZeroShot)
        plugin.safetensors   every parameter and buffer of the model outside the LLM
                             (MRC, PPL, projectors...)
        trainer_state.pt     epoch, optimizer, scheduler, the random-number generators
                             (python, numpy, torch, CUDA: :func:`rng_state`) and the
                             training loader's shuffling generator (the data order), ...
                             (plain values and tensors: loads with
                             ``torch.load(weights_only=True)``)

Loading is strict: the saved adapter configuration must match the model's (rank, alpha,
target modules), every saved adapter weight must land in the model, and the plugin weights
must be exactly the model's. A file that cannot be read ends in a clear message.

What a resumed run needs besides weights and optimizer, for every trainer the plugin hands out
(:class:`ResumeStateMixin`): the random generators, the training loader's shuffling generator and
the best validation so far. RecBole's own models keep RecBole's ``.pth`` file
(:class:`RecBoleCheckpointMixin`): RecBole's keys, plus ``rng``, ``data_order``, ``scheduler`` and
``best_valid_result``, so RecBole still reads it and ``--resume`` continues the run exactly. Every
checkpoint name carries a random suffix (:func:`unique_checkpoint_name`), so runs that start in
the same second never share one.
"""

import json
import os
import random

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recbole_speeder.atomic import atomic_folder, write_failed
from recbole_speeder.compat import TORCH_LOAD_ERRORS, to_plain
from recbole_speeder.errors import ConfigError, DataError

STATE_FILE = "trainer_state.pt"
PLUGIN_FILE = "plugin.safetensors"
ADAPTER_DIR = "adapter"
_ADAPTER_KEYS = ("peft_type", "r", "lora_alpha", "target_modules", "use_rslora", "use_dora", "modules_to_save")


def rng_state():
    """The python, numpy, torch (and, once CUDA is in use, every GPU's) random states, as plain
    values and tensors: what a resumed run needs to draw what the uninterrupted one drew."""
    version, keys, gauss = random.getstate()
    kind, mt, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "keys": torch.tensor(keys, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(mt.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(k) for k in py["keys"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].cpu().numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def unique_checkpoint_name(recbole_name, extension=".pth"):
    """RecBole's ``<checkpoint_dir>/<Model>-<time>.pth`` as ``<Model>-<time>-<6 hex digits>`` +
    ``extension``. RecBole names a checkpoint by the second its run started, so two runs started in
    the same second with one ``checkpoint_dir`` wrote one file and each reloaded the other's; the
    suffix comes from ``os.urandom``, so no seeded generator is touched."""
    stem = recbole_name[: -len(".pth")] if recbole_name.endswith(".pth") else recbole_name
    return f"{stem}-{os.urandom(3).hex()}{extension}"


class ResumeStateMixin:
    """Trainer mixin: what a checkpoint needs, besides weights and optimizer, for a resumed run to
    draw what the uninterrupted run drew: the random generators and the training loader's shuffling
    generator (:meth:`_random_state`, as of the checkpoint), and the metrics of the best validation
    (:meth:`_best_result_so_far`). ``fit`` restores what :meth:`_expect_random_state` was given."""

    _train_loader = None
    _pending_random_state = None  # (rng, data order) of a resumed checkpoint
    _last_valid = (None, None)  # (score, metrics) of the latest validation

    def fit(self, train_data, *args, **kwargs):
        self._train_loader = train_data
        self._restore_random_state(train_data)
        return super().fit(train_data, *args, **kwargs)

    def _valid_epoch(self, valid_data, *args, **kwargs):
        score, result = super()._valid_epoch(valid_data, *args, **kwargs)
        self._last_valid = (score, result)
        return score, result

    def _random_state(self):
        """Random generators and the training data order at this point (saved with a checkpoint)."""
        loader = getattr(self._train_loader, "generator", None)
        return {"rng": rng_state(), "data_order": loader.get_state() if loader is not None else None}

    def _restores_process_rng(self):
        """Whether a resume restores the saved python / numpy / torch states (launched processes
        keep their own per-process seeds: the LLM trainer says no under a launcher)."""
        return True

    def _expect_random_state(self, state, checkpoint):
        """Remember the generators of a resumed checkpoint for the next ``fit``; a checkpoint
        written without them (an older version of the plugin, RecBole itself) still resumes, and
        the log says that the run then draws other batches than the interrupted one."""
        rng, order = state.get("rng"), state.get("data_order")
        self._pending_random_state = (rng, order)
        if rng is None or order is None:
            missing = " and ".join(n for n, v in (("random states", rng), ("data order", order)) if v is None)
            self.logger.warning(f"{checkpoint} holds no {missing} (written by RecBole itself or before the "
                                "plugin saved them): the resumed run is not exact; it draws other batches, "
                                "negatives and dropout than the interrupted run would have.")

    def _restore_random_state(self, train_data):
        """A resumed run continues from the saved generators, so that it draws (batches, negatives,
        dropout, PPT questions) what the uninterrupted run drew."""
        if self._pending_random_state is None:
            return
        rng, order = self._pending_random_state
        self._pending_random_state = None
        if rng is not None and self._restores_process_rng():
            set_rng_state(rng)
        if order is not None and getattr(train_data, "generator", None) is not None:
            train_data.generator.set_state(order.cpu())

    def _best_result_so_far(self):
        """The validation metrics of the best epoch, for a checkpoint. RecBole saves the checkpoint
        of a new best epoch before it records that epoch's metrics, so they are the last
        validation's when its score is the best score."""
        score, result = self._last_valid
        if result is not None and score == self.best_valid_score:
            return dict(result)
        return dict(self.best_valid_result) if self.best_valid_result else None


class RecBoleCheckpointMixin(ResumeStateMixin):
    """Trainer mixin for RecBole's own trainers (put before
    :class:`~recbole_speeder.compat.CheckpointCompatMixin`): a checkpoint name of its own
    (:func:`unique_checkpoint_name`), and RecBole's ``.pth`` with the keys of an exact resume
    added (``rng``, ``data_order``, ``scheduler``, ``best_valid_result``); ``--resume`` restores
    them. RecBole's keys are all kept, so RecBole's own ``resume_checkpoint`` still reads it."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.saved_model_file = unique_checkpoint_name(self.saved_model_file)

    def _checkpoint_state(self, epoch):
        scheduler = getattr(self, "scheduler", None)
        return {
            **super()._checkpoint_state(epoch),
            "best_valid_result": to_plain(self._best_result_so_far()),
            "scheduler": to_plain(scheduler.state_dict()) if scheduler is not None else None,
            **self._random_state(),
        }

    def resume_checkpoint(self, resume_file):
        super().resume_checkpoint(resume_file)  # RecBole's: weights, optimizer, epoch, early-stopping count
        try:
            state = torch.load(str(resume_file), map_location="cpu", weights_only=True)
        except TORCH_LOAD_ERRORS as err:
            raise DataError(f"Checkpoint file {resume_file} cannot be read ({type(err).__name__}); "
                            "it is damaged or from another program.") from None
        # the metrics of that best epoch: a resumed run that does not beat it still reports them
        if state.get("best_valid_result") is not None:
            self.best_valid_result = state["best_valid_result"]
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        self._expect_random_state(state, resume_file)


def is_checkpoint(folder):
    return os.path.isfile(os.path.join(str(folder), STATE_FILE))


def write_checkpoint(folder, model, state, llm_attr="llm"):
    """Write ``model``'s trainable state and ``state`` into ``folder`` (replaced atomically); a
    failed write (a full disk: torch's writer raises RuntimeError) is a DataError and leaves what
    was in ``folder`` before."""
    from peft import PeftModel

    try:
        with atomic_folder(folder) as tmp:
            llm = getattr(model, llm_attr)
            if isinstance(llm, PeftModel):
                llm.save_pretrained(os.path.join(tmp, ADAPTER_DIR))
            plugin = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
                      if not k.startswith(llm_attr + ".")}
            save_file(plugin, os.path.join(tmp, PLUGIN_FILE))
            torch.save(state, os.path.join(tmp, STATE_FILE))
    except (OSError, RuntimeError) as err:
        raise write_failed(f"Checkpoint {folder}", err) from None


def read_trainer_state(folder, device="cpu"):
    """The ``trainer_state.pt`` of a checkpoint folder."""
    path = os.path.join(str(folder), STATE_FILE)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"'{folder}' is not a checkpoint folder (no {STATE_FILE}).") from None
    except TORCH_LOAD_ERRORS as err:
        raise DataError(f"Checkpoint file {path} cannot be read ({type(err).__name__}); "
                        "it is damaged or from another program.") from None


def check_checkpoint_folder(folder, option):
    """Before any data is read: ``folder`` (given as ``option``, e.g. ``--checkpoint``) is a
    checkpoint folder whose files can be read (headers and sizes of the safetensors files, the
    trainer state)."""
    from safetensors import safe_open

    folder = str(folder)
    if not os.path.isdir(folder):
        raise ConfigError(f"{option}: '{folder}' is not a folder; an LLM model's checkpoint is the folder "
                          "saved/<Model>-<time>-<hex> (a Speeder stage: .../stage<k>).")
    if not is_checkpoint(folder):
        stages = sorted(n for n in os.listdir(folder) if is_checkpoint(os.path.join(folder, n)))
        hint = f"; it holds the checkpoints {', '.join(stages)}: give one of them" if stages else ""
        raise ConfigError(f"{option}: '{folder}' is not a checkpoint folder (no {STATE_FILE}){hint}.")
    read_trainer_state(folder)
    weights = [os.path.join(folder, PLUGIN_FILE)]
    adapter = os.path.join(folder, ADAPTER_DIR)
    if os.path.isdir(adapter):
        weights += [os.path.join(adapter, n) for n in sorted(os.listdir(adapter)) if n.endswith(".safetensors")]
    for path in weights:
        try:
            with safe_open(path, "pt"):
                pass
        except FileNotFoundError:
            raise DataError(f"{option}: checkpoint file {path} is missing.") from None
        except (SafetensorError, OSError) as err:
            raise DataError(f"{option}: checkpoint file {path} cannot be read ({err}); it is damaged or "
                            "truncated (was its write interrupted?).") from None


def check_recbole_checkpoint(path, model, option):
    """Before any data is read: ``path`` is a RecBole checkpoint file (``.pth``) of ``model``."""
    path = str(path)
    if not os.path.isfile(path):
        hint = " (an LLM model's checkpoint is a folder; this model's is a .pth file)" if os.path.isdir(path) else ""
        raise ConfigError(f"{option}: '{path}' is not a file{hint}; RecBole models save "
                          "saved/<Model>-<time>-<hex>.pth.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (any unpickling failure: a damaged or foreign file)
        raise DataError(f"{option}: checkpoint file {path} cannot be read ({type(err).__name__}); it is damaged, "
                        "truncated or not a checkpoint of this plugin.") from None
    saved = state.get("config", {}).get("model") if isinstance(state, dict) else None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise DataError(f"{option}: {path} is not a model checkpoint (no state_dict).")
    if saved is not None and saved != model:
        raise ConfigError(f"{option}: {path} is a checkpoint of {saved}, not of {model}.")


def _adapter_settings(config):
    settings = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    out = {}
    for key in _ADAPTER_KEYS:
        value = settings.get(key)
        if isinstance(value, (list, tuple, set)):
            value = sorted(value)
        out[key] = str(value.value if hasattr(value, "value") else value) if value is not None else None
    return out


def _load_adapter(llm, folder):
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    adapter = os.path.join(folder, ADAPTER_DIR)
    config_path = os.path.join(adapter, "adapter_config.json")
    try:
        with open(config_path, "r", encoding="utf-8") as f:
            saved = _adapter_settings(json.load(f))
        weights = load_peft_weights(adapter, device=str(next(llm.parameters()).device))
    except FileNotFoundError as err:
        raise ConfigError(f"Checkpoint {folder} has no LoRA adapter ({err.filename} is missing), "
                          "but this model has LoRA adapters.") from None
    except (ValueError, OSError, SafetensorError) as err:
        raise DataError(f"LoRA adapter of checkpoint {folder} cannot be read ({type(err).__name__}: {err}).") from None
    current = _adapter_settings(llm.peft_config["default"])
    differ = {k: (saved[k], current[k]) for k in _ADAPTER_KEYS if saved[k] != current[k]}
    if differ:
        detail = ", ".join(f"{k}: saved {a}, this run {b}" for k, (a, b) in differ.items())
        raise ConfigError(f"Checkpoint {folder} was trained with other LoRA settings ({detail}); "
                          "run with the settings it was trained with (lora_* keys).")
    result = set_peft_model_state_dict(llm, weights)
    if result.unexpected_keys:
        raise ConfigError(f"Checkpoint {folder}: adapter weights {sorted(result.unexpected_keys)[:5]} have no "
                          "place in this model.")


def load_trainable(model, folder, llm_attr="llm"):
    """Load what :func:`write_checkpoint` saved into ``model`` (strict, see the module doc)."""
    from peft import PeftModel

    folder = str(folder)
    if not is_checkpoint(folder):
        raise ConfigError(f"'{folder}' is not a checkpoint folder (no {STATE_FILE}).")
    llm = getattr(model, llm_attr)
    if isinstance(llm, PeftModel):
        _load_adapter(llm, folder)
    path = os.path.join(folder, PLUGIN_FILE)
    try:
        plugin = load_file(path)
    except (SafetensorError, OSError) as err:
        raise DataError(f"Checkpoint file {path} cannot be read ({type(err).__name__}: {err}); "
                        "it is damaged or missing.") from None
    own = {k for k in model.state_dict() if not k.startswith(llm_attr + ".")}
    if set(plugin) != own:
        missing, unexpected = own - set(plugin), set(plugin) - own
        raise ConfigError(
            f"Checkpoint {folder} does not match the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}."
        )
    model.load_state_dict(plugin, strict=False)
