"""torchvision's 2D ResNets (ImageNet's, or a state dict on disk) in a video model's names, inflated to 3D."""

from typing import Dict, Mapping

import torch
from torch import nn

from videonl.models.inflation import inflate_state_dict
from videonl.models.registry import STAGES
from videonl.models.resnet3d import STAGE_BLOCKS

from videonl.models.conversions.common import per_stage, rename_keys, require_resnet3d

# layer1..layer4 are res2..res5; conv1/2/3 and bn1/2/3 are a/b/c; downsample is the shortcut projection.
TORCHVISION_BLOCK_RULES = (
    (r"(\d+)\.conv1\.weight", r"\1.conv_a.weight"),
    (r"(\d+)\.conv2\.weight", r"\1.conv_b.weight"),
    (r"(\d+)\.conv3\.weight", r"\1.conv_c.weight"),
    (r"(\d+)\.bn1\.(\w+)", r"\1.bn_a.\2"),
    (r"(\d+)\.bn2\.(\w+)", r"\1.bn_b.\2"),
    (r"(\d+)\.bn3\.(\w+)", r"\1.bn_c.\2"),
    (r"(\d+)\.downsample\.0\.weight", r"\1.proj_conv.weight"),
    (r"(\d+)\.downsample\.1\.(\w+)", r"\1.proj_bn.\2"),
)
# No rule for fc: ImageNet's 1000 classes are not the video classes, so the classifier stays unmatched.
TORCHVISION_RULES = (
    (r"conv1\.weight", "stem.conv.weight"),
    (r"bn1\.(\w+)", r"stem.bn.\1"),
    *per_stage({f"layer{k + 1}": stage for k, stage in enumerate(STAGES)}, TORCHVISION_BLOCK_RULES),
)
IMAGENET_DEPTHS = (50, 101)


def inflate_2d_state_dict(state_2d: Mapping[str, torch.Tensor], model: nn.Module):
    """A torchvision 2D ResNet state dict in `model`'s names, each kernel inflated to the model's own length.

    Returns (state, unused source keys); the classifier `fc.*` is among the unused keys.
    """
    require_resnet3d(model, "torchvision ResNet")
    state, unused = rename_keys(state_2d, TORCHVISION_RULES)
    return inflate_state_dict(state, model), unused


def imagenet_depth(model: nn.Module) -> int:
    """The shallowest ImageNet ResNet with at least `model`'s residual blocks in every stage.

    That is the model's own depth for the standard tables, and the smallest fitting one for reduced models.
    """
    require_resnet3d(model, "ImageNet")
    blocks = [len(getattr(model, stage)) for stage in STAGES]
    for depth in IMAGENET_DEPTHS:
        if all(have >= need for have, need in zip(STAGE_BLOCKS[depth], blocks)):
            return depth
    raise ValueError(f"ImageNet weights exist for ResNet depths {IMAGENET_DEPTHS} (blocks per stage "
                     f"{[STAGE_BLOCKS[depth] for depth in IMAGENET_DEPTHS]}), none with the model's {blocks}")


def imagenet_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet (IMAGENET1K_V1, the original recipe) that `model`'s stages come from;
    downloaded on first use."""
    import torchvision  # here, not at the top: its import costs every command about a second

    return torchvision.models.get_model(f"resnet{imagenet_depth(model)}", weights="IMAGENET1K_V1").state_dict()


def is_torchvision_resnet(content) -> bool:
    conv1 = content.get("conv1.weight") if isinstance(content, dict) else None
    return isinstance(conv1, torch.Tensor) and conv1.dim() == 4
