"""Report pictures: what each figure draws (read back from its axes), and PNG files that show it."""

import json

import numpy as np
from matplotlib.colors import to_rgb

from helpers import assert_png_drawn
from videonl.engine.plots import (class_bars_figure, confusion_matrix_figure, plot_class_bars, plot_confusion_matrix,
                                  plot_training_curves, read_metrics, training_curves_figure)

DATA_COLOUR = to_rgb("C0")  # the loss curve and the bars
FULL_BLUE = to_rgb("#08306b")  # Blues at 1: the top of the colour bar
BAR_LABELS = {"title": "Top-1 accuracy per class", "measure": "top-1 accuracy (%)", "mean_name": "mean class accuracy"}


def lines_of(axes) -> dict:
    """label (or colour) -> the line's points."""
    return {line.get_label() if not line.get_label().startswith("_") else line.get_color(): line.get_xydata().tolist()
            for line in axes.lines}


def write_jsonl(path, records, tail=""):
    path.write_text("".join(json.dumps(record) + "\n" for record in records) + tail)
    return path


def train_record(iteration, loss, lr=0.01):
    return {"iter": iteration, "split": "train", "loss": loss, "lr": lr, "clips_per_s": 50.0, "data_time": 0.1,
            "compute_time": 0.5, "eta": "1:00:00"}


def test_a_resumed_run_keeps_the_last_record_of_each_iteration(tmp_path):
    first_run = [train_record(i, 5.0 - i / 100) for i in range(0, 50, 10)] + [
        {"iter": 20, "split": "val", "top1": 10.0, "top5": 30.0}, {"iter": 40, "split": "val", "top1": 20.0}]
    # Resumed from the checkpoint at 20: iterations 30 and 40 again, then on; a blank and a cut-short line.
    second_run = [train_record(30, 1.5), train_record(40, 1.4, lr=0.001), {"iter": 40, "split": "val", "top1": 25.0,
                                                                          "top5": 50.0}, train_record(50, 1.3, 0.001)]
    path = write_jsonl(tmp_path / "metrics.jsonl", first_run + second_run, tail='\n{"iter": 60, "split": "tr')
    records = read_metrics(str(path))
    assert [(r["iter"], r["loss"]) for r in records["train"]] == [(0, 5.0), (10, 4.9), (20, 4.8), (30, 1.5),
                                                                 (40, 1.4), (50, 1.3)]
    assert [(r["iter"], r["top1"]) for r in records["val"]] == [(20, 10.0), (40, 25.0)]
    loss_axes, lr_axes, val_axes = training_curves_figure(str(path)).axes
    assert lines_of(loss_axes) == {"C0": [[0, 5.0], [10, 4.9], [20, 4.8], [30, 1.5], [40, 1.4], [50, 1.3]]}
    assert lines_of(lr_axes) == {"C1": [[0, 0.01], [10, 0.01], [20, 0.01], [30, 0.01], [40, 0.001], [50, 0.001]]}
    assert lr_axes.get_yscale() == "log"
    assert lines_of(val_axes) == {"top-1": [[20, 10.0], [40, 25.0]], "top-5": [[20, 30.0], [40, 50.0]]}
    assert plot_training_curves(str(path), str(tmp_path / "curves.png")) == str(tmp_path / "curves.png")
    assert_png_drawn(tmp_path / "curves.png", DATA_COLOUR)


def test_a_multi_label_runs_validation_curves_show_its_map(tmp_path):
    records = [train_record(10, 0.7), {"iter": 10, "split": "val", "mAP": 20.0, "top1": 50.0, "top5": 90.0},
               {"iter": 20, "split": "val", "mAP": 30.0, "top1": 60.0, "top5": 95.0}]
    _, _, val_axes = training_curves_figure(str(write_jsonl(tmp_path / "metrics.jsonl", records))).axes
    assert lines_of(val_axes) == {"mAP": [[10, 20.0], [20, 30.0]], "top-1": [[10, 50.0], [20, 60.0]],
                                  "top-5": [[10, 90.0], [20, 95.0]]}


def test_training_curves_without_validation(tmp_path):
    path = write_jsonl(tmp_path / "metrics.jsonl", [train_record(i, 3.0 / (i + 1)) for i in range(20)])
    assert "val" not in read_metrics(str(path))
    loss_axes, _, val_axes = training_curves_figure(str(path)).axes
    assert len(loss_axes.lines[0].get_xydata()) == 20
    assert not val_axes.lines and [text.get_text() for text in val_axes.texts] == ["no validation yet"]
    plot_training_curves(str(path), str(tmp_path / "curves.png"))
    assert_png_drawn(tmp_path / "curves.png", DATA_COLOUR)


def test_class_pictures_with_and_without_names(tmp_path):
    rng = np.random.default_rng(0)
    for count in (5, 150):
        names = [f"class {i}" for i in range(count)]
        accuracy, confusion = rng.uniform(0, 100, count), rng.integers(0, 5, (count, count))
        best_first = np.argsort(-accuracy)

        [bars] = class_bars_figure(names, accuracy, **BAR_LABELS).axes
        assert [bar.get_height() for bar in bars.patches] == accuracy[best_first].tolist()
        [mean_line] = bars.lines
        assert mean_line.get_ydata()[0] == accuracy.mean()
        labels = [label.get_text() for label in bars.get_xticklabels()]
        assert labels == ([names[i] for i in best_first] if count <= 101 else [])

        matrix_axes, colour_bar = confusion_matrix_figure(confusion, names).axes
        np.testing.assert_allclose(matrix_axes.images[0].get_array(), confusion / confusion.sum(1, keepdims=True))
        rows_named = [label.get_text() for label in matrix_axes.get_yticklabels()] == names
        assert rows_named == (count <= 101)

        plot_class_bars(names, accuracy, str(tmp_path / f"per_class{count}.png"), **BAR_LABELS)
        plot_confusion_matrix(confusion, names, str(tmp_path / f"confusion{count}.png"))
        assert_png_drawn(tmp_path / f"per_class{count}.png", DATA_COLOUR)
        assert_png_drawn(tmp_path / f"confusion{count}.png", FULL_BLUE)


def test_confusion_rows_of_classes_without_videos_stay_empty(tmp_path):
    # A class with no videos must not divide by zero (a warning or NaN row would break the picture).
    confusion = np.array([[3, 1], [0, 0]])
    with np.errstate(all="raise"):
        plot_confusion_matrix(confusion, ["a", "b"], str(tmp_path / "confusion.png"))
        figure = confusion_matrix_figure(confusion, ["a", "b"])
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), [[0.75, 0.25], [0, 0]])
    assert_png_drawn(tmp_path / "confusion.png", FULL_BLUE)
