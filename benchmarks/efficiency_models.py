"""The models benchmarks/efficiency.py times: the plugin's classes built on the synthetic dataset,
and "Backbone", the bare LoRA backbone that measures the plugin's own overhead."""

import os

import torch

from efficiency_inputs import DATASET, random_features

MODELS = ("Speeder", "LLaRA", "TMF", "TALLRec", "ZeroShot", "Backbone")


def random_teacher(config, dataset):
    """The frozen SASRec that ``distill_weight`` distills, with its initial (random) weights."""
    from recbole_speeder.config import Config
    from recbole_speeder.features.sequential import build_sequential_model, frozen, sasrec_overrides

    sub_config = Config(model="SASRec", dataset=DATASET, config_dict=sasrec_overrides(config))
    sub_config["device"] = config["device"]
    return frozen(build_sequential_model(sub_config, dataset, dataset))


def build_model(name, home, args, dtype, dev):
    """The plugin's model ``name`` on the synthetic dataset, through a RecBole Config."""
    from recbole_speeder.config import Config
    from recbole_speeder.data.item_table import item_titles
    from recbole_speeder.utils import create_dataset, get_model

    max_history = max(args.history)
    config_dict = {
        "data_path": home, "checkpoint_dir": os.path.join(home, "saved"), "show_progress": False,
        "state": "WARNING", "MAX_ITEM_LIST_LENGTH": max_history, "history_len": max_history,
        "candidate_num": args.candidates, "title_max_tokens": args.title_tokens,
        "generation_max_new_tokens": args.title_tokens, "use_gpu": dev.cuda, "seed": args.seed,
        "llm_path": args.llm_path, "llm_tokenizer": args.tokenizer, "llm_dtype": str(dtype).replace("torch.", ""),
    }
    if dev.cuda:
        config_dict["gpu_id"] = str(dev.device.index or 0)
    config_dict.update(args.overrides)
    config = Config(model=name, dataset=DATASET, config_dict=config_dict)
    config["device"] = dev.device
    dataset = create_dataset(config)
    model_class = get_model(name)
    side_info, needs = {}, model_class.side_info_for(config)
    if "item_features" in needs:
        modalities = ("text", "vision", "seq") if name in ("Speeder", "TMF") else ("seq",)
        generator = torch.Generator().manual_seed(args.seed)
        side_info["item_features"] = random_features(dataset.item_num, modalities, generator)
    if "item_titles" in needs:
        side_info["item_titles"] = item_titles(config, dataset)
    if "sequence_teacher" in needs:  # distill_weight: an untrained SASRec (speed does not depend on weights)
        side_info["sequence_teacher"] = random_teacher(config, dataset)
    dataset.attach_side_info(**side_info)
    torch.manual_seed(args.seed)
    model = model_class(config, dataset).to(dev.device)
    if hasattr(model, "set_stage"):
        model.set_stage(3)  # Speeder's last MPO stage: every modality, everything trainable
    return model


class BareBackbone:
    """The "Backbone" reference row: Speeder's LoRA backbone alone, fed random token ids as
    many as Speeder's recommendation prompt has for the same n (cut after the history with
    ``score_readout: last_item``, as Speeder's is; no item vectors, no PPT questions, no prompt
    building), through the model's own forward with ``logits_to_keep=1``; one answer token
    trained with cross-entropy, one forward at inference. Speeder's time over this row is the
    plugin's overhead on top of the bare backbone."""

    def __init__(self, speeder):
        self.speeder = speeder
        self.llm = speeder.llm
        for name, p in speeder.named_parameters():
            p.requires_grad_("lora_" in name and name.startswith("llm."))

    def __getattr__(self, name):  # ITEM_SEQ, n_items, max_seq_length ... of the Speeder it wraps
        return getattr(self.speeder, name)

    def parameters(self):
        return self.llm.parameters()

    def train(self):
        self.llm.train()

    def eval(self):
        self.llm.eval()

    def zero_grad(self, set_to_none=True):
        self.llm.zero_grad(set_to_none=set_to_none)

    def _random_prompt(self, interaction):
        n = min(int(interaction[self.speeder.ITEM_SEQ_LEN].max()), self.speeder.history_len)
        length = self.speeder.prompt.prompt_length(n, self.speeder.num_candidates, self.speeder.history_only)
        device = self.llm.get_input_embeddings().weight.device
        return torch.randint(1, self.llm.config.vocab_size, (len(interaction), length), device=device)

    def _answer_logits(self, ids):
        return self.llm(input_ids=ids, logits_to_keep=1, use_cache=False).logits[:, -1].float()

    def calculate_loss(self, interaction):
        ids = self._random_prompt(interaction)
        return torch.nn.functional.cross_entropy(self._answer_logits(ids), ids[:, 0])

    def candidate_scores(self, interaction, candidates):
        return self._answer_logits(self._random_prompt(interaction))

