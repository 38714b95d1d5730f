"""Evaluation metrics from per-video scores: top-1 / top-5 at video level, mean class accuracy, clip level.

A video that could not be decoded counts as wrong (the official protocol divides by the whole list) unless
TEST.EXCLUDE_FAILED leaves it out; the number of failed videos is always reported. Clip-level accuracy (each
view scored alone) stands beside, never mixed with, the video level.
"""

from typing import Iterable, List

import numpy as np

from videonl.engine.scores import TOP_K, VideoScore


def class_tally(scores: Iterable[VideoScore], num_classes: int, exclude_failed: bool) -> np.ndarray:
    """[classes, 3] int: videos counted, top-1 hits, top-5 hits of each true class."""
    tally = np.zeros((num_classes, 3), dtype=np.int64)
    for score in scores:
        if not (score.failed and exclude_failed):
            tally[score.label] += (1, score.hit(1), score.hit(TOP_K))
    return tally


def confusion_matrix(scores: Iterable[VideoScore], num_classes: int) -> np.ndarray:
    """[true class, predicted class] counts of the videos that were decoded."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for score in scores:
        if not score.failed:
            confusion[score.label, score.top_classes[0]] += 1
    return confusion


def percent(part, whole) -> float:
    """100 x part / whole, and 0 for nothing counted."""
    return 100.0 * float(part) / float(whole) if whole else 0.0


def compute_metrics(scores: List[VideoScore], *, num_classes: int, videos: int, views_per_video: int,
                    exclude_failed: bool, split: str) -> dict:
    """The metrics dict of `evaluate` from per-video scores (plain Python values, JSON-serialisable).

    A failed video counts as wrong at both levels unless excluded: at clip level as `views_per_video` wrong
    views, so that the two levels always divide the same videos.
    """
    tally = class_tally(scores, num_classes, exclude_failed)
    counted, top1_hits, top5_hits = tally.sum(axis=0)
    present = tally[:, 0] > 0
    failed = sum(score.failed for score in scores)
    counted_failed = 0 if exclude_failed else failed
    view_hits = sum(score.view_hits for score in scores)
    views = sum(score.views for score in scores) + counted_failed * views_per_video
    return {
        "split": split,
        "top1": percent(top1_hits, counted),
        "top5": percent(top5_hits, counted),
        "mean_class_accuracy": float(np.mean(tally[present, 1] / tally[present, 0]) * 100) if present.any() else 0.0,
        "clip_top1": percent(view_hits, views),
        "videos": videos,
        "scored": len(scores) - failed,
        "failed": failed,
        "failed_policy": "excluded" if exclude_failed else "counted as wrong",
        "views_per_video": views_per_video,
    }
