"""Contextual Transformer block (CoT, Li et al. 2021, Sec. 3.2), in place of a bottleneck's 3x3 conv.

With the input X as queries, keys and values (X W_v), on `[B, C, T, H, W]`:

1. Static context K1: a grouped t x 3 x 3 conv over the keys, BN, ReLU: each key sees its neighbourhood.
2. Attention A = [K1, X] W_theta W_delta: two 1x1x1 convs (2C -> C/2 with BN and ReLU, -> heads * t*3*3, then
   GroupNorm per head) give, at every position, one weight per neighbour for each head of HEAD_CHANNELS
   channels. The neighbourhood is the position's 3 x 3 window in its frame (t = 1) or its 3 x 3 x 3 window.
3. Dynamic context K2 = sum over the window of A * V (zero outside the clip), then BN and swish.
4. Output: split attention (ResNeSt) fuses the two: from the pooled K1 + K2, a C -> max(2C/r, 32) -> 2C
   bottleneck gives per channel a softmax over (K1, K2), and Y = a_1 K1 + a_2 K2.

With stride 2 a 3 x 3 average pool of stride 2 comes first, as CoTNet downsamples. Convs are He-initialised
like the backbone's: CoT models train from scratch.
"""

import itertools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from videonl.config import ConfigError, NodeSpec
from videonl.models.registry import Site, register_context_block

SPATIAL_WINDOW = 3
FUSION_MIN_CHANNELS = 32  # ResNeSt's floor for the split-attention bottleneck

SETTINGS = NodeSpec(
    "COT",
    TEMPORAL_KERNEL=(1, "local window t x 3 x 3 of keys and attention: 1 frame-wise, 3 spatio-temporal"),
    KEY_GROUPS=(4, "groups of the key conv that gives the static context"),
    HEAD_CHANNELS=(8, "channels sharing one local attention map (CoTNet: 8)"),
    EMBED_REDUCTION=(2, "[query, keys] 2C -> C/2 -> heads * window"),
    FUSION_REDUCTION=(4, "split-attention fusion hidden width max(2C/4, 32)"),
)


@register_context_block("cot", SETTINGS)
class ContextualTransformer(nn.Module):
    """Y = split-attention(K1, K2) on `[B, dim, T, H, W]`, output `[B, dim, T, H/stride, W/stride]`.

    The fusion's BatchNorm sees one value per clip and channel, so training needs more than one clip per
    batch (as ResNeSt's split attention does).
    """

    replaces_conv_b = True

    def __init__(self, dim: int, stride: int = 1, temporal_kernel: int = 1, key_groups: int = 4,
                 head_channels: int = 8, embed_reduction: int = 2, fusion_reduction: int = 4,
                 norm: Callable[[int], nn.Module] = nn.BatchNorm3d):
        super().__init__()
        if dim % head_channels or dim % key_groups:
            raise ConfigError(f"COT.HEAD_CHANNELS {head_channels} and COT.KEY_GROUPS {key_groups} must divide {dim}")
        self.window = (temporal_kernel, SPATIAL_WINDOW, SPATIAL_WINDOW)
        self.heads = dim // head_channels
        padding = tuple(k // 2 for k in self.window)
        embed, fused = dim // embed_reduction, max(2 * dim // fusion_reduction, FUSION_MIN_CHANNELS)
        window_size = temporal_kernel * SPATIAL_WINDOW**2
        self.downsample = nn.AvgPool3d((1, 3, 3), (1, stride, stride), (0, 1, 1)) if stride > 1 else nn.Identity()
        self.keys = nn.Sequential(nn.Conv3d(dim, dim, self.window, padding=padding, groups=key_groups, bias=False),
                                  norm(dim), nn.ReLU(inplace=True))
        self.attention = nn.Sequential(
            nn.Conv3d(2 * dim, embed, 1, bias=False), norm(embed), nn.ReLU(inplace=True),
            nn.Conv3d(embed, self.heads * window_size, 1), nn.GroupNorm(self.heads, self.heads * window_size),
        )
        self.values = nn.Sequential(nn.Conv3d(dim, dim, 1, bias=False), norm(dim))
        self.dynamic = nn.Sequential(norm(dim), nn.SiLU(inplace=True))
        self.fusion = nn.Sequential(nn.Conv3d(dim, fused, 1), norm(fused), nn.ReLU(inplace=True),
                                    nn.Conv3d(fused, 2 * dim, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @classmethod
    def from_config(cls, c, site: Site) -> "ContextualTransformer":
        return cls(site.dim, site.stride, c.TEMPORAL_KERNEL, c.KEY_GROUPS, c.HEAD_CHANNELS, c.EMBED_REDUCTION,
                   c.FUSION_REDUCTION, norm=site.norm)

    def aggregate(self, values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """K2_i = sum_k A_{i,k} V_{i+k} per head, one multiply-add (addcmul) per window offset k.

        Shifted views of the zero-padded values replace an unfold, which would hold window-size copies.
        """
        b, c, t, h, w = values.shape
        kt, kh, kw = self.window
        padded = F.pad(values, (kw // 2, kw // 2, kh // 2, kh // 2, kt // 2, kt // 2))
        padded = padded.view(b, self.heads, c // self.heads, *padded.shape[2:])
        weights = weights.view(b, self.heads, 1, kt * kh * kw, t, h, w)
        out = values.new_zeros(b, self.heads, c // self.heads, t, h, w)
        for k, (dt, dy, dx) in enumerate(itertools.product(range(kt), range(kh), range(kw))):
            out = torch.addcmul(out, weights[:, :, :, k], padded[..., dt : dt + t, dy : dy + h, dx : dx + w])
        return out.view(b, c, t, h, w)

    def fuse(self, static: torch.Tensor, dynamic: torch.Tensor) -> torch.Tensor:
        """Split attention: per channel a softmax over (static, dynamic) from their pooled sum."""
        b, c = static.shape[:2]
        logits = self.fusion((static + dynamic).mean(dim=(2, 3, 4), keepdim=True))
        a = logits.view(b, 2, c, 1, 1, 1).softmax(dim=1)
        return a[:, 0] * static + a[:, 1] * dynamic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        static = self.keys(x)
        weights = self.attention(torch.cat([x, static], dim=1))
        dynamic = self.dynamic(self.aggregate(self.values(x), weights))
        return self.fuse(static, dynamic)
