"""The single-label task: its metrics from hand-made per-video scores, counted by hand."""

import numpy as np
import pytest

from videonl.engine.scores import VideoScore
from videonl.tasks.single_label import SingleLabel, class_tally, confusion_matrix

CLASSES = 7


def ranked(*order: int) -> np.ndarray:
    """Probabilities ranking the classes in `order` first (the others after them)."""
    probabilities = np.zeros(CLASSES, dtype=np.float32)
    for rank, cls in enumerate(order):
        probabilities[cls] = 0.5 ** (rank + 1)
    return probabilities


# index, label, ranking, view hits of 2 views
SCORES = [
    VideoScore(0, "a.mp4", 0, ranked(0, 1), 2, 2),  # right
    VideoScore(1, "b.mp4", 0, ranked(3, 0), 1, 2),  # label 2nd: top-5 only, predicted 3
    VideoScore(2, "c.mp4", 1, ranked(2, 3, 4, 5, 6, 1), 0, 2),  # label 6th: wrong at top-5, predicted 2
    VideoScore(3, "d.mp4", 2, None, error="d.mp4: not a video"),  # failed
]


def test_the_tally_counts_videos_and_hits_per_true_class():
    assert class_tally(SCORES, CLASSES, exclude_failed=False)[:3].tolist() == [[2, 1, 2], [1, 0, 0], [1, 0, 0]]
    assert class_tally(SCORES, CLASSES, exclude_failed=True)[:3].tolist() == [[2, 1, 2], [1, 0, 0], [0, 0, 0]]


def test_the_confusion_matrix_counts_decoded_videos_by_true_and_predicted_class():
    confusion = confusion_matrix(SCORES, CLASSES)
    assert confusion.sum() == 3 and (confusion[0, 0], confusion[0, 3], confusion[1, 2]) == (1, 1, 1)


@pytest.mark.parametrize("exclude_failed, expected", [
    (False, dict(top1=100 / 4, top5=100 * 2 / 4, clip_top1=100 * 3 / 8, mean_class_accuracy=100 * (1 / 2) / 3,
                 failed_policy="counted as wrong")),
    (True, dict(top1=100 / 3, top5=100 * 2 / 3, clip_top1=100 * 3 / 6, mean_class_accuracy=100 * (1 / 2) / 2,
                failed_policy="excluded")),
])
def test_metrics_count_a_failed_video_as_wrong_at_both_levels_unless_excluded(exclude_failed, expected):
    metrics = SingleLabel(CLASSES).metrics(SCORES, videos=4, views_per_video=2, exclude_failed=exclude_failed,
                                           split="val")
    assert {key: metrics[key] for key in expected} == pytest.approx(expected)
    assert (metrics["videos"], metrics["scored"], metrics["failed"], metrics["split"]) == (4, 3, 1, "val")


def test_nothing_counted_gives_zeros_not_a_division_error():
    metrics = SingleLabel(CLASSES).metrics([], videos=0, views_per_video=1, exclude_failed=False, split="test")
    assert (metrics["top1"], metrics["clip_top1"], metrics["mean_class_accuracy"]) == (0.0, 0.0, 0.0)
