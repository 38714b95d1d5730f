"""Which frames a clip takes: a window of `num_frames` frames, `sampling_rate` apart.

Indices may run past the last frame; the decoder wraps them around (short videos loop, as in the official
code). With a `target_fps`, the rate counts frames of a video resampled to that frame rate, so a 32x2 clip
spans the same time on 25 and 60 fps videos.
"""

import numpy as np

from videonl.data.decode import VideoInfo


def _step(info: VideoInfo, sampling_rate: int, target_fps: float) -> float:
    if target_fps and info.fps > 0:
        return sampling_rate * info.fps / target_fps
    return float(sampling_rate)


def _window(start: float, num_frames: int, step: float) -> np.ndarray:
    return np.floor(start + np.arange(num_frames) * step).astype(np.int64)


def _span(info: VideoInfo, num_frames: int, step: float) -> float:
    """How far a clip's start may move while the clip stays inside the video (0 when it cannot)."""
    return max(info.num_frames - num_frames * step, 0.0)


def clip_offsets(info: VideoInfo, num_frames: int, sampling_rate: int, target_fps: float = 0) -> np.ndarray:
    """[num_frames]: a clip's frames counted from its first one, as every clip of this module takes them."""
    return _window(0.0, num_frames, _step(info, sampling_rate, target_fps))


def random_clip(info: VideoInfo, num_frames: int, sampling_rate: int, rng: np.random.Generator,
                  target_fps: float = 0) -> np.ndarray:
    """[num_frames]: a window starting uniformly at random where it fits (at 0 when the video is shorter)."""
    step = _step(info, sampling_rate, target_fps)
    return _window(rng.uniform(0, _span(info, num_frames, step)), num_frames, step)


def center_clip(info: VideoInfo, num_frames: int, sampling_rate: int, target_fps: float = 0) -> np.ndarray:
    """[num_frames]: the window in the middle of the video (validation during training)."""
    step = _step(info, sampling_rate, target_fps)
    return _window(_span(info, num_frames, step) / 2, num_frames, step)


CLIP_STARTS = ("official", "fit")


def uniform_clips(info: VideoInfo, num_frames: int, sampling_rate: int, num_clips: int,
                 starts: str = "official", target_fps: float = 0) -> np.ndarray:
    """[num_clips, num_frames]: clips whose starts are evenly spaced over the video.

    `official`: clip k starts at floor(k * N / num_clips) of the N frames, and late clips wrap around (the
    non-local release's 10-clip test). `fit`: starts evenly spaced over [0, N - clip span], so every clip
    stays inside the video (PySlowFast's choice).
    """
    if starts not in CLIP_STARTS:
        raise ValueError(f"unknown clip placement '{starts}'; choose from {', '.join(CLIP_STARTS)}")
    step = _step(info, sampling_rate, target_fps)
    if starts == "official":
        first = np.floor(np.arange(num_clips) * info.num_frames / num_clips)
    else:
        span = _span(info, num_frames, step)
        first = np.linspace(0, span, num_clips) if num_clips > 1 else [span / 2]
    return np.stack([_window(start, num_frames, step) for start in first])
