"""Per-video scores of an evaluation, and the store that keeps them on disk so an interrupted evaluation resumes.

A `VideoScore` is one video's outcome: its views' combined probabilities, rounded as the store keeps them, and
how many of its views were right. With an output folder, every rank appends one JSON line per video to
`scores.rank{r}.jsonl`, flushed after every batch. Reading gathers all such files (written by any number of
processes) and ignores a last line cut short by a kill. The first line of each file describes what was scored
(list file, videos, classes, views, frames, a fingerprint of the weights); files that describe another
evaluation are refused with `StaleScoresError` rather than deleted, so scores of two models are never mixed and
none are lost by mistake. The folder must be shared by all ranks.
"""

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
from functools import cached_property
from typing import Callable, Dict, Iterable, Iterator, List, Optional

import numpy as np
import torch

from videonl.data.loader import split_location

TOP_K = 5  # classes kept in a video's ranking: top-1 and top-5 accuracy, the predictions' columns
PROBABILITY_DIGITS = 6  # significant digits kept per probability (float32 holds 6 exactly): half the file size
SCORES_PATTERN = "scores.rank{rank}.jsonl"


class StaleScoresError(RuntimeError):
    """The output folder holds scores of another evaluation (other list, classes, views or weights)."""


def _rounded(probabilities: Iterable[float]) -> List[float]:
    return [float(f"{p:.{PROBABILITY_DIGITS}g}") for p in probabilities]


@dataclasses.dataclass
class VideoScore:
    """One video's outcome: its views' averaged probabilities (float32 [classes]; None when it could not be
    decoded) and how many of its views ranked the label first (clip-level accuracy).

    Probabilities are rounded to PROBABILITY_DIGITS when scored, exactly as the scores file keeps them, so a
    resumed evaluation ranks classes exactly as an uninterrupted one.
    """

    index: int
    path: str
    label: int
    probabilities: Optional[np.ndarray]
    view_hits: int = 0
    views: int = 0
    error: str = ""

    @classmethod
    def from_views(cls, index: int, path: str, label: int, view_probabilities: torch.Tensor) -> "VideoScore":
        """From the [views, classes] softmax of one video's views."""
        average = np.asarray(_rounded(view_probabilities.mean(dim=0).tolist()), dtype=np.float32)
        view_hits = int((view_probabilities.argmax(dim=1) == label).sum())
        return cls(index, path, label, average, view_hits, len(view_probabilities))

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

    @cached_property
    def top_classes(self) -> List[int]:
        """The TOP_K most probable classes, best first (equal scores: lower class first)."""
        return np.argsort(-self.probabilities, kind="stable")[:TOP_K].tolist()

    def hit(self, k: int) -> bool:
        return not self.failed and self.label in self.top_classes[:k]


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-1 of the parameters and buffers, so that another model's scores in the same folder are noticed."""
    digest = hashlib.sha1()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def scores_meta(cfg, split: str, dataset, model: torch.nn.Module) -> dict:
    """What the scores of an output folder are scores of; a resumed evaluation must match it exactly."""
    return {
        "list": split_location(cfg, split),
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
