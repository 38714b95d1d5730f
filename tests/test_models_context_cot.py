"""CoT: the block against its paper's steps, and its place in the bottleneck (CONTEXT.POSITION conv_b)."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from block_checks import assert_matches_reference, batch_norm, conv1x1, group_norm, small_cfg
from videonl.flops import flop_analysis
from videonl.models import build_model
from videonl.models.context.cot import ContextualTransformer


def local_aggregation(values, weights, head_channels, window):
    """K2_i = sum over the window offsets o of A_{i,o} V_{i+o}, V zero outside the clip; A shared per head."""
    kt, kh, kw = window
    batch, channels = values.shape[:2]
    weights = weights.view(batch, channels // head_channels, kt * kh * kw, *values.shape[2:])
    weights = weights.repeat_interleave(head_channels, dim=1)  # channel c reads the maps of head c // head_channels
    out = torch.zeros_like(values)
    offsets = itertools.product(range(-(kt // 2), kt // 2 + 1), (-1, 0, 1), (-1, 0, 1))
    for k, offset in enumerate(offsets):
        dst = [slice(max(0, -o), size - max(0, o)) for o, size in zip(offset, values.shape[2:])]
        src = [slice(max(0, o), size - max(0, -o)) for o, size in zip(offset, values.shape[2:])]
        out[(...,) + tuple(dst)] += weights[:, :, k][(...,) + tuple(dst)] * values[(...,) + tuple(src)]
    return out


def cot_reference(x, p, stride, window, key_groups, head_channels):
    """CoT (Sec. 3.2): static K1 from a grouped conv on the keys; A = [X, K1] W_theta W_delta; K2 = A * V
    over each neighbourhood; Y = split attention of K1 and K2."""
    if stride > 1:
        x = F.avg_pool3d(x, (1, 3, 3), (1, stride, stride), (0, 1, 1))
    channels = x.shape[1]
    heads = channels // head_channels
    padding = tuple(k // 2 for k in window)
    static = torch.relu(batch_norm(F.conv3d(x, p["keys.0.weight"], padding=padding, groups=key_groups), p, "keys.1"))
    hidden = torch.relu(batch_norm(conv1x1(torch.cat([x, static], 1), p["attention.0.weight"]), p, "attention.1"))
    logits = conv1x1(hidden, p["attention.3.weight"], p["attention.3.bias"])
    weights = group_norm(logits, heads, p["attention.4.weight"], p["attention.4.bias"])
    values = batch_norm(conv1x1(x, p["values.0.weight"]), p, "values.1")
    dynamic = batch_norm(local_aggregation(values, weights, head_channels, window), p, "dynamic.0")
    dynamic = dynamic * torch.sigmoid(dynamic)  # swish
    pooled = (static + dynamic).mean(dim=(2, 3, 4), keepdim=True)
    squeezed = torch.relu(batch_norm(conv1x1(pooled, p["fusion.0.weight"], p["fusion.0.bias"]), p, "fusion.1"))
    logits = conv1x1(squeezed, p["fusion.3.weight"], p["fusion.3.bias"])
    a_static, a_dynamic = logits[:, :channels], logits[:, channels:]
    total = torch.exp(a_static) + torch.exp(a_dynamic)
    return torch.exp(a_static) / total * static + torch.exp(a_dynamic) / total * dynamic


@pytest.mark.parametrize("stride, temporal_kernel", [(1, 1), (2, 1), (1, 3)])
def test_equals_the_papers_steps(stride, temporal_kernel):
    block = ContextualTransformer(16, stride=stride, temporal_kernel=temporal_kernel, key_groups=4, head_channels=4)
    x = torch.randn(2, 16, 3, 5, 6)
    assert block(x).shape == (2, 16, 3, 3 if stride == 2 else 5, 3 if stride == 2 else 6)
    window = (temporal_kernel, 3, 3)
    assert_matches_reference(block, lambda x, p: cot_reference(x, p, stride, window, 4, 4), x)


def test_flops_count_the_local_aggregation():
    block = ContextualTransformer(32, head_channels=8).eval()  # 4 heads, fusion width max(16, 32) = 32
    x = torch.randn(1, 32, 2, 4, 4)
    n = 2 * 4 * 4
    convs = (32 * 32 // 4 * 9 + 64 * 16 + 16 * 4 * 9 + 32 * 32) * n + 32 * 32 + 32 * 64
    aggregation = 9 * 32 * n  # one multiply-add per channel, position and neighbour
    assert flop_analysis(block, x).total() == convs + aggregation


def test_replaces_the_3x3_conv_of_the_listed_bottlenecks():
    cfg = small_cfg("cot_slow_r50_8x8_res45")
    model = build_model(cfg)
    for stage in ("res2", "res3", "res4", "res5"):
        for block in getattr(model, stage):
            replaced = stage in ("res4", "res5")
            assert isinstance(block.context, ContextualTransformer) == replaced
            assert (block.conv_b is None and block.bn_b is None) == replaced
    assert model.res4[0].context.keys[0].in_channels == 8 * 4  # the inner width of res4
    clip = torch.randn(2, 3, 4, 64, 64)
    assert model(clip).shape == (2, 5)
    assert model.features(clip).shape == (2, 8 * 32, 4, 2, 2)


def test_misplaced_blocks_are_refused():
    with pytest.raises(ValueError, match="'cot' cannot go at CONTEXT.POSITION 'after_block'"):
        build_model(small_cfg("cot_slow_r50_8x8", "CONTEXT.POSITION", "after_block"))
    with pytest.raises(ValueError, match="'gc' cannot go at CONTEXT.POSITION 'conv_b'"):
        build_model(small_cfg("gc_slow_r50_8x8_1gc", "CONTEXT.POSITION", "conv_b"))
