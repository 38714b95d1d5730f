"""PyTorchVideo's model zoo (c2d_r50, i3d_r50, slow_r50) in our names."""

import re
from typing import Dict, Mapping

import torch
from torch import nn

from videonl.models.registry import STAGES

from videonl.models.conversions.common import (CheckpointError, Rules, describe, load_weights_only, per_stage,
                                               rename_keys, require_resnet3d)

# Inside one stage of blocks.N.res_blocks: branch2 is the residual branch, branch1 the projection shortcut.
PYTORCHVIDEO_BLOCK_RULES = (
    (r"(\d+)\.branch2\.conv_([abc])\.weight", r"\1.conv_\2.weight"),
    (r"(\d+)\.branch2\.norm_([abc])\.(\w+)", r"\1.bn_\2.\3"),
    (r"(\d+)\.branch1_conv\.weight", r"\1.proj_conv.weight"),
    (r"(\d+)\.branch1_norm\.(\w+)", r"\1.proj_bn.\2"),
)


def pytorchvideo_rules(state: Mapping[str, torch.Tensor]) -> Rules:
    """The rules for one PyTorchVideo ResNet, whose `blocks` indices depend on the model.

    c2d_r50 and i3d_r50 have a pooling module between res2 and res3 (stages at blocks 1, 3, 4, 5), slow_r50
    has none (blocks 1..4), so the stages are the indices that hold `res_blocks`, in order.
    """
    indices = sorted({int(m[1]) for m in map(re.compile(r"blocks\.(\d+)\.res_blocks\.").match, state) if m})
    if len(indices) != len(STAGES):
        raise CheckpointError(f"expected {len(STAGES)} PyTorchVideo stages holding res_blocks, found blocks {indices}")
    stage_prefixes = {f"blocks.{index}.res_blocks": stage for index, stage in zip(indices, STAGES)}
    return (
        (r"blocks\.0\.conv\.weight", "stem.conv.weight"),
        (r"blocks\.0\.norm\.(\w+)", r"stem.bn.\1"),
        *per_stage(stage_prefixes, PYTORCHVIDEO_BLOCK_RULES),
        (r"blocks\.\d+\.proj\.(weight|bias)", r"head.fc.\1"),
    )


def convert_pytorchvideo(state: Mapping[str, torch.Tensor], model: nn.Module):
    """A PyTorchVideo ResNet state dict in the names of `model` (a resnet3d model); returns (state, unused source
    keys)."""
    require_resnet3d(model, "PyTorchVideo")
    return rename_keys(state, pytorchvideo_rules(state))


def is_pytorchvideo_checkpoint(content) -> bool:
    return isinstance(content, dict) and isinstance(content.get("model_state"), dict)


def load_pytorchvideo_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of a model-zoo file, `{"model_state": state_dict, ...}` as PySlowFast saves it."""
    content = load_weights_only(path)
    if not is_pytorchvideo_checkpoint(content):
        raise CheckpointError(
            f"{path}: expected a PyTorchVideo checkpoint {{'model_state': ...}}, found {describe(content)}"
        )
    return content["model_state"]
