"""The blocks' public attention maps: what the analysis reads is what the forward pass uses."""

import itertools

import pytest
import torch

from helpers import randomized
from videonl.analyze.common import attention_probes
from videonl.analyze.statistics import block_statistics
from videonl.models.context import non_local
from videonl.models.context.attention import AttentionKind
from videonl.models.context.global_context import GCBlock, SqueezeExcite
from videonl.models.context.non_local import INSTANTIATIONS, NonLocal
from videonl.models.context.windows import from_windows, to_windows

# (mode, frames per group, pool): whole clip, per frame, per pixel track, groups of frames, pooled time.
LAYOUTS = [("spacetime", 0, (1, 2, 2)), ("space", 0, (1, 2, 2)), ("time", 0, (1, 1, 1)), ("spacetime", 2, (1, 2, 2)),
           ("spacetime", 0, (2, 2, 2))]


def every_query(block: NonLocal, x: torch.Tensor) -> torch.Tensor:
    """The attention maps of every query row of every window."""
    query_window, _, _ = block.attention_windows(x.shape)
    return block.attention_maps(x, torch.arange(query_window[0] * query_window[1] * query_window[2]))


@pytest.mark.parametrize("instantiation, layout", itertools.product(INSTANTIATIONS, LAYOUTS))
def test_nonlocal_attention_reproduces_the_forward_pass(instantiation, layout, monkeypatch):
    monkeypatch.setattr(non_local, "attention_matrix_dominates", lambda q, k: True)  # fast path wherever it exists
    mode, group, pool = layout
    block = randomized(NonLocal(8, 4, instantiation, mode, group, pool))
    x = torch.randn(2, 8, 4, 6, 6)
    query_window, key_window = block.windows(x.shape)
    g = to_windows(block.conv_g(torch.nn.functional.max_pool3d(x, pool)), key_window)
    y = from_windows(every_query(block, x) @ g, (2, 4, 4, 6, 6), query_window)
    expected = x + block.bn(block.conv_out(y))
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_nonlocal_attention_has_one_row_per_query_of_each_window():
    block = randomized(NonLocal(8, 4, "embedded_gaussian", "space"))
    attention = every_query(block, torch.randn(2, 8, 4, 6, 6))
    assert attention.shape == (2 * 4, 6 * 6, 3 * 3)  # a window per frame; keys max-pooled 2x2
    torch.testing.assert_close(attention.sum(-1), torch.ones(8, 36))


def test_gc_attention_is_the_map_its_pooling_uses():
    block = randomized(GCBlock(8, ratio=2))
    x = torch.randn(2, 8, 3, 4, 5)
    attention = block.attention(x)
    assert attention.shape == (2, 1, 60)
    expected = (x.flatten(2) * attention).sum(-1).view(2, 8, 1, 1, 1)
    torch.testing.assert_close(block.pool(x), expected)


class FrameMean(torch.nn.Module):
    """A block from outside the package that attends evenly over each frame: x + the frame's mean."""

    attention_kind = AttentionKind("uniform per frame", distributions=True)

    def attention_windows(self, shape):
        t, h, w = shape[2:]
        return (1, h, w), (1, h, w), (t, h, w)

    def attention_maps(self, x, rows):
        b, _, t, h, w = x.shape
        return torch.full((b * t, len(rows), h * w), 1 / (h * w))

    def forward(self, x):
        return x + x.mean(dim=(3, 4), keepdim=True)


def test_the_analysis_finds_every_block_that_attends_by_the_contract_alone():
    model = torch.nn.ModuleDict({"gc": GCBlock(8, ratio=2), "se": SqueezeExcite(8, "average", "excite", "multiply", ratio=2),
                                 "nl": NonLocal(8, 4), "frames": FrameMean()})
    probes = {probe.name: probe for probe in attention_probes(model)}
    assert list(probes) == ["gc", "nl", "frames"]  # SE pools without attention
    assert probes["frames"].kind == "FrameMean uniform per frame" and probes["gc"].kind == "gc attention pooling"
    x = torch.randn(1, 8, 2, 4, 4)
    stats = block_statistics(probes["frames"], x, model["frames"](x), 8, seed=0)
    assert (stats.windows, stats.positions) == (2, 16)  # a window per frame
    assert stats.means["attention"].mean < 1e-12 and stats.means["output"].mean < 1e-9  # one map, one residual
