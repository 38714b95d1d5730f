"""Multi-label classification (Charades): a video holds several actions, each a class with a start and an end.

The choices follow the non-local paper's Charades protocol (NL-paper sec. 6.2: a per-category sigmoid output,
fine-tuned from Kinetics) as PySlowFast runs it (configs/Charades/*.yaml: DATA.MULTI_LABEL, MODEL.LOSS_FUNC
bce_logit, MODEL.HEAD_ACT sigmoid, DATA.ENSEMBLE_METHOD max), and the official classification evaluation:

- list files: the label field is `none` (no action) or `;`-separated actions, each `CLASS:START:END` (seconds)
  or `CLASS` (the whole video), e.g. `92:11.90:21.20;147:0.00:12.60` or `3;17`;
- a training clip's target is multi-hot: the classes of the actions its frames overlap (MULTI_LABEL.CLIP_LABELS
  overlap: PySlowFast's `datasets/charades.py` joins the labels of the frames from the clip's first to its last
  sampled frame) or all the video's (`video`); validation and testing score the whole video's classes, as
  PySlowFast's `convert_to_video_level_labels` does outside training;
- the loss is binary cross-entropy of each class's logit (sigmoid);
- a test view's probabilities are each class's sigmoid averaged over the view's fully-convolutional windows
  (PySlowFast's `ResNetBasicHead`: the activation, then the mean over positions); a video's are the max over
  its views (MULTI_LABEL.VIEW_COMBINE max, PySlowFast's Charades configs) or their mean (`mean`: MMAction2's
  `average_clips='prob'`);
- the metric is mAP as `Charades_v1_classify.m` computes it (`average_precision`); a video that failed to decode
  scores -inf for every class unless TEST.EXCLUDE_FAILED, as the official code scores a missing one. Top-1 /
  top-5 (the video's best class, or one of its five best, is one of its actions) are reported beside it over
  the videos with actions, and the mAP of a constant predictor, which scores every video alike (the official
  stable sort then ranks each class's videos in list order): the floor a model must beat, near each class's
  share of videos rather than 0.
"""

import math
import re
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from videonl.config import ConfigError, NodeSpec
from videonl.tasks.average_precision import mean_average_precision
from videonl.tasks.base import (ClassBars, Report, ScoredVideo, Selection, Span, Table, Task, percent, ranked_cells,
                                ranked_header, videos_row)
from videonl.tasks.registry import register_task

VIEW_COMBINATIONS = ("max", "mean")
CLIP_LABELS = ("overlap", "video")
NO_ACTION = "none"
SETTINGS = NodeSpec(
    "MULTI_LABEL",
    VIEW_COMBINE=("max", "a video's scores from its views': max (PySlowFast's Charades configs) | mean (MMAction2)"),
    CLIP_LABELS=("overlap", "a training clip's classes: overlap (actions its frames overlap, PySlowFast) | video"),
    THRESHOLD=(0.5, "videonl predict shows the classes whose probability reaches this"),
)
_ACTION = re.compile(r"(\d+)(?::(\d+(?:\.\d*)?):(\d+(?:\.\d*)?))?")
_FORMAT = "'none' or ';'-separated actions CLASS or CLASS:START:END in seconds (e.g. 3;17 or 92:11.90:21.20)"


class Action(NamedTuple):
    """One action of a video: its class and its time in seconds (the whole video: 0 to infinity)."""

    class_index: int
    start: float = 0.0
    end: float = math.inf


def parse_actions(field: str) -> Tuple[Action, ...]:
    """The actions of a multi-label list's label field (the module's docstring gives the format)."""
    text = field.strip()
    if text == NO_ACTION:
        return ()
    actions = []
    for item in text.split(";"):
        match = _ACTION.fullmatch(item)
        if not match:
            raise ValueError(f"label {field!r}: action {item!r} is not CLASS or CLASS:START:END; expected {_FORMAT}")
        index, start, end = match.groups()
        if start is None:
            actions.append(Action(int(index)))
        elif float(start) > float(end):
            raise ValueError(f"label {field!r}: action {item!r} ends before it starts")
        else:
            actions.append(Action(int(index), float(start), float(end)))
    return tuple(actions)


def format_actions(actions: Sequence[Action]) -> str:
    """The label field of `actions`, which `parse_actions` reads back: `none`, or `;`-separated `CLASS:START:END`
    (`CLASS` for an action over the whole video), each time the shortest decimal that reads back as its float."""
    def seconds(value: float) -> str:
        return np.format_float_positional(value, trim="-")

    return ";".join(str(a.class_index) if (a.start, a.end) == (0.0, math.inf) else
                    f"{a.class_index}:{seconds(a.start)}:{seconds(a.end)}" for a in actions) or NO_ACTION


def classes_in(actions: Iterable[Action], span: Optional[Span] = None) -> Tuple[int, ...]:
    """The sorted classes of the actions, or of those that overlap `span` (start and end in seconds)."""
    return tuple(sorted({a.class_index for a in actions if span is None or (a.start <= span[1] and a.end >= span[0])}))


@register_task("multi_label", SETTINGS)
class MultiLabel(Task):
    """Several actions per video: per-class sigmoid, binary cross-entropy, max (or mean) over views, mAP."""

    output_name = "probabilities"
    exclusive = False

    def __init__(self, num_classes: int, view_combine: str = "max", clip_labels: str = "overlap",
                 threshold: float = 0.5):
        super().__init__(num_classes)
        if view_combine not in VIEW_COMBINATIONS:
            raise ConfigError(f"MULTI_LABEL.VIEW_COMBINE '{view_combine}' is not one of {', '.join(VIEW_COMBINATIONS)}")
        if clip_labels not in CLIP_LABELS:
            raise ConfigError(f"MULTI_LABEL.CLIP_LABELS '{clip_labels}' is not one of {', '.join(CLIP_LABELS)}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"MULTI_LABEL.THRESHOLD {threshold} is not a probability in [0, 1]")
        self.view_combine, self.clip_labels = view_combine, clip_labels
        self.shown = Selection(None, threshold)

    @classmethod
    def from_config(cls, cfg) -> "MultiLabel":
        settings = SETTINGS.read(cfg)
        return cls(cfg.MODEL.NUM_CLASSES, settings.VIEW_COMBINE, settings.CLIP_LABELS, settings.THRESHOLD)

    def parse_label(self, field: str) -> Tuple[Action, ...]:
        return parse_actions(field)

    def classes_of(self, label: Tuple[Action, ...]) -> Tuple[int, ...]:
        return classes_in(label)

    def _multi_hot(self, classes: Sequence[int]) -> torch.Tensor:
        target = torch.zeros(self.num_classes)
        target[list(classes)] = 1.0
        return target

    def clip_target(self, label: Tuple[Action, ...], span: Optional[Span]) -> torch.Tensor:
        return self._multi_hot(classes_in(label, span if self.clip_labels == "overlap" else None))

    def video_target(self, label: Optional[Tuple[Action, ...]]) -> torch.Tensor:
        return self._multi_hot(classes_in(label or ()))

    def example_targets(self, count: int) -> torch.Tensor:
        return torch.randint(0, 2, (count, self.num_classes)).float()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets)

    def view_output(self, window_logits: torch.Tensor) -> torch.Tensor:
        """Each class's sigmoid averaged over the view's windows."""
        return window_logits.sigmoid().mean(dim=1)

    def view_probabilities(self, output: torch.Tensor) -> torch.Tensor:
        return output

    def output_contract(self) -> str:
        return (f"probabilities: [B, {self.num_classes}], each class's sigmoid; combine a video's views by their "
                f"{self.view_combine}")

    def combine_views(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities.amax(dim=0) if self.view_combine == "max" else probabilities.mean(dim=0)

    def score_label(self, target: torch.Tensor) -> List[int]:
        return torch.flatten(torch.nonzero(target)).tolist()

    def scoring(self) -> dict:
        return {"view_combine": self.view_combine}

    def _ranked(self, scores: Sequence[ScoredVideo], exclude_failed: bool) -> Tuple[list, np.ndarray, np.ndarray]:
        """(videos counted, their scores [videos, classes] with -inf for a failed one, their classes as bools)."""
        counted = [score for score in scores if not (score.failed and exclude_failed)]
        probabilities = np.full((len(counted), self.num_classes), -np.inf)
        positives = np.zeros((len(counted), self.num_classes), dtype=bool)
        for row, score in enumerate(counted):
            if not score.failed:
                probabilities[row] = score.probabilities
            positives[row, score.label] = True
        return counted, probabilities, positives

    def metrics(self, scores: Sequence[ScoredVideo], *, videos: int, views_per_video: int, exclude_failed: bool,
                split: str) -> dict:
        counted, probabilities, positives = self._ranked(scores, exclude_failed)
        mean_ap, per_class = mean_average_precision(probabilities, positives)
        constant_map, _ = mean_average_precision(np.zeros(probabilities.shape), positives)
        with_actions = [score for score in counted if score.label]
        views = sum(score.views if not score.failed else views_per_video for score in with_actions)
        failed = sum(score.failed for score in scores)
        return {
            "split": split,
            "mAP": 100.0 * mean_ap,
            # every video scored alike, so each class's videos rank in list order: the floor a model must beat
            "constant_mAP": 100.0 * constant_map,
            "classes_in_mAP": int((~np.isnan(per_class)).sum()),
            "top1": percent(sum(score.hit(1) for score in with_actions), len(with_actions)),
            "top5": percent(sum(score.hit(5) for score in with_actions), len(with_actions)),
            "clip_top1": percent(sum(score.view_hits for score in with_actions), views),
            "videos": videos,
            "scored": len(scores) - failed,
            "failed": failed,
            "failed_policy": "excluded" if exclude_failed else "counted as wrong",
            "views_per_video": views_per_video,
            "view_combine": self.view_combine,
        }

    def result_rows(self, metrics: dict) -> List[Tuple[str, str]]:
        views = metrics["views_per_video"]
        return [
            (f"mAP ({metrics['classes_in_mAP']} classes with actions; {metrics['view_combine']} over {views} "
             f"view{'s' if views > 1 else ''})", f"{metrics['mAP']:6.2f} %"),
            ("video top-1 (best class is one of the video's actions)", f"{metrics['top1']:6.2f} %"),
            ("video top-5 (one of the 5 best is)", f"{metrics['top5']:6.2f} %"),
            ("clip top-1 (each view alone, not video level)", f"{metrics['clip_top1']:6.2f} %"),
            videos_row(metrics),
        ]

    def report(self, scores: Sequence[ScoredVideo], metrics: dict, names: Sequence[str],
               exclude_failed: bool) -> Report:
        """predictions.csv (the video's classes, its five best, whether the best is one of them),
        per_class.csv (videos with the class and its AP) and the per-class AP bars (no confusion matrix: a
        video has no one true class)."""
        predictions = Table("predictions.csv", ["path", "label", "label_names", *ranked_header(), "top1_hit", "error"],
                            [[score.path, ";".join(map(str, score.label)) or NO_ACTION,
                              ";".join(names[c] for c in score.label), *ranked_cells(score, names),
                              "yes" if score.hit(1) else "no", score.error] for score in scores])
        _, probabilities, positives = self._ranked(scores, exclude_failed)
        _, per_class = mean_average_precision(probabilities, positives)
        per_class_table = Table("per_class.csv", ["class", "name", "videos", "ap"],
                                [[index, names[index], int(positives[:, index].sum()),
                                  "" if math.isnan(ap) else f"{100 * ap:.2f}"] for index, ap in enumerate(per_class)])
        measured = np.flatnonzero(~np.isnan(per_class))
        bars = ClassBars("per_class_ap.png", [names[i] for i in measured], 100.0 * per_class[measured],
                         "Average precision per class (video level), best to worst", "AP (%)", "mAP")
        return Report((predictions, per_class_table), (bars,))
