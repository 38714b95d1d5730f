"""The global-context framework (GCNet, Cao et al., ICCVW 2019, Sec. 4): SE, simplified NL and GC as one module.

A global-context block has three parts (GCNet Fig. 4a, Eq. 2): context modelling pools the clip
`[B, C, T, H, W]` into one C-vector, a transform maps it, and a fusion broadcasts it back to every position:

    z_i = F(x_i, delta(sum_j alpha_j x_j)),   j over all T*H*W positions

- pooling "attention": alpha = softmax_j(W_k x_j), a 1x1x1 conv to one channel (simplified NL, GC);
  "average": alpha_j = 1 / (T*H*W), SE's squeeze.
- transform "linear": W_v, one 1x1x1 conv C -> C (simplified NL, Eq. 3);
  "bottleneck": W_v2 ReLU(LN(W_v1 .)), C -> C/r -> C with LayerNorm (GC, Eq. 4);
  "excite": sigmoid(W_2 ReLU(W_1 .)), C -> C/r -> C (SE).
- fusion "add": z_i = x_i + delta; "multiply": z_i = x_i * delta.

With add fusion the transform's last conv starts at zero, so an inserted block leaves a pretrained backbone
unchanged. SE keeps PyTorch's default (kaiming-uniform) init, as the SE paper trains it from scratch; a zero
conv there would halve every feature (sigmoid(0) = 1/2).
"""

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from videonl.config import NodeSpec
from videonl.models.context.attention import AttentionKind
from videonl.models.context.windows import Window
from videonl.models.registry import Site, register_context_block

POOLINGS = ("attention", "average")
TRANSFORMS = ("linear", "bottleneck", "excite")
FUSIONS = ("add", "multiply")

GC_SETTINGS = NodeSpec(
    "GC",
    RATIO=(16, "bottleneck reduction r of gc: C -> C/r -> C (GCNet: 16; 4 on Kinetics)"),
)
SE_SETTINGS = NodeSpec(
    "SE",
    renamed={"RATIO": "GC.RATIO"},  # SE's reduction was read from GC.RATIO before it had a node of its own
    RATIO=(16, "squeeze-excitation reduction r: C -> C/r -> C (SE paper: 16)"),
)


def _transform(kind: str, dim: int, ratio: int) -> nn.Sequential:
    if kind == "linear":
        return nn.Sequential(nn.Conv3d(dim, dim, 1))
    hidden = dim // ratio
    if hidden < 1:
        raise ValueError(f"reduction ratio {ratio} leaves no channels of {dim}")
    if kind == "bottleneck":
        return nn.Sequential(nn.Conv3d(dim, hidden, 1), nn.LayerNorm([hidden, 1, 1, 1]), nn.ReLU(inplace=True),
                             nn.Conv3d(hidden, dim, 1))
    if kind == "excite":
        return nn.Sequential(nn.Conv3d(dim, hidden, 1), nn.ReLU(inplace=True), nn.Conv3d(hidden, dim, 1), nn.Sigmoid())
    raise ValueError(f"transform '{kind}' must be one of {', '.join(TRANSFORMS)}")


class GlobalContext(nn.Module):
    """One global-context block: `pooling` -> `transform` (reduction `ratio`) -> `fusion` (see module doc).

    Subclasses name a preset in `preset = (pooling, transform, fusion)` and are registered by name.
    """

    preset = ("attention", "bottleneck", "add")

    def __init__(self, dim: int, pooling: str = "attention", transform: str = "bottleneck", fusion: str = "add",
                 ratio: int = 16):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling '{pooling}' must be one of {', '.join(POOLINGS)}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion '{fusion}' must be one of {', '.join(FUSIONS)}")
        self.mask = nn.Conv3d(dim, 1, 1) if pooling == "attention" else None
        self.transform = _transform(transform, dim, ratio)
        self.fusion = fusion
        if fusion == "add":
            last_conv = [m for m in self.transform if isinstance(m, nn.Conv3d)][-1]
            nn.init.zeros_(last_conv.weight)
            nn.init.zeros_(last_conv.bias)

    @classmethod
    def from_config(cls, settings, site: Site) -> "GlobalContext":
        pooling, transform, fusion = cls.preset
        return cls(site.dim, pooling, transform, fusion, ratio=settings.RATIO)

    @property
    def attention_kind(self) -> Optional[AttentionKind]:
        return AttentionKind("attention pooling", distributions=True, shared=True) if self.mask is not None else None

    def attention_windows(self, shape: Sequence[int]) -> Tuple[Window, Window, Window]:
        """Every position is a query of one whole-clip window, and every position a key."""
        grid = tuple(shape[2:])
        return grid, grid, grid

    def attention_maps(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """[B, len(rows), T*H*W]: the pooling's one map, the same for every query row."""
        return self.attention(x).expand(-1, len(rows), -1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """alpha = softmax_j(W_k x_j) as `[B, 1, T*H*W]`: one map shared by every position (attention pooling)."""
        return self.mask(x).flatten(2).softmax(dim=-1)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """sum_j alpha_j x_j as `[B, C, 1, 1, 1]`."""
        if self.mask is None:
            return x.mean(dim=(2, 3, 4), keepdim=True)
        pooled = torch.matmul(x.flatten(2), self.attention(x).transpose(1, 2))  # [B, C, 1]
        return pooled.view(*pooled.shape, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.transform(self.pool(x))
        return x + delta if self.fusion == "add" else x * delta


@register_context_block("gc", GC_SETTINGS)
class GCBlock(GlobalContext):
    """GC block (GCNet Eq. 4): attention pooling, bottleneck with LayerNorm (ratio GC.RATIO), add."""

    preset = ("attention", "bottleneck", "add")


@register_context_block("snl")
class SimplifiedNonLocal(GlobalContext):
    """Simplified non-local block (GCNet Eq. 3): attention pooling, one 1x1x1 conv C -> C, add."""

    preset = ("attention", "linear", "add")

    @classmethod
    def from_config(cls, settings: None, site: Site) -> "SimplifiedNonLocal":
        return cls(site.dim, *cls.preset)


@register_context_block("se", SE_SETTINGS)
class SqueezeExcite(GlobalContext):
    """Squeeze-excitation (Hu et al.; GCNet Fig. 4c): average pooling, C -> C/r -> C (r SE.RATIO) with sigmoid,
    multiply."""

    preset = ("average", "excite", "multiply")
