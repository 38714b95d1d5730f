"""The reference reader of the loader benchmark: how PySlowFast-style loaders read a clip with PyAV.

For every window of consecutive frame indices: seek backward to the keyframe at or before the window's first
frame (by its time, index / fps), decode up to the window's last frame, convert the frames the clip takes to
RGB. Frame numbers come from timestamps at the stream's average rate, which holds for the constant-rate
files it reads here (x264 re-encodes of prepared videos).
"""

from typing import Dict, Tuple

import av
import numpy as np


def _runs(indices: np.ndarray) -> list:
    """Stretches of rising indices, one seek each: a clip that wraps past the last frame is two."""
    return np.split(indices, np.flatnonzero(np.diff(indices) < 0) + 1)


def read_clip(path: str, indices: np.ndarray, num_frames: int) -> Tuple[np.ndarray, int]:
    """(uint8 [T, H, W, C] frames of one clip at `indices` (taken modulo `num_frames`), how many frames the
    decoder put out to read them)."""
    indices = np.mod(np.asarray(indices), num_frames)
    frames: Dict[int, np.ndarray] = {}
    decoded = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate
        for window in _runs(indices):
            wanted, last = set(window.tolist()), int(window.max())
            container.seek(int(int(window.min()) / fps / stream.time_base), stream=stream, backward=True,
                           any_frame=False)
            for frame in container.decode(stream):
                decoded += 1
                index = round(frame.time * fps)
                if index in wanted and index not in frames:
                    frames[index] = frame.to_ndarray(format="rgb24")
                if index >= last:
                    break
    return np.stack([frames[int(i)] for i in indices]), decoded
