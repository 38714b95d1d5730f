"""CGNL: the compact block against the full L x L generalised non-local it expands."""

import math

import pytest
import torch

from block_checks import assert_matches_reference, conv1x1, group_norm
from videonl.flops import flop_analysis
from videonl.models.context.cgnl import CompactGeneralizedNonLocal, taylor_terms


def truncated_kernel(a, b, kernel, order, gamma):
    """f(a_i, b_j) for every pair as an L x L matrix, the Taylor series cut after `order` (CGNL Sec. 3.3)."""
    ab = a[:, None] * b[None, :]
    if kernel == "dot_product":
        return ab
    if kernel == "embedded_gaussian":  # exp(a b)
        return sum(ab**p / math.factorial(p) for p in range(order + 1))
    # exp(-gamma (a - b)^2) = exp(-gamma a^2) exp(-gamma b^2) exp(2 gamma a b)
    series = sum((2 * gamma * ab) ** p / math.factorial(p) for p in range(order + 1))
    return torch.exp(-gamma * a[:, None] ** 2) * torch.exp(-gamma * b[None, :] ** 2) * series


def cgnl_reference(x, p, kernel, groups, order, gamma, use_scale):
    """z = x + GN(W_z y), y_i = sum_j f(theta_i, phi_j) g_j over the C/2G * T*H*W values of each group."""
    batch, channels = x.shape[:2]
    theta, phi, g = (conv1x1(x, p[f"{name}.weight"]) for name in ("theta", "phi", "g"))
    inner = theta.shape[1]
    per_group = inner // groups
    y = torch.empty_like(g)
    for b in range(batch):
        for k in range(groups):
            members = slice(k * per_group, (k + 1) * per_group)
            a, c, v = theta[b, members].flatten(), phi[b, members].flatten(), g[b, members].flatten()
            f = truncated_kernel(a, c, kernel, order, gamma)
            if use_scale:
                f = f / math.sqrt(a.numel())
            y[b, members] = (f @ v).view_as(g[b, members])
    # W_z is grouped: output group k reads only attention group k.
    out_per_group, w = channels // groups, p["out.weight"].flatten(1)
    z = torch.cat([conv1x1(y[:, k * per_group:(k + 1) * per_group], w[k * out_per_group:(k + 1) * out_per_group])
                   for k in range(groups)], dim=1)
    return x + group_norm(z, groups, p["norm.weight"], p["norm.bias"])


@pytest.mark.parametrize("kernel, order, use_scale", [
    ("dot_product", 0, False), ("dot_product", 0, True), ("embedded_gaussian", 3, False), ("gaussian", 3, True),
    ("gaussian", 1, False),
])
def test_equals_the_generalised_non_local(kernel, order, use_scale):
    gamma = 0.1  # large enough that the RBF's exp(-gamma v^2) factors matter in the comparison
    block = CompactGeneralizedNonLocal(16, kernel, groups=2, order=order, gamma=gamma, use_scale=use_scale)
    x = torch.randn(2, 16, 2, 3, 2)
    assert_matches_reference(block, lambda x, p: cgnl_reference(x, p, kernel, 2, order, gamma, use_scale), x)


def test_taylor_terms_approach_the_exact_kernels():
    """sum_p c_p(a) c_p(b) tends to exp(a b) and exp(-gamma (a - b)^2) as the order grows."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, generator=generator, dtype=torch.float64) * 0.5 for n in (50, 60))
    exact = {"embedded_gaussian": torch.exp(a[:, None] * b[None, :]),
             "gaussian": torch.exp(-0.3 * (a[:, None] - b[None, :]) ** 2)}
    for kernel, target in exact.items():
        errors = []
        for order in (1, 3, 12):
            approx = taylor_terms(a, kernel, order, 0.3) @ taylor_terms(b, kernel, order, 0.3).T
            errors.append((approx - target).abs().max())
        assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-5, (kernel, errors)


def test_starts_as_identity_and_counts_its_flops():
    block = CompactGeneralizedNonLocal(32, groups=8)
    x = torch.randn(1, 32, 2, 3, 4)
    assert torch.equal(block(x), x)
    length = 16 // 8 * 24  # C/2G * T*H*W
    convs = 3 * 32 * 16 * 24 + 16 * 32 // 8 * 24  # theta, phi, g; grouped W_z
    assert flop_analysis(block, x).total() == convs + 8 * 2 * length
    gaussian = CompactGeneralizedNonLocal(32, "gaussian", groups=8, order=3)
    assert flop_analysis(gaussian, x).total() == convs + 8 * 2 * length * 4


@pytest.mark.parametrize("kwargs, message", [({"kernel": "cosine"}, "CGNL.KERNEL"), ({"groups": 3}, "CGNL.GROUPS 3")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CompactGeneralizedNonLocal(32, **kwargs)
