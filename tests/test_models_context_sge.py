"""SGE: the paper's formula, its starting state and its size."""

import pytest
import torch

from block_checks import assert_matches_reference
from videonl.flops import flop_analysis
from videonl.models.context.sge import SpatialGroupEnhance


def sge_reference(x, p, groups, eps):
    """SGE Eq. 1-6 per clip and group: c_i = g . x_i, normalised over positions, a_i = sigmoid(w c_i + b)."""
    batch, channels = x.shape[:2]
    out = torch.empty_like(x)
    per_group = channels // groups
    for b in range(batch):
        for k in range(groups):
            features = x[b, k * per_group:(k + 1) * per_group].reshape(per_group, -1)  # column i is x_i
            g = features.sum(dim=1) / features.shape[1]
            c = torch.stack([g @ features[:, i] for i in range(features.shape[1])])
            mu = c.sum() / c.numel()
            sigma = torch.sqrt(((c - mu) ** 2).sum() / c.numel())
            a = (c - mu) / (sigma + eps) * p["scale"].flatten()[k] + p["shift"].flatten()[k]
            out[b, k * per_group:(k + 1) * per_group] = (features * torch.sigmoid(a)).view_as(out[b, 0:per_group])
    return out


@pytest.mark.parametrize("groups", [1, 4])
def test_equals_the_papers_formula(groups):
    block = SpatialGroupEnhance(8, groups=groups, eps=1e-5)
    x = torch.randn(2, 8, 2, 3, 4)
    assert_matches_reference(block, lambda x, p: sge_reference(x, p, groups, 1e-5), x)


def test_starts_with_the_same_factor_everywhere_and_has_2g_parameters():
    """Scale 0 and shift 1: every position of every group is multiplied by sigmoid(1)."""
    block = SpatialGroupEnhance(64, groups=16)
    x = torch.randn(2, 64, 2, 5, 5)
    torch.testing.assert_close(block(x), x * torch.sigmoid(torch.tensor(1.0)))
    assert sum(p.numel() for p in block.parameters()) == 2 * 16
    with torch.no_grad():
        block.scale.fill_(1.0)
    assert not torch.allclose(block(x), x * torch.sigmoid(torch.tensor(1.0))), "a learned scale must act"


def test_flops_are_the_group_dot_products():
    x = torch.randn(1, 64, 2, 5, 5)
    assert flop_analysis(SpatialGroupEnhance(64, groups=16), x).total() == 64 * 50


def test_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match="SGE.GROUPS 64"):
        SpatialGroupEnhance(32, groups=64)
