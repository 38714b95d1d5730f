"""What an evaluation shows and leaves behind: the console table, summary.json, and the task's tables and
pictures (single-label: predictions.csv, per_class.csv, per-class accuracy and the confusion matrix;
multi-label: predictions.csv, per_class.csv with each class's AP, and the per-class AP bars)."""

import csv
import json
import logging
import os
from typing import List, Sequence

from videonl.data.datasets import data_class_names
from videonl.engine import plots
from videonl.engine.scores import VideoScore
from videonl.tasks import Task
from videonl.tasks.base import ClassBars, ClassMatrix, Table

logger = logging.getLogger(__name__)


def format_results(metrics: dict, task: Task) -> str:
    """A small aligned table for the console, of the rows the task shows of its metrics."""
    rows = task.result_rows(metrics)
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join([f"Evaluation of split '{metrics['split']}'"] + lines)


def class_names(cfg) -> List[str]:
    """Names by class index from the data folder's classes.json (see `data_class_names`), else "class i"."""
    names = (data_class_names(cfg) or [])[:cfg.MODEL.NUM_CLASSES]
    return names + [f"class {i}" for i in range(len(names), cfg.MODEL.NUM_CLASSES)]


def write_table(out_dir: str, table: Table) -> None:
    with open(os.path.join(out_dir, table.file), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.header)
        writer.writerows(table.rows)


def draw(out_dir: str, picture) -> None:
    """A picture the task describes, as a PNG file of the output folder."""
    path = os.path.join(out_dir, picture.file)
    if isinstance(picture, ClassBars):
        plots.plot_class_bars(picture.classes, picture.values, path, title=picture.title, measure=picture.measure,
                              mean_name=picture.mean_name)
    elif isinstance(picture, ClassMatrix):
        plots.plot_confusion_matrix(picture.counts, picture.classes, path)
    else:
        raise TypeError(f"no drawing for a {type(picture).__name__}")


def write_reports(out_dir: str, scores: Sequence[VideoScore], metrics: dict, names: List[str], exclude_failed: bool,
                  task: Task) -> None:
    """summary.json (the metrics) and the task's report: its tables and pictures."""
    report = task.report(scores, metrics, names, exclude_failed)
    for table in report.tables:
        write_table(out_dir, table)
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    for picture in report.pictures:
        draw(out_dir, picture)
    for note in report.notes:
        logger.info("%s", note)
