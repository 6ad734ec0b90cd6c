r"""TMF
################################################

Reference:
    Luyi Ma et al. "Triple Modality Fusion: Aligning Visual, Textual, and Graph Data with Large
    Language Models for Multi-Behavior Recommendations", arXiv 2410.12228.

    TMF, as the Speeder paper (arXiv 2511.05885) describes it: an MLLM-driven sequential
    recommender that "extends LLaRA by integrating visual, textual, and graph-based embeddings
    for items and behaviors"; it has no official code (the Speeder paper implemented it from its
    paper), and it is the Speeder paper's anchor for speed ("2.5 times the speed of LLaRA and TMF
    during training, and nearly 4 times their speed during inference").

LLaRA (:class:`~recbole_speeder.model.llara.LLaRA`) with one item token per modality: every
history item and candidate of a hybrid prompt is written as its title followed by one
placeholder per modality the run has, in the fixed order text, vision, seq
(:data:`~recbole_speeder.features.loader.MODALITIES`); each placeholder's input embedding is the
item's frozen feature of that modality (``item_features``: the ``text_encoder`` title vector, the
``vision_encoder`` image vector, the SASRec item embedding) mapped to the LLM width by that
modality's own projector (LLaRA's Linear, GELU, Linear). Everything else is LLaRA's: the title
prompt, the curriculum from text-only to hybrid prompts (``curriculum_ratio``), the answer (the
chosen candidate's title, generated or ranked by likelihood: ``eval_mode``), LoRA on the shared
backbone, :class:`~recbole_speeder.trainer.LLaRATrainer`.

Choices, each where the paper's TMF needs what the plugin's data does not have:

- **graph / behaviour embedding: the SASRec item embeddings** (the ``seq`` features, trained on
  the run's training split, as LLaRA's and Speeder's id features are). TMF's graph encoder runs
  over an item-behaviour graph of several behaviour types (view, cart, purchase); the plugin's
  datasets (ml-100k, Amazon reviews) have one behaviour, where that graph is the plain user-item
  graph, and the plugin has no graph encoder. SASRec's embeddings are the collaborative signal the
  other models already read, so TMF differs from LLaRA by its extra modality tokens only.
- **no fusion module**: each modality is projected on its own and gets its own token (TMF fuses
  the modalities with attention before the LLM); the prompt carries one token per modality, which
  is what makes TMF's prompt, and so its time, longer than LLaRA's.
- **modalities the dataset lacks are left out of the prompt**: a dataset without images
  (ml-100k) has no vision features (the feature loader drops them and logs it), so its items get
  two tokens (text, seq); ``modalities`` picks a subset. An item without an input of a modality it
  has (an unreadable image: its feature is zeros) gets that projector's image of zeros, a learned
  "absent" token.

TMF chooses among the candidates written in its prompt: it cannot rank the whole catalog
(``ranks_catalog`` False), so RecBole's ranking evaluation is refused for it
(:mod:`recbole_speeder.evaluation.protocols`).
"""

import logging

import torch
from torch import nn

from recbole_speeder.errors import ConfigError
from recbole_speeder.features.loader import MODALITIES
from recbole_speeder.model.llara import LLaRA, item_projector

logger = logging.getLogger(__name__)


class TMF(LLaRA):
    """LLaRA with one projected token per item modality (text, vision, seq) after each title."""

    def build_item_tokens(self, features, hidden):
        self.token_modalities = tuple(m for m in MODALITIES if m in features.modalities)
        if not self.token_modalities:
            raise ConfigError("TMF needs item features (modalities: text / vision / seq); none were loaded.")
        missing = [m for m in MODALITIES if m not in self.token_modalities]
        logger.info(f"TMF item tokens after each title: {', '.join(self.token_modalities)}"
                    + (f" ({', '.join(missing)}: not in this run)" if missing else ""))
        device = features.tensors[self.token_modalities[0]].device
        for m in self.token_modalities:
            self.register_buffer(f"feature_{m}", features.tensors[m].float(), persistent=False)
        self.projectors = nn.ModuleDict(
            {m: item_projector(features.dims[m], hidden) for m in self.token_modalities}).to(device)
        self.prompt.item_slots = len(self.token_modalities)

    def slot_vectors(self, item_ids):
        """[S, H]: the placeholders come in groups of one per modality (an item's are adjacent in
        the prompt, so adjacent in row-major order), in ``token_modalities`` order."""
        count = len(self.token_modalities)
        items = item_ids[::count].to(getattr(self, f"feature_{self.token_modalities[0]}").device)
        vectors = [self.projectors[m](getattr(self, f"feature_{m}")[items]) for m in self.token_modalities]
        return torch.stack(vectors, dim=1).reshape(len(item_ids), -1)
