"""Per-video scores of an evaluation, and the store that keeps them on disk so an interrupted evaluation resumes.

A `VideoScore` is one video's outcome: its views' probabilities combined as the task combines them, rounded as
the store keeps them, and how many of its views were right. With an output folder, every rank appends one JSON
line per video to `scores.rank{r}.jsonl`, flushed after every batch. Reading gathers all such files (written by
any number of processes) and ignores a last line cut short by a kill. The first line of each file describes what
was scored (list file, task, videos, classes, views, frames, a fingerprint of the weights); files that describe
another evaluation are refused with `StaleScoresError` rather than deleted, so scores of two models are never
mixed and none are lost by mistake. The folder must be shared by all ranks.
"""

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
from functools import cached_property
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch

from videonl.data.loader import list_file
from videonl.tasks import Task, task_name
from videonl.tasks.base import TOP_K, ScoreLabel

PROBABILITY_DIGITS = 6  # significant digits kept per probability (float32 holds 6 exactly): half the file size
SCORES_PATTERN = "scores.rank{rank}.jsonl"


class StaleScoresError(RuntimeError):
    """The output folder holds scores of another evaluation (other list, task, classes, views or weights)."""


def _rounded(probabilities: Iterable[float]) -> List[float]:
    return [float(f"{p:.{PROBABILITY_DIGITS}g}") for p in probabilities]


@dataclasses.dataclass
class VideoScore:
    """One video's outcome: its views' combined probabilities (float32 [classes]; None when it could not be
    decoded) and how many of its views ranked one of its classes first (clip-level accuracy). `label` is the
    task's `score_label`: a class index (single-label) or the list of the video's classes (multi-label).

    Probabilities are rounded to PROBABILITY_DIGITS when scored, exactly as the scores file keeps them, so a
    resumed evaluation ranks classes exactly as an uninterrupted one.
    """

    index: int
    path: str
    label: ScoreLabel
    probabilities: Optional[np.ndarray]
    view_hits: int = 0
    views: int = 0
    error: str = ""

    @classmethod
    def from_views(cls, index: int, path: str, label: ScoreLabel, view_probabilities: torch.Tensor,
                   task: Task) -> "VideoScore":
        """From the [views, classes] probabilities of one video's views, combined as `task` combines them."""
        combined = np.asarray(_rounded(task.combine_views(view_probabilities).tolist()), dtype=np.float32)
        best = view_probabilities.argmax(dim=1)
        view_hits = int(sum((best == c).sum() for c in _classes(label)))
        return cls(index, path, label, combined, view_hits, len(view_probabilities))

    @classmethod
    def from_json(cls, line: str) -> "VideoScore":
        record = json.loads(line)
        if record["probabilities"] is not None:
            record["probabilities"] = np.asarray(record["probabilities"], dtype=np.float32)
        return cls(**record)

    def to_json(self) -> str:
        record = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        record["probabilities"] = None if self.failed else _rounded(self.probabilities.tolist())
        return json.dumps(record)

    @property
    def failed(self) -> bool:
        return self.probabilities is None

    @property
    def classes(self) -> Tuple[int, ...]:
        """The video's classes: its one class (single-label) or all of them (multi-label)."""
        return _classes(self.label)

    @cached_property
    def top_classes(self) -> List[int]:
        """The TOP_K most probable classes, best first (equal scores: lower class first)."""
        return np.argsort(-self.probabilities, kind="stable")[:TOP_K].tolist()

    def hit(self, k: int) -> bool:
        """Whether one of the video's classes is among its k best."""
        return not self.failed and any(c in self.top_classes[:k] for c in self.classes)


def _classes(label: ScoreLabel) -> Tuple[int, ...]:
    return (label,) if isinstance(label, int) else tuple(label)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-1 of the parameters and buffers, so that another model's scores in the same folder are noticed."""
    digest = hashlib.sha1()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def scores_meta(cfg, split: str, dataset, model: torch.nn.Module) -> dict:
    """What the scores of an output folder are scores of; a resumed evaluation must match it exactly."""
    return {
        "list": os.path.abspath(list_file(cfg, split)),
        "task": {"name": task_name(dataset.task), **dataset.task.scoring()},
        "videos": len(dataset),
        "classes": cfg.MODEL.NUM_CLASSES,
        "views_per_video": dataset.views_per_video,
        "frames": [cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TARGET_FPS],
        "weights": weights_fingerprint(model),
    }


def _complete_size(path: str) -> int:
    """Bytes of `path` up to its last newline: without a last line cut short by a kill."""
    with open(path, "rb") as f:
        return f.read().rfind(b"\n") + 1


def _complete_lines(path: str) -> List[str]:
    with open(path, "rb") as f:
        return f.read(_complete_size(path)).decode("utf-8").splitlines()


class ScoresStore:
    """The scores files of one output folder, for the evaluation `meta` describes (`scores_meta`)."""

    def __init__(self, folder: str, meta: dict):
        os.makedirs(folder, exist_ok=True)
        self.folder, self.meta = folder, meta

    def read(self) -> Dict[int, VideoScore]:
        """index -> score of every video in the folder's files; raises StaleScoresError when a file's header
        differs from `meta`."""
        scores = {}
        for path in sorted(glob.glob(os.path.join(glob.escape(self.folder), SCORES_PATTERN.format(rank="*")))):
            lines = _complete_lines(path)
            if not lines:
                continue
            header = json.loads(lines[0]).get("meta", {})
            if header != self.meta:
                differing = sorted(key for key in set(self.meta) | set(header)
                                   if header.get(key) != self.meta.get(key))
                raise StaleScoresError(f"{path} holds scores of another evaluation (different "
                                       f"{', '.join(differing)}); delete the scores files or choose another "
                                       f"output folder")
            for line in lines[1:]:
                score = VideoScore.from_json(line)
                scores[score.index] = score
        return scores

    @contextlib.contextmanager
    def writer(self, rank: int) -> Iterator[Callable[[List[VideoScore]], None]]:
        """`with store.writer(rank) as keep:` each `keep(scores)` appends to this rank's file and flushes it.

        The file is first cut back to its last complete line, and headed by `meta` when it is new or empty.
        """
        path = os.path.join(self.folder, SCORES_PATTERN.format(rank=rank))
        kept = 0
        if os.path.exists(path):
            kept = _complete_size(path)
            os.truncate(path, kept)
        with open(path, "a", encoding="utf-8", newline="\n") as log:
            if kept == 0:
                log.write(json.dumps({"meta": self.meta}) + "\n")

            def keep(scores: List[VideoScore]) -> None:
                log.writelines(score.to_json() + "\n" for score in scores)
                log.flush()

            yield keep
