"""Single-label classification, the non-local paper's Kinetics protocol: one class per video.

Training: softmax cross-entropy of the clip's logits against the video's class. Testing: each view's class
probabilities are the softmax averaged over its fully-convolutional windows, a video's are the mean over its
views (NL-paper sec. 4.1 and the official code's test), and the metrics are video-level top-1 / top-5, the
mean class accuracy and, apart from them, clip-level top-1 (each view alone). A video that could not be decoded
counts as wrong (the official protocol divides by the whole list) unless TEST.EXCLUDE_FAILED leaves it out; the
number of failed videos is always reported.
"""

import math
from typing import Iterable, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from videonl.tasks.base import (TOP_K, ClassBars, ClassMatrix, Report, ScoredVideo, Selection, Table, Task, percent,
                                ranked_cells, ranked_header, videos_row)
from videonl.tasks.registry import register_task

MAX_CONFUSION_CLASSES = 101  # a larger confusion matrix is unreadable as a picture


def parse_class_index(field: str) -> int:
    """A class index, as single-label lists hold it (a negative one is read, and named by the range check)."""
    if not field.strip().lstrip("-").isdigit():
        raise ValueError(f"label {field!r} is not a class index")
    return int(field)


def class_tally(scores: Iterable[ScoredVideo], num_classes: int, exclude_failed: bool) -> np.ndarray:
    """[classes, 3] int: videos counted, top-1 hits, top-5 hits of each true class."""
    tally = np.zeros((num_classes, 3), dtype=np.int64)
    for score in scores:
        if not (score.failed and exclude_failed):
            tally[score.label] += (1, score.hit(1), score.hit(TOP_K))
    return tally


def confusion_matrix(scores: Iterable[ScoredVideo], num_classes: int) -> np.ndarray:
    """[true class, predicted class] counts of the videos that were decoded."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for score in scores:
        if not score.failed:
            confusion[score.label, score.top_classes[0]] += 1
    return confusion


@register_task("single_label")
class SingleLabel(Task):
    """One class per video: the label field is a class index; softmax cross-entropy; softmax views, averaged."""

    output_name = "logits"
    shown = Selection(TOP_K, 0.0)

    def parse_label(self, field: str) -> int:
        return parse_class_index(field)

    def classes_of(self, label: int) -> Tuple[int, ...]:
        return (label,)

    def clip_target(self, label: int, span) -> int:
        return label

    def video_target(self, label) -> int:
        return -1 if label is None else label

    def example_targets(self, count: int) -> torch.Tensor:
        return torch.randint(self.num_classes, (count,))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def view_output(self, window_logits: torch.Tensor) -> torch.Tensor:
        """The log of the windows' averaged softmax (logsumexp of their log-softmax, less log windows: exact),
        so that its softmax is that average; one window's logits as they are (the same softmax)."""
        windows = window_logits.shape[1]
        if windows == 1:
            return window_logits[:, 0]
        return torch.logsumexp(window_logits.log_softmax(dim=-1), dim=1) - math.log(windows)

    def view_probabilities(self, output: torch.Tensor) -> torch.Tensor:
        return output.softmax(dim=-1)

    def output_contract(self) -> str:
        return f"logits: [B, {self.num_classes}]; average their softmax over a video's views"

    def combine_views(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities.mean(dim=0)

    def score_label(self, target: torch.Tensor) -> int:
        return int(target)

    def metrics(self, scores: Sequence[ScoredVideo], *, videos: int, views_per_video: int, exclude_failed: bool,
                split: str) -> dict:
        """Video top-1 / top-5, mean class accuracy, clip top-1. A failed video counts as wrong at both levels
        unless excluded: at clip level as `views_per_video` wrong views, so the two levels divide the same
        videos."""
        tally = class_tally(scores, self.num_classes, exclude_failed)
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
            "mean_class_accuracy": float(np.mean(tally[present, 1] / tally[present, 0]) * 100) if present.any()
            else 0.0,
            "clip_top1": percent(view_hits, views),
            "videos": videos,
            "scored": len(scores) - failed,
            "failed": failed,
            "failed_policy": "excluded" if exclude_failed else "counted as wrong",
            "views_per_video": views_per_video,
        }

    def result_rows(self, metrics: dict) -> List[Tuple[str, str]]:
        """Clip-level accuracy is labelled as such, apart from the video level."""
        views = metrics["views_per_video"]
        return [
            (f"video top-1 (softmax averaged over {views} view{'s' if views > 1 else ''})",
             f"{metrics['top1']:6.2f} %"),
            ("video top-5", f"{metrics['top5']:6.2f} %"),
            ("mean class accuracy (video top-1)", f"{metrics['mean_class_accuracy']:6.2f} %"),
            ("clip top-1 (each view alone, not video level)", f"{metrics['clip_top1']:6.2f} %"),
            videos_row(metrics),
        ]

    def report(self, scores: Sequence[ScoredVideo], metrics: dict, names: Sequence[str],
               exclude_failed: bool) -> Report:
        """predictions.csv (label, the five best classes, right or not), per_class.csv (top-1 / top-5 of each
        class), the per-class accuracy bars and, up to MAX_CONFUSION_CLASSES classes, the confusion matrix."""
        predictions = Table("predictions.csv", ["path", "label", "label_name", *ranked_header(), "correct", "error"],
                            [[score.path, score.label, names[score.label], *ranked_cells(score, names),
                              "yes" if score.hit(1) else "no", score.error] for score in scores])
        tally = class_tally(scores, len(names), exclude_failed)
        per_class = Table("per_class.csv", ["class", "name", "videos", "top1", "top5"],
                          [[index, names[index], int(videos),
                            *([f"{percent(top1, videos):.2f}", f"{percent(top5, videos):.2f}"] if videos else ["", ""])]
                           for index, (videos, top1, top5) in enumerate(tally)])
        present = np.flatnonzero(tally[:, 0])
        pictures = [ClassBars("per_class_accuracy.png", [names[i] for i in present],
                              100.0 * tally[present, 1] / tally[present, 0],
                              "Top-1 accuracy per class (video level), best to worst", "top-1 accuracy (%)",
                              "mean class accuracy")]
        notes = []
        if len(names) <= MAX_CONFUSION_CLASSES:
            pictures.append(ClassMatrix("confusion_matrix.png", confusion_matrix(scores, len(names)), names))
        else:
            notes.append(f"confusion_matrix.png skipped: {len(names)} classes (pictures are drawn up to "
                         f"{MAX_CONFUSION_CLASSES})")
        return Report((predictions, per_class), tuple(pictures), tuple(notes))
