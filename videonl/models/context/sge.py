"""Spatial group-wise enhance (SGE, Li et al. 2019), over the T*H*W positions of a clip.

The channels fall into G groups. In each group, every position's feature x_i is compared with the group's
mean feature g = mean_i x_i (Eq. 1-2: c_i = g . x_i), the similarities are normalised over positions
(Eq. 3-4: (c_i - mean) / (std + eps), std over the positions, 1/m), scaled and shifted by a learned pair per
group, and a sigmoid of the result scales x_i (Eq. 5-6). That is 2G parameters.

The scale starts at 0 and the shift at 1, the paper's advice: every position is multiplied by the same
sigmoid(1) at first, and the attention only acts once the scale has learned.
"""

import torch
from torch import nn

from videonl.config import ConfigError, NodeSpec
from videonl.models.registry import Site, register_context_block

SETTINGS = NodeSpec(
    "SGE",
    GROUPS=(64, "channel groups, each enhanced over its T*H*W positions"),
    EPS=(1e-5, "added to the std when normalising the similarity over positions"),
)


@register_context_block("sge", SETTINGS)
class SpatialGroupEnhance(nn.Module):
    """x_i * sigmoid(scale_k * norm(g_k . x_i) + shift_k) for the positions i of each channel group k."""

    def __init__(self, dim: int, groups: int = 64, eps: float = 1e-5):
        super().__init__()
        if dim % groups:
            raise ConfigError(f"SGE.GROUPS {groups} must divide the {dim} channels")
        self.groups, self.eps = groups, eps
        self.scale = nn.Parameter(torch.zeros(1, groups, 1))
        self.shift = nn.Parameter(torch.ones(1, groups, 1))

    @classmethod
    def from_config(cls, sge, site: Site) -> "SpatialGroupEnhance":
        return cls(site.dim, sge.GROUPS, sge.EPS)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        features = x.reshape(b * self.groups, c // self.groups, -1)  # [B*G, C/G, N]
        mean = features.mean(dim=-1, keepdim=True)
        similarity = torch.matmul(mean.transpose(1, 2), features).view(b, self.groups, -1)  # [B, G, N]
        centred = similarity - similarity.mean(dim=-1, keepdim=True)
        normalised = centred / (centred.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.eps)
        gate = torch.sigmoid(normalised * self.scale + self.shift)
        return (features.view(b, self.groups, c // self.groups, -1) * gate.unsqueeze(2)).view_as(x)
