"""The classifier head on a backbone's last map `[B, C, T, H, W]`, with the paper's fully-convolutional test."""

import torch
import torch.nn.functional as F
from torch import nn


class Head(nn.Module):
    """The classifier, with its two outputs named, so that no caller gets one where it meant the other.

    `forward`: logits of the whole map, global average pool -> dropout -> fc, in any mode; a loss takes these.
    `test_logits`: the paper's fully-convolutional test (with `fully_conv`): average-pool windows of (all frames
    x `pool` x `pool`) slide with stride 1 over the map and the classifier scores each window: logits
    `[B, windows, classes]`, which the task combines (the softmax averaged over the windows for single-label,
    the sigmoid for multi-label: `videonl.tasks`). One window is the whole map, so a test over one window
    equals `forward`; without `fully_conv`, `forward` as the one window.

    Args:
        dim_in: channels of the map.
        num_classes: classifier outputs.
        dropout: dropout probability before the classifier (0: none).
        pool: spatial side of the test's windows, in positions of the map (7: res5 of a 224-pixel view).
        fully_conv: test with sliding windows; False tests the whole map, as `forward`.
    """

    def __init__(self, dim_in: int, num_classes: int, dropout: float = 0.5, pool: int = 7, fully_conv: bool = True):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(dim_in, num_classes)
        self.pool = pool
        self.fully_conv = fully_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x.mean(dim=(2, 3, 4))))

    def test_logits(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fully_conv:
            return self(x)[:, None]
        window = (x.shape[2], min(self.pool, x.shape[3]), min(self.pool, x.shape[4]))
        return self.fc(F.avg_pool3d(x, window, stride=1).flatten(2).transpose(1, 2))  # [B, windows, classes]
