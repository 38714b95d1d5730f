"""The multi-label task: its label format, clip and video targets, loss, view combination, metrics and report,
from hand-made labels and scores."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from videonl.config import ConfigError, get_cfg
from videonl.engine.scores import VideoScore
from videonl.tasks import build_task
from videonl.tasks.base import ClassBars, Selection
from videonl.tasks.multi_label import Action, MultiLabel, format_actions, parse_actions

TASK = MultiLabel(4)


def test_the_label_field_holds_actions_with_or_without_times():
    assert parse_actions("2:11.90:21.20;0:0.00:12.60") == (Action(2, 11.9, 21.2), Action(0, 0.0, 12.6))
    assert parse_actions("3;1") == (Action(3, 0.0, math.inf), Action(1, 0.0, math.inf))
    assert parse_actions("none") == () and parse_actions("7:3:3") == (Action(7, 3.0, 3.0),)


def test_a_label_field_written_reads_back_as_the_same_actions():
    assert format_actions([Action(92, 11.9, 21.2), Action(147, 0.0, 12.6)]) == "92:11.9:21.2;147:0:12.6"
    assert format_actions([Action(3), Action(17)]) == "3;17" and format_actions([]) == "none"
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 40, 50)
    actions = tuple(Action(int(c), float(start), float(start + length)) for c, start, length in
                    zip(rng.integers(0, 157, 50), starts, rng.exponential(5, 50)))
    field = format_actions(actions)
    assert parse_actions(field) == actions and "e" not in field  # every float exact, none in exponent form
    assert parse_actions(format_actions([Action(2, 0.0, 1e-7)])) == (Action(2, 0.0, 1e-7),)


@pytest.mark.parametrize("field, problem", [
    ("", "action '' is not CLASS or CLASS:START:END"), ("3;", "action '' is not"), ("a", "action 'a' is not"),
    ("3:1.0", "action '3:1.0' is not"), ("3:-1:2", "is not"), ("3:2:1", "action '3:2:1' ends before it starts"),
    ("3 4", "action '3 4' is not"), ("3:1:nan", "is not"),
])
def test_a_malformed_label_field_says_what_is_wrong_and_what_is_expected(field, problem):
    with pytest.raises(ValueError, match=problem):
        parse_actions(field)


def test_a_training_clip_takes_the_actions_it_overlaps_or_the_whole_videos():
    actions = parse_actions("0;1:0.0:1.0;2:2.0:3.0;1:5:6")
    assert TASK.clip_target(actions, (0.5, 1.5)).tolist() == [1, 1, 0, 0]
    assert TASK.clip_target(actions, (1.0, 2.0)).tolist() == [1, 1, 1, 0]  # touching counts (frame times)
    assert TASK.clip_target(actions, (3.1, 4.9)).tolist() == [1, 0, 0, 0]
    assert TASK.clip_target(actions, None).tolist() == [1, 1, 1, 0]  # no frame rate: the video's actions
    whole = MultiLabel(4, clip_labels="video")
    assert whole.clip_target(actions, (3.1, 4.9)).tolist() == [1, 1, 1, 0]
    assert TASK.video_target(actions).tolist() == [1, 1, 1, 0] and TASK.video_target(None).tolist() == [0] * 4
    assert TASK.classes_of(actions) == (0, 1, 2) and TASK.score_label(TASK.video_target(actions)) == [0, 1, 2]


def test_the_loss_is_binary_cross_entropy_of_each_class():
    logits, targets = torch.tensor([[2.0, -1.0, 0.0, 0.5]]), torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    probabilities = torch.sigmoid(logits)
    expected = -(targets * probabilities.log() + (1 - targets) * (1 - probabilities).log()).mean()
    torch.testing.assert_close(TASK.loss(logits, targets), expected)


def test_a_view_is_the_sigmoid_averaged_over_its_windows_and_a_video_the_max_or_mean_of_its_views():
    windows = torch.tensor([[[0.0, 2.0, -2.0, 1.0], [2.0, 0.0, -2.0, -1.0]]])  # one view, two windows
    view = TASK.view_probabilities(TASK.view_output(windows))
    torch.testing.assert_close(view, torch.sigmoid(windows).mean(dim=1))
    views = torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.3, 0.2, 0.5, 0.4]])
    assert TASK.combine_views(views).tolist() == pytest.approx([0.3, 0.9, 0.5, 0.4])
    assert MultiLabel(4, view_combine="mean").combine_views(views).tolist() == pytest.approx([0.2, 0.55, 0.5, 0.3])


def test_the_config_chooses_the_task_and_its_settings():
    cfg = get_cfg()
    cfg.merge_from_list(["TASK.NAME", "multi_label", "MODEL.NUM_CLASSES", 6, "MULTI_LABEL.VIEW_COMBINE", "mean",
                         "MULTI_LABEL.CLIP_LABELS", "video", "MULTI_LABEL.THRESHOLD", 0.3])
    task = build_task(cfg)
    assert isinstance(task, MultiLabel) and task.num_classes == 6
    assert (task.view_combine, task.clip_labels, task.shown) == ("mean", "video", Selection(None, 0.3))
    cfg.MULTI_LABEL.VIEW_COMBINE = "median"
    with pytest.raises(ValueError, match="MULTI_LABEL.VIEW_COMBINE 'median' is not one of max, mean"):
        build_task(cfg)
    cfg.TASK.NAME = "regression"
    with pytest.raises(ConfigError, match="TASK.NAME 'regression' is not a registered task .*multi_label, single_label"):
        build_task(cfg)


def video(index, classes, probabilities, view_hits=0, error=""):
    return VideoScore(index, f"v{index}.mp4", classes, None if probabilities is None else
                      np.asarray(probabilities, dtype=np.float32), view_hits, 2 if probabilities is not None else 0,
                      error)


SCORES = [  # 3 classes; class 2 has no video
    video(0, [0], [0.9, 0.2, 0.1], view_hits=2),  # best class is its action
    video(1, [0, 1], [0.3, 0.1, 0.4], view_hits=1),  # best class is none of its actions; 0 is 2nd, 1 is 3rd
    video(2, [], [0.5, 0.6, 0.2]),  # no action: no top-k
    video(3, [1], None, error="v3.mp4: not a video"),  # failed
]


@pytest.mark.parametrize("exclude_failed", [False, True])
def test_metrics_are_the_official_map_beside_top_k_over_the_videos_with_actions(exclude_failed):
    metrics = MultiLabel(3).metrics(SCORES, videos=4, views_per_video=2, exclude_failed=exclude_failed, split="test")
    # class 0: ranked v0 (+), v2, v1 (+), v3 -> (1 + 2/3) / 2; class 1: v2, v0, v1 (+), v3 (+, failed: -inf, last)
    class_1 = 1 / 3 if exclude_failed else (1 / 3 + 2 / 4) / 2
    assert metrics["mAP"] == pytest.approx(100 * ((1 + 2 / 3) / 2 + class_1) / 2)
    assert metrics["classes_in_mAP"] == 2
    counted = 2 if exclude_failed else 3  # videos with actions
    assert metrics["top1"] == pytest.approx(100 / counted) and metrics["top5"] == pytest.approx(200 / counted)
    assert metrics["clip_top1"] == pytest.approx(100 * 3 / (2 * counted))
    assert (metrics["failed"], metrics["scored"], metrics["view_combine"]) == (1, 3, "max")


def test_a_constant_predictors_map_ranks_each_classs_videos_in_list_order():
    # class 0's videos are the list's 1st and 2nd (AP 1), class 1's the 2nd and 4th (1/2 and 2/4): the failed v3
    # is as constant as the others
    metrics = MultiLabel(3).metrics(SCORES, videos=4, views_per_video=2, exclude_failed=False, split="test")
    assert metrics["constant_mAP"] == pytest.approx(100 * (1 + (1 / 2 + 2 / 4) / 2) / 2)
    # reversed: class 0 at the 3rd and 4th (1/3, 2/4), class 1 at the 1st and 3rd (1/1, 2/3)
    metrics = MultiLabel(3).metrics(SCORES[::-1], videos=4, views_per_video=2, exclude_failed=False, split="test")
    assert metrics["constant_mAP"] == pytest.approx(100 * ((1 / 3 + 2 / 4) / 2 + (1 + 2 / 3) / 2) / 2)


def test_the_map_matches_scikit_learn_on_scores_without_ties():
    rng = np.random.default_rng(1)
    probabilities, positives = rng.random((40, 5)).astype(np.float32), rng.random((40, 5)) < 0.3
    scores = [video(i, np.flatnonzero(positives[i]).tolist(), probabilities[i]) for i in range(40)]
    metrics = MultiLabel(5).metrics(scores, videos=40, views_per_video=2, exclude_failed=False, split="test")
    expected = np.mean([average_precision_score(positives[:, c], probabilities[:, c]) for c in range(5)])
    assert metrics["mAP"] == pytest.approx(100 * expected, abs=1e-4)


def test_the_report_holds_each_classes_ap_and_the_videos_actions():
    names = ["sit", "stand", "walk"]
    task = MultiLabel(3)
    report = task.report(SCORES, {}, names, exclude_failed=False)
    predictions, per_class = report.tables
    rows = {row[0]: dict(zip(predictions.header, row)) for row in predictions.rows}
    assert (rows["v1.mp4"]["label"], rows["v1.mp4"]["label_names"], rows["v1.mp4"]["top1_class"]) == \
        ("0;1", "sit;stand", "walk")
    assert rows["v1.mp4"]["top1_hit"] == "no" and rows["v0.mp4"]["top1_hit"] == "yes"
    assert rows["v2.mp4"]["label"] == "none" and rows["v3.mp4"]["error"] == "v3.mp4: not a video"
    assert per_class.header == ["class", "name", "videos", "ap"]
    assert [row[2:] for row in per_class.rows] == [[2, "83.33"], [2, "41.67"], [0, ""]]
    [bars] = report.pictures
    assert isinstance(bars, ClassBars) and bars.file == "per_class_ap.png" and list(bars.classes) == ["sit", "stand"]
    np.testing.assert_allclose(bars.values, [100 * 5 / 6, 100 * 5 / 12])
