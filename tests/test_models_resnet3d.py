import functools
import math

import pytest
import torch
from torch import nn

from videonl.config import load_cfg
from videonl.models import build_model, register_context_block
from videonl.models.norm import FrozenBatchNorm3d
from videonl.models.resnet3d import Bottleneck, Stem, VideoResNet

from helpers import randomize_batch_norms

SMALL = ["RESNET.WIDTH", "4", "RESNET.BLOCKS", "[1, 2, 2, 1]", "MODEL.NUM_CLASSES", "5"]


def cfg_of(name, *opts):
    return load_cfg(f"configs/kinetics400/{name}.yaml", list(opts))


def temporal_kernels(model, conv):
    """Per stage, the temporal kernel of `conv` ("conv_a" or "conv_b") in each residual block."""
    return [[getattr(block, conv).kernel_size[0] for block in getattr(model, stage)]
            for stage in ("res2", "res3", "res4", "res5")]


@pytest.mark.parametrize(
    "name, stem, kernels_a, kernels_b",
    [
        ("c2d_r50_32x2", 1, [[1] * 3, [1] * 4, [1] * 6, [1] * 3], [[1] * 3, [1] * 4, [1] * 6, [1] * 3]),
        ("i3d_r50_32x2", 5, [[3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]],
         [[1] * 3, [1] * 4, [1] * 6, [1] * 3]),
        ("i3d333_r50_32x2", 5, [[1] * 3, [1] * 4, [1] * 6, [1] * 3],
         [[3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]]),
        ("slow_r50_8x8", 1, [[1] * 3, [1] * 4, [3] * 6, [3] * 3], [[1] * 3, [1] * 4, [1] * 6, [1] * 3]),
    ],
)
def test_temporal_kernel_tables(name, stem, kernels_a, kernels_b):
    model = build_model(cfg_of(name, "RESNET.WIDTH", "4"))
    assert model.stem.conv.kernel_size == (stem, 7, 7)
    assert temporal_kernels(model, "conv_a") == kernels_a
    assert temporal_kernels(model, "conv_b") == kernels_b


def test_i3d_r101_inflates_every_other_block_of_res4():
    model = build_model(cfg_of("i3d_r101_32x2", "RESNET.WIDTH", "4"))
    assert temporal_kernels(model, "conv_a")[2] == [3 if i % 2 == 0 else 1 for i in range(23)]


@pytest.mark.parametrize(
    "name, frames, stem_t, res3_t",
    [("c2d_r50_32x2", 32, 8, 4), ("i3d_r50_32x2", 128, 32, 16), ("i3d_r50_8x8", 8, 8, 4), ("slow_r50_8x8", 8, 8, 8)],
)
def test_temporal_layouts(name, frames, stem_t, res3_t):
    model = build_model(cfg_of(name, *SMALL)).eval()
    shapes = {}
    for stage, module in model.stage_modules():
        module.register_forward_hook(lambda m, i, out, stage=stage: shapes.__setitem__(stage, tuple(out.shape)))
    with torch.no_grad():
        model(torch.randn(1, 3, frames, 64, 64))
    assert shapes["stem"][2:] == (stem_t, 16, 16)
    assert shapes["res3"][2:] == (res3_t, 8, 8)
    assert shapes["res5"][2] == res3_t


def test_fresh_residual_branches_are_zero():
    model = build_model(cfg_of("i3d_r50_8x8", *SMALL))
    assert all(torch.all(m.bn_c.weight == 0) for m in model.modules() if isinstance(m, Bottleneck))
    model = build_model(cfg_of("i3d_r50_8x8", *SMALL, "RESNET.ZERO_INIT_FINAL_BN", "False"))
    assert all(torch.all(m.bn_c.weight == 1) for m in model.modules() if isinstance(m, Bottleneck))


def test_test_logits_are_each_windows_logits_and_forward_the_pooled_logits():
    model = build_model(cfg_of("c2d_r50_8x8", *SMALL, "MODEL.HEAD_POOL", "2")).eval()
    randomize_batch_norms(model)
    clip = torch.randn(2, 3, 8, 96, 128)  # res5 map 3 x 4 -> 2 x 3 windows of 2 x 2
    with torch.no_grad():
        test_logits, logits = model.test_logits(clip), model(clip)
        feats = model.features(clip)
    windows = []
    for y in range(feats.shape[3] - 1):
        for x in range(feats.shape[4] - 1):
            pooled = feats[:, :, :, y : y + 2, x : x + 2].mean(dim=(2, 3, 4))
            windows.append(model.head.fc(pooled))
    assert len(windows) == 6
    torch.testing.assert_close(test_logits, torch.stack(windows, dim=1), rtol=1e-5, atol=1e-6)
    # forward stays the logits of the whole map in eval too, whatever the window count: what a loss takes
    torch.testing.assert_close(logits, model.head.fc(feats.mean(dim=(2, 3, 4))))
    assert (logits[:, None] - test_logits).abs().amin(dim=1).max() > 1e-3


def test_single_window_and_training_give_plain_logits():
    model = build_model(cfg_of("c2d_r50_8x8", *SMALL)).eval()
    randomize_batch_norms(model)
    clip = torch.randn(2, 3, 8, 64, 64)  # res5 map 2 x 2 < HEAD_POOL: one window
    with torch.no_grad():
        expected = model.head.fc(model.features(clip).mean(dim=(2, 3, 4)))
        torch.testing.assert_close(model(clip), expected)
        torch.testing.assert_close(model.test_logits(clip), expected[:, None])
        model.train()
        model.head.dropout.p = 0.0
        model.apply(lambda m: m.eval() if isinstance(m, nn.BatchNorm3d) else None)
        torch.testing.assert_close(model(clip), expected)


def test_the_stem_builds_its_conv_with_conv3d_keywords():
    calls = []

    def recording_conv(**kwargs):
        calls.append(kwargs)
        return nn.Conv3d(**kwargs)

    Stem(3, 8, nn.BatchNorm3d, t_kernel=5, t_stride=2, conv=recording_conv)
    assert calls == [dict(in_channels=3, out_channels=8, kernel_size=(5, 7, 7), stride=(2, 2, 2), padding=(2, 3, 3),
                          bias=False)]


def test_injected_builders_make_every_3x3_conv_and_activation_and_keep_the_parameter_names():
    plain = VideoResNet(blocks=(1, 2, 1, 1), width=4, num_classes=3)
    model = VideoResNet(blocks=(1, 2, 1, 1), width=4, num_classes=3, conv_b=functools.partial(nn.Conv3d, groups=2),
                        activation=nn.GELU)
    bottlenecks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(bottlenecks) == 5 and all(block.conv_b.groups == 2 for block in bottlenecks)
    assert model.res3[1].conv_b.weight.shape == (8, 4, 1, 3, 3)  # res3's 8 inner channels in 2 groups of 4
    activations = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.GELU))]
    assert len(activations) == 1 + 3 * 5 and all(isinstance(m, nn.GELU) for m in activations)
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert model(torch.randn(2, 3, 4, 32, 32)).shape == (2, 3)


class Negate(nn.Module):
    """A context block that negates its input: where it acts changes a block's output in a known way."""

    def __init__(self, dim, stage):
        super().__init__()
        self.dim, self.stage = dim, stage

    @classmethod
    def from_config(cls, settings, site):
        return cls(site.dim, site.stage)

    def forward(self, x):
        assert x.shape[1] == self.dim
        return -x


register_context_block("test_negate")(Negate)


def _context_cfg(position, *opts):
    return cfg_of("i3d_r50_8x8", *SMALL, "CONTEXT.BLOCK", "test_negate", "CONTEXT.POSITION", position, *opts)


def test_placement_puts_blocks_where_the_spec_says():
    model = build_model(_context_cfg("after_block", "CONTEXT.RES3", "[1]", "CONTEXT.RES4", "[0, 1]"))
    placed = {name for name, m in model.named_modules() if isinstance(m, Negate)}
    assert placed == {"res3.1.context", "res4.0.context", "res4.1.context"}
    assert model.res4[0].context.dim == 16 * 4 and model.res4[0].context.stage == "res4"


@pytest.mark.parametrize("position", ["after_block", "after_conv_c", "after_add"])
def test_context_positions(position):
    model = build_model(_context_cfg(position, "CONTEXT.RES3", "[1]")).eval()
    randomize_batch_norms(model)  # a residual branch that is not zero
    block = model.res3[1]
    branches = []
    block.bn_c.register_forward_hook(lambda module, inputs, output: branches.append(output.clone()))
    x = torch.randn(1, 32, 4, 8, 8)
    with torch.no_grad():
        out = block(x)
    branch = branches[0]  # the shortcut is x itself (same width, stride 1)
    expected = {"after_conv_c": torch.relu(x - branch), "after_add": torch.relu(-(branch + x)),
                "after_block": -torch.relu(branch + x)}
    torch.testing.assert_close(out, expected[position])


@pytest.mark.parametrize(
    "opts, message",
    [
        (SMALL + ["CONTEXT.BLOCK", "test_negate", "CONTEXT.RES4", "[6]"], "CONTEXT.RES4 index 6 is outside res4's 2"),
        (SMALL + ["CONTEXT.BLOCK", "test_negate"], "CONTEXT.RES2..RES5 are all empty"),
        (SMALL + ["CONTEXT.RES3", "[0]"], "CONTEXT.BLOCK names none"),
        (SMALL + ["CONTEXT.BLOCK", "nosuch", "CONTEXT.RES3", "[0]"], "'nosuch' is not a registered.*test_negate"),
        (SMALL + ["CONTEXT.BLOCK", "test_negate", "CONTEXT.RES3", "[0]", "CONTEXT.POSITION", "in"], "CONTEXT.POSITION"),
        (["RESNET.DEPTH", "34"], "RESNET.DEPTH 34"),
        (["RESNET.BLOCKS", "[1, 1]"], "RESNET.BLOCKS needs 4 entries"),
    ],
)
def test_bad_model_configs_name_the_key(opts, message):
    with pytest.raises((ValueError, KeyError), match=message):
        build_model(cfg_of("i3d_r50_8x8", *opts))


def test_even_temporal_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        build_model(cfg_of("i3d_r50_8x8", *SMALL, "RESNET.TEMPORAL_KERNEL_A", "[[2], [1], [1], [1]]"))


def test_frozen_bn_is_fixed_and_mode_independent():
    model = build_model(cfg_of("i3d_r50_8x8", *SMALL, "BN.FROZEN", "True", "MODEL.DROPOUT", "0.0"))
    norms = [m for m in model.modules() if isinstance(m, FrozenBatchNorm3d)]
    assert norms and not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    trainable = {n for n, p in model.named_parameters()}
    assert not any(".bn" in n or "stem.bn" in n for n in trainable)
    for m in norms:
        m.running_var.uniform_(0.5, 1.5)
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        train_out = model.train()(clip)
        eval_out = model.eval()(clip)
    torch.testing.assert_close(train_out, eval_out)
    assert math.isfinite(train_out.sum().item())
