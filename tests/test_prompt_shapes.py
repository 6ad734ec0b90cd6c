"""prompt_length_multiple: left-padded prompt batches come in few lengths (for llm_compile and CUDA
graphs), with the same answers as unpadded ones."""

import os
import sys

import numpy as np
import pytest
import torch

from recbole_speeder.errors import ConfigError
from recbole_speeder.prompts.base import left_pad, padded_length
from recbole_speeder.quick_start import run

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed_worker import build  # noqa: E402


def test_left_pad_rounds_the_length_up_to_the_multiple():
    ids, mask, offsets = left_pad([[5, 6, 7], [8]], pad_id=0, multiple=8)
    assert ids.shape == mask.shape == (2, 8)
    assert ids[0].tolist() == [0] * 5 + [5, 6, 7] and mask[1].tolist() == [0] * 7 + [1]
    assert offsets == [5, 7]
    assert [padded_length(n, 16) for n in (1, 16, 17)] == [16, 16, 32]
    assert left_pad([[5, 6, 7]], pad_id=0)[0].shape == (1, 3)  # the default: the longest prompt


@pytest.fixture
def shaped_config(fast_config, tiny_llm_dir):
    return dict(fast_config, llm_path=tiny_llm_dir, train_batch_size=8, eval_batch_size=16, mome_dim=16, mome_heads=2,
                history_len=5, seq_encoder_epochs=1, seq_encoder_hidden=16, ppt_ratio=0.5, prompt_packing=False,
                lora_dropout=0.0, mome_dropout=0.0, reconstruction_stages=[1, 2, 3])


def test_padded_batches_give_the_unpadded_losses_and_scores(shaped_config):
    _, train_data, model, _ = build(shaped_config)
    model.set_stage(3)
    interaction = next(iter(train_data))

    def loss_and_scores(multiple):
        model.prompt.length_multiple = model.reconstruction.length_multiple = multiple
        torch.manual_seed(0)  # the same PPT questions, reconstruction rows and training candidates
        np.random.seed(0)
        batch = model.prompt.build([[1, 2], [3, 4, 5, 6, 7]], np.array([[1, 2, 3, 4, 5], [2, 3, 4, 5, 6]]))
        with torch.no_grad():  # no dropout in either pass (lora_dropout, mome_dropout 0)
            loss = model.train().calculate_loss(interaction)
            return batch.input_ids.shape[1], loss, model.eval().full_sort_predict(interaction)

    plain_length, plain_loss, plain_scores = loss_and_scores(1)
    length, loss, scores = loss_and_scores(16)
    assert length % 16 == 0 and length > plain_length
    assert loss.item() == pytest.approx(plain_loss.item(), rel=1e-5)
    torch.testing.assert_close(scores, plain_scores, rtol=1e-4, atol=1e-5)


def test_the_setting_reaches_every_prompt_builder_and_is_checked(shaped_config):
    _, _, model, _ = build(dict(shaped_config, prompt_length_multiple=8))
    assert model.prompt.length_multiple == model.reconstruction.length_multiple == 8
    with pytest.raises(ConfigError, match="prompt_length_multiple"):
        run(model="Speeder", dataset="tiny", config_dict=dict(shaped_config, prompt_length_multiple=0))
