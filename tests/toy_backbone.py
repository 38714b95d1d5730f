"""A backbone from outside the package, as a user would write one: its own settings, registered on import,
and the model interface (`videonl.models.VideoModel`) and nothing more."""

from typing import List, Tuple

import torch
from torch import nn

from videonl.config import NodeSpec
from videonl.models import register_backbone
from videonl.models.norm import backbone_norm

SETTINGS = NodeSpec("TOYNET", WIDTH=(4, "channels of the toy's stem; its stage has twice as many"))


@register_backbone("toynet", SETTINGS)
class ToyNet(nn.Module):
    """stem (3x3x3 conv, spatial stride 2) -> stage (3x3x3 conv, stride 2) -> global average -> linear."""

    classifier_name = "classifier"

    def __init__(self, input_channels: int, width: int, num_classes: int, norm):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(input_channels, width, 3, (1, 2, 2), 1, bias=False), norm(width), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv3d(width, 2 * width, 3, 2, 1, bias=False), norm(2 * width), nn.ReLU())
        self.classifier = nn.Linear(2 * width, num_classes)

    @classmethod
    def from_config(cls, cfg) -> "ToyNet":
        return cls(cfg.DATA.INPUT_CHANNELS, cfg.TOYNET.WIDTH, cfg.MODEL.NUM_CLASSES, backbone_norm(cfg))

    def stage_modules(self) -> List[Tuple[str, nn.Module]]:
        return [("stem", self.stem), ("stage", self.stage)]

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        return self.stage(self.stem(clips))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(clips).mean(dim=(2, 3, 4)))

    def test_logits(self, clips: torch.Tensor) -> torch.Tensor:
        return self(clips)[:, None]  # one window per view: the task turns its logits into probabilities
