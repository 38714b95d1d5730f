import numpy as np
import pytest
import torch

from videonl.data import decode as decode_module
from videonl.data.decode import (GPU_BACKENDS, DecodeError, available_backends, backend_order, backend_status,
                                 decode, read_frames)
from videos import BAD, BRIGHTNESS_STEP, GOOD, brightness, write_h264, write_raw_h264

ALL_BACKENDS = ["decord", "pyav", "torchcodec"]
DECODING_BACKENDS = ALL_BACKENDS + list(GPU_BACKENDS)  # the GPU's too: their tests run where there is one
# Pixels of two backends on the same frames differ by at most this much on average (0..255 scale). Here they
# are identical (difference 0); the margin is for FFmpeg builds whose YUV->RGB conversion rounds differently.
PIXEL_TOLERANCE = 3.0


def runs_here(backend):
    return backend_status(backend)[0] and (backend not in GPU_BACKENDS or torch.cuda.is_available())


def usable(backend):
    if backend in GPU_BACKENDS and not torch.cuda.is_available():
        pytest.skip(f"{backend} decodes on a GPU; this machine has none")
    ok, why = backend_status(backend)
    if not ok:
        pytest.skip(f"{backend} is not usable here: {why}")
    return backend


@pytest.mark.parametrize("backend", DECODING_BACKENDS)
@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_backend_reads_every_frame_in_order(video_dir, name, backend):
    usable(backend)
    count = GOOD[name]
    frames, positions, info = read_frames(video_dir / name, lambda info: np.arange(info.num_frames), backend,
                                          fallback=False)
    assert info.num_frames == count
    assert frames.dtype == torch.uint8 and frames.shape == (count, 48, 64, 3)
    expected = (np.arange(count) * BRIGHTNESS_STEP) % 256
    assert np.abs(brightness(frames[positions]) - expected).max() < 6


@pytest.mark.parametrize("name", sorted(GOOD))
def test_backends_agree_on_frame_count_and_pixels(video_dir, name):
    backends = [b for b in DECODING_BACKENDS if runs_here(b)]
    if len(backends) < 2:
        pytest.skip("fewer than two decoder backends installed")
    indices = [0, 3, 4, 2, GOOD[name] - 1]
    results = {b: read_frames(video_dir / name, indices, b, fallback=False) for b in backends}
    counts = {b: info.num_frames for b, (_, _, info) in results.items()}
    assert len(set(counts.values())) == 1, counts
    reference = results[backends[0]][0].float()
    for backend in backends[1:]:
        difference = (results[backend][0].cpu().float() - reference).abs().mean()
        assert difference <= PIXEL_TOLERANCE, f"{backend} vs {backends[0]}: {difference:.2f}"


def test_the_fixture_has_b_frames_and_a_variable_frame_rate(video_dir):
    import av

    with av.open(str(video_dir / "bframes.mp4")) as container:
        types = {frame.pict_type for frame in container.decode(video=0)}
    assert av.video.frame.PictureType.B in types
    with av.open(str(video_dir / "vfr.mp4")) as container:
        times = [frame.time for frame in container.decode(video=0)]
    gaps = np.round(np.diff(sorted(times)), 4)
    assert len(set(gaps)) > 1


@pytest.mark.parametrize("backend", DECODING_BACKENDS)
def test_indices_past_the_end_wrap_around(video_dir, backend):
    usable(backend)
    frames = decode(video_dir / "short.mp4", [3, 4, 5, 6, 12], backend, fallback=False)
    expected = np.array([3, 4, 0, 1, 2]) * BRIGHTNESS_STEP
    assert np.abs(brightness(frames) - expected).max() < 6


@pytest.mark.parametrize("backend", DECODING_BACKENDS)
def test_repeated_indices_are_decoded_once_and_returned_in_the_order_asked(video_dir, backend, monkeypatch):
    usable(backend)
    opener = decode_module._OPENERS[backend]
    asked = []

    class Spy(opener):
        def read(self, indices, crop=None):
            asked.append(indices.tolist())
            return super().read(indices, crop)

    monkeypatch.setitem(decode_module._OPENERS, backend, Spy)
    frames = decode(video_dir / "plain.mp4", [7, 2, 7, 32], backend, fallback=False)
    assert asked == [[2, 7]]
    assert np.abs(brightness(frames) - np.array([7, 2, 7, 2]) * BRIGHTNESS_STEP).max() < 6


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_a_read_leaves_no_file_open(video_dir, backend):
    """Readers are closed after each read, not left to the garbage collector (a loader reads thousands)."""
    import gc
    import os

    usable(backend)
    decode(video_dir / "plain.mp4", [0], backend, fallback=False)  # the probe and imports, once
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            decode(video_dir / "plain.mp4", [3, 9], backend, fallback=False)
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


@pytest.mark.parametrize("backend", ["auto"] + DECODING_BACKENDS)
@pytest.mark.parametrize("name", BAD)
def test_bad_files_raise_with_path_and_reason(video_dir, name, backend):
    if backend != "auto":
        usable(backend)
    with pytest.raises(DecodeError) as caught:
        decode(video_dir / name, [0], backend)
    assert caught.value.path == str(video_dir / name)
    assert caught.value.reason and str(video_dir / name) in str(caught.value)


@pytest.mark.parametrize("backend", DECODING_BACKENDS)
def test_a_file_cut_after_its_index_fails_where_frames_are_lost(video_dir, backend):
    usable(backend)
    with pytest.raises(DecodeError, match=backend):
        read_frames(video_dir / "truncated_tail.mp4", lambda info: np.arange(info.num_frames), backend,
                    fallback=False)


def write_colour_noise(path, pix_fmt, num_frames=6, height=48, width=66):
    """Frames of a random colour per pixel: a box cut one pixel off its chroma samples would show."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for _ in range(num_frames):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("backend", DECODING_BACKENDS)
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv444p"])  # PyAV converts 4:2:0 boxes alone
def test_a_cropped_read_is_exactly_the_box_of_the_whole_frames(tmp_path, backend, pix_fmt):
    usable(backend)
    path = write_colour_noise(tmp_path / f"{pix_fmt}.mp4", pix_fmt)
    indices = [4, 1, 5, 1]
    whole, positions, _ = read_frames(path, indices, backend, fallback=False)
    for box in [(0, 0, 48, 66), (1, 1, 45, 63), (3, 5, 20, 21), (2, 4, 20, 20), (41, 57, 7, 9), (0, 0, 1, 1)]:
        sizes = []
        frames, box_positions, _ = read_frames(path, indices, backend, fallback=False,
                                               crop=lambda height, width: sizes.append((height, width)) or box)
        top, left, height, width = box
        assert sizes == [(48, 66)] and np.array_equal(box_positions, positions)
        assert torch.equal(frames, whole[:, top:top + height, left:left + width]), box


def test_empty_and_missing_files_say_so(video_dir):
    for name, reason in [("empty.mp4", "empty file"), ("missing.mp4", "not found")]:
        with pytest.raises(DecodeError, match=reason):
            decode(video_dir / name, [0])


def test_a_backend_that_fails_falls_back_to_the_next(video_dir, monkeypatch):
    available = [b for b in ALL_BACKENDS if backend_status(b)[0]]
    if len(available) < 2:
        pytest.skip("fewer than two decoder backends installed")
    broken = available[0]

    class Broken:
        def __init__(self, path):
            raise RuntimeError("simulated failure")

    monkeypatch.setitem(decode_module._OPENERS, broken, Broken)
    frames = decode(video_dir / "plain.mp4", [5], broken)
    assert abs(brightness(frames)[0] - 5 * BRIGHTNESS_STEP) < 6
    with pytest.raises(DecodeError, match=f"{broken}: RuntimeError: simulated failure"):
        decode(video_dir / "not_a_video.mp4", [0], broken)


def test_auto_orders_backends_by_measured_speed(video_dir, monkeypatch):
    available = [b for b in ALL_BACKENDS if backend_status(b)[0]]
    monkeypatch.setattr(decode_module, "_AUTO_ORDER", [])
    slow = available[0]
    opener = decode_module._OPENERS[slow]

    class Slow(opener):
        def read(self, indices, crop=None):
            import time
            time.sleep(0.2)
            return super().read(indices, crop)

    monkeypatch.setitem(decode_module._OPENERS, slow, Slow)
    decode(video_dir / "plain.mp4", [0, 1], "auto")
    assert sorted(decode_module._AUTO_ORDER) == sorted(available)
    assert decode_module._AUTO_ORDER[-1] == slow or len(available) == 1


def test_timing_the_backends_does_not_move_the_random_window_the_first_read_draws(video_dir, monkeypatch):
    """A training clip's window is drawn from the torch RNG; the first read of a process also times the backends,
    and that must not shift the draw, or the first clip's augmentation would depend on the process's history."""
    def random_window(info):
        return np.array([int(torch.randint(0, info.num_frames - 2, ())), 0]) + [0, 1]

    windows = []
    for order in ([], backend_order("auto")):  # unknown (timed on this read), then known
        monkeypatch.setattr(decode_module, "_AUTO_ORDER", list(order))
        torch.manual_seed(0)
        frames, positions, _ = read_frames(video_dir / "plain.mp4", random_window, "auto")
        windows.append((frames[torch.from_numpy(positions)], torch.rand(())))
    torch.testing.assert_close(windows[0], windows[1], rtol=0, atol=0)


def test_a_backend_that_imports_but_cannot_load_its_native_library_is_never_used(video_dir,
                                                                                torchcodec_without_ffmpeg):
    usable, why = backend_status("torchcodec")
    assert not usable and "Could not load libtorchcodec" in why and "FFmpeg" in why
    assert "torchcodec" not in available_backends() and available_backends()
    assert "torchcodec" not in backend_order("auto") + backend_order(available_backends()[0])
    with pytest.raises(ValueError, match="'torchcodec' is not usable here: .*Could not load libtorchcodec"):
        decode(video_dir / "plain.mp4", [0], "torchcodec")
    frames = decode(video_dir / "plain.mp4", [5], "auto")
    assert abs(brightness(frames)[0] - 5 * BRIGHTNESS_STEP) < 6
    assert "torchcodec" not in decode_module._AUTO_ORDER
    assert len(torchcodec_without_ffmpeg) == 1, "probed once per process, on the probe clip, never on a video"
    assert "probe" in str(torchcodec_without_ffmpeg[0])


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown decoder backend 'ffmpeg'"):
        decode("x.mp4", [0], "ffmpeg")


# ------------------------------------------------------------------- PyAV: seeking by timestamp

def many_gops_vfr(path):
    """60 frames, B-frames, a keyframe at least every 8 frames, frame durations cycling 60/100/170 ticks."""
    return write_h264(path, 60, pts=[sum((60, 100, 170)[k % 3] for k in range(i)) for i in range(60)], bf="3",
                      g="8")


def random_index_sets(num_frames, count=12, size=4):
    rng = np.random.default_rng(0)
    return [np.unique(rng.integers(0, num_frames, size)) for _ in range(count)]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_pyav_by_timestamp_reads_exactly_what_counting_from_the_start_reads(video_dir, name):
    video = decode_module._PyAVVideo(str(video_dir / name))
    for indices in random_index_sets(video.info.num_frames):
        by_timestamp, counting = (decode_module._RGBFrames(len(indices), None) for _ in range(2))
        assert video._read_by_timestamp(indices, by_timestamp), f"{name}: frames {indices} not found by timestamp"
        video._read_counting(indices, counting)
        assert torch.equal(by_timestamp.out, counting.out)


def test_pyav_seeks_to_the_keyframe_before_the_window_and_agrees_with_decord(tmp_path, monkeypatch):
    import av

    path = many_gops_vfr(tmp_path / "gops.mp4")
    seeks = []

    class RecordingContainer:
        def __init__(self, container):
            self._container = container

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._container.close()

        def __getattr__(self, name):
            return getattr(self._container, name)

        def seek(self, offset, **kwargs):
            seeks.append(offset)
            return self._container.seek(offset, **kwargs)

    backend_status("pyav")  # probed before recording: the probe clip's own open and seek are not counted
    real_open = av.open
    opens = []
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: opens.append(args) or RecordingContainer(
        real_open(*args, **kwargs)))
    video = decode_module._PyAVVideo(str(path))
    assert len(video._keyframe_times) >= 60 // 8
    for indices in random_index_sets(60) + [np.array([50, 52, 59])]:
        seeks.clear()
        opens.clear()
        frames = read_frames(path, indices, "pyav", fallback=False)[0]
        assert opens.count((str(path),)) == 1  # the packets are listed and the frames read through one open file
        first = video._frame_times[indices[0]]
        keyframe = max(t for t in video._keyframe_times if t <= first)
        assert seeks == [keyframe]
        assert np.abs(brightness(frames) - indices * BRIGHTNESS_STEP % 256).max() < 6
        if backend_status("decord")[0]:
            assert torch.equal(frames, read_frames(path, indices, "decord", fallback=False)[0])


def test_pyav_decodes_only_from_the_keyframe_before_the_window(tmp_path):
    video = decode_module._PyAVVideo(str(many_gops_vfr(tmp_path / "gops.mp4")))
    keyframe = max(t for t in video._keyframe_times if t <= video._frame_times[50])
    frames = video.read(np.array([50, 52, 59]))
    assert np.abs(brightness(frames) - np.array([50, 52, 59]) * BRIGHTNESS_STEP % 256).max() < 6
    assert video.decoded <= 59 - video._frame_times.index(keyframe) + 1 <= 60 - 42  # a keyframe every 8 frames


def test_pyav_counts_from_the_start_in_a_stream_without_timestamps(tmp_path):
    path = write_raw_h264(tmp_path / "bare.h264", 30)
    video = decode_module._PyAVVideo(str(path))
    assert video._frame_times is None and video.info.num_frames == 30
    frames = decode(path, [29, 0, 13], "pyav", fallback=False)
    assert np.abs(brightness(frames) - np.array([29, 0, 13]) * BRIGHTNESS_STEP).max() < 6


@pytest.mark.parametrize("packets, num_frames", [
    ([(0, True, False), (80, False, False), (None, False, False)], 3),  # a packet without a timestamp
    ([(0, True, False), (40, False, False), (40, False, False)], 3),  # two packets at the same time
    ([(0, True, False), (80, False, False), (40, False, True)], 3),  # one the container marks as discarded
    ([(0, True, False), (80, False, False), (40, False, False)], 4),  # the header counts another frame
])
def test_packets_that_cannot_number_the_frames_are_not_trusted(packets, num_frames):
    assert decode_module._packet_timeline(packets, num_frames) == (None, [])


def test_packet_timestamps_sorted_number_the_frames_in_display_order():
    packets = [(0, True, False), (160, False, False), (80, False, False), (240, True, False), (200, False, False)]
    assert decode_module._packet_timeline(packets, 5) == ([0, 80, 160, 200, 240], [0, 240])


# ------------------------------------------------------------------------------ decoding on the GPU

def test_the_gpu_backend_decodes_onto_the_gpu(video_dir):
    backend = usable("torchcodec_cuda")
    frames = decode(video_dir / "bframes.mp4", [29, 3], backend, fallback=False)
    assert frames.is_cuda and frames.shape == (2, 48, 64, 3)
    assert np.abs(brightness(frames) - np.array([29, 3]) * BRIGHTNESS_STEP).max() < 6


def test_without_a_gpu_the_gpu_backend_decodes_on_the_cpu_or_says_why(video_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    frames = decode(video_dir / "plain.mp4", [5], "torchcodec_cuda")
    assert frames.device.type == "cpu" and abs(brightness(frames)[0] - 5 * BRIGHTNESS_STEP) < 6
    with pytest.raises(ValueError, match="torchcodec_cuda.*no CUDA device"):
        decode(video_dir / "plain.mp4", [5], "torchcodec_cuda", fallback=False)


# ------------------------------------------------------------------------------- videos as bytes in memory


@pytest.mark.parametrize("backend", DECODING_BACKENDS)
@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_video_read_from_its_bytes_is_frame_for_frame_its_file(video_dir, name, backend):
    """What a shard's member gives: the same frames, count and rate as the file, cropped boxes too."""
    usable(backend)
    path, indices = video_dir / name, [GOOD[name] - 1, 0, 3, 4, 2, 4]
    box = lambda height, width: (3, 5, 20, 21)  # noqa: E731
    for crop in (None, box):
        frames, positions, info = read_frames(path, indices, backend, fallback=False, crop=crop)
        in_memory = read_frames("member", indices, backend, fallback=False, crop=crop, data=path.read_bytes())
        assert torch.equal(in_memory[0], frames) and np.array_equal(in_memory[1], positions) and in_memory[2] == info


def test_pyav_counts_from_the_start_of_bytes_without_timestamps(tmp_path):
    """A read that falls back to counting frames opens the video again: from its bytes, not from a path."""
    data = write_raw_h264(tmp_path / "bare.h264", 30).read_bytes()
    video = decode_module._PyAVVideo(data)
    assert video._frame_times is None
    frames, positions, _ = read_frames("bare member", [29, 0, 13], "pyav", fallback=False, data=data)
    assert np.abs(brightness(frames[positions]) - np.array([29, 0, 13]) * BRIGHTNESS_STEP).max() < 6


@pytest.mark.parametrize("backend", ["auto"] + DECODING_BACKENDS)
def test_bad_bytes_raise_with_the_name_given_and_the_reason(video_dir, backend):
    if backend != "auto":
        usable(backend)
    for data, reason in [(b"", "empty"), (b"this is a text file\n", ""),
                         ((video_dir / "truncated.mp4").read_bytes(), "")]:
        with pytest.raises(DecodeError, match=f"^clip.mp4 in shard-3.tar: .*{reason}") as caught:
            read_frames("clip.mp4 in shard-3.tar", [0], backend, data=data)
        assert caught.value.path == "clip.mp4 in shard-3.tar" and caught.value.reason
