"""Spatial transforms on frame tensors (CPU or GPU): scale jitter, crops, flip, normalisation.

Decoded frames arrive as uint8 [T, H, W, C]. Clips leave in the model's logical layout [C, T, H, W] but keep
the decoder's physical order [T, H, W, C] (channels-last-3d), so that every cut is a copy of whole pixel rows,
never a per-pixel transpose; `loader.model_input` gives the model the memory format it runs in, on the device.
They are normalised float or, with `normalize=False`, still uint8 so that `normalize` runs later on the GPU (a
quarter of the bytes through the loader, and no float work on the CPU).

Only the pixels kept are resized: a training clip is cut from the source frames and then resized (the box that
resizing first and cropping after would take), and a test video is resized once for all its views. Resizing is
antialiased bilinear everywhere, by `torch.nn.functional.interpolate` itself: importing torchvision for its
`resize` would cost every process that touches the data package about a second (it pulls in torch._dynamo).
"""

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from videonl.models.input_spec import CHANNEL_ORDERS

TEST_CROPS = ("3crop", "center", "full")
FULL_FRAME_MAX_RATIO = (8, 5)  # "full" test views: long side at most 1.6 x the short one, as the official test


def resize(frames: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """uint8 [T, H, W, C] resized to `size` ([short side], aspect ratio kept, or [height, width]), antialiased;
    [T, H', W', C] contiguous. Runs on the channels-last view the frames already are.

    The CPU resizes uint8 natively (as torchvision's `resize` does on AVX2 and ARM CPUs); other devices
    resize in float and round back (as torchvision's does there)."""
    height, width = frames.shape[1:3]
    new_size = tuple(size) if len(size) == 2 else resized_size(height, width, size[0])
    if new_size == (height, width):
        return frames.contiguous()
    images = frames.permute(0, 3, 1, 2)
    native = images.device.type == "cpu"
    resized = F.interpolate(images if native else images.float(), size=new_size, mode="bilinear",
                            align_corners=False, antialias=True)
    if not native:
        resized = resized.round_().to(frames.dtype)
    return resized.permute(0, 2, 3, 1).contiguous()


def resized_size(height: int, width: int, short_side: int) -> Tuple[int, int]:
    """(height, width) of a frame whose shorter side is resized to `short_side`: the longer side truncated, as
    torchvision's `resize` computes it."""
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


def to_model_layout(frames: torch.Tensor) -> torch.Tensor:
    """[..., T, H, W, C] -> [..., C, T, H, W], a view: the physical order stays channels-last."""
    return frames.movedim(-1, -4)


def crops_along_long_side(height: int, width: int, size: int, count: int) -> List[Tuple[int, int]]:
    """(top, left) of `count` square crops spread along the long side, centred on the short side.

    Three crops are the official 30-view test's: offsets 0, slack // 2 and 2 * (slack // 2) in integer
    arithmetic, so with an odd slack the last crop stops one pixel short of the far edge.
    """
    slack = max(height, width) - size
    offsets = [slack // 2] if count == 1 else [k * (slack // (count - 1)) for k in range(count)]
    centre = (min(height, width) - size) // 2
    return [(centre, offset) if width >= height else (offset, centre) for offset in offsets]


def full_frame_window(height: int, width: int) -> Tuple[int, int, int, int]:
    """(top, left, height, width) of the full-frame view: the whole frame, or its centre where the long side
    exceeds 1.6 x the short one (the official test's cap, against extreme aspect ratios)."""
    ratio_long, ratio_short = FULL_FRAME_MAX_RATIO
    long_side = min(max(height, width), min(height, width) * ratio_long // ratio_short)
    view_height, view_width = (long_side, width) if height > width else (height, long_side)
    return (height - view_height) // 2, (width - view_width) // 2, view_height, view_width


def normalize(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channel_order: str = "RGB") -> torch.Tensor:
    """uint8 RGB [..., C, T, H, W] -> float in the same memory layout and in `channel_order` (BGR reverses the
    channels), scaled to [0, 1] then standardised per channel (`mean` and `std` listed in that order)."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"DATA.CHANNEL_ORDER must be one of {', '.join(CHANNEL_ORDERS)}, got '{channel_order}'")
    if channel_order == "BGR":
        clips = clips.flip(-4)
    shape = (len(mean), 1, 1, 1)
    mean = torch.tensor(mean, device=clips.device).view(shape) * 255
    scale = 1 / (torch.tensor(std, device=clips.device).view(shape) * 255)
    return clips.float().sub_(mean).mul_(scale)


def _nearest(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer (halves up), exactly."""
    return (2 * numerator + denominator) // (2 * denominator)


class TrainTransform:
    """Short side random in [min, max], a random square crop, a random horizontal flip, normalisation.

    The random numbers are those of resizing the frames and then cropping; the crop's box is mapped back to
    the source frames, rounded to whole pixels, and only the box is resized. Each seed so gives the box of
    resize-then-crop to within half a source pixel per edge, at the cost of resizing the crop alone.
    """

    def __init__(self, jitter_scales: Sequence[int], crop_size: int, flip: bool, mean, std, channel_order="RGB",
                 normalize=True):
        self.jitter_scales = tuple(jitter_scales)
        self.crop_size = crop_size
        self.flip = flip
        self.mean, self.std, self.channel_order = tuple(mean), tuple(std), channel_order
        self.normalize = normalize

    def crop_box(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """(top, left, height, width), in pixels of a height x width source frame, of a random crop."""
        short_side = int(torch.randint(self.jitter_scales[0], self.jitter_scales[1] + 1, ()))
        resized_height, resized_width = resized_size(height, width, short_side)
        top = int(torch.randint(0, resized_height - self.crop_size + 1, ()))
        left = int(torch.randint(0, resized_width - self.crop_size + 1, ()))
        rows = [_nearest(edge * height, resized_height) for edge in (top, top + self.crop_size)]
        columns = [_nearest(edge * width, resized_width) for edge in (left, left + self.crop_size)]
        return rows[0], columns[0], rows[1] - rows[0], columns[1] - columns[0]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [T, H, W, C] -> [C, T, crop, crop] (channels-last), float (or uint8 without `normalize`)."""
        top, left, height, width = self.crop_box(*frames.shape[1:3])
        clip = resize(frames[:, top:top + height, left:left + width], [self.crop_size, self.crop_size])
        if self.flip and bool(torch.rand(()) < 0.5):
            clip = clip.flip(2)
        clip = to_model_layout(clip)
        return normalize(clip, self.mean, self.std, self.channel_order) if self.normalize else clip


class EvalTransform:
    """Short side to `short_side`, then spatial views: 3 square crops of `crop_size` along the long side, a
    centre crop, or the full frame (long side capped at 1.6 x the short side).

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
        """(top, left, height, width) of each spatial view of a frame of this size (after resizing)."""
        if self.crop == "full":
            return [full_frame_window(height, width)]
        corners = crops_along_long_side(height, width, self.crop_size, self.crops_per_clip)
        return [(top, left, self.crop_size, self.crop_size) for top, left in corners]

    def __call__(self, frames: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """uint8 [U, H, W, C] distinct frames, int [clips, T] -> [clips * crops, C, T, h, w] (channels-last),
        float (or uint8 without `normalize`).

        Each view is gathered once, frame by frame as whole rows of pixels, from the (resized) distinct frames
        into its place in the output.
        """
        resized = resize(frames, [self.short_side])
        windows = self.windows(*resized.shape[1:3])
        _, _, view_height, view_width = windows[0]
        views = torch.empty((len(positions) * len(windows), positions.shape[1], view_height, view_width,
                             resized.shape[-1]), dtype=resized.dtype, device=resized.device)
        positions = positions.to(resized.device)
        for clip, clip_positions in enumerate(positions):
            for crop, (top, left, height, width) in enumerate(windows):
                torch.index_select(resized[:, top:top + height, left:left + width], 0, clip_positions,
                                   out=views[clip * len(windows) + crop])
        views = to_model_layout(views)
        return normalize(views, self.mean, self.std, self.channel_order) if self.normalize else views
