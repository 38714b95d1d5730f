"""Spatial transforms on frame tensors (CPU or GPU): scale jitter, crops, flip, normalisation.

Decoded frames arrive as uint8 [T, H, W, C]; clips leave in the model's layout [C, T, H, W], either
normalised float or, with `normalize=False`, still uint8 so that `normalize` runs later on the GPU (a
quarter of the bytes through the loader, and no float work on the CPU). Resizing runs on uint8 [T, C, H, W]
through `torchvision.transforms.v2.functional`, before any crop, so a test video is resized once for all
its views.
"""

from typing import List, Sequence, Tuple

import torch
import torchvision.transforms.v2.functional as F

from videonl.models.input_spec import CHANNEL_ORDERS

TEST_CROPS = ("3crop", "center", "full")


def frames_to_tchw(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2)


def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """[T, C, H, W] resized so its shorter side is `size`, aspect ratio kept."""
    return F.resize(frames, [size], antialias=True)


def random_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    height, width = frames.shape[-2:]
    top = int(torch.randint(0, height - size + 1, ()))
    left = int(torch.randint(0, width - size + 1, ()))
    return F.crop(frames, top, left, size, size)


def crops_along_long_side(height: int, width: int, size: int, count: int) -> List[Tuple[int, int]]:
    """(top, left) of `count` square crops spread evenly from one end of the long side to the other (3:
    left/top, centre, right/bottom, the official 30-view test), centred on the short side."""
    slack = max(height, width) - size
    offsets = [slack // 2] if count == 1 else [k * slack // (count - 1) for k in range(count)]
    centre = (min(height, width) - size) // 2
    return [(centre, offset) if width >= height else (offset, centre) for offset in offsets]


def to_model_layout(frames: torch.Tensor) -> torch.Tensor:
    """[..., T, C, H, W] -> [..., C, T, H, W]."""
    return frames.transpose(-4, -3)


def normalize(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channel_order: str = "RGB") -> torch.Tensor:
    """uint8 RGB [..., C, T, H, W] -> float in `channel_order` (BGR reverses the channels), scaled to [0, 1]
    then standardised per channel (`mean` and `std` listed in that order)."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"DATA.CHANNEL_ORDER must be one of {', '.join(CHANNEL_ORDERS)}, got '{channel_order}'")
    if channel_order == "BGR":
        clips = clips.flip(-4)
    shape = (len(mean), 1, 1, 1)
    mean = torch.tensor(mean, device=clips.device).view(shape) * 255
    scale = 1 / (torch.tensor(std, device=clips.device).view(shape) * 255)
    return clips.float().sub_(mean).mul_(scale)


class TrainTransform:
    """Short side random in [min, max], a random square crop, a random horizontal flip, normalisation."""

    def __init__(self, jitter_scales: Sequence[int], crop_size: int, flip: bool, mean, std, channel_order="RGB",
                 normalize=True):
        self.jitter_scales = tuple(jitter_scales)
        self.crop_size = crop_size
        self.flip = flip
        self.mean, self.std, self.channel_order = tuple(mean), tuple(std), channel_order
        self.normalize = normalize

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [T, H, W, C] -> [C, T, crop, crop], float (or uint8 without `normalize`)."""
        short_side = int(torch.randint(self.jitter_scales[0], self.jitter_scales[1] + 1, ()))
        clip = random_crop(resize_short_side(frames_to_tchw(frames), short_side), self.crop_size)
        if self.flip and bool(torch.rand(()) < 0.5):
            clip = F.horizontal_flip(clip)
        clip = to_model_layout(clip)
        return normalize(clip, self.mean, self.std, self.channel_order) if self.normalize else clip.contiguous()


class EvalTransform:
    """Short side to `short_side`, then spatial views: 3 square crops of `crop_size` along the long side, a
    centre crop, or the full frame.

    Applied to the distinct decoded frames of a video once; `positions` [clips, T] cut the clips from them.
    Views are ordered clip-major: view v is clip v // crops, crop v % crops.
    """

    def __init__(self, short_side: int, crop_size: int, crop: str, mean, std, channel_order="RGB", normalize=True):
        if crop not in TEST_CROPS:
            raise ValueError(f"unknown test crop '{crop}'; choose from {', '.join(TEST_CROPS)}")
        self.short_side = short_side
        self.crop_size = crop_size
        self.crop = crop
        self.mean, self.std, self.channel_order = tuple(mean), tuple(std), channel_order
        self.normalize = normalize

    @property
    def crops_per_clip(self) -> int:
        return 3 if self.crop == "3crop" else 1

    def windows(self, height: int, width: int) -> List[Tuple[int, int, int, int]]:
        """(top, left, height, width) of each spatial view of a frame of this size."""
        if self.crop == "full":
            return [(0, 0, height, width)]
        corners = crops_along_long_side(height, width, self.crop_size, self.crops_per_clip)
        return [(top, left, self.crop_size, self.crop_size) for top, left in corners]

    def __call__(self, frames: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """uint8 [U, H, W, C] distinct frames, int [clips, T] -> [clips * crops, C, T, h, w], float (or uint8
        without `normalize`).

        Each view is copied once, straight from the (resized) distinct frames into its place in the output.
        """
        resized = resize_short_side(frames_to_tchw(frames), self.short_side).permute(0, 2, 3, 1)  # [U, H, W, C]
        windows = self.windows(*resized.shape[1:3])
        _, _, view_height, view_width = windows[0]
        views = torch.empty((len(positions) * len(windows), resized.shape[-1], positions.shape[1], view_height,
                             view_width), dtype=resized.dtype, device=resized.device)
        for clip, clip_positions in enumerate(positions):
            for crop, (top, left, height, width) in enumerate(windows):
                cut = resized[clip_positions, top:top + height, left:left + width]  # [T, h, w, C]
                views[clip * len(windows) + crop].copy_(cut.permute(3, 0, 1, 2))
        return normalize(views, self.mean, self.std, self.channel_order) if self.normalize else views
