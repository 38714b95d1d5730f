import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    # The workers share the cores: each computes on its share, or their OpenMP threads spin against each other's
    # (4 threads on 2 cores made single tests ten times slower). Set before torch loads; subprocesses inherit it.
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]  # the helper modules, and the checkout

import videos  # noqa: E402
from videonl.data import decode as decode_module  # noqa: E402
from videonl.prep.common import encode_h264  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    """Which decoder backends this machine let the suite test; the others' tests skip with the reason."""
    status = {name: decode_module.backend_status(name) for name in decode_module.BACKEND_NAMES}
    tested = [name for name, (usable, _) in status.items() if usable]
    skipped = [f"; skipped: {name}, not usable here: {why}" for name, (usable, why) in status.items() if not usable]
    terminalreporter.write_line(f"decoder backends tested: {', '.join(tested) or 'none'}" + "".join(skipped))


@pytest.fixture
def torchcodec_without_ffmpeg(monkeypatch):
    """A fresh machine's torchcodec: it imports, but loading its native library fails when it opens a file
    (no system FFmpeg libraries). Backends are probed afresh; the list holds the paths it was asked to open."""
    decoders = pytest.importorskip("torchcodec.decoders")
    attempts = []

    def failing_load(source, *args, **kwargs):
        attempts.append(source)
        raise RuntimeError("Could not load libtorchcodec. Likely causes:\n  1. FFmpeg is not properly installed")

    monkeypatch.setattr(decoders, "VideoDecoder", failing_load)
    monkeypatch.setattr(decode_module, "_AVAILABILITY", {})
    monkeypatch.setattr(decode_module, "_AUTO_ORDER", [])
    return attempts


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    """Good and bad videos, written once per test session."""
    root = tmp_path_factory.mktemp("videos")
    videos.write_h264(root / "plain.mp4", 30)
    videos.write_h264(root / "bframes.mp4", 30, bf="3", g="12")
    videos.write_h264(root / "ntsc.mp4", 24, fps=Fraction(30000, 1001))
    videos.write_h264(root / "odd_fps.mp4", 20, fps=Fraction(25, 2))
    videos.write_h264(root / "vfr.mp4", 24, pts=videos.VFR_PTS)
    videos.write_h264(root / "short.mp4", 5)
    videos.write_h264(root / "name with spaces.mp4", 12)
    videos.write_mpeg4_avi(root / "mpeg4.avi", 20)
    videos.write_h264(root / "matroska.mkv", 17)  # Matroska headers carry no frame count
    (root / "empty.mp4").write_bytes(b"")
    (root / "not_a_video.mp4").write_text("this is a text file\n")
    plain = (root / "plain.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(plain[: len(plain) // 2])  # index at the end: lost
    indexed = videos.write_h264(root / "indexed.mp4", 30, movflags="faststart").read_bytes()
    (root / "truncated_tail.mp4").write_bytes(indexed[: len(indexed) * 6 // 10])  # index kept, last frames lost
    return root



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Two classes (a bright square moving right or left), 6 training and 2 validation videos each."""
    root = tmp_path_factory.mktemp("moving")
    lists = {"train": [], "val": []}
    for label, direction in enumerate((1, -1)):
        for number in range(8):
            frames = np.full((20, 40, 48, 3), 30, np.uint8)
            for t in range(20):
                left = 20 + direction * (t - 10)
                frames[t, 12:28, left:left + 10] = 220
            name = f"{label}_{number}.mp4"
            encode_h264(root / name, frames, Fraction(10))
            lists["train" if number < 6 else "val"].append(f"{name} {label}\n")
    for split, lines in lists.items():
        (root / f"{split}.csv").write_text("".join(lines))
    (root / "classes.json").write_text(json.dumps({"right": 0, "left": 1}))
    return root


@pytest.fixture(scope="module")
def multi_label_dir(data_dir, tmp_path_factory):
    """data_dir's videos in multi-label lists of three classes: the square moves right (0) or left (1), and it is
    in the frame's left half (2) for the first 0.9 s of a video moving right, the last 0.8 s of one moving left."""
    root = tmp_path_factory.mktemp("multi_label")
    actions = {"0": "0;2:0.0:0.9", "1": "1;2:1.2:1.9"}
    for split in ("train", "val"):
        lines = (data_dir / f"{split}.csv").read_text().splitlines()
        (root / f"{split}.csv").write_text("".join(f"{data_dir / name} {actions[label]}\n"
                                                   for name, label in (line.split() for line in lines)))
    (root / "classes.json").write_text(json.dumps({"right": 0, "left": 1, "in the left half": 2}))
    return root
