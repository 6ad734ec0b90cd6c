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
  leave-one-out (``LS``); ``auto`` takes ``sequence`` when the split files exist;
- every value the user gives (config files, command line, config dict) is checked against the
  ``(type)`` annotation of its key (:mod:`recbole_speeder.schema`): the annotation in the property
  files the run reads, or, for a key of another model's files, any of those files' annotations;
  a bad value's message names its file and line, or the command line; a model class may check
  its own settings (``check_config(config)``), all before any data is read; an LLM model that
  cannot rank the catalog is refused RecBole's ranking evaluation
  (:mod:`recbole_speeder.evaluation.protocols`);
- RecBole's default negative sampling is kept, and switched off where the model's loss reads no
  negatives (``loss_type: CE``, SINE's ``NLL``), as RecBole asks its users to do
  (:meth:`Config._apply_negative_sampling`); the LLM models set theirs in ``llm.yaml``.
"""

import difflib
import glob
import os
from functools import lru_cache

import yaml

import recbole_speeder.compat as compat
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType, argument_list

from recbole_speeder.data.prepare.registry import EMBEDDED, dataset_dir, ensure_dataset_files, has_sequence_split, is_prepared
from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.protocols import check_eval_protocol
from recbole_speeder.launch import check_recbole_ddp_keys, init_launched_device, launched_rank, wait_for_main_process
from recbole_speeder.schema import check_value, file_annotations

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
# Losses computed over every item: no negative samples are read (RecBole refuses sampling with CE)
ALL_ITEM_LOSSES = ("CE", "NLL")


# folders of config files (``--config_files``), not property files: their keys are known, their
# comments are no schema
_CONFIG_FILE_FOLDERS = ("quick", "recipes", "quick_start_config")


def _yaml_values(path):
    with open(path, "r", encoding="utf-8") as f:  # RecBole's loader (its Config adds 1e-4 floats to it)
        return yaml.load(f, Loader=yaml.FullLoader) or {}


def _property_yaml_files():
    """Every YAML file of RecBole's and the plugin's ``properties/`` folders."""
    import recbole

    recbole_properties = os.path.join(os.path.dirname(recbole.__file__), "properties")
    return [path for root in (recbole_properties, PROPERTIES_DIR)
            for path in sorted(glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True))]


@lru_cache(maxsize=1)
def known_keys():
    """Every configuration key RecBole or the plugin understands."""
    keys = set(_RECBOLE_EXTRA_KEYS)
    for group in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, group))
    for path in _property_yaml_files():
        keys.update(_yaml_values(path))
    return frozenset(keys)


@lru_cache(maxsize=1)
def annotated_keys():
    """``{key: [(KeySpec, default), ...]}``: every annotation of a key in RecBole's and the plugin's
    property files (every model's, the config-file folders left out), the plugin's last."""
    specs = {}
    for path in _property_yaml_files():
        if os.path.basename(os.path.dirname(path)) in _CONFIG_FILE_FOLDERS:
            continue
        annotations = file_annotations(os.path.realpath(path))
        if annotations:
            values = _yaml_values(path)
            for key, spec in annotations.items():
                specs.setdefault(key, []).append((spec, values.get(key)))
    return specs


def _yaml_key_lines(text, loader):
    """``{key: line}`` of the top-level keys of a YAML mapping (1-based); {} where YAML gives none."""
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


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
        sources = self.__dict__.setdefault("value_sources", {})  # key -> where its value was given
        for file in file_list or []:
            if not os.path.isfile(file):
                raise ConfigError(f"Config file '{file}' does not exist.")
            try:
                with open(file, "r", encoding="utf-8") as f:
                    text = f.read()
                content = yaml.load(text, Loader=self.yaml_loader) or {}
            except yaml.YAMLError as err:
                raise ConfigError(f"Config file '{file}' is not valid YAML: {err}") from None
            if not isinstance(content, dict):
                raise ConfigError(f"Config file '{file}' must hold a mapping of key: value.")
            lines = _yaml_key_lines(text, self.yaml_loader)
            for key in content:
                check_keys({key: None}, f"config file '{file}'" + (f", line {lines[key]}" if key in lines else ""))
                sources[key] = f"in {file}, line {lines[key]}" if key in lines else f"in {file}"
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

    def _update_internal_config_dict(self, file):
        # remember which property files this run reads: their annotations type its keys
        self.__dict__.setdefault("property_files", []).append(file)
        return super()._update_internal_config_dict(file)

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
            self._keep_visible_devices()
            super()._init_device()

    def _keep_visible_devices(self):
        """RecBole writes ``gpu_id`` (default ``'0'``) into ``CUDA_VISIBLE_DEVICES``, so
        ``CUDA_VISIBLE_DEVICES=1 python run_recbole_speeder.py`` silently ran on the first GPU
        (seen on 2026-11-30). A ``gpu_id`` the user gives still wins; without one, the GPUs the
        environment already chose are kept."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and "gpu_id" not in self.external_config_dict:
            self.final_config_dict["gpu_id"] = visible

    def key_schema(self):
        """``{key: KeySpec}`` from the property files this run read (later files win)."""
        schema = {}
        for path in self.__dict__.get("property_files", []):
            schema.update(file_annotations(os.path.realpath(path)))
        return schema

    def _value_source(self, key):
        """Where the user gave ``key``: ``on the command line`` or ``in <file>, line <n>``."""
        if key in (self.variable_config_dict or {}):
            return "on the command line"
        return self.__dict__.get("value_sources", {}).get(key, "in a config file")

    def _check_value_types(self):
        """Every value the user gave, against its key's annotation, whatever the model: the
        annotation of the run's own property files, else any property file's (a key of another
        model's files, e.g. Speeder's ``stage_epochs`` given to SASRec, is still checked: the value
        must suit one of them); one clear ConfigError."""
        schema = self.key_schema()
        for key, value in self.external_config_dict.items():
            where = self._value_source(key)
            if key in schema:
                message = check_value(key, value, schema[key], self.internal_config_dict.get(key, value), where)
            else:
                messages = [check_value(key, value, spec, default, where)
                            for spec, default in annotated_keys().get(key, ())]
                message = messages[-1] if messages and all(messages) else None
            if message:
                raise ConfigError(message)
        check = getattr(self.model_class, "check_config", None)
        if check is not None:
            check(self.final_config_dict)
        check_eval_protocol(self.model, self.model_class, self.final_config_dict, self.external_config_dict)

    def _apply_negative_sampling(self):
        """RecBole's default negative sampling (``train_neg_sample_args`` of its overall.yaml),
        switched off for sequential models whose loss reads no negatives; a setting given by
        the user that the loss cannot use is refused with the reason."""
        cfg = self.final_config_dict
        if cfg["MODEL_TYPE"] != ModelType.SEQUENTIAL or getattr(self.model_class, "candidate_only", False):
            return  # general models: RecBole's defaults; the LLM models: llm.yaml
        loss = str(cfg.get("loss_type") or "").upper()
        given = "train_neg_sample_args" in self.external_config_dict
        sampling = cfg.get("train_neg_sample_args")
        if loss in ALL_ITEM_LOSSES:
            if given and sampling is not None:
                raise ConfigError(
                    f"train_neg_sample_args: {self.model} with loss_type {loss} scores every item and reads no "
                    "negative samples (RecBole refuses them); remove train_neg_sample_args, or set loss_type: BPR.")
            cfg["train_neg_sample_args"] = None
        elif given and sampling is None:
            why = f"loss_type {loss}" if loss else "its loss"
            raise ConfigError(
                f"train_neg_sample_args: ~ switches negative sampling off, but {self.model} trains on sampled "
                f"negatives ({why}); remove train_neg_sample_args to keep RecBole's default.")

    def _set_default_parameters(self):
        self._check_value_types()
        self._apply_negative_sampling()
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
        self._load_selected_features()

    def _load_selected_features(self):
        """Models that read item features (``selected_features``: GRU4RecF, SASRecF, FDSA...) get
        them loaded from ``<name>.item`` (the plugin's ``load_col`` loads interactions only), unless
        the user chose ``load_col``; a feature the file lacks is named before any data is read."""
        cfg = self.final_config_dict
        selected = cfg.get("selected_features")
        if not selected or "load_col" in self.external_config_dict:
            return
        selected = [selected] if isinstance(selected, str) else list(selected)
        path = os.path.join(cfg["data_path"], f"{self.dataset}.item")
        columns = []
        if os.path.isfile(path):
            with open(path, "r", encoding=cfg.get("encoding") or "utf-8") as f:
                header = f.readline().rstrip("\r\n").split(cfg.get("field_separator") or "\t")
            columns = [c.split(":")[0] for c in header]
        missing = [f for f in selected if f not in columns]
        if missing:
            where = f"{path} has the columns {', '.join(columns)}" if columns else f"there is no {path}"
            raise ConfigError(f"{self.model} reads the item features selected_features {selected}, but {where}; "
                              "set selected_features to columns of the .item file.")
        load_col = dict(cfg.get("load_col") or {})
        item_cols = list(load_col.get("item") or [cfg["ITEM_ID_FIELD"]])
        load_col["item"] = item_cols + [f for f in selected if f not in item_cols]
        cfg["load_col"] = load_col

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
