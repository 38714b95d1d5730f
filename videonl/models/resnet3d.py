"""Bottleneck ResNets on video clips `[B, 3, T, H, W]`.

C2D, I3D (3x1x1 or 3x3x3) and slow-only differ only by data: the temporal kernel of the stem and of each
residual block's first 1x1 conv ("a") and 3x3 conv ("b"), and where time is strided (stem, pool1, pool2).
Those tables live in the YAML files under `configs/_base_/`.
"""

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videonl.models.registry import STAGES

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def no_context(stage: str, index: int, dim_inner: int, dim_out: int, stride: int, norm) -> None:
    return None


def temporal_kernel(per_stage: Sequence[int], index: int) -> int:
    """Kernel of block `index`: the stage's list repeats over its blocks ([3, 1] -> 3, 1, 3, 1, ...)."""
    kernel = per_stage[index % len(per_stage)]
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"temporal kernels must be odd and positive, got {kernel}")
    return kernel


class Stem(nn.Module):
    """conv1 (t x 7 x 7, spatial stride 2) -> BN -> ReLU -> pool1 (max, 3 x 3 spatial, stride 2)."""

    def __init__(self, dim_in, dim_out, norm, t_kernel=1, t_stride=1, pool_t_kernel=1, pool_t_stride=1):
        super().__init__()
        self.conv = nn.Conv3d(dim_in, dim_out, (t_kernel, 7, 7), (t_stride, 2, 2), (t_kernel // 2, 3, 3), bias=False)
        self.bn = norm(dim_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((pool_t_kernel, 3, 3), (pool_t_stride, 2, 2), ((pool_t_kernel - 1) // 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class Bottleneck(nn.Module):
    """1x1 (temporal kernel ta) -> 3x3 (temporal kernel tb, spatial stride) -> 1x1, plus the shortcut.

    An optional context block sits after the whole block (`after_block`), after the last conv and BN
    before the residual add (`after_conv_c`), right after the add (`after_add`), or takes the place of the
    3x3 conv and its BN (`conv_b`, built with `dim_inner` and `stride`).
    """

    def __init__(self, dim_in, dim_inner, dim_out, stride, norm, ta=1, tb=1, context=None, position="after_block"):
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, dim_inner, (ta, 1, 1), padding=(ta // 2, 0, 0), bias=False)
        self.bn_a = norm(dim_inner)
        if context is not None and position == "conv_b":
            self.conv_b = self.bn_b = None
        else:
            self.conv_b = nn.Conv3d(dim_inner, dim_inner, (tb, 3, 3), (1, stride, stride), (tb // 2, 1, 1), bias=False)
            self.bn_b = norm(dim_inner)
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.bn_c = norm(dim_out)
        self.relu = nn.ReLU(inplace=True)
        if dim_in != dim_out or stride != 1:
            self.proj_conv = nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False)
            self.proj_bn = norm(dim_out)
        else:
            self.proj_conv = self.proj_bn = None
        self.context = context
        self.position = position

    def _context_at(self, position: str, x: torch.Tensor) -> torch.Tensor:
        return self.context(x) if self.context is not None and self.position == position else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj_conv is None else self.proj_bn(self.proj_conv(x))
        y = self.relu(self.bn_a(self.conv_a(x)))
        y = self.relu(self.context(y) if self.conv_b is None else self.bn_b(self.conv_b(y)))
        y = self._context_at("after_conv_c", self.bn_c(self.conv_c(y)))
        y = self.relu(self._context_at("after_add", y + shortcut))
        return self._context_at("after_block", y)


class Head(nn.Module):
    """The classifier, with its two outputs named, so that no caller gets one where it meant the other.

    `forward`: logits of the whole map, global average pool -> dropout -> fc, in any mode; a loss takes these.
    `test_logits`: the paper's fully-convolutional test (with `fully_conv`): average-pool windows of (all frames
    x `pool` x `pool`) slide with stride 1 over the res5 map, the classifier scores each window, and the result
    is the log of the windows' averaged softmax, so its softmax is that average. One window gives its own
    logits (the same softmax), so a test over one window equals `forward`; without `fully_conv`, `forward`.
    """

    def __init__(self, dim_in, num_classes, dropout=0.5, pool=7, fully_conv=True):
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


class VideoResNet(nn.Module):
    """stem -> res2 -> [pool2] -> res3 -> res4 -> res5 -> head.

    Args:
        blocks: residual blocks per stage res2..res5, e.g. (3, 4, 6, 3) for ResNet-50.
        width: stem channels; stage k has width * 2**k inner and 4x that output channels.
        stem_t_kernel, stem_t_stride: temporal kernel and stride of conv1.
        pool1_t_kernel, pool1_t_stride: temporal kernel and stride of the max-pool after conv1.
        pool2_t_kernel, pool2_t_stride: temporal max-pool between res2 and res3 (kernel 0: none).
        t_kernels_a, t_kernels_b: per stage, the temporal kernels of conv_a / conv_b, repeated over blocks.
        norm: `norm(num_features)` constructor of every normalisation layer.
        make_context: `make_context(stage, index, dim_inner, dim_out, stride, norm)` -> context block or None for
            each residual block, given its widths, its 3x3 conv's stride and `norm` (see `registry.context_factory`).
        context_position: where a block's context block sits (see `Bottleneck`).
        num_classes, dropout, head_pool, fully_conv_test: the classifier head (see `Head`).
        zero_init_final_bn: start each residual branch's last BN at gamma 0, so every block is the identity.
    """

    def __init__(
        self,
        *,
        blocks: Sequence[int] = STAGE_BLOCKS[50],
        width: int = 64,
        stem_t_kernel: int = 1,
        stem_t_stride: int = 1,
        pool1_t_kernel: int = 1,
        pool1_t_stride: int = 1,
        pool2_t_kernel: int = 0,
        pool2_t_stride: int = 2,
        t_kernels_a: Sequence[Sequence[int]] = ((1,),) * 4,
        t_kernels_b: Sequence[Sequence[int]] = ((1,),) * 4,
        norm: Callable[[int], nn.Module] = nn.BatchNorm3d,
        make_context: Callable[..., Optional[nn.Module]] = no_context,
        context_position: str = "after_block",
        num_classes: int = 400,
        dropout: float = 0.5,
        head_pool: int = 7,
        fully_conv_test: bool = True,
        input_channels: int = 3,
        zero_init_final_bn: bool = True,
    ):
        super().__init__()
        if len(blocks) != 4 or len(t_kernels_a) != 4 or len(t_kernels_b) != 4:
            raise ValueError("blocks and temporal-kernel tables need one entry per stage res2..res5")
        self.blocks = tuple(blocks)
        self.stem = Stem(input_channels, width, norm, stem_t_kernel, stem_t_stride, pool1_t_kernel, pool1_t_stride)
        pool2 = (pool2_t_kernel, 1, 1)
        self.pool2 = nn.MaxPool3d(pool2, (pool2_t_stride, 1, 1), ((pool2_t_kernel - 1) // 2, 0, 0)) if pool2_t_kernel else None
        dim_in = width
        for k, stage in enumerate(STAGES):
            dim_inner, dim_out = width * 2**k, width * 4 * 2**k
            layers = []
            for i in range(blocks[k]):
                stride = 2 if (i == 0 and k > 0) else 1
                layers.append(
                    Bottleneck(
                        dim_in, dim_inner, dim_out, stride, norm,
                        ta=temporal_kernel(t_kernels_a[k], i), tb=temporal_kernel(t_kernels_b[k], i),
                        context=make_context(stage, i, dim_inner, dim_out, stride, norm), position=context_position,
                    )
                )
                dim_in = dim_out
            self.add_module(stage, nn.Sequential(*layers))
        self.head = Head(dim_in, num_classes, dropout, head_pool, fully_conv_test)
        self._init_weights(zero_init_final_bn)

    def _init_weights(self, zero_init_final_bn: bool) -> None:
        """He init for convs, N(0, 0.01) for the classifier; context blocks keep their own init."""
        context_params = {id(p) for m in self.modules() if isinstance(m, Bottleneck) and m.context is not None
                          for p in m.context.parameters()}
        for m in self.modules():
            if isinstance(m, nn.Conv3d) and id(m.weight) not in context_params:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d) and id(m.weight) not in context_params:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_final_bn:
            for m in self.modules():
                if isinstance(m, Bottleneck) and isinstance(m.bn_c, nn.BatchNorm3d):
                    nn.init.zeros_(m.bn_c.weight)
        nn.init.normal_(self.head.fc.weight, std=0.01)
        nn.init.zeros_(self.head.fc.bias)

    def stage_modules(self):
        """(name, module) in the order the clip flows through them, head excluded."""
        names = ["stem", "res2", "pool2", "res3", "res4", "res5"]
        return [(n, getattr(self, n)) for n in names if getattr(self, n) is not None]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The res5 feature map `[B, C, T', H', W']`."""
        for _, module in self.stage_modules():
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `[B, classes]` of the globally pooled clip (training; a loss takes these)."""
        return self.head(self.features(x))

    def test_logits(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, classes]` of the fully-convolutional test, whose softmax is the view's class probabilities (see
        `Head`); what testing, prediction and export use."""
        return self.head.test_logits(self.features(x))


class ModelForTest(nn.Module):
    """A model whose forward is its `test_logits`: the test's computation, for tracing (export, FLOP counts)."""

    def __init__(self, model: VideoResNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.test_logits(x)
