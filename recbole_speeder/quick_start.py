"""run(...) and objective_function(...) as RecBole's quick start has them, without ray.

One run: config -> dataset -> RecBole split and dataloaders (minus the items ``cold_item_ratio``
holds out of training; the test histories shuffled with ``eval_shuffle_history``,
:mod:`recbole_speeder.data.eval_order`) -> the model's side information (:func:`attach_side_info`) -> model ->
trainer.fit -> RecBole's ranking test metrics (every model that scores any item) -> the
candidate-protocol metrics on the shared sets -> both again on the cold-target test rows
(:mod:`recbole_speeder.data.cold_items`).
Under ``accelerate launch`` / ``torchrun`` the LLM models train data-parallel
(:mod:`recbole_speeder.trainer.distributed`): process 0 logs and writes the shared files first
(candidate sets, feature caches, backbone conversions, saved dataloaders); a run ends with every
process waiting for the others, and the process group is destroyed when the process exits.
"""

import contextlib
import logging
from logging import getLogger

import recbole_speeder.compat as compat  # numpy/pandas/torch adaptations first
from recbole.data import data_preparation
from recbole.utils import set_color

from recbole_speeder.config import Config
from recbole_speeder.data.candidates import load_or_draw
from recbole_speeder.data.cold_items import cold_rows, cold_subset, hold_out_items
from recbole_speeder.data.eval_order import shuffle_test_histories
from recbole_speeder.data.item_table import item_titles
from recbole_speeder.errors import ConfigError
from recbole_speeder.evaluation.candidate_eval import CandidateEvaluator
from recbole_speeder.evaluation.protocols import split_result
from recbole_speeder.features.image_summary import item_summaries
from recbole_speeder.features.loader import load_item_features
from recbole_speeder.features.sequential import (
    build_sequential_model, item_embeddings, load_sequence_teacher, sasrec_overrides, train_sequential_model,
)
from recbole_speeder.llm.backbone import load_backbone
from recbole_speeder.trainer.checkpoint import check_checkpoint_folder, check_recbole_checkpoint
from recbole_speeder.trainer.distributed import context_for, init_process_logging
from recbole_speeder.trainer.timing import PhaseClock
from recbole_speeder.utils import create_dataset, get_model, get_trainer


def _reset_logging():
    """RecBole's ``init_logger`` adds handlers on every call; keep one set per run."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def feature_inputs(config, teacher=None):
    """What the features layer is handed instead of importing it (keyword arguments of
    :func:`~recbole_speeder.features.loader.load_item_features`):

    - ``llm_loader``: ``() -> (model, tokenizer)``, the run's backbone on ``feature_device``
      (``text_encoder: llm``);
    - ``sequence_encoder``: ``(dataset, train_data) -> item embeddings``, RecBole's SASRec
      trained with the plugin's trainer on the training split (:mod:`~recbole_speeder.features.sequential`),
      or the embeddings of ``teacher`` when the run has one (the same SASRec, trained once).
    """
    device = config["feature_device"]
    sequence_model = sequence_model_for(config)

    def llm_loader():
        return load_backbone(config["llm_path"], device=None if device == "auto" else device,
                             tokenizer=config["llm_tokenizer"])

    def sequence_encoder(dataset, train_data):
        if teacher is not None:
            return item_embeddings(teacher)
        return item_embeddings(sequence_model(dataset, train_data))

    return {"llm_loader": llm_loader, "sequence_encoder": sequence_encoder}


def sequence_model_for(config):
    """``(dataset, train_data, state_dict=None) -> SASRec``: RecBole's SASRec of the run's
    ``seq_encoder_*`` settings, trained on the training split with the plugin's trainer, or
    loaded with ``state_dict`` (:func:`~recbole_speeder.features.sequential.load_sequence_teacher`)."""

    def sequence_model(dataset, train_data, state_dict=None):
        sub_config = Config(model="SASRec", dataset=config["dataset"], config_dict=sasrec_overrides(config))
        if state_dict is not None:
            model = build_sequential_model(sub_config, dataset, train_data)
            model.load_state_dict(state_dict)
            return model
        trainer_class = get_trainer(sub_config["MODEL_TYPE"], "SASRec")
        return train_sequential_model(sub_config, dataset, train_data, trainer_class)

    return sequence_model


def attach_side_info(config, dataset, train_data, model_class):
    """Compute the side information ``model_class.side_info_for(config)`` declares and attach it to
    ``dataset`` (:mod:`recbole_speeder.data.dataset`); returns what was attached."""
    side_info_for = getattr(model_class, "side_info_for", None)
    needs = tuple(side_info_for(config)) if side_info_for else ()
    values = {}
    if "item_titles" in needs or "item_summaries" in needs:
        values["item_titles"] = item_titles(config, dataset)
    if "item_summaries" in needs:
        values["item_summaries"], _ = item_summaries(config, dataset, values["item_titles"])
    if "sequence_teacher" in needs:  # first: the seq features then reuse its embeddings
        values["sequence_teacher"] = load_sequence_teacher(config, dataset, train_data, sequence_model_for(config))
    if "item_features" in needs:
        values["item_features"] = load_item_features(
            config, dataset, train_data, **feature_inputs(config, teacher=values.get("sequence_teacher")))
    values = {name: value for name, value in values.items() if name in needs}
    if values:
        dataset.attach_side_info(**values)
    return values


def candidate_loaders(config, loaders):
    """Evaluation loaders with one row per evaluation sequence, in the candidate sets' order:
    the run's own, or, where RecBole evaluates on sampled negatives (DIN's ``uni100``), a
    full-sort loader over the same split. A model whose evaluation rows are not the split's
    sequences (a general recommender on the 7:2:1 split of sequences) is refused in one line,
    before any candidate set is drawn for it."""
    from recbole.data.dataloader import FullSortEvalDataLoader

    out = {}
    for split, data in loaders.items():
        if not isinstance(data, FullSortEvalDataLoader):
            data = FullSortEvalDataLoader(config, data._dataset, data._sampler, shuffle=False)
        sequences = len(data._dataset.inter_feat)  # the rows of the split's candidate set
        if data.sample_size != sequences:
            raise ConfigError(
                f"{config['model']} cannot be scored under the candidate protocol: its {split} evaluation has "
                f"{data.sample_size} rows (one per user), the split {sequences} sequences; "
                "set candidate_eval: False to get RecBole's metrics only.")
        out[split] = data
    return out


def check_checkpoint_arguments(config, resume_file=None, model_file=None):
    """``--resume`` / ``--checkpoint`` are readable checkpoints of this model, before anything
    is loaded or written: an LLM model's is a folder, a RecBole model's a ``.pth`` file."""
    candidate_only = getattr(get_model(config["model"]), "candidate_only", False)
    for option, path in (("--resume", resume_file), ("--checkpoint", model_file)):
        if path is None:
            continue
        if candidate_only:
            check_checkpoint_folder(path, option)
        else:
            check_recbole_checkpoint(path, config["model"], option)


def log_test_scalars(trainer, candidate_test):
    """The candidate test metrics into the run's TensorBoard file (``Test/<metric>``), beside
    RecBole's training loss and, for the LLM models, the per-epoch ``Valid/<metric>``."""
    writer = getattr(trainer, "tensorboard", None)
    if writer is None:
        return
    for name, value in candidate_test.items():
        if name != "n" and isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"Test/{name}", value, 0)
    writer.flush()


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
        resume_file=None, model_file=None):
    """Train (or load with ``model_file``) and evaluate one model on one dataset.

    Returns a dict with RecBole's ``best_valid_result`` / ``test_result``, the candidate
    metrics ``candidate_valid`` / ``candidate_test``, ``train_ms_per_sample`` and ``gpu_busy``.
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    check_checkpoint_arguments(config, resume_file, model_file)
    compat.quiet_harmless_warnings()
    compat.init_seed(config["seed"], config["reproducibility"])
    dist = context_for(config)
    dist.begin_run()
    _reset_logging()
    init_process_logging(config)
    logger = getLogger()
    logger.info(config)
    clock = PhaseClock()  # where the run's seconds go (trainer/timing.py), logged at the end

    saves = bool(config["save_dataloaders"])  # the same on every process
    if saves and not dist.is_main_process:
        config["save_dataloaders"] = False  # process 0 saves the split; the others then load it
    with clock.phase("data"), dist.main_process_first() if saves else contextlib.nullcontext():
        dataset = create_dataset(config)
        logger.info(dataset)
        train_data, valid_data, test_data = data_preparation(config, dataset)
    with clock.phase("data"):
        train_data = hold_out_items(config, train_data, logger)
        test_data = shuffle_test_histories(config, test_data, logger)  # eval_shuffle_history (order sensitivity)

    model_class = get_model(config["model"])
    candidate_only = getattr(model_class, "candidate_only", False)
    if dist.enabled and not candidate_only:
        raise ConfigError(f"{config['model']}: multi-process launches train the LLM models only; "
                          "run RecBole's models with plain `python run_recbole_speeder.py`.")
    candidate_sets, candidate_data = {}, {}
    if config["candidate_eval"] or candidate_only:
        candidate_data = candidate_loaders(config, {"valid": valid_data, "test": test_data})
        # process 0 draws and stores the sets, the others read them
        with clock.phase("candidates"), dist.main_process_first():
            candidate_sets = {
                split: load_or_draw(config, dataset, data._dataset, split)
                for split, data in (("valid", valid_data), ("test", test_data))
            }
    with clock.phase("features"), dist.main_process_first():  # process 0 fills the feature and text caches
        attach_side_info(config, train_data._dataset, train_data, model_class)

    compat.init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    with clock.phase("model"):
        with dist.main_process_first():  # process 0 fills the backbone's conversion / download cache
            model = model_class(config, train_data._dataset).to(config["device"])
        logger.info(model)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.phase_clock = clock
    trainer.candidate_sets = candidate_sets
    if candidate_only:
        trainer.candidate_data = candidate_data
    dist.seed_process(config)  # launched processes draw their own negatives, dropout, PPT questions

    if model_file is None:
        if resume_file is not None:
            trainer.resume_checkpoint(resume_file)
        with clock.phase("fit"):
            best_valid_score, best_valid_result = trainer.fit(
                train_data, valid_data, saved=saved, show_progress=config["show_progress"]
            )
        load_best = saved
    else:
        best_valid_score, best_valid_result = None, None
        load_best = True
    with clock.phase("test"):
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
        # the GPU's busy share of the training time (trainer/timing.py); None on the CPU
        "gpu_busy": trainer.gpu_busy.share() if getattr(trainer, "train_samples", 0) else None,
    }
    if candidate_only:  # the trainer scored the candidate sets already (and ranked, if the model can)
        result["best_valid_result"], result["candidate_valid"] = split_result(best_valid_result)
        result["test_result"], result["candidate_test"] = split_result(test_result)
    elif candidate_sets:
        evaluator = CandidateEvaluator(config)
        with clock.phase("test"):
            result["candidate_valid"] = evaluator.evaluate(model, candidate_data["valid"], candidate_sets["valid"])
            result["candidate_test"] = evaluator.evaluate(model, candidate_data["test"], candidate_sets["test"])
    with clock.phase("cold targets"):
        result.update(cold_target_results(config, trainer, train_data, test_data, candidate_data, candidate_sets))
    result["phase_seconds"] = clock.as_dict()
    logger.info(clock.describe())
    if result.get("candidate_test"):
        logger.info(set_color("candidate test result", "yellow") + f": {result['candidate_test']}")
        log_test_scalars(trainer, result["candidate_test"])
    logger.info(set_color("best valid ", "yellow") + f": {result['best_valid_result']}")
    logger.info(set_color("test result", "yellow") + f": {result['test_result']}")
    if result.get("cold_test_n"):
        logger.info(set_color("cold-target test result", "yellow")
                    + f" ({result['cold_test_n']} test sequences whose target has <= {config['cold_item_max_inter']} "
                    f"training interactions): {result['cold_test_result']}; candidates: {result['candidate_cold_test']}")
    dist.end_run()  # a launched run: every process waits here; the group is destroyed at exit
    return result


def cold_target_results(config, trainer, train_data, test_data, candidate_data, candidate_sets):
    """The test metrics on the cold-target rows (:func:`~recbole_speeder.data.cold_items.cold_rows`),
    from the best weights the test has loaded: ``cold_test_n`` (how many rows), ``cold_test_result``
    (RecBole's ranking metrics, None for a model that cannot rank) and ``candidate_cold_test``."""
    mask = cold_rows(config, train_data._dataset, test_data._dataset)
    if mask is None or not mask.any():
        return {"cold_test_n": 0 if mask is not None else None}
    out = {"cold_test_n": int(mask.sum()), "cold_test_result": None, "candidate_cold_test": None}
    model = trainer.model
    if getattr(model, "candidate_only", False):
        loader, trainer.candidate_sets["cold_test"] = cold_subset(config, test_data, mask, candidate_sets.get("test"))
        if "test" in candidate_data:
            trainer.candidate_data["cold_test"] = (
                loader if candidate_data["test"] is test_data else cold_subset(config, candidate_data["test"], mask)[0])
        result = trainer.evaluate(loader, load_best_model=False, split="cold_test")
        out["cold_test_result"], out["candidate_cold_test"] = split_result(result)
        return out
    out["cold_test_result"] = trainer.evaluate(cold_subset(config, test_data, mask)[0], load_best_model=False)
    if candidate_sets:
        loader, subset = cold_subset(config, candidate_data["test"], mask, candidate_sets["test"])
        out["candidate_cold_test"] = CandidateEvaluator(config).evaluate(model, loader, subset)
    return out


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
