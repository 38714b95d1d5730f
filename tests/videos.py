"""Tiny videos written with PyAV for the data tests; frame i is recognisable by its brightness (8 * i)."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videonl.prep.common import encode_h264

BRIGHTNESS_STEP = 8
# Files of the session's `video_dir` fixture (conftest.py), with their frame counts.
GOOD = {"plain.mp4": 30, "bframes.mp4": 30, "ntsc.mp4": 24, "odd_fps.mp4": 20, "vfr.mp4": 24, "short.mp4": 5,
        "name with spaces.mp4": 12, "mpeg4.avi": 20, "matroska.mkv": 17}
BAD = ["empty.mp4", "not_a_video.mp4", "truncated.mp4", "missing.mp4"]
# vfr.mp4's timestamps, in 1 / 2500 s (encode_h264 at 25 fps): frames shown for 24, 40 and 68 ms in turn.
VFR_PTS = [sum((60, 100, 170)[k % 3] for k in range(i)) for i in range(24)]


def frame_pattern(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A flat grey of 8 * index (mod 256) with a white bar moving across the left half: distinct frames,
    cheap to encode, and motion for the encoder's B-frames."""
    frame = np.full((height, width, 3), (index * BRIGHTNESS_STEP) % 256, np.uint8)
    frame[:, (index * 2) % (width // 2)] = 255
    return frame


def write_h264(path: Path, num_frames: int, fps=Fraction(25), height=48, width=64, pts=None, movflags=None,
               **options):
    frames = (frame_pattern(i, height, width) for i in range(num_frames))
    encode_h264(Path(path), frames, Fraction(fps), pts=pts, codec_options=options, movflags=movflags)
    return Path(path)


def write_mpeg4_avi(path: Path, num_frames: int, fps: int = 25):
    """An AVI with MPEG-4 part 2 video, like the UCF101 files."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame_pattern(i), format="rgb24")))
        container.mux(stream.encode())
    return Path(path)


def brightness(frames) -> np.ndarray:
    """Mean of each [H, W, C] frame's right half, where the bar never goes: the grey level."""
    return frames[:, :, frames.shape[2] // 2 + 2:].float().mean(dim=(1, 2, 3)).cpu().numpy()


def write_raw_h264(path: Path, num_frames: int):
    """A bare H.264 stream, no container: its packets carry no timestamps at all."""
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.options = {"g": "12", "bf": "3"}
        for i in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame_pattern(i), format="rgb24")))
        container.mux(stream.encode())
    return Path(path)
