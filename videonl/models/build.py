"""build_model(cfg): the config's backbone, context blocks and head, freshly initialised (MODEL.INIT's weights
are the engine's: `videonl.engine.initialization`)."""

from typing import Callable, Tuple

from torch import nn

from videonl.models import context  # noqa: F401  (registers the package's context blocks)
from videonl.models.norm import make_norm
from videonl.models.registry import context_factory
from videonl.models.resnet3d import STAGE_BLOCKS, VideoResNet


def stage_blocks(cfg) -> Tuple[int, ...]:
    """Residual blocks per stage: RESNET.BLOCKS when given, else the standard table for RESNET.DEPTH."""
    if cfg.RESNET.BLOCKS:
        if len(cfg.RESNET.BLOCKS) != 4:
            raise ValueError(f"RESNET.BLOCKS needs 4 entries (res2..res5), got {list(cfg.RESNET.BLOCKS)}")
        return tuple(cfg.RESNET.BLOCKS)
    if cfg.RESNET.DEPTH not in STAGE_BLOCKS:
        raise ValueError(f"RESNET.DEPTH {cfg.RESNET.DEPTH} is not one of {sorted(STAGE_BLOCKS)}; set RESNET.BLOCKS")
    return STAGE_BLOCKS[cfg.RESNET.DEPTH]


def backbone_norm(cfg) -> Callable[[int], nn.Module]:
    """The normalisation every layer of the backbone, and every context block that normalises, uses (BN.*)."""
    return make_norm(cfg.BN.EPS, cfg.BN.MOMENTUM, cfg.BN.FROZEN)


def build_model(cfg) -> nn.Module:
    """The model the config describes, with fresh weights."""
    blocks = stage_blocks(cfg)
    model = VideoResNet(
        blocks=blocks,
        width=cfg.RESNET.WIDTH,
        stem_t_kernel=cfg.RESNET.STEM_TEMPORAL_KERNEL,
        stem_t_stride=cfg.RESNET.STEM_TEMPORAL_STRIDE,
        pool1_t_kernel=cfg.RESNET.POOL1_TEMPORAL_KERNEL,
        pool1_t_stride=cfg.RESNET.POOL1_TEMPORAL_STRIDE,
        pool2_t_kernel=cfg.RESNET.POOL2_TEMPORAL_KERNEL,
        pool2_t_stride=cfg.RESNET.POOL2_TEMPORAL_STRIDE,
        t_kernels_a=cfg.RESNET.TEMPORAL_KERNEL_A,
        t_kernels_b=cfg.RESNET.TEMPORAL_KERNEL_B,
        norm=backbone_norm(cfg),
        make_context=context_factory(cfg, blocks),
        context_position=cfg.CONTEXT.POSITION,
        num_classes=cfg.MODEL.NUM_CLASSES,
        dropout=cfg.MODEL.DROPOUT,
        head_pool=cfg.MODEL.HEAD_POOL,
        fully_conv_test=cfg.MODEL.FULLY_CONV_TEST,
        input_channels=cfg.DATA.INPUT_CHANNELS,
        zero_init_final_bn=cfg.RESNET.ZERO_INIT_FINAL_BN,
    )
    return model
