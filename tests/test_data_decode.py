import numpy as np
import pytest
import torch

from videonl.data import decode as decode_module
from videonl.data.decode import DecodeError, available_backends, backend_order, backend_status, decode, read_frames
from videos import BAD, BRIGHTNESS_STEP, GOOD, brightness

ALL_BACKENDS = ["decord", "pyav", "torchcodec"]
# Pixels of two backends on the same frames differ by at most this much on average (0..255 scale). Here they
# are identical (difference 0); the margin is for FFmpeg builds whose YUV->RGB conversion rounds differently.
PIXEL_TOLERANCE = 3.0


def usable(backend):
    ok, why = backend_status(backend)
    if not ok:
        pytest.skip(f"{backend} is not usable here: {why}")
    return backend


@pytest.mark.parametrize("backend", ALL_BACKENDS)
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
    backends = [b for b in ALL_BACKENDS if backend_status(b)[0]]
    if len(backends) < 2:
        pytest.skip("fewer than two decoder backends installed")
    indices = [0, 3, 4, 2, GOOD[name] - 1]
    results = {b: read_frames(video_dir / name, indices, b, fallback=False) for b in backends}
    counts = {b: info.num_frames for b, (_, _, info) in results.items()}
    assert len(set(counts.values())) == 1, counts
    reference = results[backends[0]][0].float()
    for backend in backends[1:]:
        difference = (results[backend][0].float() - reference).abs().mean()
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


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_indices_past_the_end_wrap_around(video_dir, backend):
    usable(backend)
    frames = decode(video_dir / "short.mp4", [3, 4, 5, 6, 12], backend, fallback=False)
    expected = np.array([3, 4, 0, 1, 2]) * BRIGHTNESS_STEP
    assert np.abs(brightness(frames) - expected).max() < 6


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_repeated_indices_are_decoded_once_and_returned_in_the_order_asked(video_dir, backend, monkeypatch):
    usable(backend)
    opener = decode_module._OPENERS[backend]
    asked = []

    class Spy(opener):
        def read(self, indices):
            asked.append(indices.tolist())
            return super().read(indices)

    monkeypatch.setitem(decode_module._OPENERS, backend, Spy)
    frames = decode(video_dir / "plain.mp4", [7, 2, 7, 32], backend, fallback=False)
    assert asked == [[2, 7]]
    assert np.abs(brightness(frames) - np.array([7, 2, 7, 2]) * BRIGHTNESS_STEP).max() < 6


@pytest.mark.parametrize("backend", ["auto"] + ALL_BACKENDS)
@pytest.mark.parametrize("name", BAD)
def test_bad_files_raise_with_path_and_reason(video_dir, name, backend):
    if backend != "auto":
        usable(backend)
    with pytest.raises(DecodeError) as caught:
        decode(video_dir / name, [0], backend)
    assert caught.value.path == str(video_dir / name)
    assert caught.value.reason and str(video_dir / name) in str(caught.value)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_a_file_cut_after_its_index_fails_where_frames_are_lost(video_dir, backend):
    usable(backend)
    with pytest.raises(DecodeError, match=backend):
        read_frames(video_dir / "truncated_tail.mp4", lambda info: np.arange(info.num_frames), backend,
                    fallback=False)


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
        def read(self, indices):
            import time
            time.sleep(0.2)
            return super().read(indices)

    monkeypatch.setitem(decode_module._OPENERS, slow, Slow)
    decode(video_dir / "plain.mp4", [0, 1], "auto")
    assert sorted(decode_module._AUTO_ORDER) == sorted(available)
    assert decode_module._AUTO_ORDER[-1] == slow or len(available) == 1


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
