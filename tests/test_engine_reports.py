"""What an evaluation leaves behind: predictions.csv, per_class.csv, summary.json, the pictures, the console table."""

import csv
import json
import logging
import os

import numpy as np

from grey_videos import VIDEOS, GreyLevelModel, grey_cfg, grey_dir  # noqa: F401  (grey_dir: the videos fixture)
from videonl.engine.evaluate import evaluate
from videonl.engine.reports import format_results, write_reports
from videonl.engine.scores import VideoScore
from videonl.tasks.single_label import SingleLabel


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes, path


def test_reports_hold_predictions_per_class_results_and_pictures(grey_dir, tmp_path):
    metrics = evaluate(GreyLevelModel(), grey_cfg(grey_dir), out_dir=str(tmp_path), progress=False)
    assert json.loads((tmp_path / "summary.json").read_text()) == metrics

    predictions = {os.path.basename(row["path"]): row for row in read_csv(tmp_path / "predictions.csv")}
    assert list(predictions) == list(VIDEOS)
    right = predictions["grey40.mp4"]
    assert (right["label"], right["label_name"], right["top1_class"], right["correct"]) == \
        ("0", "grey 40", "grey 40", "yes")
    mixed = predictions["mixed.mp4"]
    assert (mixed["top1_class"], mixed["top2_class"], mixed["correct"]) == ("grey 120", "grey 200", "no")
    scores = [float(mixed[f"top{k}_score"]) for k in range(1, 6)]
    assert scores == sorted(scores, reverse=True) and 0.6 < scores[0] < 0.7  # (2 x ~0.96 + ~0) / 3
    broken = predictions["broken.mp4"]
    assert broken["correct"] == "no" and "broken.mp4" in broken["error"] and broken["top1_class"] == ""

    per_class = read_csv(tmp_path / "per_class.csv")
    assert [(row["name"], row["videos"], row["top1"], row["top5"]) for row in per_class] == [
        ("grey 40", "1", "100.00", "100.00"), ("grey 80", "1", "100.00", "100.00"), ("grey 120", "0", "", ""),
        ("grey 160", "1", "0.00", "0.00"), ("grey 200", "1", "0.00", "100.00"), ("grey 240", "2", "0.00", "50.00")]
    assert_png(tmp_path / "per_class_accuracy.png")
    assert_png(tmp_path / "confusion_matrix.png")


def test_confusion_matrix_is_skipped_above_101_classes(tmp_path, caplog):
    classes = 102
    scores = [VideoScore(i, f"v{i}.mp4", i, np.eye(classes, dtype=np.float32)[(i * 7) % classes], 1, 1)
              for i in range(classes)]
    metrics = {"top1": 1.0}
    with caplog.at_level(logging.INFO, logger="videonl.engine.reports"):
        write_reports(str(tmp_path), scores, metrics, [f"c{i}" for i in range(classes)], exclude_failed=False,
                      task=SingleLabel(classes))
    assert not (tmp_path / "confusion_matrix.png").exists()
    assert any("confusion_matrix.png skipped: 102 classes" in r.getMessage() for r in caplog.records)
    assert_png(tmp_path / "per_class_accuracy.png")
    assert len(read_csv(tmp_path / "per_class.csv")) == classes


def test_format_results_keeps_clip_level_apart(grey_dir):
    metrics = evaluate(GreyLevelModel(), grey_cfg(grey_dir), progress=False)
    table = format_results(metrics, SingleLabel(len(VIDEOS)))
    lines = table.splitlines()
    assert f"{metrics['top1']:6.2f} %" in lines[1] and "3 views" in lines[1]
    clip_line = next(line for line in lines if line.lstrip().startswith("clip top-1"))
    assert "not video level" in clip_line and f"{metrics['clip_top1']:6.2f} %" in clip_line
    assert "6 / 5 / 1 (failed videos counted as wrong)" in table
    assert len({line.index(" %") for line in lines[1:5]}) == 1  # the percentages line up
