"""The timeline's windows: each the test's view of the same frames, at real times, with bounded memory."""

import weakref

import numpy as np
import pytest
import torch

import videos
from videonl.data.decode import read_frames
from videonl.data.sliding_windows import SlidingWindows
from videonl.data.frame_stream import open_stream
from videonl.data.transforms import EvalTransform

TRANSFORM = dict(short_side=32, crop_size=32, mean=[0.45] * 3, std=[0.225] * 3, normalize=False)
OFFSETS = np.arange(4) * 3  # 4 frames, every 3rd: a clip spans 10 frames


def windows_of(path, backend, stride, offsets=OFFSETS, crop="full", batch_size=3, transform=None):
    """(starts, ends, views [W * crops, C, T, h, w]) of every window, and the SlidingWindows."""
    transform = transform or EvalTransform(crop=crop, **TRANSFORM)
    with open_stream(str(path), [backend]) as stream:
        windows = SlidingWindows(stream, transform, offsets, stride, batch_size)
        batches = list(windows)
    starts = [start for batch in batches for start in batch.starts]
    ends = [end for batch in batches for end in batch.ends]
    return starts, ends, torch.cat([batch.views.cut() for batch in batches]), windows


def views_by_testing(path, firsts, offsets=OFFSETS, crop="full"):
    """The test's views of clips starting at frames `firsts`: decoded at once, prepared and cut as testing does."""
    frames, positions, _ = read_frames(str(path), np.add.outer(firsts, offsets), "pyav", fallback=False)
    return EvalTransform(crop=crop, **TRANSFORM).plan(frames, torch.from_numpy(positions)).cut()


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("stride, crop", [(0.2, "full"), (0.44, "3crop"), (2.0, "center")])
def test_windows_are_the_tests_views_of_the_same_frames(tmp_path, backend, stride, crop):
    path = videos.write_h264(tmp_path / "long.mp4", 150, g="12")  # 6 s at 25 fps

    starts, ends, views, windows = windows_of(path, backend, stride, crop=crop)

    firsts = np.ceil(np.arange(0, 150 - 9, stride * 25) - 1e-6).astype(int)  # every clip that fits
    assert starts == pytest.approx(firsts / 25) and ends == pytest.approx((firsts + 10) / 25)
    assert torch.equal(views, views_by_testing(path, firsts, crop=crop))
    assert windows.duration == pytest.approx(6.0) and windows.broken is None and not windows.looped


def test_variable_frame_rate_windows_start_at_the_first_frame_shown_after_each_stride(video_dir):
    times = np.array(videos.VFR_PTS) / 2500
    starts, ends, views, _ = windows_of(video_dir / "vfr.mp4", "pyav", stride=0.15)

    firsts = [first for first in (int(np.searchsorted(times, k * 0.15 - 1e-9)) for k in range(7)) if first + 9 < 24]
    assert len(firsts) == 4 and starts == pytest.approx(times[firsts])
    assert ends == pytest.approx(times[np.array(firsts) + 10])  # where the frame after each clip's last begins
    assert torch.equal(views, views_by_testing(video_dir / "vfr.mp4", firsts))


def test_a_video_shorter_than_a_window_is_one_clip_looped_as_testing_loops_it(video_dir):
    starts, ends, views, windows = windows_of(video_dir / "short.mp4", "pyav", stride=1.0)

    assert windows.looped and starts == [0.0] and ends == pytest.approx([5 / 25])
    assert torch.equal(views, views_by_testing(video_dir / "short.mp4", [0]))  # frames 0 3 6 9 of 5: 0 3 1 4


def test_a_break_ends_the_windows_after_the_last_complete_one(tmp_path):
    intact = videos.write_h264(tmp_path / "intact.mp4", 100, height=96, width=128, movflags="faststart")
    data = intact.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) * 7 // 10])

    starts, ends, views, windows = windows_of(tmp_path / "cut.mp4", "pyav", stride=0.2)
    all_starts, _, all_views, _ = windows_of(intact, "pyav", stride=0.2)

    assert windows.broken is not None and windows.duration == windows.broken.time
    assert 5 < len(starts) < len(all_starts) and max(ends) <= windows.broken.time
    assert torch.equal(views, all_views[:len(starts)])


class Counting(EvalTransform):
    """The test's transform, counting the frames it prepares and how many of them are alive at once."""

    def __init__(self):
        super().__init__(crop="full", **TRANSFORM)
        self.prepared, self.alive, self.most_alive = 0, weakref.WeakSet(), 0

    def prepare(self, frames):
        prepared = super().prepare(frames)
        self.prepared += 1
        self.alive.add(prepared)
        self.most_alive = max(self.most_alive, len(self.alive))
        return prepared


@pytest.mark.parametrize("offsets, stride, most", [
    (np.arange(8), 0.12, 8 + 3),  # every frame of 8, a window every 3 frames: a span and a stride at most
    (np.arange(4) * 3, 0.2, 4 + 2 * 3),  # 4 frames every 3rd, a window every 5: 2 open windows, 1 in a batch
])
def test_the_frames_held_at_once_are_a_span_and_a_stride_whatever_the_length(tmp_path, offsets, stride, most):
    held = {}
    for frames in (100, 400):
        path = videos.write_h264(tmp_path / f"{frames}.mp4", frames)
        transform = Counting()
        windows_of(path, "pyav", stride, offsets=offsets, batch_size=1, transform=transform)
        held[frames] = transform.most_alive
    assert held[100] == held[400] <= most


def test_only_the_frames_a_window_takes_are_converted(tmp_path):
    path = videos.write_h264(tmp_path / "long.mp4", 150, g="12")
    transform = Counting()
    starts, _, _, _ = windows_of(path, "pyav", 0.8, offsets=np.array([0, 4]), transform=transform)
    assert len(starts) == 8 and transform.prepared == 2 * 8 + 3  # + the first window's others, kept to loop


def test_a_stride_must_be_positive(video_dir):
    with open_stream(str(video_dir / "plain.mp4"), ["pyav"]) as stream:
        with pytest.raises(ValueError, match="stride between windows must be positive, got 0"):
            SlidingWindows(stream, EvalTransform(crop="full", **TRANSFORM), OFFSETS, 0, 1)
