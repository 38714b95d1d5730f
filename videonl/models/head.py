"""The classifier head on a backbone's last map `[B, C, T, H, W]`, with the paper's fully-convolutional test."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Head(nn.Module):
    """The classifier, with its two outputs named, so that no caller gets one where it meant the other.

    `forward`: logits of the whole map, global average pool -> dropout -> fc, in any mode; a loss takes these.
    `test_logits`: the paper's fully-convolutional test (with `fully_conv`): average-pool windows of (all frames
    x `pool` x `pool`) slide with stride 1 over the map, the classifier scores each window, and the result is
    the log of the windows' averaged softmax, so its softmax is that average. One window gives its own logits
    (the same softmax), so a test over one window equals `forward`; without `fully_conv`, `forward`.

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
            return self(x)
        window = (x.shape[2], min(self.pool, x.shape[3]), min(self.pool, x.shape[4]))
        logits = self.fc(F.avg_pool3d(x, window, stride=1).flatten(2).transpose(1, 2))  # [B, windows, classes]
        if logits.shape[1] == 1:
            return logits[:, 0]
        return torch.logsumexp(logits.log_softmax(dim=-1), dim=1) - math.log(logits.shape[1])
