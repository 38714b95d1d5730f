"""GCNet's attention statistics: the measures, and what they say about blocks of known behaviour."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from videonl.analyze.common import Probe
from videonl.analyze.statistics import (block_statistics, clip_statistics, cosine_distance, format_table,
                                        jensen_shannon, sample_queries, statistics_row)
from videonl.config import load_cfg
from videonl.models import build_model
from videonl.models.context.global_context import GCBlock
from videonl.models.context.non_local import NonLocal

from helpers import TINY_NL_I3D, randomize_batch_norms, randomized

@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def naive_cosine_distance(vectors):
    """Mean of (1 - cos) / 2 over pairs i != j of nonzero rows, window by window, in float64."""
    values = [(1 - F.cosine_similarity(window[i], window[j], dim=0).item()) / 2
              for window in vectors.double()
              for i, j in itertools.permutations(range(len(window)), 2)
              if window[i].norm() > 0 and window[j].norm() > 0]
    return sum(values) / len(values)


def naive_jensen_shannon(maps):
    """Mean of (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2, over pairs i != j within each window."""
    def kl(p, q):
        return sum(a * math.log(a / b) for a, b in zip(p.tolist(), q.tolist()) if a > 0)

    values = [(kl(window[i], (window[i] + window[j]) / 2) + kl(window[j], (window[i] + window[j]) / 2)) / 2
              for window in maps.double()
              for i, j in itertools.permutations(range(len(window)), 2)]
    return sum(values) / len(values)


def test_cosine_distance_equals_the_pairwise_definition():
    vectors = torch.randn(3, 7, 5)
    vectors[1, 2] = 0  # a zero vector has no direction: its pairs are left out
    result = cosine_distance(vectors)
    assert result.pairs == 2 * 21 + 15
    assert result.mean == pytest.approx(naive_cosine_distance(vectors), abs=1e-12)


def test_jensen_shannon_equals_the_kl_definition():
    maps = torch.rand(2, 5, 9).pow(3).softmax(-1)
    maps[0, 1] = F.one_hot(torch.tensor(4), 9)  # zero entries count as 0 log 0 = 0
    assert jensen_shannon(maps).mean == pytest.approx(naive_jensen_shannon(maps), abs=1e-12)


def test_one_hot_maps_on_different_positions_are_as_far_apart_as_distributions_get():
    maps = F.one_hot(torch.tensor([[0, 3]]), 6).double()
    assert jensen_shannon(maps).mean == pytest.approx(math.log(2), abs=1e-15)
    assert cosine_distance(maps).mean == pytest.approx(0.5, abs=1e-15)  # orthogonal


def test_identical_maps_and_too_few_queries():
    maps = torch.rand(1, 4, 6).softmax(-1)[:, :1].expand(1, 4, 6)
    assert jensen_shannon(maps).mean < 1e-15 and cosine_distance(maps).mean < 1e-15
    assert math.isnan(cosine_distance(torch.randn(2, 1, 3)).mean)  # no pairs: no mean


def nonlocal_statistics(instantiation="embedded_gaussian", mode="spacetime", queries=256, zero_theta=False):
    pool = (1, 1, 1) if mode == "time" else (1, 2, 2)
    block = randomized(NonLocal(8, 4, instantiation, mode, pool=pool))
    if zero_theta:
        torch.nn.init.zeros_(block.conv_theta.weight)  # every query the same q = bias: one map for all
    x = torch.randn(1, 8, 4, 6, 6)
    with torch.no_grad():
        return block_statistics(Probe("res4.0.context", block), x, block(x), queries, seed=0)


@pytest.mark.parametrize("mode", ["spacetime", "space", "time"])
def test_zero_theta_makes_attention_query_independent(mode):
    stats = nonlocal_statistics(mode=mode, zero_theta=True)
    assert stats.means["attention"].mean < 1e-12 and stats.means["jsd"].mean < 1e-12
    assert stats.means["output"].mean < 1e-9  # the same y_i for every query, hence the same residual
    assert stats.means["input"].mean > 0.1


@pytest.mark.parametrize("mode", ["spacetime", "space", "time"])
def test_random_weights_give_distances_strictly_between_the_extremes(mode):
    stats = nonlocal_statistics(mode=mode)
    assert 1e-3 < stats.means["attention"].mean < 0.5  # non-negative maps: cos >= 0
    assert 1e-3 < stats.means["jsd"].mean < math.log(2) - 1e-3


def test_pairs_are_formed_within_windows_on_sampled_queries():
    space = nonlocal_statistics(mode="space", queries=10)
    assert (space.windows, space.positions, space.queries) == (4, 36, 10)  # a window per frame
    assert space.means["attention"].pairs == 4 * 10 * 9 // 2
    time = nonlocal_statistics(mode="time", queries=10)
    assert (time.windows, time.positions, time.queries) == (36, 4, 4)  # a window per pixel track: all 4
    assert sample_queries(36, 10, seed=3).tolist() == sample_queries(36, 10, seed=3).tolist()
    assert sample_queries(36, 10, seed=3).tolist() != sample_queries(36, 10, seed=4).tolist()


def test_jsd_is_left_out_where_maps_are_not_distributions():
    row = statistics_row(Probe("res4.0.context", NonLocal(8, 4, "dot_product")),
                         nonlocal_statistics("dot_product"))
    assert row["att_jsd"] is None and row["att_cos_dist"] > 0
    assert format_table([row]).splitlines()[1].split()[-1] == "-"


def test_attention_pooling_is_query_independent_by_construction():
    block = randomized(GCBlock(8, ratio=2))
    x = torch.randn(1, 8, 2, 4, 4)
    with torch.no_grad():
        stats = block_statistics(Probe("res4.0.context", block), x, block(x), 256, seed=0)
    assert stats.means["attention"].mean < 1e-12 and stats.means["jsd"].mean < 1e-12
    assert stats.means["output"].mean < 1e-9  # the same residual added at every position
    assert stats.means["input"].mean > 0.1


def tiny_model():
    torch.manual_seed(0)
    model = randomize_batch_norms(build_model(load_cfg("configs/kinetics400/nl_i3d_r50_8x8.yaml", TINY_NL_I3D)))
    for name, module in model.named_modules():
        if name.endswith(".context"):
            randomized(module)
    return model.eval()


def test_statistics_do_not_depend_on_batch_composition():
    model = tiny_model()
    clips = torch.randn(3, 3, 8, 64, 64)
    batched = clip_statistics(model, clips, queries=20, seed=1)
    alone = clip_statistics(model, clips[1:2], queries=20, seed=1)[0]
    assert set(alone) == {"res3.0.context", "res4.1.context"}
    for name, stats in alone.items():
        for key, mean in stats.means.items():
            assert batched[1][name].means[key].pairs == mean.pairs
            assert batched[1][name].means[key].mean == pytest.approx(mean.mean, rel=1e-3, abs=1e-6)
    first = batched[0]["res3.0.context"].means["attention"].mean
    assert first != pytest.approx(batched[1]["res3.0.context"].means["attention"].mean, rel=0.05)  # videos differ


def test_a_model_in_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        clip_statistics(tiny_model().train(), torch.randn(1, 3, 8, 64, 64))
