"""Multi-view evaluation: every video of a list scored once; views -> softmax -> average -> top-1 / top-5.

The protocol is the non-local paper's: a test video is cut into TEST.NUM_CLIPS clips x crops views (the
validation split: one centred clip), the softmax of every view is averaged and the average ranks the classes.
Videos that cannot be decoded are counted as wrong (the official protocol divides by the whole list) or, with
TEST.EXCLUDE_FAILED, left out; their number is always reported. Clip-level accuracy (each view scored alone)
is reported beside, never mixed with, the video level.

Resuming: with an output folder, every rank appends one JSON line per video to `scores.rank{r}.jsonl`,
flushed after every batch. A later call with the same folder reads all such files (written by any number of
processes), scores only the videos missing from them and ignores a last line cut short by a kill. The first
line of each file describes what was scored (list file, videos, classes, views, frames, a fingerprint of
the weights); files that describe another evaluation are refused with `StaleScoresError` rather than deleted,
so scores of two models are never mixed and none are lost by mistake. The folder must be shared by all ranks.
"""

import csv
import dataclasses
import glob
import hashlib
import json
import logging
import os
from functools import cached_property
from typing import Dict, Iterable, List, Optional, TextIO

import numpy as np
import torch

from videonl.data.datasets import data_class_names, labels_outside
from videonl.data.loader import build_dataset, build_loader, list_file, view_batches
from videonl.data.transforms import VideoViews
from videonl.engine import distributed, plots
from videonl.engine.runtime import autocast, memory_format
from videonl.progress import progress as progress_bar

logger = logging.getLogger(__name__)

TOP_K = 5
MAX_CONFUSION_CLASSES = 101  # a larger confusion matrix is unreadable as a picture
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


# ---------------------------------------------------------------------------------------------- metrics

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


def _percent(part, whole) -> float:
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
        "top1": _percent(top1_hits, counted),
        "top5": _percent(top5_hits, counted),
        "mean_class_accuracy": float(np.mean(tally[present, 1] / tally[present, 0]) * 100) if present.any() else 0.0,
        "clip_top1": _percent(view_hits, views),
        "videos": videos,
        "scored": len(scores) - failed,
        "failed": failed,
        "failed_policy": "excluded" if exclude_failed else "counted as wrong",
        "views_per_video": views_per_video,
    }


def format_results(metrics: dict) -> str:
    """A small aligned table for the console; clip-level accuracy is labelled as such, apart from video level."""
    views = metrics["views_per_video"]
    rows = [
        (f"video top-1 (softmax averaged over {views} view{'s' if views > 1 else ''})", f"{metrics['top1']:6.2f} %"),
        ("video top-5", f"{metrics['top5']:6.2f} %"),
        ("mean class accuracy (video top-1)", f"{metrics['mean_class_accuracy']:6.2f} %"),
        ("clip top-1 (each view alone, not video level)", f"{metrics['clip_top1']:6.2f} %"),
        ("videos in list / scored / failed", f"{metrics['videos']} / {metrics['scored']} / {metrics['failed']} "
                                             f"(failed videos {metrics['failed_policy']})"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join([f"Evaluation of split '{metrics['split']}'"] + lines)


# ------------------------------------------------------------------------------------------ scores files

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


def read_scores(out_dir: str, meta: dict) -> Dict[int, VideoScore]:
    """index -> score of every video in the folder's `scores.rank*.jsonl` files; raises StaleScoresError when
    a file's header differs from `meta`."""
    scores = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(out_dir), SCORES_PATTERN.format(rank="*")))):
        lines = _complete_lines(path)
        if not lines:
            continue
        header = json.loads(lines[0]).get("meta", {})
        if header != meta:
            differing = sorted(key for key in set(meta) | set(header) if header.get(key) != meta.get(key))
            raise StaleScoresError(f"{path} holds scores of another evaluation (different {', '.join(differing)});"
                                   f" delete the scores files or choose another output folder")
        for line in lines[1:]:
            score = VideoScore.from_json(line)
            scores[score.index] = score
    return scores


def open_scores_log(path: str, meta: dict) -> TextIO:
    """This rank's scores file for appending, cut back to its last complete line, headed by `meta`."""
    kept = 0
    if os.path.exists(path):
        kept = _complete_size(path)
        os.truncate(path, kept)
    log = open(path, "a", encoding="utf-8", newline="\n")
    if kept == 0:
        log.write(json.dumps({"meta": meta}) + "\n")
    return log


def append_scores(log: TextIO, scores: List[VideoScore]) -> None:
    log.writelines(score.to_json() + "\n" for score in scores)
    log.flush()


# --------------------------------------------------------------------------------------------- scoring

def view_probabilities(model: torch.nn.Module, views: List[VideoViews], cfg, device: torch.device) -> torch.Tensor:
    """[videos, views, classes] softmax of the model's `test_logits` on the views of loader videos
    (batch["views"]), on the CPU (with the fully-convolutional head, each view's softmax averaged over its
    windows)."""
    outputs = []
    for chunk in view_batches(views, cfg, device, memory_format(cfg)):
        with autocast(cfg, device):
            logits = model.test_logits(chunk)
        outputs.append(logits.float().softmax(dim=-1).cpu())
    return torch.cat(outputs).view(len(views), len(views[0]), -1)


def score_batch(model: torch.nn.Module, batch: dict, records, cfg, device: torch.device) -> List[VideoScore]:
    """The VideoScore of every video of a val / test loader batch, in batch order."""
    decoded = iter(view_probabilities(model, batch["views"], cfg, device)) if batch["valid"].any() else iter(())
    scores = []
    for index, label, valid, error in zip(batch["index"].tolist(), batch["label"].tolist(),
                                          batch["valid"].tolist(), batch["error"]):
        path = records[index].path
        scores.append(VideoScore.from_views(index, path, label, next(decoded)) if valid
                      else VideoScore(index, path, label, None, error=error))
    return scores


def _check_labels(dataset, num_classes: int, list_path: str) -> None:
    for record in labels_outside(dataset.records, num_classes)[:1]:
        raise ValueError(f"{list_path}: label {record.label} of {record.path} is outside 0..{num_classes - 1}"
                         f" (MODEL.NUM_CLASSES {num_classes})")


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel, whose forward would wait on ranks with fewer batches."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _score_remaining(model, cfg, split, device, remaining: List[int], log: Optional[TextIO],
                     progress: bool) -> List[VideoScore]:
    loader = build_loader(cfg, split, indices=remaining)
    bar = progress_bar(total=len(loader.sampler), unit="video", desc=f"evaluating {split}",
                       disable=not (progress and distributed.is_main_process()))
    scores = []
    with bar, torch.no_grad():
        for batch in loader:
            batch_scores = score_batch(model, batch, loader.dataset.records, cfg, device)
            if log is not None:
                append_scores(log, batch_scores)
            scores.extend(batch_scores)
            bar.update(len(batch_scores))
    return scores


def evaluate(model: torch.nn.Module, cfg, split: str = "test", device: torch.device = torch.device("cpu"),
             out_dir: Optional[str] = None, progress: bool = True) -> dict:
    """Score every video of `split` ("test": TEST.SPLIT list with TEST.NUM_CLIPS x crops views; "val": DATA.VAL_SPLIT,
    one centred clip) and return the metrics (same dict on every rank).

    Each rank scores its shard; results are gathered so every rank computes the same metrics. With `out_dir`,
    scores are kept per video for resuming (see the module's docstring) and rank 0 writes predictions.csv,
    per_class.csv, summary.json and the pictures there. The model's train / eval mode is restored at the end.
    """
    model = _unwrapped(model)
    dataset = build_dataset(cfg, split)
    _check_labels(dataset, cfg.MODEL.NUM_CLASSES, list_file(cfg, split))
    log, earlier = None, {}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        meta = scores_meta(cfg, split, dataset, model)
        earlier = read_scores(out_dir, meta)
        distributed.barrier()  # every rank has read the same files before any rank appends to its own
        log = open_scores_log(os.path.join(out_dir, SCORES_PATTERN.format(rank=distributed.rank())), meta)
    remaining = [index for index in range(len(dataset)) if index not in earlier]
    if distributed.is_main_process():
        logger.info("evaluating %s: %d videos, %d views each", split, len(dataset), dataset.views_per_video)
        if earlier:
            logger.info("resuming: %d videos already scored in %s, %d left", len(earlier), out_dir, len(remaining))
    was_training = model.training
    model.eval()
    try:
        new = _score_remaining(model, cfg, split, device, remaining, log, progress)
    finally:
        model.train(was_training)
        if log is not None:
            log.close()
    scores = dict(earlier)
    for rank_scores in distributed.all_gather_objects(new):
        scores.update((score.index, score) for score in rank_scores)
    ordered = [scores[index] for index in sorted(scores)]
    metrics = compute_metrics(ordered, num_classes=cfg.MODEL.NUM_CLASSES, videos=len(dataset),
                              views_per_video=dataset.views_per_video, exclude_failed=cfg.TEST.EXCLUDE_FAILED,
                              split=split)
    if out_dir and distributed.is_main_process():
        write_reports(out_dir, ordered, metrics, class_names(cfg), cfg.TEST.EXCLUDE_FAILED)
    distributed.barrier()  # the reports exist when any rank returns
    return metrics


# --------------------------------------------------------------------------------------------- reports

def class_names(cfg) -> List[str]:
    """Names by class index from the data folder's classes.json (see `data_class_names`), else "class i"."""
    names = (data_class_names(cfg) or [])[:cfg.MODEL.NUM_CLASSES]
    return names + [f"class {i}" for i in range(len(names), cfg.MODEL.NUM_CLASSES)]


def _write_csv(path: str, header: List[str], rows: Iterable[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_predictions(path: str, scores: List[VideoScore], names: List[str]) -> None:
    """One row per video: label, the five best classes with their averaged probabilities, top-1 correct."""
    header = ["path", "label", "label_name"]
    for rank in range(1, TOP_K + 1):
        header += [f"top{rank}_class", f"top{rank}_score"]
    header += ["correct", "error"]

    def row(score: VideoScore) -> list:
        ranked = [] if score.failed else [(names[c], score.probabilities[c]) for c in score.top_classes]
        cells = [cell for pair in ranked for cell in pair] + [""] * (2 * (TOP_K - len(ranked)))
        return [score.path, score.label, names[score.label], *cells, "yes" if score.hit(1) else "no", score.error]

    _write_csv(path, header, (row(score) for score in scores))


def _per_class_rows(tally: np.ndarray, names: List[str]) -> Iterable[list]:
    for index, (videos, top1, top5) in enumerate(tally):
        accuracy = [f"{_percent(top1, videos):.2f}", f"{_percent(top5, videos):.2f}"] if videos else ["", ""]
        yield [index, names[index], int(videos), *accuracy]


def write_reports(out_dir: str, scores: List[VideoScore], metrics: dict, names: List[str],
                  exclude_failed: bool) -> None:
    """predictions.csv, per_class.csv, summary.json and the per-class / confusion pictures."""
    write_predictions(os.path.join(out_dir, "predictions.csv"), scores, names)
    tally = class_tally(scores, len(names), exclude_failed)
    _write_csv(os.path.join(out_dir, "per_class.csv"), ["class", "name", "videos", "top1", "top5"],
               _per_class_rows(tally, names))
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    present = np.flatnonzero(tally[:, 0])
    plots.plot_per_class_accuracy([names[i] for i in present], 100.0 * tally[present, 1] / tally[present, 0],
                                  os.path.join(out_dir, "per_class_accuracy.png"))
    if len(names) <= MAX_CONFUSION_CLASSES:
        plots.plot_confusion_matrix(confusion_matrix(scores, len(names)), names,
                                    os.path.join(out_dir, "confusion_matrix.png"))
    else:
        logger.info("confusion_matrix.png skipped: %d classes (pictures are drawn up to %d)", len(names),
                    MAX_CONFUSION_CLASSES)
