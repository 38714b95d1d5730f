"""Compact generalised non-local block (CGNL, Yue et al., NeurIPS 2018), on video.

The generalised non-local operation attends over every (channel, position) pair of a channel group: with
theta, phi, g the group's values flattened to length L = C/(2G) * T*H*W,

    y_i = sum_j f(theta_i, phi_j) g_j,   i, j = 1 .. L                              (CGNL Eq. 4)

An L x L kernel is out of reach, so f is Taylor-expanded into P + 1 separable terms,
f(a, b) ~= sum_p c_p(a) c_p(b), and y_i = sum_p c_p(theta_i) (sum_j c_p(phi_j) g_j) costs O(L P)  (Sec. 3.3):

- dot_product:       f = a b                                      c_0(v) = v
- embedded_gaussian: f = exp(a b)           ~= sum_p (ab)^p / p!   c_p(v) = v^p / sqrt(p!)
- gaussian (RBF):    f = exp(-gamma (a - b)^2)
                       = e^{-gamma a^2} e^{-gamma b^2} sum_p (2 gamma a b)^p / p!
                                                                  c_p(v) = e^{-gamma v^2} sqrt((2 gamma)^p / p!) v^p

The block is z = x + GroupNorm(W_z y) with W_z grouped like the attention and GroupNorm's scale starting
at zero, so an inserted block is the identity.
"""

import math

import torch
from torch import nn

from videonl.config import ConfigError, NodeSpec
from videonl.models.registry import Site, register_context_block

KERNELS = ("dot_product", "gaussian", "embedded_gaussian")

SETTINGS = NodeSpec(
    "CGNL",
    KERNEL=("dot_product", "dot_product | gaussian (RBF) | embedded_gaussian, Taylor-expanded"),
    GROUPS=(8, "channel groups; attention runs over C/G * T*H*W values inside each group"),
    ORDER=(3, "Taylor order of the gaussian and embedded_gaussian kernels"),
    GAMMA=(1e-4, "RBF width of the gaussian kernel, exp(-gamma * (a - b)^2)"),
    USE_SCALE=(False, "divide the kernel by sqrt(C/G * T*H*W), the group's flattened length"),
)


def taylor_terms(v: torch.Tensor, kernel: str, order: int, gamma: float) -> torch.Tensor:
    """`[..., P + 1]`: the terms c_p(v) whose products sum to the kernel (see module doc)."""
    if kernel == "dot_product":
        return v.unsqueeze(-1)
    powers = [torch.ones_like(v)]
    for _ in range(order):
        powers.append(powers[-1] * v)
    base = 2 * gamma if kernel == "gaussian" else 1.0
    coefficients = torch.tensor([math.sqrt(base**p / math.factorial(p)) for p in range(order + 1)],
                                dtype=v.dtype, device=v.device)
    terms = torch.stack(powers, dim=-1) * coefficients
    if kernel == "gaussian":
        terms = terms * torch.exp(-gamma * v * v).unsqueeze(-1)
    return terms


@register_context_block("cgnl", SETTINGS)
class CompactGeneralizedNonLocal(nn.Module):
    """z = x + GN(W_z y), y the grouped, Taylor-expanded generalised non-local of theta, phi, g (C/2 each)."""

    def __init__(self, dim: int, kernel: str = "dot_product", groups: int = 8, order: int = 3, gamma: float = 1e-4,
                 use_scale: bool = False):
        super().__init__()
        if kernel not in KERNELS:
            raise ConfigError(f"CGNL.KERNEL '{kernel}' must be one of {', '.join(KERNELS)}")
        inner = dim // 2
        if inner % groups or dim % groups:
            raise ConfigError(f"CGNL.GROUPS {groups} must divide {dim} channels and their half {inner}")
        self.kernel, self.groups, self.order, self.gamma, self.use_scale = kernel, groups, order, gamma, use_scale
        self.theta = nn.Conv3d(dim, inner, 1, bias=False)
        self.phi = nn.Conv3d(dim, inner, 1, bias=False)
        self.g = nn.Conv3d(dim, inner, 1, bias=False)
        self.out = nn.Conv3d(inner, dim, 1, groups=groups, bias=False)
        self.norm = nn.GroupNorm(groups, dim)
        nn.init.zeros_(self.norm.weight)

    @classmethod
    def from_config(cls, c, site: Site) -> "CompactGeneralizedNonLocal":
        return cls(site.dim, c.KERNEL, c.GROUPS, c.ORDER, c.GAMMA, c.USE_SCALE)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, groups={self.groups}, order={self.order}, use_scale={self.use_scale}"

    def _terms(self, v: torch.Tensor) -> torch.Tensor:
        """`[B, G, L, P + 1]`: c_p of every value of each group."""
        return taylor_terms(v.reshape(v.shape[0], self.groups, -1), self.kernel, self.order, self.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta, phi, g = self._terms(self.theta(x)), self._terms(self.phi(x)), self.g(x)
        values = g.reshape(*phi.shape[:3], 1)  # [B, G, L, 1]
        context = torch.matmul(phi.transpose(2, 3), values)  # sum_j c_p(phi_j) g_j: [B, G, P + 1, 1]
        if self.use_scale:
            context = context / math.sqrt(values.shape[2])
        y = torch.matmul(theta, context).view_as(g)  # sum_p c_p(theta_i) context_p
        return x + self.norm(self.out(y))
