import numpy as np
import pytest

from videonl.data.decode import VideoInfo
from videonl.data.sampling import center_clip, random_clip, uniform_clips


@pytest.mark.parametrize("num_frames,rate", [(32, 2), (8, 8), (128, 1)])
def test_random_window_has_the_layout_and_stays_inside(num_frames, rate):
    rng = np.random.default_rng(0)
    info = VideoInfo(300, 30.0)
    starts = set()
    for _ in range(50):
        indices = random_clip(info, num_frames, rate, rng)
        assert len(indices) == num_frames
        assert np.all(np.diff(indices) == rate)
        assert 0 <= indices[0] and indices[-1] < 300
        starts.add(int(indices[0]))
    assert len(starts) > 10
    assert max(starts) <= 300 - num_frames * rate


def test_short_video_window_starts_at_zero_and_runs_past_the_end():
    indices = random_clip(VideoInfo(40, 25.0), 32, 2, np.random.default_rng(0))
    assert indices[0] == 0 and indices[-1] == 62  # the decoder wraps 40..62 around to 0..22


def test_center_window():
    assert center_clip(VideoInfo(100, 25.0), 8, 8).tolist() == list(range(18, 82, 8))


def test_target_fps_keeps_the_clip_duration():
    at_60 = random_clip(VideoInfo(600, 60.0), 32, 2, np.random.default_rng(0), target_fps=30)
    assert np.all(np.diff(at_60) == 4)
    at_15 = center_clip(VideoInfo(150, 15.0), 8, 8, target_fps=30)
    assert np.all(np.diff(at_15) == 4)


def test_official_test_clips_start_at_floor_k_n_over_10():
    clips = uniform_clips(VideoInfo(293, 30.0), 32, 2, 10, "official")
    assert clips.shape == (10, 32)
    assert clips[:, 0].tolist() == [k * 293 // 10 for k in range(10)]
    assert clips[-1, -1] > 293  # late clips wrap around, as in the official code


def test_fitted_test_clips_stay_inside_and_spread_evenly():
    clips = uniform_clips(VideoInfo(300, 30.0), 8, 8, 10, "fit")
    assert clips[0, 0] == 0 and clips[-1, -1] <= 299 and clips[-1, 0] == 300 - 64
    assert np.all(np.diff(clips[:, 0]) > 0)
    one = uniform_clips(VideoInfo(300, 30.0), 8, 8, 1, "fit")
    assert one.tolist() == [center_clip(VideoInfo(300, 30.0), 8, 8).tolist()]


def test_unknown_clip_placement_is_named():
    with pytest.raises(ValueError, match="'random'"):
        uniform_clips(VideoInfo(300, 30.0), 8, 8, 10, "random")
