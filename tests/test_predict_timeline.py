"""`videonl predict --timeline` and `Predictor.timeline` with a small model trained here: a joined video's known
segments come back, each window scores as the test scores a view, broken, short and variable-rate videos."""

import csv
import json
from fractions import Fraction

import numpy as np
import pytest
import torch

import train_net
import videonl
from helpers import assert_png_drawn, tiny
from scenes import FPS, NAMES, join_scenes, scene
from videonl.config import load_cfg
from videonl.data.datasets import VideoDataset, VideoRecord
from videonl.engine.evaluate import view_probabilities
from videonl.predict import main
from videonl.prep.common import encode_h264

STRIDE = 0.5
# A window across two parts sees a mixture of their colours that the model never saw, and may lead with a third
# class: a segment shorter than 1 s (two windows) joins a neighbour; every known part lasts 2 s or more.
MIN_SEGMENT = 1.0
# The joined video: 12 segments of 2-4 s, (class, seconds); at 10 fps and 4 frames every 3rd, a window is 1 s.
JOINED = [(0, 3), (2, 2), (1, 4), (0, 2), (1, 3), (2, 4), (0, 2.5), (2, 3), (1, 2), (2, 3.5), (0, 4), (1, 2)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny model trained for 20 iterations to tell the three scenes apart, a joined video of them (its index
    first, so that a truncated copy still lists every frame) and its timeline."""
    root = tmp_path_factory.mktemp("scenes")
    lists = {"train": [], "val": []}
    for label in range(3):
        for number in range(4):
            encode_h264(root / f"{label}_{number}.mp4", scene([label], 20, 7 * number), Fraction(FPS))
            lists["train" if number < 3 else "val"].append(f"{label}_{number}.mp4 {label}\n")
    for split, lines in lists.items():
        (root / f"{split}.csv").write_text("".join(lines))
    (root / "classes.json").write_text(json.dumps({name: index for index, name in enumerate(NAMES)}))
    out = root / "run"
    train_net.main(tiny(root, out, "MODEL.NUM_CLASSES", "3", "SOLVER.BASE_LR", "0.4", "MODEL.DROPOUT", "0.0",
                        "DATALOADER.TRAIN_BATCH_SIZE", "6", "SOLVER.MAX_ITER", "20", "TRAIN.CHECKPOINT_PERIOD", "20",
                        "TRAIN.EVAL_PERIOD", "0", "TEST.ENABLE", "False"))
    video = join_scenes(tmp_path_factory.mktemp("joined"), [((label,), seconds) for label, seconds in JOINED],
                        movflags="faststart")
    checkpoint = str(out / "checkpoints" / "iter_0000020.pth")
    predictor = videonl.Predictor(load_cfg(str(out / "config.yaml"), ["TIMELINE.STRIDE", str(STRIDE),
                                                                      "TIMELINE.MIN_SEGMENT", str(MIN_SEGMENT)]),
                                  checkpoint)
    return {"cfg": str(out / "config.yaml"), "checkpoint": checkpoint, "video": str(video), "predictor": predictor,
            "timeline": predictor.timeline(str(video))}


def test_the_timeline_of_a_joined_video_recovers_its_segments_in_order(model):
    timeline = model["timeline"]
    segments = timeline.segments

    assert [NAMES[s.label] for s in segments] == [NAMES[label] for label, _ in JOINED]
    known_starts = np.cumsum([0] + [seconds for _, seconds in JOINED])
    assert np.abs([s.start for s in segments] - known_starts[:-1]).max() <= STRIDE
    assert segments[-1].end == timeline.duration == known_starts[-1]
    assert len(timeline) == 69 and timeline.window == 1.0  # windows start every 5 frames while 10 fit in 350


def test_every_window_scores_as_the_test_scores_a_view_of_its_frames(model):
    predictor, timeline = model["predictor"], model["timeline"]
    # The ordinary test with 70 clips: clip k starts at frame floor(k * 350 / 70) = 5k, window k's first frame.
    cfg = predictor.cfg.clone()
    cfg.merge_from_list(["TEST.NUM_CLIPS", "70", "TEST.CLIP_STARTS", "official", "TEST.CROP", "full"])
    item = VideoDataset([VideoRecord(model["video"], -1)], "test", cfg)[0]
    with torch.no_grad():
        tested = view_probabilities(predictor.model, [item["views"]], cfg, predictor.device)[0].numpy()

    np.testing.assert_allclose(timeline.starts, np.arange(69) * STRIDE)
    np.testing.assert_allclose(timeline.probabilities, tested[:69], rtol=1e-4, atol=1e-6)


def test_the_command_prints_the_segments_and_writes_windows_segments_json_and_picture(model, tmp_path, capsys):
    [timeline] = main(["--cfg", model["cfg"], "--checkpoint", model["checkpoint"], "--timeline", "--stride",
                       str(STRIDE), "--min-segment", str(MIN_SEGMENT), "--top-k", "2", "--timeline-dir",
                       str(tmp_path), model["video"]])

    printed = capsys.readouterr().out
    assert f"{model['video']}: 00:35.0, 69 windows of 1.00 s every 0.5 s" in printed
    assert [line.split()[2] for line in printed.splitlines() if line.startswith("  0")] == [
        NAMES[label] for label, _ in JOINED]
    windows = list(csv.DictReader((tmp_path / "joined.windows.csv").open()))
    assert len(windows) == 69 and list(windows[0]) == ["start", "end", "top1_class", "top1_probability",
                                                      "top2_class", "top2_probability"]
    for row, w in zip(windows, range(69)):
        (first, p_first), (second, _) = timeline.shown(w)
        assert (row["top1_class"], row["top2_class"]) == (first, second)
        assert float(row["top1_probability"]) == pytest.approx(p_first, abs=1e-4)
    segments = list(csv.DictReader((tmp_path / "joined.segments.csv").open()))
    record = json.loads((tmp_path / "joined.json").read_text())
    assert [row["class"] for row in segments] == [s["class"] for s in record["segments"]] == [
        NAMES[label] for label, _ in JOINED]
    assert len(record["windows"]) == 69 and record["notes"] == [] and record["stride"] == STRIDE
    assert record["min_segment"] == MIN_SEGMENT
    assert_png_drawn(tmp_path / "joined.png", min_bytes=20_000)


def test_a_video_that_breaks_midway_keeps_the_windows_before_and_exits_naming_the_time(model, tmp_path, capsys):
    data = open(model["video"], "rb").read()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[:len(data) * 6 // 10])

    with pytest.raises(SystemExit) as stop:
        main(["--cfg", model["cfg"], "--checkpoint", model["checkpoint"], "--timeline", "--stride", str(STRIDE),
              "--timeline-dir", str(tmp_path), str(broken)])

    message = stop.value.code
    assert message.startswith(f"1 of 1 videos could not be read to their end; {broken}: decoding stopped at 00:")
    printed = capsys.readouterr().out
    assert "note: decoding stopped at 00:" in printed and "windows before it are kept" in printed
    windows = list(csv.DictReader((tmp_path / "broken.windows.csv").open()))
    whole = model["timeline"]
    stopped = float(message.split("(")[1].split(" s)")[0])
    assert 10 < len(windows) < len(whole) and float(windows[-1]["end"]) <= stopped < whole.duration
    for row, w in zip(windows, range(len(windows))):
        assert row["top1_class"] == whole.shown(w)[0][0]
        assert float(row["top1_probability"]) == pytest.approx(whole.shown(w)[0][1], abs=1e-4)


def test_a_video_shorter_than_a_window_is_scored_once_as_the_test_scores_it(model, tmp_path, capsys):
    short = tmp_path / "short.mp4"
    encode_h264(short, scene([1], 6, 0), Fraction(FPS))  # 0.6 s, a window is 1 s

    [timeline] = main(["--cfg", model["cfg"], "--checkpoint", model["checkpoint"], "--timeline",
                       "--timeline-dir", str(tmp_path), str(short)])

    assert len(timeline) == 1 and timeline.looped and timeline.duration == pytest.approx(0.6)
    assert "note: shorter than one window (0.60 s < 1.00 s): scored once" in capsys.readouterr().out
    once = videonl.Predictor(load_cfg(model["cfg"], ["TEST.NUM_CLIPS", "1", "TEST.CROP", "full"]),
                             model["checkpoint"]).predict(str(short))
    np.testing.assert_allclose(timeline.probabilities[0], once.probabilities, rtol=1e-5)
    assert [s.label for s in timeline.segments] == [1]


def test_a_variable_frame_rate_video_maps_windows_to_real_time(model, tmp_path):
    # 20 red frames shown 200 ms each (0-4 s), then 40 blue ones 50 ms each (4-6 s): 10 fps on average, so
    # counting frames would put the change at 2 s.
    durations = [200] * 20 + [50] * 40
    times = np.concatenate([[0], np.cumsum(durations)[:-1]]) / 1000
    vfr = tmp_path / "vfr.mp4"
    frames = np.concatenate([scene([0], 20, 0), scene([2], 40, 3)])
    encode_h264(vfr, frames, Fraction(FPS), pts=(times * FPS * 100).round().astype(int).tolist())

    timeline = model["predictor"].timeline(str(vfr))

    firsts = np.searchsorted(times, np.arange(len(timeline)) * STRIDE - 1e-9)
    np.testing.assert_allclose(timeline.starts, times[firsts])
    followed = firsts + 10 < len(times)  # a window ends where the frame after its last one begins
    np.testing.assert_allclose(timeline.ends[followed], times[firsts[followed] + 10], atol=1e-9)
    change = [s.start for s in timeline.segments[1:]]
    assert [NAMES[s.label] for s in timeline.segments] == ["red", "blue"] and abs(change[0] - 4.0) <= STRIDE


@pytest.mark.parametrize("arguments, message", [
    (["--stride", "2"], "--stride apply to --timeline only"),
    (["--timeline", "--output", "x.csv"], "--output and --views belong to the per-video prediction"),
])
def test_timeline_options_go_with_timeline(model, arguments, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--cfg", model["cfg"], "--checkpoint", model["checkpoint"], *arguments, model["video"]])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_stride_that_cannot_work_is_named(model):
    with pytest.raises(SystemExit, match="error: TIMELINE.STRIDE must be a positive number of seconds, got 0.0"):
        main(["--cfg", model["cfg"], "--checkpoint", model["checkpoint"], "--timeline", "--stride", "0",
              model["video"]])
