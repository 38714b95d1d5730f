"""2D -> 3D inflation: a 2D ResNet's kernels as the video model's, repeated over time (I3D paper)."""

from typing import Dict, Mapping, Optional

import torch
from torch import nn


def inflate_kernel(weight_2d: torch.Tensor, frames: int) -> torch.Tensor:
    """[O, I, H, W] -> [O, I, frames, H, W]: the 2D kernel repeated over time and divided by `frames`.

    On a clip of one repeated image the inflated conv then gives the 2D conv's response (away from the
    temporal padding), which is what makes ImageNet weights a useful start for a video model.
    """
    return weight_2d.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames


def inflate_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """`state` (already in `model`'s names) with each 2D kernel inflated to the temporal length of the model's."""
    target_shapes = {key: value.shape for key, value in model.state_dict().items()}
    return {key: _inflated(value, target_shapes.get(key)) for key, value in state.items()}


def _inflated(value: torch.Tensor, target_shape: Optional[torch.Size]) -> torch.Tensor:
    if value.dim() == 4 and target_shape is not None and len(target_shape) == 5:
        return inflate_kernel(value, target_shape[2])
    return value
