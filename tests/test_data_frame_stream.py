"""Videos read as a stream: every frame in display order at its real time, skips that seek, breaks that say where."""

import numpy as np
import pytest
import torch

import videos
from videonl.data.decode import DecodeError, decode
from videonl.data.frame_stream import StreamBreak, format_time, open_stream

STREAMING = ["pyav", "decord"]


def streamed(path, backend):
    """(times, ends, images) of every frame the stream yields."""
    with open_stream(str(path), [backend]) as stream:
        frames = [(frame.time, frame.end, frame.image()) for frame in stream.frames()]
    times, ends, images = zip(*frames)
    return np.array(times), np.array(ends), torch.stack(images)


@pytest.mark.parametrize("backend", STREAMING)
@pytest.mark.parametrize("name, times", [
    ("plain.mp4", np.arange(30) / 25),
    ("bframes.mp4", np.arange(30) / 25),
    ("ntsc.mp4", np.arange(24) * 1001 / 30000),
    ("vfr.mp4", np.array(videos.VFR_PTS) / 2500),  # frames shown 24, 40 and 68 ms in turn
])
def test_every_frame_comes_in_display_order_at_its_real_time(video_dir, backend, name, times):
    streamed_times, ends, images = streamed(video_dir / name, backend)

    np.testing.assert_allclose(streamed_times, times, atol=1e-6)
    np.testing.assert_allclose(ends[:-1], times[1:], atol=1e-6)  # a frame lasts until the next one
    assert torch.equal(images, decode(str(video_dir / name), range(len(times)), backend, fallback=False))


@pytest.mark.parametrize("backend", STREAMING)
def test_a_skip_that_seeks_gives_the_frames_decoding_through_gives(tmp_path, backend):
    path = videos.write_h264(tmp_path / "long.mp4", 150, g="10")
    results = {}
    for seek in (False, True):
        with open_stream(str(path), [backend]) as stream:
            kept = []
            for frame in stream.frames():
                kept.append((frame.time, frame.image()))
                if len(kept) in (3, 6):  # jump 2 s on, twice
                    stream.skip_to(frame.time + 2.0, seek=seek)
            results[seek] = kept, getattr(stream, "decoded", None)
    (through, decoded_through), (seeking, decoded_seeking) = results[False], results[True]

    frames = [0, 1, 2, 52, 53, 54] + list(range(104, 150))
    assert [time for time, _ in seeking] == pytest.approx(np.array(frames) / 25)
    assert [time for time, _ in through] == [time for time, _ in seeking]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(through, seeking))
    if backend == "pyav":  # seeking lands on the keyframe before each target, 10 frames apart at most
        assert decoded_seeking <= len(frames) + 2 * 10 < decoded_through


def test_a_stream_without_timestamps_counts_frames_at_its_rate(tmp_path):
    path = videos.write_raw_h264(tmp_path / "raw.h264", 20)
    with open_stream(str(path), ["pyav"]) as stream:
        times = [frame.time for frame in stream.frames()]
        assert stream.read_to == pytest.approx(20 / 25)
    assert times == pytest.approx(np.arange(20) / 25)


def truncated(folder):
    """(an intact 4 s video with its index first, the same cut at 70 % of its bytes: its last frames lost)."""
    intact = videos.write_h264(folder / "intact.mp4", 100, height=96, width=128, movflags="faststart")
    data = intact.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[:len(data) * 7 // 10])
    return intact, folder / "truncated.mp4"


def test_a_truncated_file_breaks_after_its_last_good_frame(tmp_path):
    intact, cut = truncated(tmp_path)
    intact_times, _, intact_images = streamed(intact, "pyav")
    with open_stream(str(cut), ["pyav"]) as stream:
        frames = []
        with pytest.raises(StreamBreak) as stop:
            for frame in stream.frames():
                frames.append((frame.time, frame.end, frame.image()))

    assert 20 < len(frames) < len(intact_times)
    assert stop.value.time == pytest.approx(frames[-1][1]) and stop.value.time < intact_times[-1]
    assert str(stop.value).startswith(f"decoding stopped at {format_time(stop.value.time)}")
    assert all(torch.equal(image, intact_images[n]) for n, (_, _, image) in enumerate(frames))


def test_decord_cannot_open_a_truncated_file_and_pyav_takes_it(tmp_path):
    _, cut = truncated(tmp_path)
    with pytest.raises(DecodeError, match="decord: "):
        open_stream(str(cut), ["decord"])
    with open_stream(str(cut), ["decord", "pyav"]) as stream:
        assert type(stream).__name__ == "_PyAVStream"


def test_a_stream_that_ends_before_its_headers_duration_breaks_there(video_dir):
    with open_stream(str(video_dir / "plain.mp4"), ["pyav"]) as stream:
        assert stream.duration == pytest.approx(30 / 25)
        stream.duration += 3 / 25  # as if the header listed three frames more than the file holds
        with pytest.raises(StreamBreak, match=r"stopped at 00:01.2 .*header announces 00:01.3"):
            for _ in stream.frames():
                pass
    with open_stream(str(video_dir / "plain.mp4"), ["pyav"]) as stream:
        stream.duration += 1 / 25  # a frame's difference is rounding, not a break
        assert len(list(stream.frames())) == 30


def test_open_names_every_backends_reason(video_dir):
    with pytest.raises(DecodeError, match=r"not_a_video.mp4: pyav: .*; decord: "):
        open_stream(str(video_dir / "not_a_video.mp4"), STREAMING)


def test_times_read_as_minutes_and_seconds():
    assert [format_time(s) for s in (0, 59.96, 75.25, 3725.5)] == ["00:00.0", "01:00.0", "01:15.2", "1:02:05.5"]
