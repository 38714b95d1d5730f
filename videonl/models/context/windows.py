"""Positions grouped into windows: how an attention block batches its queries and keys, and how the analysis
tools group a map the same way.

A window is (t, h, w) positions that tile a `[B, C, T, H, W]` map; `to_windows` lays the map out as one row of
positions per window, and `from_windows` puts such rows back. Windows only regroup positions, so attention
over the whole clip, within a frame, along a pixel's track or within a group of frames runs the same code.
"""

from typing import Sequence, Tuple

import torch

Window = Tuple[int, int, int]  # (t, h, w) positions


def to_windows(x: torch.Tensor, window: Window) -> torch.Tensor:
    """[B, C, T, H, W] -> [B * windows, positions per window, C] for windows of `window` (t, h, w)."""
    b, c, t, h, w = x.shape
    wt, wh, ww = window
    x = x.reshape(b, c, t // wt, wt, h // wh, wh, w // ww, ww)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(-1, wt * wh * ww, c)


def from_windows(y: torch.Tensor, shape: Sequence[int], window: Window) -> torch.Tensor:
    """Inverse of `to_windows` for a map of `shape` [B, C, T, H, W], in contiguous channels-first memory.

    Without the copy a whole-clip window comes back as a channels-last view, and the convolution and the
    BatchNorm after it run several times slower on the CPU in that layout.
    """
    b, c, t, h, w = shape
    wt, wh, ww = window
    y = y.reshape(b, t // wt, h // wh, w // ww, wt, wh, ww, c)
    return y.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c, t, h, w).contiguous()
