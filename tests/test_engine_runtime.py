"""How a model runs: device and memory format, compile switch, mixed precision; inputs in the same format."""

import pytest
import torch
from torch import nn

from videonl.config import get_cfg
from videonl.data.loader import model_input
from videonl.engine.runtime import autocast, compiled, grad_scaler, place_model

CPU = torch.device("cpu")


def cfg_with(channels_last=False, precision="none"):
    cfg = get_cfg()
    cfg.TRAIN.CHANNELS_LAST, cfg.TRAIN.MIXED_PRECISION = channels_last, precision
    return cfg


@pytest.mark.parametrize("channels_last", [False, True])
def test_model_and_inputs_share_the_configured_memory_format(channels_last):
    cfg = cfg_with(channels_last)
    model = place_model(nn.Conv3d(3, 4, 3), cfg, CPU)
    clip = model_input(torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8), cfg, CPU)
    format_ = torch.channels_last_3d if channels_last else torch.contiguous_format
    assert model.weight.is_contiguous(memory_format=format_) and clip.is_contiguous(memory_format=format_)
    assert clip.dtype == torch.float32  # normalised on the way
    assert compiled(model, cfg) is model  # TRAIN.COMPILE off


def test_only_fp16_gets_an_active_grad_scaler_and_unknown_precisions_fail():
    assert [grad_scaler(cfg_with(precision=p), CPU).is_enabled() for p in ("none", "bf16", "fp16")] == \
        [False, False, True]
    with autocast(cfg_with(precision="bf16"), CPU):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="TRAIN.MIXED_PRECISION must be one of none, bf16, fp16"):
        autocast(cfg_with(precision="fp8"), CPU)
