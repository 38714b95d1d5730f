"""The global-context framework: GC, simplified NL and SE against GCNet's formulas and figures."""

import logging
import math

import pytest
import torch

from block_checks import assert_matches_reference
from videonl.config import load_cfg
from videonl.flops import flop_analysis
from videonl.info import model_report
from videonl.models import build_model
from videonl.models.context.global_context import GCBlock, GlobalContext, SimplifiedNonLocal, SqueezeExcite
from videonl.models.registry import context_block_class


def global_context_reference(x, p, pooling, transform, fusion):
    """GCNet Eq. 2-4 and SE, one clip and one position at a time: z_i = F(x_i, delta(sum_j alpha_j x_j))."""
    batch, channels = x.shape[:2]
    out = torch.empty_like(x)
    for b in range(batch):
        positions = x[b].reshape(channels, -1)  # column j is x_j
        n = positions.shape[1]
        if pooling == "attention":
            logits = torch.stack([p["mask.weight"].flatten() @ positions[:, j] + p["mask.bias"][0] for j in range(n)])
            alpha = torch.exp(logits) / torch.exp(logits).sum()
        else:
            alpha = torch.full((n,), 1.0 / n, dtype=x.dtype)
        context = sum(alpha[j] * positions[:, j] for j in range(n))
        first = p["transform.0.weight"].flatten(1) @ context + p["transform.0.bias"]
        if transform == "linear":
            delta = first
        elif transform == "bottleneck":
            normed = (first - first.mean()) / torch.sqrt(first.var(unbiased=False) + 1e-5)
            hidden = torch.relu(normed * p["transform.1.weight"].flatten() + p["transform.1.bias"].flatten())
            delta = p["transform.3.weight"].flatten(1) @ hidden + p["transform.3.bias"]
        else:
            hidden = torch.relu(first)
            delta = torch.sigmoid(p["transform.2.weight"].flatten(1) @ hidden + p["transform.2.bias"])
        fused = positions + delta[:, None] if fusion == "add" else positions * delta[:, None]
        out[b] = fused.view_as(x[b])
    return out


PRESETS = {"gc": ("attention", "bottleneck", "add"), "snl": ("attention", "linear", "add"),
           "se": ("average", "excite", "multiply")}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_equal_the_papers_formulas(name):
    block_class = context_block_class(name)
    assert block_class.preset == PRESETS[name]
    block = block_class(16, *PRESETS[name], ratio=4)
    x = torch.randn(2, 16, 2, 3, 4)
    assert_matches_reference(block, lambda x, p: global_context_reference(x, p, *PRESETS[name]), x)


def test_any_combination_of_the_three_parts():
    block = GlobalContext(8, pooling="average", transform="bottleneck", fusion="multiply", ratio=2)
    x = torch.randn(1, 8, 2, 2, 3)
    assert_matches_reference(block, lambda x, p: global_context_reference(x, p, "average", "bottleneck", "multiply"), x)


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "max"}, "pooling 'max'"), ({"transform": "mlp"}, "transform 'mlp'"),
    ({"fusion": "concat"}, "fusion 'concat'"), ({"ratio": 32}, "ratio 32 leaves no channels"),
])
def test_bad_parts_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GlobalContext(16, **kwargs)


def test_add_fusion_starts_as_identity_and_se_keeps_the_default_init():
    x = torch.randn(2, 32, 2, 3, 3)
    for block in (GCBlock(32, *PRESETS["gc"], ratio=4), SimplifiedNonLocal(32, *PRESETS["snl"])):
        assert torch.equal(block(x), x)
        assert torch.count_nonzero(block.transform[-1].weight) == 0
    se = SqueezeExcite(32, *PRESETS["se"], ratio=4)
    gate = se(x) / x
    assert torch.all((gate > 0) & (gate < 1))
    assert gate.std() > 1e-3, "SE's gate should differ between channels: its convs keep PyTorch's init"


def test_flops_equal_a_hand_count():
    """Per clip: the 1x1x1 mask conv C*N, the weighted sum C*N, and the transform's convs (C*C/r each)."""
    c, r, n = 64, 4, 2 * 5 * 6
    x = torch.randn(1, c, 2, 5, 6)
    hand = {"gc": 2 * c * n + 2 * c * (c // r), "snl": 2 * c * n + c * c, "se": 2 * c * (c // r)}
    for name, expected in hand.items():
        block = context_block_class(name)(c, *PRESETS[name], ratio=r)
        assert flop_analysis(block, x).total() == expected, name


ALL_RES3_RES5 = ["CONTEXT.RES3", "[0, 1, 2, 3]", "CONTEXT.RES4", "[0, 1, 2, 3, 4, 5]", "CONTEXT.RES5", "[0, 1, 2]"]
RESNET50_2D = ["DATA.NUM_FRAMES", "1", "RESNET.POOL2_TEMPORAL_KERNEL", "0", "MODEL.NUM_CLASSES", "1000"]


def test_gcnet_resnet50_figures():
    """GCNet: GC (r = 16) after every bottleneck of res3-res5 takes ResNet-50 from 25.56 M to 28.08 M parameters
    (+2.52 M) and its FLOPs up by about 0.26 %. On our C2D with one frame (a 2D ResNet-50 at 224 x 224) we count
    exactly 2.52 M and +0.21 %: fvcore counts multiply-adds only, the paper's count is not given in detail.
    """
    gc = ["CONTEXT.BLOCK", "gc", "CONTEXT.POSITION", "after_conv_c", "GC.RATIO", "16", *ALL_RES3_RES5]
    plain = model_report(load_cfg("configs/kinetics400/c2d_r50_8x8.yaml", RESNET50_2D))
    ours = model_report(load_cfg("configs/kinetics400/c2d_r50_8x8.yaml", RESNET50_2D + gc))
    assert plain["input_shape"] == [1, 3, 1, 224, 224] and len(ours["context_blocks"]) == 13
    assert (round(plain["params_m"], 2), round(ours["params_m"], 2)) == (25.56, 28.08)
    assert round(ours["params_m"] - plain["params_m"], 2) == 2.52
    increase = ours["gflops"] / plain["gflops"] - 1
    assert 0.0020 < increase < 0.0030, f"{increase:.4%}"
    # Exactly the hand count: per block 2 C N (mask conv, weighted sum) + 2 C^2 / r (transform), N = H W.
    hand = sum(blocks * (2 * c * hw + 2 * c * c // 16) for blocks, c, hw in ((4, 512, 28**2), (6, 1024, 14**2),
                                                                               (3, 2048, 7**2)))
    assert math.isclose((ours["gflops"] - plain["gflops"]) * 1e9, hand, rel_tol=0, abs_tol=0.5)
    assert math.isclose(sum(b["gflops"] for b in ours["context_blocks"]) * 1e9, hand, abs_tol=0.5)


def _se_reduction(caplog, *opts):
    """The hidden width of the SE blocks that `opts` give a narrow SE slow-only model, and the warnings logged."""
    cfg = load_cfg("configs/kinetics400/se_slow_r50_8x8_all.yaml", ["RESNET.WIDTH", "16", *opts])
    with caplog.at_level(logging.WARNING, logger="videonl.config"):
        caplog.clear()
        block = build_model(cfg).res2[0].context
    return block.transform[0].in_channels // block.transform[0].out_channels, caplog.messages


def test_se_reads_its_own_ratio_and_an_old_gc_ratio_with_a_logged_rename(caplog):
    assert _se_reduction(caplog) == (16, [])
    assert _se_reduction(caplog, "SE.RATIO", "4") == (4, [])
    reduction, messages = _se_reduction(caplog, "SE.RATIO", "16", "GC.RATIO", "8")  # an SE config of before SE.RATIO
    assert reduction == 8 and len(messages) == 1 and "set SE.RATIO instead" in messages[0]
    gc = load_cfg("configs/kinetics400/gc_slow_r50_8x8_gc_all.yaml", ["RESNET.WIDTH", "16", "SE.RATIO", "2"])
    block = build_model(gc).res3[0].context
    assert block.transform[0].in_channels // block.transform[0].out_channels == 4  # GC.RATIO of the file, not SE's
