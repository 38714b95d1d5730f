"""Scenes of known classes for timeline tests: a grey square moving over coloured backgrounds (each colour
channel a class), and long videos joined from such clips in a known order."""

from fractions import Fraction
from typing import Sequence, Tuple

import numpy as np

from videonl.prep.common import encode_h264, join_videos

NAMES = ["red", "green", "blue"]  # the classes: each one a colour channel of the background, lit or not
FPS = 10


def scene(labels: Sequence[int], count: int, phase: int) -> np.ndarray:
    """[count, 40, 48, 3]: a grey square moving right (wrapping) across a background whose channels of the
    classes `labels` are lit (230) and the others dark (30): red, green, blue, or mixtures such as yellow."""
    frames = np.empty((count, 40, 48, 3), np.uint8)
    frames[:] = 30 + 200 * np.isin(np.arange(3), labels)
    for t in range(count):
        left = (phase + 2 * t) % 38
        frames[t, 12:28, left:left + 10] = 128
    return frames


def join_scenes(folder, parts: Sequence[Tuple[Tuple[int, ...], float]], **encoding):
    """One clip per (scene's classes, seconds) of `parts` written to `folder`, joined into `folder`/joined.mp4
    (`join_videos`, with `encoding`'s options); its path."""
    clips = []
    for number, (labels, seconds) in enumerate(parts):
        clips.append(folder / f"part_{number:02d}.mp4")
        encode_h264(clips[-1], scene(labels, round(seconds * FPS), 3 * number), Fraction(FPS))
    joined = join_videos(clips, folder / "joined.mp4", **encoding)
    bounds = np.cumsum([0] + [seconds for _, seconds in parts])
    np.testing.assert_allclose(joined, np.stack([bounds[:-1], bounds[1:]], axis=1))
    return folder / "joined.mp4"
