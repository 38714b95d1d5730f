"""A context block from outside the package, as a user would write one: its own settings, registered on import."""

import torch
from torch import nn

from videonl.config import NodeSpec
from videonl.models import register_context_block

SETTINGS = NodeSpec(
    "TOY",
    HIDDEN=(4, "channels of the toy's bottleneck"),
    GATE=(0.5, "starting weight of the toy's residual branch"),
)


@register_context_block("toy", SETTINGS)
class ToyGate(nn.Module):
    """x + gate * norm(up(ReLU(down(x)))), normalised as the backbone normalises."""

    def __init__(self, dim: int, hidden: int, gate: float, norm):
        super().__init__()
        self.down, self.up = nn.Conv3d(dim, hidden, 1), nn.Conv3d(hidden, dim, 1)
        self.norm = norm(dim)
        self.gate = nn.Parameter(torch.tensor(float(gate)))

    @classmethod
    def from_config(cls, toy, site) -> "ToyGate":
        return cls(site.dim, toy.HIDDEN, toy.GATE, site.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gate * self.norm(self.up(torch.relu(self.down(x))))
