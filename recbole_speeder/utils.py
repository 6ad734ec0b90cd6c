"""Plugin-first lookups of models, trainers and dataset classes (RecBole-GNN's shape).

A name is looked up in the plugin first and then in RecBole, so ``--model=SASRec`` runs
RecBole's own SASRec while ``--model=Speeder`` runs the plugin's model; both get trainers
whose checkpoints load on torch >= 2.6 (:mod:`recbole_speeder.compat`).
"""

import difflib
import importlib
import pkgutil

import recbole_speeder.compat as compat
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import ModelType
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_speeder.errors import ConfigError

_RECBOLE_MODEL_PACKAGES = [
    "recbole.model.general_recommender",
    "recbole.model.context_aware_recommender",
    "recbole.model.sequential_recommender",
    "recbole.model.knowledge_aware_recommender",
]


def _plugin_model_module(model_name):
    path = f"recbole_speeder.model.{model_name.lower()}"
    if importlib.util.find_spec(path) is None:
        return None
    return importlib.import_module(path)


def available_models():
    """Names of all models the run script accepts: the plugin's and RecBole's."""
    names = set(plugin_model_names())
    for package in _RECBOLE_MODEL_PACKAGES:
        module = importlib.import_module(package)
        names.update(n for n in dir(module) if n[:1].isupper())
    return sorted(names)


def plugin_model_names():
    """Model classes defined by the plugin (one model per module, as in RecBole)."""
    import recbole_speeder.model as model_package

    names = []
    for info in pkgutil.iter_modules(model_package.__path__):
        module = importlib.import_module(f"recbole_speeder.model.{info.name}")
        names += [
            n for n, obj in vars(module).items()
            if isinstance(obj, type) and n.lower() == info.name and issubclass(obj, AbstractRecommender)
        ]
    return names


def get_model(model_name):
    """Model class for ``model_name``: the plugin's if it has one, else RecBole's."""
    module = _plugin_model_module(model_name)
    if module is not None and model_name in plugin_model_names():
        return getattr(module, model_name)
    # RecBole's own get_model falls through to exlib_recommender, which imports
    # lightgbm/xgboost; the plugin looks in RecBole's model packages only.
    for package in _RECBOLE_MODEL_PACKAGES:
        path = f"{package}.{model_name.lower()}"
        if importlib.util.find_spec(path) is not None:
            module = importlib.import_module(path)
            if hasattr(module, model_name):
                return getattr(module, model_name)
    close = difflib.get_close_matches(model_name, available_models(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"Unknown model '{model_name}'.{hint} Models of this plugin: "
        f"{', '.join(plugin_model_names()) or '(none)'}; every RecBole model name works too "
        "(e.g. SASRec, GRU4Rec, BERT4Rec)."
    )


_COMPAT_TRAINERS = {}


def get_trainer(model_type, model_name):
    """Trainer class: ``recbole_speeder.trainer.<Model>Trainer`` if it exists, else RecBole's.

    RecBole's trainers are returned with
    :class:`~recbole_speeder.trainer.checkpoint.RecBoleCheckpointMixin` (a checkpoint name of the
    run's own; the random generators, data order and best validation saved, so that ``--resume``
    is exact), :class:`~recbole_speeder.compat.CheckpointCompatMixin` (checkpoints that load with
    ``weights_only=True``, written atomically) and
    :class:`~recbole_speeder.trainer.timing.TrainTimeMixin` (per-sample training time, the wall time of
    training, validation and checkpoint writes) mixed in.
    """
    from recbole_speeder.trainer.checkpoint import RecBoleCheckpointMixin
    from recbole_speeder.trainer.timing import TrainTimeMixin

    trainer_module = importlib.import_module("recbole_speeder.trainer")
    if hasattr(trainer_module, model_name + "Trainer"):
        return getattr(trainer_module, model_name + "Trainer")
    base = recbole_get_trainer(model_type, model_name)
    if base not in _COMPAT_TRAINERS:
        mixins = (TrainTimeMixin, RecBoleCheckpointMixin, compat.CheckpointCompatMixin)
        _COMPAT_TRAINERS[base] = type(base.__name__, (*mixins, base), {})
    return _COMPAT_TRAINERS[base]


def create_dataset(config):
    """RecBole's ``create_dataset`` with the plugin's pandas-3-safe dataset classes (a model's own
    dataset class of RecBole, ``DIENDataset``, is kept under the plugin's)."""
    from recbole_speeder.data.dataset import SpeederDataset, sequential_dataset_class

    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        return sequential_dataset_class(config["model"])(config)
    if config["MODEL_TYPE"] in (ModelType.GENERAL, ModelType.CONTEXT, ModelType.TRADITIONAL):
        return SpeederDataset(config)
    raise ConfigError(
        f"Model '{config['model']}' is of type {config['MODEL_TYPE'].name}; this plugin runs "
        "sequential and general recommenders."
    )
