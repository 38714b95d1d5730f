"""Bottleneck ResNets on video clips `[B, 3, T, H, W]`: the `resnet3d` backbone (MODEL.BACKBONE).

C2D, I3D (3x1x1 or 3x3x3) and slow-only differ only by data: the temporal kernel of the stem and of each
residual block's first 1x1 conv ("a") and 3x3 conv ("b"), and where time is strided (stem, pool1, pool2).
Those tables are the RESNET node, declared here, and live in the YAML files under `configs/_base_/`.

The parts take their layers from builders, as torchvision's video ResNet takes a conv maker for the 3x3 conv
and PyTorchVideo's `create_resnet` takes `stem_conv`, `norm` and `activation`: a variant (a factorised 3x3, a
grouped one, another activation) is a new backbone built from these parts, with no key in RESNET. A conv
builder takes nn.Conv3d's keyword arguments (`in_channels`, `out_channels`, `kernel_size`, `stride`,
`padding`, `bias`); an activation builder takes none.
"""

from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from videonl.config import NodeSpec
from videonl.models.backbones import register_backbone
from videonl.models.head import Head
from videonl.models.norm import backbone_norm
from videonl.models.registry import STAGES, Norm, context_factory

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

ConvBuilder = Callable[..., nn.Module]  # called with nn.Conv3d's keyword arguments
Activation = Callable[[], nn.Module]  # a fresh activation layer

SETTINGS = NodeSpec(
    "RESNET",
    DEPTH=(50, "50 or 101 (bottleneck blocks per stage: 3,4,6,3 or 3,4,23,3)"),
    BLOCKS=([], "blocks per stage res2..res5; overrides DEPTH when given (small test models)"),
    WIDTH=(64, "stem channels; stage widths scale with it (64 = standard ResNet)"),
    STEM_TEMPORAL_KERNEL=(1, "temporal kernel of conv1 (C2D/slow 1, I3D 5)"),
    TEMPORAL_KERNEL_A=([[1], [1], [1], [1]], "of each bottleneck's first 1x1 conv, one list per stage res2..res5 "
                       "repeated over its blocks: [3, 1] = 3 on blocks 0, 2, ... (I3D 3x1x1)"),
    TEMPORAL_KERNEL_B=([[1], [1], [1], [1]], "of each bottleneck's 3x3 conv, as TEMPORAL_KERNEL_A (I3D 3x3x3)"),
    STEM_TEMPORAL_STRIDE=(1, "temporal stride of conv1 (paper's 32-frame layout: 2)"),
    POOL1_TEMPORAL_KERNEL=(1, "temporal kernel of the max-pool after conv1 (paper 32-frame: 3)"),
    POOL1_TEMPORAL_STRIDE=(1, "its temporal stride (paper 32-frame: 2)"),
    POOL2_TEMPORAL_KERNEL=(0, "temporal max-pool after res2; 0 = none (8x8 layouts: 2, paper: 3)"),
    POOL2_TEMPORAL_STRIDE=(2, "its temporal stride"),
    ZERO_INIT_FINAL_BN=(True, "last BN of every residual branch starts at gamma 0"),
)


def relu() -> nn.Module:
    """The activation of both anchors' ResNets, and the default of every part here."""
    return nn.ReLU(inplace=True)


def no_context(stage: str, index: int, dim_inner: int, dim_out: int, stride: int, norm: Norm) -> None:
    return None


def temporal_kernel(per_stage: Sequence[int], index: int) -> int:
    """Kernel of block `index`: the stage's list repeats over its blocks ([3, 1] -> 3, 1, 3, 1, ...)."""
    kernel = per_stage[index % len(per_stage)]
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"temporal kernels must be odd and positive, got {kernel}")
    return kernel


def stage_blocks(cfg) -> Tuple[int, ...]:
    """Residual blocks per stage: RESNET.BLOCKS when given, else the standard table for RESNET.DEPTH."""
    if cfg.RESNET.BLOCKS:
        if len(cfg.RESNET.BLOCKS) != 4:
            raise ValueError(f"RESNET.BLOCKS needs 4 entries (res2..res5), got {list(cfg.RESNET.BLOCKS)}")
        return tuple(cfg.RESNET.BLOCKS)
    if cfg.RESNET.DEPTH not in STAGE_BLOCKS:
        raise ValueError(f"RESNET.DEPTH {cfg.RESNET.DEPTH} is not one of {sorted(STAGE_BLOCKS)}; set RESNET.BLOCKS")
    return STAGE_BLOCKS[cfg.RESNET.DEPTH]


class Stem(nn.Module):
    """conv1 (t x 7 x 7, spatial stride 2) -> norm -> activation -> pool1 (max, 3 x 3 spatial, stride 2).

    Args:
        dim_in: input channels (DATA.INPUT_CHANNELS).
        dim_out: output channels.
        norm: `norm(channels)` builds the normalisation layer.
        t_kernel, t_stride: temporal kernel and stride of conv1.
        pool_t_kernel, pool_t_stride: temporal kernel and stride of pool1.
        conv: builds conv1 (PyTorchVideo's `stem_conv`).
        activation: builds the activation (PyTorchVideo's `stem_activation`).
    """

    def __init__(self, dim_in: int, dim_out: int, norm: Norm, *, t_kernel: int = 1, t_stride: int = 1,
                 pool_t_kernel: int = 1, pool_t_stride: int = 1, conv: ConvBuilder = nn.Conv3d,
                 activation: Activation = relu):
        super().__init__()
        self.conv = conv(in_channels=dim_in, out_channels=dim_out, kernel_size=(t_kernel, 7, 7),
                         stride=(t_stride, 2, 2), padding=(t_kernel // 2, 3, 3), bias=False)
        self.bn = norm(dim_out)
        self.activation = activation()
        self.pool = nn.MaxPool3d((pool_t_kernel, 3, 3), (pool_t_stride, 2, 2), ((pool_t_kernel - 1) // 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.bn(self.conv(x))))


class Bottleneck(nn.Module):
    """1x1 (temporal kernel ta) -> 3x3 (temporal kernel tb, spatial stride) -> 1x1, plus the shortcut.

    An optional context block sits after the whole block (`after_block`), after the last conv and BN
    before the residual add (`after_conv_c`), right after the add (`after_add`), or takes the place of the
    3x3 conv and its BN (`conv_b`, built with `dim_inner` and `stride`).

    Args:
        dim_in, dim_inner, dim_out: channels of the input, of the two inner convs, of the output.
        stride: spatial stride of the 3x3 conv (and of the shortcut's projection).
        norm: `norm(channels)` builds each normalisation layer.
        ta, tb: temporal kernels of the first 1x1 conv and of the 3x3 conv (odd).
        context: the context block, or None.
        position: where `context` sits, one of `registry.POSITIONS`.
        conv_b: builds the 3x3 conv (torchvision's conv maker, PyTorchVideo's `conv_b`); the 1x1 convs and the
            projection are nn.Conv3d, as in both anchors' variants.
        activation: builds each activation: after conv_a, after conv_b, after the add.
    """

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int, norm: Norm, *, ta: int = 1,
                 tb: int = 1, context: Optional[nn.Module] = None, position: str = "after_block",
                 conv_b: ConvBuilder = nn.Conv3d, activation: Activation = relu):
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, dim_inner, (ta, 1, 1), padding=(ta // 2, 0, 0), bias=False)
        self.bn_a = norm(dim_inner)
        if context is not None and position == "conv_b":
            self.conv_b = self.bn_b = None
        else:
            self.conv_b = conv_b(in_channels=dim_inner, out_channels=dim_inner, kernel_size=(tb, 3, 3),
                                 stride=(1, stride, stride), padding=(tb // 2, 1, 1), bias=False)
            self.bn_b = norm(dim_inner)
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.bn_c = norm(dim_out)
        self.act_a, self.act_b, self.act_out = activation(), activation(), activation()
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
        y = self.act_a(self.bn_a(self.conv_a(x)))
        y = self.act_b(self.context(y) if self.conv_b is None else self.bn_b(self.conv_b(y)))
        y = self._context_at("after_conv_c", self.bn_c(self.conv_c(y)))
        y = self.act_out(self._context_at("after_add", y + shortcut))
        return self._context_at("after_block", y)


@register_backbone("resnet3d", SETTINGS)
class VideoResNet(nn.Module):
    """stem -> res2 -> [pool2] -> res3 -> res4 -> res5 -> head, a `VideoModel` (`interface`).

    Args:
        blocks: residual blocks per stage res2..res5, e.g. (3, 4, 6, 3) for ResNet-50.
        width: stem channels; stage k has width * 2**k inner and 4x that output channels.
        stem_t_kernel, stem_t_stride: temporal kernel and stride of conv1.
        pool1_t_kernel, pool1_t_stride: temporal kernel and stride of the max-pool after conv1.
        pool2_t_kernel, pool2_t_stride: temporal max-pool between res2 and res3 (kernel 0: none).
        t_kernels_a, t_kernels_b: per stage, the temporal kernels of conv_a / conv_b, repeated over blocks.
        norm: `norm(num_features)` constructor of every normalisation layer.
        conv_b, activation: the builders of every bottleneck's 3x3 conv and of every activation (see `Bottleneck`).
        make_context: `make_context(stage, index, dim_inner, dim_out, stride, norm)` -> context block or None for
            each residual block, given its widths, its 3x3 conv's stride and `norm` (see `registry.context_factory`).
        context_position: where a block's context block sits (see `Bottleneck`).
        num_classes, dropout, head_pool, fully_conv_test: the classifier head (see `Head`).
        zero_init_final_bn: start each residual branch's last BN at gamma 0, so every block is the identity.
    """

    classifier_name = "head.fc"

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
        norm: Norm = nn.BatchNorm3d,
        conv_b: ConvBuilder = nn.Conv3d,
        activation: Activation = relu,
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
        self.stem = Stem(input_channels, width, norm, t_kernel=stem_t_kernel, t_stride=stem_t_stride,
                         pool_t_kernel=pool1_t_kernel, pool_t_stride=pool1_t_stride, activation=activation)
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
                        conv_b=conv_b, activation=activation,
                    )
                )
                dim_in = dim_out
            self.add_module(stage, nn.Sequential(*layers))
        self.head = Head(dim_in, num_classes, dropout, head_pool, fully_conv_test)
        self._init_weights(zero_init_final_bn)

    @classmethod
    def from_config(cls, cfg) -> "VideoResNet":
        """The model of RESNET.* (the backbone), BN.* (its norm), CONTEXT.* (the blocks it places), MODEL.* (the
        head) and DATA.INPUT_CHANNELS."""
        resnet, blocks = cfg.RESNET, stage_blocks(cfg)
        return cls(
            blocks=blocks,
            width=resnet.WIDTH,
            stem_t_kernel=resnet.STEM_TEMPORAL_KERNEL,
            stem_t_stride=resnet.STEM_TEMPORAL_STRIDE,
            pool1_t_kernel=resnet.POOL1_TEMPORAL_KERNEL,
            pool1_t_stride=resnet.POOL1_TEMPORAL_STRIDE,
            pool2_t_kernel=resnet.POOL2_TEMPORAL_KERNEL,
            pool2_t_stride=resnet.POOL2_TEMPORAL_STRIDE,
            t_kernels_a=resnet.TEMPORAL_KERNEL_A,
            t_kernels_b=resnet.TEMPORAL_KERNEL_B,
            norm=backbone_norm(cfg),
            make_context=context_factory(cfg, blocks),
            context_position=cfg.CONTEXT.POSITION,
            num_classes=cfg.MODEL.NUM_CLASSES,
            dropout=cfg.MODEL.DROPOUT,
            head_pool=cfg.MODEL.HEAD_POOL,
            fully_conv_test=cfg.MODEL.FULLY_CONV_TEST,
            input_channels=cfg.DATA.INPUT_CHANNELS,
            zero_init_final_bn=resnet.ZERO_INIT_FINAL_BN,
        )

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

    def stage_modules(self) -> List[Tuple[str, nn.Module]]:
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
        """`[B, windows, classes]` logits of the fully-convolutional test's windows (see `Head`), which the task
        combines into the view's class probabilities; what testing, prediction and export use."""
        return self.head.test_logits(self.features(x))
