"""What an evaluation shows and leaves behind: the console table, predictions.csv, per_class.csv, summary.json
and the per-class and confusion pictures."""

import csv
import json
import logging
import os
from typing import Iterable, List

import numpy as np

from videonl.data.datasets import data_class_names
from videonl.engine import plots
from videonl.engine.metrics import class_tally, confusion_matrix, percent
from videonl.engine.scores import TOP_K, VideoScore

logger = logging.getLogger(__name__)

MAX_CONFUSION_CLASSES = 101  # a larger confusion matrix is unreadable as a picture


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
        accuracy = [f"{percent(top1, videos):.2f}", f"{percent(top5, videos):.2f}"] if videos else ["", ""]
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
