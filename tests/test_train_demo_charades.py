"""The multi-label proof without Charades (`make demo-charades`) at toy size, through the command line as a user
runs it: `videonl prep demo-charades` writes the official annotation files and videos, `videonl prep charades`
prepares them, `videonl train --cfg demo_charades/nl_i3d.yaml` trains a few iterations and tests. The test's mAP
must be the official one over what the annotation files say: the validation videos with actions, their classes
by the class list's numbers, the classes without a video left out."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from helpers import ROOT, tiny
from videonl import cli

CONFIG = str(ROOT / "configs" / "demo_charades" / "nl_i3d.yaml")
# Seed 0 puts a video without actions among the 5 validation videos, whose actions cover 5 of the 8 classes.
SOURCE = ["--train", "6", "--val", "5", "--size", "32", "--seconds", "2", "--fps", "8", "--empty-fraction", "0.2",
          "--seed", "0", "--workers", "1"]


def official_actions(path):
    """{video id: its class numbers} of an official CSV, read by hand: `c006 0.00 2.00;c001 0.25 1.50` -> {6, 1}."""
    with open(path, newline="") as f:
        return {row["id"]: {int(action.split()[0][1:]) for action in row["actions"].split(";") if action}
                for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def tested(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_charades")
    source, data, out = root / "source", root / "data", root / "run"
    assert cli.main(["prep", "demo-charades", "--out-dir", str(source), *SOURCE]) == 0
    assert cli.main(["prep", "charades", "--annotations-dir", str(source), "--videos-dir",
                     str(source / "Charades_v1_480"), "--out-dir", str(data), "--short-side", "32",
                     "--workers", "1"]) == 0
    assert cli.main(["train", "--cfg", CONFIG, *tiny(data, out)[2:], "MODEL.NUM_CLASSES", "8", "SOLVER.MAX_ITER",
                     "2", "TRAIN.EVAL_PERIOD", "2", "TRAIN.PRECISE_BN_BATCHES", "0"]) == 0
    return {"source": source, "test": out / "test" / "iter_0000002"}


def test_the_tests_map_is_the_official_one_over_the_annotated_validation_videos(tested):
    actions = official_actions(tested["source"] / "Charades_v1_test.csv")
    with_actions = {video_id: classes for video_id, classes in actions.items() if classes}
    assert len(with_actions) == len(actions) - 1  # the video without actions is not scored
    [meta, *scores] = [json.loads(line) for line in (tested["test"] / "scores.rank0.jsonl").read_text().splitlines()]
    assert meta["meta"]["task"]["name"] == "multi_label" and meta["meta"]["classes"] == 8
    assert [score["path"].rsplit("/", 1)[1] for score in scores] == [f"{video_id}.mp4" for video_id in with_actions]
    probabilities = np.array([score["probabilities"] for score in scores])
    positives = np.array([[c in classes for c in range(8)] for classes in with_actions.values()])
    held = sorted(set().union(*with_actions.values()))
    assert len(held) == 5  # three classes have no validation video: no AP
    expected = np.mean([average_precision_score(positives[:, c], probabilities[:, c]) for c in held])
    summary = json.loads((tested["test"] / "summary.json").read_text())
    assert summary["mAP"] == pytest.approx(100 * expected, abs=1e-3)
    assert summary["classes_in_mAP"] == 5 and summary["videos"] == 4
    # a constant score ranks each class's videos in list order: AP = mean over its videos of (k / position)
    constant = [np.mean(np.arange(1, column.sum() + 1) / (np.flatnonzero(column) + 1)) for column in positives.T[held]]
    assert summary["constant_mAP"] == pytest.approx(100 * np.mean(constant))


def test_each_video_is_reported_with_the_class_lists_names_of_its_actions(tested):
    names = dict(line.split(" ", 1) for line in (tested["source"] / "Charades_v1_classes.txt").read_text().splitlines())
    actions = official_actions(tested["source"] / "Charades_v1_test.csv")
    with open(tested["test"] / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["path"].rsplit("/", 1)[1][:-4]: set(row["label_names"].split(";")) for row in rows} == {
        video_id: {names[f"c{c:03d}"] for c in classes} for video_id, classes in actions.items() if classes}
    with open(tested["test"] / "per_class.csv", newline="") as f:
        per_class = list(csv.DictReader(f))
    assert [row["name"] for row in per_class] == [names[f"c{c:03d}"] for c in range(8)]
    counted = [sum(c in classes for classes in actions.values()) for c in range(8)]
    assert [int(row["videos"]) for row in per_class] == counted
    assert [row["ap"] == "" for row in per_class] == [count == 0 for count in counted]
