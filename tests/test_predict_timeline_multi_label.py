"""`videonl predict --timeline` with a multi-label model trained here on scenes of mixed colours (each lit colour
channel a class): a joined video's classes come back each with its own, overlapping, segments."""

import csv
import itertools
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
RED, GREEN, BLUE = range(3)
# The joined video: (classes, seconds). Red is there 0-6 s and 15-18 s, blue 3-12 s, green 9-18 s.
JOINED = [((RED,), 3), ((RED, BLUE), 3), ((BLUE,), 3), ((GREEN, BLUE), 3), ((GREEN,), 3), ((RED, GREEN), 3)]
THERE = {RED: [(0, 6), (15, 18)], GREEN: [(9, 18)], BLUE: [(3, 12)]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny multi-label model trained for 25 iterations on scenes of every set of classes, and a joined video."""
    root = tmp_path_factory.mktemp("mixed_colours")
    lines = []
    for number, labels in enumerate(c for n in range(4) for c in itertools.combinations(range(3), n)):
        for phase in range(2):
            name = f"{number}_{phase}.mp4"
            encode_h264(root / name, scene(labels, 20, 11 * phase + number), Fraction(FPS))
            lines.append(f"{name} {';'.join(map(str, labels)) or 'none'}\n")
    (root / "train.csv").write_text("".join(lines))
    (root / "val.csv").write_text("".join(lines[::6]))
    (root / "classes.json").write_text(json.dumps({name: index for index, name in enumerate(NAMES)}))
    out = root / "run"
    train_net.main(tiny(root, out, "TASK.NAME", "multi_label", "MODEL.NUM_CLASSES", "3", "SOLVER.BASE_LR", "0.4",
                        "MODEL.DROPOUT", "0.0", "DATALOADER.TRAIN_BATCH_SIZE", "6", "SOLVER.MAX_ITER", "25",
                        "TRAIN.CHECKPOINT_PERIOD", "25", "TRAIN.EVAL_PERIOD", "0", "TEST.ENABLE", "False"))
    video = join_scenes(tmp_path_factory.mktemp("joined"), JOINED)
    return {"cfg": str(out / "config.yaml"), "checkpoint": str(out / "checkpoints" / "iter_0000025.pth"),
            "video": str(video)}


def test_each_class_comes_back_with_its_own_segments_where_it_is_there(model, tmp_path, capsys):
    [timeline] = main(["--cfg", model["cfg"], "--checkpoint", model["checkpoint"], "--timeline", "--stride",
                       str(STRIDE), "--timeline-dir", str(tmp_path), model["video"]])

    found = {label: [(s.start, s.end) for s in timeline.segments if s.label == label] for label in range(3)}
    assert {label: len(spans) for label, spans in found.items()} == {label: len(THERE[label]) for label in THERE}
    for label, spans in found.items():
        assert np.abs(np.subtract(spans, THERE[label])).max() <= STRIDE, NAMES[label]
    assert [s.start for s in timeline.segments] == sorted(s.start for s in timeline.segments)
    printed = capsys.readouterr().out
    assert [line.split()[2] for line in printed.splitlines() if line.startswith("  0")] == [
        NAMES[s.label] for s in timeline.segments]

    record = json.loads((tmp_path / "joined.json").read_text())
    assert record["task"] == "multi_label" and record["threshold"] == 0.5
    assert [(s["class"], s["start"], s["end"]) for s in record["segments"]] == [
        (NAMES[s.label], round(s.start, 3), round(s.end, 3)) for s in timeline.segments]
    windows = list(csv.DictReader((tmp_path / "joined.windows.csv").open()))
    for row, probabilities in zip(windows, timeline.probabilities):  # the classes over the threshold, best first
        there = sorted(np.flatnonzero(probabilities >= 0.5), key=lambda c: -probabilities[c])
        assert [row[f"top{rank}_class"] for rank in range(1, len(there) + 1)] == [NAMES[c] for c in there]
        assert all(not row.get(f"top{rank}_class") for rank in range(len(there) + 1, 4))
    assert_png_drawn(tmp_path / "joined.png")


def test_the_threshold_option_decides_where_a_class_is_there(model, tmp_path):
    [timeline] = main(["--cfg", model["cfg"], "--checkpoint", model["checkpoint"], "--timeline", "--stride",
                       str(STRIDE), "--threshold", "0.9", "--timeline-dir", str(tmp_path), model["video"]])

    there = timeline.probabilities >= 0.9
    assert timeline.selection.threshold == 0.9 and (there != (timeline.probabilities >= 0.5)).any()
    bounds = timeline.bounds
    for label in range(3):  # a window is in one of its class's segments where the class reaches 0.9
        inside = np.zeros(len(timeline), bool)
        for segment in (s for s in timeline.segments if s.label == label):
            inside |= (bounds[:-1] >= segment.start) & (bounds[1:] <= segment.end)
        np.testing.assert_array_equal(inside, there[:, label], err_msg=NAMES[label])


def test_every_window_scores_as_the_test_scores_a_clip_with_its_crops_combined_by_the_task(model):
    predictor = videonl.Predictor(load_cfg(model["cfg"], ["TIMELINE.STRIDE", str(STRIDE), "TIMELINE.CROP", "3crop"]),
                                  model["checkpoint"])
    timeline = predictor.timeline(model["video"])
    # The ordinary test with 36 clips of 3 crops: clip k starts at frame floor(k * 180 / 36) = 5k, window k's first.
    cfg = predictor.cfg.clone()
    cfg.merge_from_list(["TEST.NUM_CLIPS", "36", "TEST.CLIP_STARTS", "official", "TEST.CROP", "3crop"])
    item = VideoDataset([VideoRecord(model["video"], None)], "test", cfg)[0]
    with torch.no_grad():
        crops = view_probabilities(predictor.model, [item["views"]], cfg, predictor.device)[0].view(36, 3, -1)
    tested = torch.stack([predictor.task.combine_views(clip) for clip in crops]).numpy()

    assert predictor.task.view_combine == "max" and len(timeline) == 35
    np.testing.assert_allclose(timeline.probabilities, tested[:35], rtol=1e-4, atol=1e-6)
    assert np.abs(tested - crops.mean(dim=1).numpy()).max() > 1e-3  # the crops differ: max is not their mean
