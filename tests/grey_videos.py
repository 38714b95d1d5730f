"""Flat grey videos and a stub model that classifies a view by its grey level, so that which videos and views an
evaluation gets right is known without running a network:
    class c is grey level LEVELS[c]; logits are -0.1 x |view grey level - LEVELS[c]|.
"""

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from videonl.config import get_cfg
from videonl.prep.common import encode_h264

LEVELS = [40, 80, 120, 160, 200, 240]
# file: (grey of frames 0-19, grey of frames 20-29, label). The 3 clips of 2 frames start at frames 0, 10, 20.
VIDEOS = {
    "grey40.mp4": (40, 40, 0),  # right
    "grey80.mp4": (80, 80, 1),  # right
    "mixed.mp4": (120, 200, 4),  # views 120, 120, 200: predicts class 2; label ranked 2nd; 1 of 3 views right
    "grey170.mp4": (170, 170, 5),  # predicts 3; label (240) is the 4th nearest: right at top-5 only
    "grey40_labelled_240.mp4": (40, 40, 5),  # label is the farthest of the 6 classes: wrong even at top-5
    "broken.mp4": (None, None, 3),  # not a video: fails to decode
}
NAMES = [f"grey {level}" for level in LEVELS]


class GreyLevelModel(nn.Module):
    """Scores each view by the distance of its mean grey level to every class's level; counts the views."""

    def __init__(self, levels=LEVELS):
        super().__init__()
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32))
        self.views_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.views_seen += len(x)
        grey = x.mean(dim=(1, 2, 3, 4)) * 255  # MEAN 0 and STD 1: inputs are pixel values / 255
        return -0.1 * (grey[:, None] - self.levels).abs()

    def test_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)[:, None]  # what the evaluator calls: one window per view


@pytest.fixture(scope="module")
def grey_dir(tmp_path_factory):
    """VIDEOS written as files, listed in val.csv, with NAMES in classes.json."""
    root = tmp_path_factory.mktemp("grey")
    lines = []
    for name, (first, second, label) in VIDEOS.items():
        if first is None:
            (root / name).write_text("not a video\n")
        else:
            frames = (np.full((48, 64, 3), first if i < 20 else second, np.uint8) for i in range(30))
            encode_h264(root / name, frames, Fraction(25))
        lines.append(f"{name} {label}\n")
    (root / "val.csv").write_text("".join(lines))
    (root / "classes.json").write_text(json.dumps({name: index for index, name in enumerate(NAMES)}))
    return root


def grey_cfg(data_dir, **overrides):
    """3 centre views of 2 frames per video, unnormalised (pixel values / 255), 2 videos a batch."""
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = str(data_dir)
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TEST_CROP_SIZE = 2, 1, 32
    cfg.DATA.MEAN, cfg.DATA.STD = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    cfg.TEST.NUM_CLIPS, cfg.TEST.CROP, cfg.TEST.VIEWS_PER_FORWARD = 3, "center", 2
    cfg.MODEL.NUM_CLASSES = len(LEVELS)
    cfg.DATALOADER.NUM_WORKERS, cfg.DATALOADER.TEST_BATCH_SIZE = 0, 2
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg
