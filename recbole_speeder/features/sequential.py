"""Item-id embeddings from a SASRec trained on the training split (paper, section 2.3: e_s).

The paper takes the id embedding of a pre-trained SASRec. Here RecBole's own ``SASRec`` and
``Trainer`` are trained on the *training split of the current run only*: the model sees the
run's ``train_data.dataset`` through a fresh loader, for a fixed ``seq_encoder_epochs``, with
no validation (so neither valid nor test interactions can leak in, not even through early
stopping). The exported table is ``item_embedding.weight`` [n_items, seq_encoder_hidden],
rows indexed by RecBole internal item id.

Training runs in a forked random state: the caller's random / numpy / torch generators are
restored afterwards, so a run that finds these features cached draws the same numbers as
one that trains them.

The trained SASRec itself is also kept, frozen, as the teacher of ``distill_weight`` (not in
the paper; LLM-SRec's distillation of a CF sequence model): :func:`load_sequence_teacher`
caches its weights in ``dataset/<name>/features/seq-teacher-<key>.pt`` (written atomically),
``key`` derived from the SASRec settings and the training split, so a changed input is a miss.
"""

import contextlib
import logging
import os
import random

import numpy as np
import torch

from recbole_speeder.compat import TORCH_LOAD_ERRORS, atomic_torch_save
from recbole_speeder.features.cache import fingerprint, identity_key

logger = logging.getLogger(__name__)

# Run-config keys the SASRec sub-config inherits (field names, device, sequence length...).
_INHERITED_KEYS = (
    "seed", "reproducibility", "use_gpu", "gpu_id", "split_mode", "MAX_ITEM_LIST_LENGTH",
    "USER_ID_FIELD", "ITEM_ID_FIELD", "TIME_FIELD", "LIST_SUFFIX", "ITEM_LIST_LENGTH_FIELD",
    "load_col", "checkpoint_dir", "state", "show_progress", "field_separator", "seq_separator",
    "encoding",
)


def sequential_settings(config):
    """The settings that determine the SASRec embeddings (part of the cache key)."""
    return {
        "model": "SASRec",
        "epochs": int(config["seq_encoder_epochs"]),
        "hidden_size": int(config["seq_encoder_hidden"]),
        "batch_size": int(config["seq_encoder_batch_size"]),
        "learning_rate": float(config["seq_encoder_lr"]),
        "seed": int(config["seed"]),
        "max_len": int(config["MAX_ITEM_LIST_LENGTH"]),
    }


@contextlib.contextmanager
def forked_rng():
    """Restore python / numpy / torch (and cuda) random states on exit."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def sasrec_overrides(config):
    """The properties of the SASRec sub-run: the run's data settings and the seq_encoder_* keys.

    The run builds its configuration (``Config(model="SASRec", ..., config_dict=...)``) and
    hands it to :func:`train_sequential_model` with a trainer class.
    """
    settings = sequential_settings(config)
    data_home = config["data_home"] or os.path.dirname(os.path.normpath(config["data_path"]))
    overrides = {key: config[key] for key in _INHERITED_KEYS if config[key] is not None}
    overrides.update(
        data_path=data_home,
        epochs=settings["epochs"],
        hidden_size=settings["hidden_size"],
        inner_size=4 * settings["hidden_size"],
        train_batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        loss_type="CE",
        train_neg_sample_args=None,
        eval_step=0,
        stopping_step=settings["epochs"] + 1,
    )
    return overrides


def build_sequential_model(sub_config, dataset, train_data):
    """An untrained RecBole SASRec of ``sub_config`` over the run's training split, on its device."""
    from recbole.model.sequential_recommender import SASRec

    train_dataset = getattr(train_data, "dataset", train_data)
    model = SASRec(sub_config, train_dataset).to(sub_config["device"])
    if model.n_items != dataset.item_num:
        raise ValueError(f"SASRec sees {model.n_items} items, the dataset {dataset.item_num}")
    return model


def train_sequential_model(sub_config, dataset, train_data, trainer_class):
    """Train RecBole's SASRec on the run's training split; return the trained model.

    Args:
        sub_config: the SASRec configuration (a RecBole config built from :func:`sasrec_overrides`).
        dataset: the run's full dataset (only its item count is used).
        train_data: the run's training dataloader (or the training dataset itself); only
            its dataset -- the training split -- is read, through a new shuffled loader.
        trainer_class: the RecBole trainer class to fit SASRec with.
    """
    from recbole.data.dataloader import TrainDataLoader
    from recbole.utils import init_seed, set_color

    train_dataset = getattr(train_data, "dataset", train_data)
    with forked_rng():
        init_seed(sub_config["seed"], sub_config["reproducibility"])
        loader = TrainDataLoader(sub_config, train_dataset, None, shuffle=True)
        model = build_sequential_model(sub_config, dataset, train_dataset)
        trainer = trainer_class(sub_config, model)
        logger.info(
            set_color("seq features", "green")
            + f": training SASRec (hidden {sub_config['hidden_size']}, {sub_config['epochs']} epochs) "
            f"on the training split ({len(train_dataset)} sequences)"
        )
        trainer.fit(loader, valid_data=None, saved=False, show_progress=sub_config["show_progress"])
    return model


def item_embeddings(model):
    """SASRec's item embeddings: float32 [n_items, hidden] on the host, row i = item id i (row 0: [PAD])."""
    return model.item_embedding.weight.detach().float().cpu().clone()


def training_split_fingerprint(config, dataset, train_data):
    """(item tokens, fingerprint of the training split's items and histories): what the SASRec
    features and teacher are computed from (part of their cache keys)."""
    train_dataset = getattr(train_data, "dataset", train_data)
    iid = dataset.iid_field
    id_tokens = [str(t) for t in dataset.field2id_token[iid]]
    inter = train_dataset.inter_feat
    arrays = [inter[iid].numpy()]
    list_field = iid + config["LIST_SUFFIX"]
    if list_field in inter.interaction:
        arrays.append(inter[list_field].numpy())
    return id_tokens, fingerprint(id_tokens, *arrays)


def frozen(model):
    """``model`` as a teacher is used: eval mode, no gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_sequence_teacher(config, dataset, train_data, sequence_model):
    """The frozen SASRec teacher of ``distill_weight`` (eval mode, no gradients), from the cache
    ``dataset/<name>/features/seq-teacher-<key>.pt`` or trained and cached.

    Args:
        sequence_model: ``(dataset, train_data, state_dict=None) -> SASRec``: trained on the
            training split when ``state_dict`` is None, else built and loaded with it
            (:func:`recbole_speeder.quick_start.sequence_model_for`).
    """
    settings = sequential_settings(config)
    _, signature = training_split_fingerprint(config, dataset, train_data)
    key = identity_key({"kind": "recbole-sasrec-teacher", **settings, "input": signature})
    path = os.path.join(config["data_path"], "features", f"seq-teacher-{key}.pt")
    model = None
    if os.path.isfile(path):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            with forked_rng():  # building SASRec draws its initial weights: keep the run's draws
                model = sequence_model(dataset, train_data, state_dict=state)
            logger.info(f"seq teacher: cache hit {path}")
        except TORCH_LOAD_ERRORS + (KeyError,) as err:  # damaged, or weights of other shapes
            logger.warning(f"seq teacher: {path} is unreadable ({type(err).__name__}); training again.")
            model = None
    if model is None:
        model = sequence_model(dataset, train_data)
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        logger.info(f"seq teacher: trained and cached -> {path}")
    return frozen(model)
