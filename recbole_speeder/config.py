"""Config: RecBole's configurator plus the plugin's properties, key checking and data home.

Properties are merged in RecBole's order and then the plugin's (later wins):
RecBole overall < RecBole model < RecBole dataset < plugin ``properties/overall.yaml`` <
``features.yaml`` < ``mrc.yaml`` < the model family's files (``llm.yaml`` for every LLM
model: backbone and LoRA) < plugin ``properties/model/<Model>.yaml`` <
plugin ``properties/dataset/<dataset>.yaml`` < config files < config dict / command line.

Differences from RecBole's ``Config``, each small:

- model names are looked up in the plugin first (:func:`recbole_speeder.utils.get_model`);
- a key that no RecBole or plugin property file, argument list or model knows raises a
  :class:`~recbole_speeder.errors.ConfigError` that suggests the closest known key;
- the command line is not read here: the entry point parses ``--key=value`` and passes the
  pairs as ``config_dict`` (so a test runner's own flags never leak into a config);
- ``data_path`` stays a data home (``dataset/`` by default) for every dataset, ml-100k
  included (RecBole points ml-100k at its package folder; the plugin copies the files into
  the data home so candidate sets and features can be stored beside them);
- ``local_rank`` / ``nproc`` / ``world_size`` (RecBole's own multi-GPU mode, which starts NCCL
  inside ``Config``) are refused; launched processes (``accelerate launch`` / ``torchrun``)
  get their device from :mod:`recbole_speeder.launch`;
- ``split_mode`` chooses the paper's 7:2:1 split of sequences (``sequence``) or RecBole's
  leave-one-out (``LS``); ``auto`` takes ``sequence`` when the split files exist.
"""

import difflib
import glob
import os
from functools import lru_cache

import yaml

import recbole_speeder.compat as compat
from recbole.config import Config as RecBoleConfig
from recbole.utils import argument_list

from recbole_speeder.data.prepare.registry import EMBEDDED, dataset_dir, ensure_dataset_files, has_sequence_split, is_prepared
from recbole_speeder.errors import ConfigError
from recbole_speeder.launch import check_recbole_ddp_keys, init_launched_device, launched_rank, wait_for_main_process

PROPERTIES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "properties")
# read for every model, in this order; a model class adds its family's files (``property_files``)
SHARED_PROPERTY_FILES = ("overall.yaml", "features.yaml", "mrc.yaml")

# Keys RecBole reads but declares in no property file.
_RECBOLE_EXTRA_KEYS = {
    "model", "dataset", "config_files", "benchmark_filename", "local_rank", "nproc",
    "world_size", "offset", "ip", "port", "encoding", "numerical_features",
    "discretization", "wandb_project", "log_wandb", "valid_neg_sample_args",
    "test_neg_sample_args", "neg_sampling", "training_neg_sample_num", "single_spec",
    "device", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "config_file",
}


def _yaml_keys(path):
    with open(path, "r", encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return set(data)


@lru_cache(maxsize=1)
def known_keys():
    """Every configuration key RecBole or the plugin understands."""
    import recbole

    keys = set(_RECBOLE_EXTRA_KEYS)
    for group in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, group))
    recbole_properties = os.path.join(os.path.dirname(recbole.__file__), "properties")
    for root in (recbole_properties, PROPERTIES_DIR):
        for path in glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True):
            keys.update(_yaml_keys(path))
    return frozenset(keys)


def check_keys(config_dict, where):
    """Raise a :class:`ConfigError` for the first key nobody knows, with the closest match."""
    known = known_keys()
    for key in config_dict:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"Unknown configuration key '{key}' in {where}.{hint}")


class Config(RecBoleConfig):
    """RecBole ``Config`` that knows the plugin's models, properties and datasets."""

    def compatibility_settings(self):
        compat.install_numpy_aliases()

    def _load_config_files(self, file_list):
        file_config_dict = {}
        for file in file_list or []:
            if not os.path.isfile(file):
                raise ConfigError(f"Config file '{file}' does not exist.")
            try:
                with open(file, "r", encoding="utf-8") as f:
                    content = yaml.load(f.read(), Loader=self.yaml_loader) or {}
            except yaml.YAMLError as err:
                raise ConfigError(f"Config file '{file}' is not valid YAML: {err}") from None
            if not isinstance(content, dict):
                raise ConfigError(f"Config file '{file}' must hold a mapping of key: value.")
            check_keys(content, f"config file '{file}'")
            file_config_dict.update(content)
        return file_config_dict

    def _load_variable_config_dict(self, config_dict):
        config_dict = super()._load_variable_config_dict(config_dict)
        check_keys(config_dict, "the command line / config dict")
        return config_dict

    def _load_cmd_line(self):
        return {}

    def _get_model_and_dataset(self, model, dataset):
        from recbole_speeder.utils import get_model

        if model is None:
            model = self.external_config_dict.get("model")
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
        if model is None or dataset is None:
            raise ConfigError("Both a model and a dataset are needed, e.g. --model=SASRec --dataset=ml-100k.")
        if isinstance(model, str):
            return model, get_model(model), dataset
        return model.__name__, model, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        plugin_files = [os.path.join(PROPERTIES_DIR, name) for name in SHARED_PROPERTY_FILES]
        plugin_files += [os.path.join(PROPERTIES_DIR, name) for name in getattr(model_class, "property_files", ())]
        plugin_files += [
            os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml"),
            os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml"),
        ]
        for path in plugin_files:
            if os.path.isfile(path):
                self._update_internal_config_dict(path)

    def _init_device(self):
        # multi-process runs are launched by accelerate / torchrun (launch.py):
        # RecBole's own mode (local_rank -> NCCL started here) is refused
        check_recbole_ddp_keys(self.final_config_dict)
        if not init_launched_device(self.final_config_dict):
            super()._init_device()

    def _set_default_parameters(self):
        data_home = self.final_config_dict["data_path"]
        if launched_rank() == 0:
            ensure_dataset_files(data_home, self.dataset)
        else:  # a launched run: process 0 copies an embedded dataset, the others wait for its files
            folder, files = dataset_dir(data_home, self.dataset), EMBEDDED.get(self.dataset, ())
            wait_for_main_process(lambda: is_prepared(data_home, self.dataset) and all(
                os.path.isfile(os.path.join(folder, f)) for f in files), f"the files of {self.dataset} in {folder}")
        self._apply_split_mode(data_home)
        super()._set_default_parameters()
        self.final_config_dict["data_home"] = data_home
        self.final_config_dict["data_path"] = os.path.join(data_home, self.dataset)

    def _apply_split_mode(self, data_home):
        mode = self.final_config_dict.get("split_mode", "auto")
        if mode not in ("auto", "sequence", "LS"):
            raise ConfigError(f"split_mode must be one of auto, sequence, LS (got '{mode}').")
        has_files = has_sequence_split(data_home, self.dataset)
        if mode == "auto":
            mode = "sequence" if has_files else "LS"
        if mode == "sequence":
            if not has_files:
                raise ConfigError(
                    f"split_mode: sequence needs {self.dataset}.train.inter / .valid.inter / .test.inter "
                    f"in {os.path.join(data_home, self.dataset)}; they are written by "
                    "`python dataset/prepare.py amazon ...` (see dataset/README.md)."
                )
            self.final_config_dict["benchmark_filename"] = ["train", "valid", "test"]
            # histories and targets must share one item id space
            list_field = self.final_config_dict["ITEM_ID_FIELD"] + self.final_config_dict["LIST_SUFFIX"]
            aliases = list(self.final_config_dict.get("alias_of_item_id") or [])
            self.final_config_dict["alias_of_item_id"] = aliases + [list_field] * (list_field not in aliases)
        else:
            self.final_config_dict["benchmark_filename"] = None
            eval_args = dict(self.final_config_dict.get("eval_args") or {})
            eval_args.update({"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user"})
            self.final_config_dict["eval_args"] = eval_args
        self.final_config_dict["split_mode"] = mode
