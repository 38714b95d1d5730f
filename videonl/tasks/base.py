"""The task interface: what a video's label is, and everything that follows from it, layer by layer.

A task is one class registered by name and chosen by TASK.NAME (`registry.build_task`). The package's are
single-label classification (`single_label`: Kinetics, UCF101, the demo) and multi-label classification
(`multi_label`: Charades, or a user's footage with several actions per video). Each layer asks the task what
only the task knows:

  data     `parse_label`: a list line's label field -> the label; `classes_of`: its classes (range checks);
           `clip_target` / `video_target`: what a training clip / a whole video is scored against, an `int` or a
           tensor, which the loader's collation stacks (torch's `default_collate`)
  engine   `loss` (training, the model benchmark); `view_output` -> `view_probabilities`: a test view's
           fully-convolutional windows (the model's `test_logits`) -> its class probabilities; `combine_views`:
           a video's views -> its scores; `score_label`: a video target as the scores store keeps it;
           `metrics`, `result_rows` (the console table) and `report` (the output folder's tables and pictures,
           described as data that `engine.reports` writes and draws)
  export   the graph's output is `view_output`, named `output_name`, described by `output_contract`
  predict  `shown`: which classes `videonl predict` prints unless told otherwise

The model knows nothing of any task: its `forward` gives logits, its `test_logits` logits per window.
"""

import abc
import dataclasses
from typing import Any, List, Optional, Protocol, Sequence, Tuple, Union

import numpy as np
import torch

Target = Union[int, torch.Tensor]  # one clip's or video's target, before collation
ScoreLabel = Union[int, List[int]]  # a video's label as the scores store and the reports keep it (JSON)
Span = Tuple[float, float]  # seconds from the video's start to its first and last sampled frame
TOP_K = 5  # classes kept in a video's ranking: top-1 and top-5, the predictions' columns


class ScoredVideo(Protocol):
    """One video's outcome as metrics and reports read it (the engine's `scores.VideoScore`)."""

    path: str
    label: ScoreLabel
    probabilities: Optional[np.ndarray]  # the combined views' scores [classes]; None: the video failed
    view_hits: int  # views whose best class is one of the video's classes
    views: int
    error: str

    @property
    def failed(self) -> bool: ...

    @property
    def top_classes(self) -> List[int]: ...

    def hit(self, k: int) -> bool: ...


@dataclasses.dataclass(frozen=True)
class Table:
    """A CSV file of an evaluation's output folder: its name, header and rows (cells as `csv.writer` writes
    them)."""

    file: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclasses.dataclass(frozen=True)
class ClassBars:
    """A picture (PNG) of one value per class as bars sorted best to worst, their mean marked."""

    file: str
    classes: Sequence[str]
    values: Sequence[float]  # in %
    title: str
    measure: str  # the value axis, e.g. "top-1 accuracy (%)"
    mean_name: str  # what the mean is called, e.g. "mean class accuracy"


@dataclasses.dataclass(frozen=True)
class ClassMatrix:
    """A picture (PNG) of video counts by true class (rows) and predicted class (columns)."""

    file: str
    counts: np.ndarray
    classes: Sequence[str]


@dataclasses.dataclass(frozen=True)
class Report:
    """What an evaluation leaves in its output folder besides summary.json (the metrics) and the scores:
    tables, pictures, and notes the engine logs (a picture left out, and why)."""

    tables: Tuple[Table, ...]
    pictures: Tuple[Union[ClassBars, ClassMatrix], ...]
    notes: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which classes of a video `videonl predict` shows: the most probable first, at most `top_k` (None: no
    limit), those with a probability of at least `threshold`."""

    top_k: Optional[int]
    threshold: float

    def classes(self, probabilities: np.ndarray) -> List[int]:
        ranked = np.argsort(-probabilities, kind="stable")[:self.top_k]  # equal scores: lower class first
        return [int(c) for c in ranked if probabilities[c] >= self.threshold]

    def __str__(self) -> str:
        limit = f"top-{self.top_k} classes" if self.top_k is not None else "classes"
        return f"{limit} with probability >= {self.threshold:.2f}" if self.threshold > 0 else \
            f"{limit} with probabilities"


def percent(part, whole) -> float:
    """100 x part / whole, and 0 for nothing counted."""
    return 100.0 * float(part) / float(whole) if whole else 0.0


def ranked_header() -> List[str]:
    """predictions.csv's columns of a video's TOP_K best classes."""
    return [f"top{rank}_{field}" for rank in range(1, TOP_K + 1) for field in ("class", "score")]


def ranked_cells(score: ScoredVideo, names: Sequence[str]) -> List[Any]:
    """The TOP_K best classes of a video with their scores, as predictions.csv's cells (blank when it failed)."""
    ranked = [] if score.failed else [(names[c], score.probabilities[c]) for c in score.top_classes[:TOP_K]]
    return [cell for pair in ranked for cell in pair] + [""] * (2 * (TOP_K - len(ranked)))


def videos_row(metrics: dict) -> Tuple[str, str]:
    """The console row of how many videos the list holds, were scored and failed, and how failures count."""
    return ("videos in list / scored / failed", f"{metrics['videos']} / {metrics['scored']} / {metrics['failed']} "
                                                f"(failed videos {metrics['failed_policy']})")


class Task(abc.ABC):
    """A kind of label and all that follows from it; see the module's docstring for who asks what.

    A task class is registered with `@register_task(name, settings=NodeSpec(...))` (its own config node,
    optional) and built by `from_config(cfg)`; it holds plain settings only, so datasets holding it pickle into
    loader workers.
    """

    output_name: str = "output"
    """The exported graph's output name (`view_output`)."""

    shown: Selection = Selection(5, 0.0)
    """The classes `videonl predict` shows of each video unless its options say otherwise."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg) -> "Task":
        """The task of `cfg` (MODEL.NUM_CLASSES, and the task's own node if it has one)."""
        return cls(cfg.MODEL.NUM_CLASSES)

    # ---------------------------------------------------------------------------------------- the data layer

    @abc.abstractmethod
    def parse_label(self, field: str) -> Any:
        """The label field of a list line (the text after the last DATA.LIST_SEPARATOR), parsed; ValueError
        saying what is expected (the list reader adds the file and line)."""

    @abc.abstractmethod
    def classes_of(self, label: Any) -> Tuple[int, ...]:
        """The class indices a parsed label names (checked against MODEL.NUM_CLASSES before a run)."""

    @abc.abstractmethod
    def clip_target(self, label: Any, span: Optional[Span]) -> Target:
        """What a training clip of a video with `label` is scored against; `span` is where the clip lies in the
        video (None when the video's frame rate is unknown)."""

    @abc.abstractmethod
    def video_target(self, label: Any) -> Target:
        """What a whole video (validation, testing) is scored against; `label` None: unknown (prediction), a
        target that no metric reads."""

    @abc.abstractmethod
    def example_targets(self, count: int) -> torch.Tensor:
        """Collated targets of `count` clips, drawn at random from torch's global generator (benchmarks)."""

    # -------------------------------------------------------------------------------------------- the engine

    @abc.abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of the model's `forward` logits [B, classes] against collated targets."""

    @abc.abstractmethod
    def view_output(self, window_logits: torch.Tensor) -> torch.Tensor:
        """[B, classes] of each view from the model's `test_logits` [B, windows, classes] (the windows of the
        fully-convolutional test, one for a model without them): what the exported graph returns."""

    @abc.abstractmethod
    def view_probabilities(self, output: torch.Tensor) -> torch.Tensor:
        """The views' class probabilities [B, classes] from their `view_output`."""

    @abc.abstractmethod
    def output_contract(self) -> str:
        """One line for the exported file: what its output holds and how a video's views are combined."""

    @abc.abstractmethod
    def combine_views(self, probabilities: torch.Tensor) -> torch.Tensor:
        """A video's scores [classes] from its views' probabilities [views, classes]."""

    @abc.abstractmethod
    def score_label(self, target: torch.Tensor) -> ScoreLabel:
        """A video's label, as the scores store and the reports keep it, from its collated video target."""

    def scoring(self) -> dict:
        """The settings that decide a video's scores, besides the task's name (the scores store refuses to
        resume from scores made otherwise)."""
        return {}

    @abc.abstractmethod
    def metrics(self, scores: Sequence[ScoredVideo], *, videos: int, views_per_video: int, exclude_failed: bool,
                split: str) -> dict:
        """The evaluation's metrics (plain JSON values: summary.json, the validation log, `videonl compare`).

        A video that failed to decode counts as wrong unless `exclude_failed`; `videos` is the list's length.
        """

    @abc.abstractmethod
    def result_rows(self, metrics: dict) -> List[Tuple[str, str]]:
        """(what, value) rows of the console table of `metrics`."""

    @abc.abstractmethod
    def report(self, scores: Sequence[ScoredVideo], metrics: dict, names: Sequence[str],
               exclude_failed: bool) -> Report:
        """The tables and pictures of an evaluation's output folder (`names`: class names by index)."""
