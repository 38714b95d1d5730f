"""How a model runs: device and memory format, compile switch, mixed precision; inputs in the same format."""

import os
import shutil

import pytest
import torch
from torch import nn

from helpers import randomize_batch_norms
from videonl.config import get_cfg, load_cfg
from videonl.benchmark.timing import torch_threads
from videonl.data.loader import model_input
from videonl.engine.runtime import autocast, compiled, grad_scaler, place_model
from videonl.models import build_model

CPU = torch.device("cpu")


def cfg_with(channels_last=False, precision="fp32"):
    cfg = get_cfg()
    cfg.RUNTIME.CHANNELS_LAST, cfg.RUNTIME.PRECISION = channels_last, precision
    return cfg


@pytest.mark.parametrize("channels_last", [False, True])
def test_model_and_inputs_share_the_configured_memory_format(channels_last):
    cfg = cfg_with(channels_last)
    model = place_model(nn.Conv3d(3, 4, 3), cfg, CPU)
    clip = model_input(torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8), cfg, CPU)
    format_ = torch.channels_last_3d if channels_last else torch.contiguous_format
    assert model.weight.is_contiguous(memory_format=format_) and clip.is_contiguous(memory_format=format_)
    assert clip.dtype == torch.float32  # normalised on the way
    assert compiled(model, cfg) is model  # RUNTIME.COMPILE off


def test_only_fp16_gets_an_active_grad_scaler_and_unknown_precisions_fail():
    assert [grad_scaler(cfg_with(precision=p), CPU).is_enabled() for p in ("fp32", "bf16", "fp16")] == \
        [False, False, True]
    with autocast(cfg_with(precision="bf16"), CPU):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="RUNTIME.PRECISION must be one of fp32, bf16, fp16"):
        autocast(cfg_with(precision="fp8"), CPU)


def tiny_cfg(*opts):
    """The demo's NL I3D at width 2 and one residual block per stage (non-local blocks in res3 and res4)."""
    return load_cfg("configs/demo/nl_i3d.yaml", ["RESNET.WIDTH", "2", "RESNET.BLOCKS", "[1, 1, 1, 1]", *opts])


def tiny_model(cfg) -> nn.Module:
    torch.manual_seed(0)
    return randomize_batch_norms(build_model(cfg)).eval()


@torch_threads(2)  # on one thread, torch picks CPU kernels for these tiny convolutions that return contiguous output
def test_channels_last_runs_in_that_format_and_gives_the_contiguous_output():
    clip = torch.randint(0, 256, (2, 3, 8, 32, 32), dtype=torch.uint8)
    outputs, res2_channels_last, weights_channels_last = {}, {}, {}
    for channels_last in (False, True):
        cfg = tiny_cfg("RUNTIME.CHANNELS_LAST", str(channels_last))
        model = place_model(tiny_model(cfg), cfg, CPU)
        weights_channels_last[channels_last] = model.res2[0].conv_b.weight.is_contiguous(
            memory_format=torch.channels_last_3d)
        model.res2.register_forward_hook(lambda module, inputs, output, key=channels_last: res2_channels_last.update(
            {key: output.is_contiguous(memory_format=torch.channels_last_3d) and not output.is_contiguous()}))
        with torch.no_grad():
            outputs[channels_last] = model(model_input(clip, cfg, CPU))
    assert res2_channels_last == weights_channels_last == {False: False, True: True}
    torch.testing.assert_close(outputs[True], outputs[False], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="torch.compile's CPU backend needs a C compiler, none found")
def test_compile_gives_the_eager_output():
    cfg = tiny_cfg("RUNTIME.COMPILE", "True")
    model = tiny_model(cfg)
    compiled_model = compiled(model, cfg)
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        expected, actual = model(clip), compiled_model(clip)
    assert isinstance(compiled_model, torch._dynamo.eval_frame.OptimizedModule)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
