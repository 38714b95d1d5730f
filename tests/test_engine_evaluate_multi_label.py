"""Multi-label evaluation on flat grey videos, whose views' class probabilities are known without a network:
sigmoid(-0.1 x |grey - level|) per class, combined by their max (or mean) over the views, ranked into mAP."""

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from grey_videos import LEVELS, NAMES, GreyLevelModel, grey_cfg, grey_dir  # noqa: F401  (grey_dir: the fixture)
from videonl.config import ConfigError
from videonl.data.loader import build_loader, model_input
from videonl.engine.checks import check_config
from videonl.engine.evaluate import evaluate
from videonl.engine.scores import StaleScoresError

# file -> its actions (class indices of LEVELS), in the list's format. The two grey-40 videos would score alike,
# and scikit-learn ranks equal scores otherwise than the official evaluation: one of them is listed.
ACTIONS = {"grey40.mp4": "0;1:0.0:0.5", "grey80.mp4": "none", "mixed.mp4": "4:0.8:1.2;2", "grey170.mp4": "3;5",
           "broken.mp4": "3"}


def multi_label_dir(grey_dir, folder):
    folder.mkdir()
    (folder / "val.csv").write_text("".join(f"{grey_dir / name} {actions}\n" for name, actions in ACTIONS.items()))
    (folder / "classes.json").write_text((grey_dir / "classes.json").read_text())
    return folder


def expected_probabilities(cfg, combine) -> dict:
    """file -> [classes]: each decoded view's sigmoid per class, combined over the video's 3 views by hand."""
    expected = {}
    for batch in build_loader(cfg, "test"):
        paths = [path for path, valid in zip(batch["index"].tolist(), batch["valid"].tolist()) if valid]
        for index, video in zip(paths, batch["views"]):
            logits = GreyLevelModel()(model_input(video.cut(), cfg, torch.device("cpu")))
            expected[index] = combine(torch.sigmoid(logits).numpy(), axis=0)
    return expected


@pytest.mark.parametrize("combine, reduce", [("max", np.max), ("mean", np.mean)])
def test_a_multi_label_test_reports_the_map_of_the_combined_views(grey_dir, tmp_path, combine, reduce):
    data = multi_label_dir(grey_dir, tmp_path / "data")
    cfg = grey_cfg(data, **{"TASK.NAME": "multi_label", "MULTI_LABEL.VIEW_COMBINE": combine})
    metrics = evaluate(GreyLevelModel(), cfg, out_dir=str(tmp_path / "out"), progress=False)

    by_index = expected_probabilities(cfg, reduce)
    # the broken video ranks last in every class, as a score below every probability puts it
    scores = np.array([by_index.get(index, [-1.0] * len(LEVELS)) for index in range(len(ACTIONS))])
    positives = np.zeros_like(scores, dtype=bool)
    for row, name in enumerate(ACTIONS):
        for action in ACTIONS[name].split(";"):
            if action != "none":
                positives[row, int(action.split(":")[0])] = True
    expected_map = np.mean([average_precision_score(positives[:, c], scores[:, c]) for c in range(len(LEVELS))])
    assert metrics["mAP"] == pytest.approx(100 * expected_map, abs=1e-3)
    assert metrics["classes_in_mAP"] == len(LEVELS) and metrics["view_combine"] == combine
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == metrics

    stored = [json.loads(line) for line in (tmp_path / "out" / "scores.rank0.jsonl").read_text().splitlines()]
    assert stored[0]["meta"]["task"] == {"name": "multi_label", "view_combine": combine}
    mixed = next(line for line in stored[1:] if line["path"].endswith("mixed.mp4"))
    assert mixed["label"] == [2, 4]
    np.testing.assert_allclose(mixed["probabilities"], by_index[list(ACTIONS).index("mixed.mp4")], rtol=1e-5)

    with open(tmp_path / "out" / "per_class.csv", newline="") as f:
        per_class = list(csv.DictReader(f))
    assert [row["name"] for row in per_class] == NAMES and all(row["ap"] for row in per_class)
    assert (tmp_path / "out" / "per_class_ap.png").is_file()
    assert not (tmp_path / "out" / "confusion_matrix.png").exists()


def test_a_resumed_evaluation_never_mixes_tasks_or_view_combinations(grey_dir, tmp_path):
    data = multi_label_dir(grey_dir, tmp_path / "data")
    cfg = grey_cfg(data, **{"TASK.NAME": "multi_label"})
    evaluate(GreyLevelModel(), cfg, out_dir=str(tmp_path / "out"), progress=False)
    with pytest.raises(StaleScoresError, match="different task"):
        evaluate(GreyLevelModel(), grey_cfg(data, **{"TASK.NAME": "multi_label", "MULTI_LABEL.VIEW_COMBINE": "mean"}),
                 out_dir=str(tmp_path / "out"), progress=False)


def test_the_checks_read_the_lists_as_the_task_does(grey_dir, tmp_path):
    data = multi_label_dir(grey_dir, tmp_path / "data")
    cfg = grey_cfg(data, **{"TASK.NAME": "multi_label"})
    check_config(cfg, training=False, testing=True)
    with pytest.raises(ConfigError, match=r"val\.csv:1: expected 'path label'.*\(label '0;1:0.0:0.5' is not a class "
                                          r"index\) \(TASK.NAME single_label\)"):
        check_config(grey_cfg(data), training=False, testing=True)
    lines = (data / "val.csv").read_text().splitlines()
    (data / "val.csv").write_text("\n".join(lines[:2] + [lines[2].replace("4:0.8:1.2", "4:0.8")] + lines[3:]) + "\n")
    with pytest.raises(ConfigError, match=r"val\.csv:3: .*action '4:0.8' is not CLASS or CLASS:START:END"):
        check_config(cfg, training=False, testing=True)
    with pytest.raises(ConfigError, match="the task cannot be built: TASK.NAME 'counting' is not a registered task"):
        check_config(grey_cfg(data, **{"TASK.NAME": "counting"}), training=False, testing=True)
