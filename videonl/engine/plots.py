"""Report pictures: training curves, a value per class (accuracy, AP) and the confusion matrix, as PNG files.

Figures are built with matplotlib's object interface (`Figure`, rendered by Agg), so no pyplot state or
display backend is involved and the functions are safe in any process. Each `*_figure` function builds a
picture (so what it draws can be read back from its axes) and the matching `plot_*` saves it.
"""

import json
import os
from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np

MAX_NAMED_CLASSES = 101  # above this, class names are not drawn as tick labels (they would overlap)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure, png_path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    figure.savefig(png_path, dpi=100)
    return png_path


def _tick_font_size(count: int) -> float:
    """Small enough for `count` names side by side, never below readable."""
    return max(5.0, min(10.0, 600.0 / max(count, 1)))


def read_metrics(metrics_jsonl: str) -> Dict[str, List[dict]]:
    """The records of each split ("train", "val", ...), sorted by iteration, one per iteration: the last one
    written, since a resumed run repeats the iterations after its checkpoint. Lines that are not JSON
    (a write cut short) are skipped."""
    latest = {}
    with open(metrics_jsonl, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "split" in record and "iter" in record:
                latest[(record["split"], record["iter"])] = record
    by_split = defaultdict(list)
    for (split, _), record in sorted(latest.items(), key=lambda item: item[0][1]):
        by_split[split].append(record)
    return dict(by_split)


def _series(records: List[dict], key: str):
    """(iterations, values) of the records that hold a number under `key`."""
    points = [(r["iter"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def _show_nothing(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="grey")


VALIDATION_CURVES = (("mAP", "mAP"), ("top1", "top-1"), ("top5", "top-5"))  # key in metrics.jsonl, label


def training_curves_figure(metrics_jsonl: str):
    """Training loss, learning rate and the validation metrics (mAP of a multi-label task, top-1 / top-5)
    against iterations, side by side."""
    records = read_metrics(metrics_jsonl)
    train, val = records.get("train", []), records.get("val", [])
    figure = _figure(16, 4.5)
    loss_axes, lr_axes, val_axes = figure.subplots(1, 3)
    figure.suptitle(f"Training of {os.path.basename(os.path.dirname(os.path.abspath(metrics_jsonl)))}")

    iterations, loss = _series(train, "loss")
    loss_axes.plot(iterations, loss, color="C0", linewidth=1)
    loss_axes.set(title="Training loss", xlabel="iteration", ylabel="the task's loss")

    iterations, lr = _series(train, "lr")
    lr_axes.plot(iterations, lr, color="C1")
    if lr and min(lr) > 0:
        lr_axes.set_yscale("log")
    lr_axes.set(title="Learning rate", xlabel="iteration", ylabel="learning rate")

    for key, label in VALIDATION_CURVES:
        iterations, values = _series(val, key)
        if values:
            val_axes.plot(iterations, values, marker="o", label=label)
    if val_axes.lines:
        val_axes.legend(loc="lower right")
    else:
        _show_nothing(val_axes, "no validation yet")
    val_axes.set(title="Validation (video level)", xlabel="iteration", ylabel="%")

    for axes in (loss_axes, lr_axes, val_axes):
        axes.grid(alpha=0.3)
    return figure


def plot_training_curves(metrics_jsonl: str, png_path: str) -> str:
    return _save(training_curves_figure(metrics_jsonl), png_path)


def class_bars_figure(names: Sequence[str], values: Sequence[float], *, title: str, measure: str, mean_name: str):
    """One value (%) per class (top-1 accuracy, AP) as bars sorted best to worst, with their mean marked as
    `mean_name`; class names label the bars when there are at most MAX_NAMED_CLASSES."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(-values, kind="stable")
    count = len(names)
    named = count <= MAX_NAMED_CLASSES
    figure = _figure(max(8.0, 0.15 * count + 2) if named else 14, 7.5 if named else 5)
    axes = figure.subplots()
    axes.bar(np.arange(count), values[order], width=0.8, color="C0")
    mean = float(values.mean()) if count else 0.0
    axes.axhline(mean, color="C3", linestyle="--", label=f"{mean_name} {mean:.1f} %")
    axes.set(title=title, ylabel=measure, ylim=(0, 100), xlim=(-0.6, count - 0.4))
    if named:
        axes.set_xticks(np.arange(count), [names[i] for i in order], rotation=90, fontsize=_tick_font_size(count))
        axes.set_xlabel("class")
    else:
        axes.set_xticks([])
        axes.set_xlabel(f"{count} classes, sorted best to worst")
    axes.legend(loc="upper right")
    axes.grid(axis="y", alpha=0.3)
    return figure


def plot_class_bars(names: Sequence[str], values: Sequence[float], png_path: str, **labels: str) -> str:
    """`class_bars_figure` (its `labels`: title, measure, mean_name) saved as `png_path`."""
    return _save(class_bars_figure(names, values, **labels), png_path)


def confusion_matrix_figure(confusion: np.ndarray, names: List[str]):
    """Rows: true class, columns: predicted class; each row divided by its videos, so the diagonal is the
    class's top-1 accuracy and colours compare across classes of different sizes."""
    counts = np.asarray(confusion, dtype=float)
    videos = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, videos, out=np.zeros_like(counts), where=videos > 0)
    count = len(names)
    side = min(max(6.0, 0.16 * count + 3), 24.0)
    figure = _figure(side + 1.5, side)
    axes = figure.subplots()
    image = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8).set_label("fraction of the true class's videos")
    axes.set(title=f"Confusion matrix ({int(counts.sum())} videos, rows normalised)", xlabel="predicted class",
             ylabel="true class")
    if count <= MAX_NAMED_CLASSES:
        font_size = _tick_font_size(count)
        axes.set_xticks(np.arange(count), names, rotation=90, fontsize=font_size)
        axes.set_yticks(np.arange(count), names, fontsize=font_size)
    return figure


def plot_confusion_matrix(confusion: np.ndarray, names: List[str], png_path: str) -> str:
    return _save(confusion_matrix_figure(confusion, names), png_path)
