"""run(...) and objective_function(...) as RecBole's quick start has them, without ray.

One run: config -> dataset -> RecBole split and dataloaders -> the model's side information
(:func:`attach_side_info`) -> model -> trainer.fit ->
RecBole's full-ranking test metrics -> the candidate-protocol metrics on the shared sets.
Under ``accelerate launch`` / ``torchrun`` the LLM models train data-parallel
(:mod:`recbole_speeder.trainer.distributed`): process 0 logs and writes the shared files first
(candidate sets, feature caches, backbone conversions, saved dataloaders); a run ends with every
process waiting for the others, and the process group is destroyed when the process exits.
"""

import contextlib
import logging
from logging import getLogger

import recbole_speeder.compat  # noqa: F401  (numpy/pandas/torch adaptations first)
from recbole.data import data_preparation
from recbole.utils import init_seed, set_color

from recbole_speeder.config import Config
from recbole_speeder.data.candidates import load_or_draw
from recbole_speeder.data.item_table import item_titles
from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateEvaluator
from recbole_speeder.features.image_summary import item_summaries
from recbole_speeder.features.loader import load_item_features
from recbole_speeder.features.sequential import sasrec_overrides, train_sequential_embeddings
from recbole_speeder.llm.backbone import load_backbone
from recbole_speeder.trainer.distributed import context_for, init_process_logging
from recbole_speeder.utils import create_dataset, get_model, get_trainer


def _reset_logging():
    """RecBole's ``init_logger`` adds handlers on every call; keep one set per run."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def feature_inputs(config):
    """What the features layer is handed instead of importing it (keyword arguments of
    :func:`~recbole_speeder.features.loader.load_item_features`):

    - ``llm_loader``: ``() -> (model, tokenizer)``, the run's backbone on ``feature_device``
      (``text_encoder: llm``);
    - ``sequence_encoder``: ``(dataset, train_data) -> item embeddings``, RecBole's SASRec
      trained with the plugin's trainer on the training split (:mod:`~recbole_speeder.features.sequential`).
    """
    device = config["feature_device"]

    def llm_loader():
        return load_backbone(config["llm_path"], device=None if device == "auto" else device,
                             tokenizer=config["llm_tokenizer"])

    def sequence_encoder(dataset, train_data):
        sub_config = Config(model="SASRec", dataset=config["dataset"], config_dict=sasrec_overrides(config))
        trainer_class = get_trainer(sub_config["MODEL_TYPE"], "SASRec")
        return train_sequential_embeddings(sub_config, dataset, train_data, trainer_class)

    return {"llm_loader": llm_loader, "sequence_encoder": sequence_encoder}


def attach_side_info(config, dataset, train_data, model_class):
    """Compute the side information ``model_class.side_info`` declares and attach it to
    ``dataset`` (:mod:`recbole_speeder.data.dataset`); returns what was attached."""
    needs = tuple(getattr(model_class, "side_info", ()))
    values = {}
    if "item_titles" in needs or "item_summaries" in needs:
        values["item_titles"] = item_titles(config, dataset)
    if "item_summaries" in needs:
        values["item_summaries"], _ = item_summaries(config, dataset, values["item_titles"])
    if "item_features" in needs:
        values["item_features"] = load_item_features(config, dataset, train_data, **feature_inputs(config))
    values = {name: value for name, value in values.items() if name in needs}
    if values:
        dataset.attach_side_info(**values)
    return values


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
        resume_file=None, model_file=None):
    """Train (or load with ``model_file``) and evaluate one model on one dataset.

    Returns a dict with RecBole's ``best_valid_result`` / ``test_result``, the candidate
    metrics ``candidate_valid`` / ``candidate_test``, and ``train_ms_per_sample``.
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dist = context_for(config)
    dist.begin_run()
    _reset_logging()
    init_process_logging(config)
    logger = getLogger()
    logger.info(config)

    saves = bool(config["save_dataloaders"])  # the same on every process
    if saves and not dist.is_main_process:
        config["save_dataloaders"] = False  # process 0 saves the split; the others then load it
    with dist.main_process_first() if saves else contextlib.nullcontext():
        dataset = create_dataset(config)
        logger.info(dataset)
        train_data, valid_data, test_data = data_preparation(config, dataset)

    model_class = get_model(config["model"])
    candidate_only = getattr(model_class, "candidate_only", False)
    if dist.enabled and not candidate_only:
        raise ConfigError(f"{config['model']}: multi-process launches train the LLM models only; "
                          "run RecBole's models with plain `python run_recbole_speeder.py`.")
    candidate_sets = {}
    if config["candidate_eval"] or candidate_only:
        with dist.main_process_first():  # process 0 draws and stores the sets, the others read them
            candidate_sets = {
                split: load_or_draw(config, dataset, data._dataset, split)
                for split, data in (("valid", valid_data), ("test", test_data))
            }
    with dist.main_process_first():  # process 0 fills the feature and text caches
        attach_side_info(config, train_data._dataset, train_data, model_class)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    with dist.main_process_first():  # process 0 fills the backbone's conversion / download cache
        model = model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.candidate_sets = candidate_sets
    dist.seed_process(config)  # launched processes draw their own negatives, dropout, PPT questions

    if model_file is None:
        if resume_file is not None:
            trainer.resume_checkpoint(resume_file)
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"]
        )
        load_best = saved
    else:
        best_valid_score, best_valid_result = None, None
        load_best = True
    test_result = trainer.evaluate(
        test_data, load_best_model=load_best, model_file=model_file, show_progress=config["show_progress"]
    )
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "train_ms_per_sample": (
            1000.0 * trainer.train_seconds / trainer.train_samples if getattr(trainer, "train_samples", 0) else None
        ),
        "saved_model_file": trainer.saved_model_file if saved else None,
    }
    if candidate_only:  # the trainer validated and tested on the candidate sets already
        result["candidate_valid"], result["candidate_test"] = best_valid_result, test_result
        result["test_result"] = None
    elif candidate_sets:
        evaluator = CandidateEvaluator(config)
        result["candidate_valid"] = evaluator.evaluate(model, valid_data, candidate_sets["valid"])
        result["candidate_test"] = evaluator.evaluate(model, test_data, candidate_sets["test"])
    if result.get("candidate_test"):
        logger.info(set_color("candidate test result", "yellow") + f": {result['candidate_test']}")
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    dist.end_run()  # a launched run: every process waits here; the group is destroyed at exit
    return result


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """Hyper-parameter search objective, as RecBole's: train once, report valid and test."""
    result = run(config_dict=config_dict, config_file_list=config_file_list, saved=saved)
    return {
        "model": result["model"],
        "best_valid_score": result["best_valid_score"],
        "valid_score_bigger": result["valid_score_bigger"],
        "best_valid_result": result["best_valid_result"],
        "test_result": result["test_result"],
        "candidate_test": result.get("candidate_test"),
    }
