"""Spatial transforms on frame tensors (CPU or GPU): scale jitter, crops, flip, normalisation.

Decoded frames arrive as uint8 [T, H, W, C]. Clips leave in the model's logical layout [C, T, H, W] but keep
the decoder's physical order [T, H, W, C] (channels-last-3d), so that every cut is a copy of whole pixel rows,
never a per-pixel transpose; `loader.model_input` gives the model the memory format it runs in, on the device.
They are normalised float or, with `normalize=False`, still uint8 so that `normalize` runs later on the GPU (a
quarter of the bytes through the loader, and no float work on the CPU).

Only the pixels kept are resized: a training clip is cut from the source frames and then resized (the box that
resizing first and cropping after would take; the dataset draws it before decoding, so that the decoder
converts only that box), and a test video is resized once for all its views. Resizing is
antialiased bilinear everywhere, by `torch.nn.functional.interpolate` itself: importing torchvision for its
`resize` would cost every process that touches the data package about a second (it pulls in torch._dynamo).
A test video's views are not cut in the loader: it hands out `VideoViews`, the distinct frames and a plan of
the views, and the views are cut where the model runs (a 30-view 32x2 item is 4x the bytes of its distinct
frames).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from videonl.config import ConfigError

CHANNEL_ORDERS = ("RGB", "BGR")  # the frames' channel order the model reads (`normalize` reverses for BGR)
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
        raise ConfigError(f"DATA.CHANNEL_ORDER must be one of {', '.join(CHANNEL_ORDERS)}, got '{channel_order}'")
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

    def __call__(self, frames: torch.Tensor, positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """uint8 [U, H, W, C] distinct frames, int [T] positions into them (default: all U in order) ->
        [C, T, crop, crop] (channels-last), float (or uint8 without `normalize`)."""
        top, left, height, width = self.crop_box(*frames.shape[1:3])
        return self.from_boxes(frames[:, top:top + height, left:left + width], positions)

    def from_boxes(self, boxes: torch.Tensor, positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The clip from the distinct frames' `crop_box` alone (what a decoder given `crop_box` reads): each box
        resized once, the clip gathered from the small resized boxes, flipped, normalised."""
        clip = resize(boxes, [self.crop_size, self.crop_size])
        if positions is not None and not torch.equal(positions, torch.arange(len(clip))):
            clip = clip.index_select(0, positions.to(clip.device))
        if self.flip and bool(torch.rand(()) < 0.5):
            clip = clip.flip(2)
        clip = to_model_layout(clip)
        return normalize(clip, self.mean, self.std, self.channel_order) if self.normalize else clip


@dataclass
class VideoViews:
    """A video's views, not yet cut: its distinct frames and where each view lies in them.

    Cutting happens where the model runs: moving this to the GPU moves the distinct frames once, and the views
    are gathered there as whole pixel rows. View v is clip v // len(windows), window v % len(windows).
    """

    frames: torch.Tensor  # [U, H, W, C] distinct frames (resized), uint8 or normalised float
    positions: torch.Tensor  # long [clips, T]: each clip's frames, as indices into `frames`
    windows: Tuple[Tuple[int, int, int, int], ...]  # (top, left, height, width) of each spatial view

    def __len__(self) -> int:
        return len(self.positions) * len(self.windows)

    def to(self, device, non_blocking: bool = False) -> "VideoViews":
        return VideoViews(self.frames.to(device, non_blocking=non_blocking),
                          self.positions.to(device, non_blocking=non_blocking), self.windows)

    def pin_memory(self) -> "VideoViews":
        """Page-locked CPU frames, for the DataLoader's pin_memory (frames already on a GPU stay there)."""
        return self if self.frames.is_cuda else VideoViews(self.frames.pin_memory(), self.positions, self.windows)

    def cut(self, first: int = 0, count: Optional[int] = None) -> torch.Tensor:
        """Views first .. first + count - 1 (default: all) as [count, C, T, h, w], channels-last, on the frames'
        device: each gathered once, frame by frame as whole pixel rows, into its place in the output."""
        count = len(self) - first if count is None else count
        _, _, height, width = self.windows[0]
        views = torch.empty((count, self.positions.shape[1], height, width, self.frames.shape[-1]),
                            dtype=self.frames.dtype, device=self.frames.device)
        for slot, view in enumerate(range(first, first + count)):
            clip, window = divmod(view, len(self.windows))
            top, left, height, width = self.windows[window]
            torch.index_select(self.frames[:, top:top + height, left:left + width], 0, self.positions[clip],
                               out=views[slot])
        return to_model_layout(views)


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

    def plan(self, frames: torch.Tensor, positions: torch.Tensor) -> VideoViews:
        """uint8 [U, H, W, C] distinct frames, int [clips, T] positions into them -> their `VideoViews`: the
        frames resized (and normalised, with `normalize`) once for all the views."""
        return self.views_of(self.prepare(frames), positions)

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [U, H, W, C] decoded frames resized (and normalised, with `normalize`): what views are cut
        from. Each frame on its own, so frames prepared one by one as a stream brings them are the same."""
        resized = resize(frames, [self.short_side])
        if self.normalize:
            resized = normalize(to_model_layout(resized), self.mean, self.std, self.channel_order).movedim(-4, -1)
        return resized

    def views_of(self, prepared: torch.Tensor, positions: torch.Tensor) -> VideoViews:
        """`prepare`d frames [U, H', W', C] and int [clips, T] positions into them -> their `VideoViews`."""
        return VideoViews(prepared, positions.to(prepared.device), tuple(self.windows(*prepared.shape[1:3])))

    def __call__(self, frames: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The views themselves, cut: [clips * crops, C, T, h, w] (channels-last), float (or uint8 without
        `normalize`)."""
        return self.plan(frames, positions).cut()
