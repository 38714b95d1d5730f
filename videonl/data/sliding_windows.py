"""Clips sliding over a whole video as it streams by: the timeline's windows, in batches of test views, with
memory bounded by the clip and the stride, never by the video's length.

Window k starts at the first frame shown at or after k x stride seconds (the stream's own timestamps: real time
also for a variable frame rate) and takes the model's clip from there: frames 0, step, 2 step, ... counted from
its first frame, as every clip of `sampling` takes them. Each frame a window takes is prepared once (resized and
normalised as the test prepares a video's frames, `EvalTransform.prepare`) when it arrives, and shared by the
windows that take it; a frame no window takes is never converted from the decoder's format. Complete windows
leave in batches (`WindowBatch`: their `VideoViews` and times), so what is held at once is the frames of the
open windows (at most one clip's span plus a stride) and of one batch. Where the stride leaves a gap longer
than a clip, the stream skips it by seeking.

A video shorter than one window gives one window, its frames looping past the end, as the test's clips wrap
around (`looped`). A stream that breaks ends the windows there: the complete ones are given, `broken` says
where and why.
"""

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch

from videonl.data import sampling
from videonl.data.datasets import test_transform
from videonl.data.decode import VideoInfo
from videonl.data.frame_stream import TIME_TOLERANCE, FrameStream, StreamBreak
from videonl.data.transforms import EvalTransform, VideoViews


@dataclass
class WindowBatch:
    """Consecutive windows: their views (distinct prepared frames; window w is clip w of `views`) and times."""

    views: VideoViews
    starts: List[float]  # seconds: each window's first frame
    ends: List[float]  # seconds: the end of each window's last frame


class _Window:
    """An open window: its first frame's position in the stream and time, and the frames taken so far."""

    def __init__(self, first: int, start: float, length: int):
        self.first, self.start, self.end = first, start, start
        self.frames: List[Optional[torch.Tensor]] = [None] * length

    @property
    def complete(self) -> bool:
        return self.frames[-1] is not None


class SlidingWindows:
    """The windows of `stream`: clips of frames `offsets` (from each window's first frame) every `stride`
    seconds, prepared and cut by `transform`, at most `batch_size` windows a batch. Iterate once."""

    def __init__(self, stream: FrameStream, transform: EvalTransform, offsets: np.ndarray, stride: float,
                 batch_size: int):
        if stride <= 0:
            raise ValueError(f"the stride between windows must be positive, got {stride} s")
        self.stream, self.transform, self.stride = stream, transform, stride
        self.offsets = [int(offset) for offset in offsets]
        self.batch_size = max(1, batch_size)
        self._slots: Dict[int, List[int]] = {}  # frame offset in a window -> the clip positions it fills
        for slot, offset in enumerate(self.offsets):
            self._slots.setdefault(offset, []).append(slot)
        self.broken: Optional[StreamBreak] = None
        self.looped = False
        self.duration = 0.0  # once iterated: seconds of video read (all of it, unless it broke)

    @property
    def span_seconds(self) -> float:
        """How long one window lasts at the stream's average frame rate."""
        return (self.offsets[-1] + 1) * self.stream.frame_duration

    @property
    def expected(self) -> Optional[int]:
        """How many windows the header's duration makes room for (None when it states none)."""
        if not self.stream.duration:
            return None
        return int(max(self.stream.duration - self.span_seconds, 0.0) // self.stride) + 1

    def __iter__(self) -> Iterator[WindowBatch]:
        open_windows: List[_Window] = []
        ready: List[_Window] = []
        first_frames: Optional[List[torch.Tensor]] = []  # every frame, prepared, until a window is complete
        count, position = 0, 0
        try:
            for frame in self.stream.frames():
                while frame.time >= count * self.stride - TIME_TOLERANCE:
                    open_windows.append(_Window(position, frame.time, len(self.offsets)))
                    count += 1
                image = self._take(frame, position, open_windows)
                if first_frames is not None:
                    first_frames.append(self._prepared(frame) if image is None else image)
                while open_windows and open_windows[0].complete:
                    open_windows[0].end = frame.end
                    ready.append(open_windows.pop(0))
                    first_frames = None
                if len(ready) == self.batch_size:
                    yield self._batch(ready)
                    ready = []
                if not open_windows:
                    gap = count * self.stride - frame.end
                    self.stream.skip_to(count * self.stride, seek=gap > self.span_seconds)
                position += 1
        except StreamBreak as err:
            self.broken = err
        self.duration = self.broken.time if self.broken else self.stream.read_to
        if first_frames and self.broken is None:  # shorter than one window: one looped clip
            ready = [self._looped(first_frames)]
        if ready:
            yield self._batch(ready)

    def _prepared(self, frame) -> torch.Tensor:
        """[1, H', W', C]: the frame as the test prepares it, kept as it comes (the object held is the one made)."""
        return self.transform.prepare(frame.image()[None])

    def _take(self, frame, position: int, open_windows: List[_Window]) -> Optional[torch.Tensor]:
        """The frame, prepared, put into every open window that takes it; None when none does."""
        image = None
        for window in open_windows:
            slots = self._slots.get(position - window.first)
            if slots:
                if image is None:
                    image = self._prepared(frame)
                for slot in slots:
                    window.frames[slot] = image
        return image

    def _looped(self, frames: List[torch.Tensor]) -> _Window:
        self.looped = True
        window = _Window(0, 0.0, len(self.offsets))
        window.frames = [frames[offset % len(frames)] for offset in self.offsets]
        window.end = self.duration
        return window

    def _batch(self, windows: List[_Window]) -> WindowBatch:
        """The windows' distinct frames stacked once, each window a clip of positions into them."""
        index: Dict[int, int] = {}
        distinct, positions = [], []
        for window in windows:
            row = []
            for image in window.frames:
                if id(image) not in index:
                    index[id(image)] = len(distinct)
                    distinct.append(image)
                row.append(index[id(image)])
            positions.append(row)
        views = self.transform.views_of(torch.cat(distinct), torch.tensor(positions))
        return WindowBatch(views, [w.start for w in windows], [w.end for w in windows])


def sliding_windows(stream: FrameStream, cfg) -> SlidingWindows:
    """The config's windows over `stream`: the model's clip (DATA.NUM_FRAMES every DATA.SAMPLING_RATE frames,
    or at DATA.TARGET_FPS) every TIMELINE.STRIDE seconds, viewed as the test views a video (TIMELINE.CROP at
    DATA.TEST_CROP_SIZE), as many windows a batch as TEST.VIEWS_PER_FORWARD holds views."""
    offsets = sampling.clip_offsets(VideoInfo(0, stream.fps), cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE,
                                    cfg.DATA.TARGET_FPS)
    transform = test_transform(cfg, cfg.TIMELINE.CROP)
    return SlidingWindows(stream, transform, offsets, cfg.TIMELINE.STRIDE,
                          cfg.TEST.VIEWS_PER_FORWARD // transform.crops_per_clip)
