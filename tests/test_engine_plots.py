import json

import numpy as np

from videonl.engine.plots import plot_confusion_matrix, plot_per_class_accuracy, plot_training_curves, read_metrics


def assert_png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes, path


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
    assert plot_training_curves(str(path), str(tmp_path / "curves.png")) == str(tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")


def test_training_curves_without_validation(tmp_path):
    path = write_jsonl(tmp_path / "metrics.jsonl", [train_record(i, 3.0 / (i + 1)) for i in range(20)])
    assert "val" not in read_metrics(str(path))
    plot_training_curves(str(path), str(tmp_path / "curves.png"))
    assert_png(tmp_path / "curves.png")


def test_class_pictures_with_and_without_names(tmp_path):
    rng = np.random.default_rng(0)
    for count in (5, 150):
        names = [f"class {i}" for i in range(count)]
        plot_per_class_accuracy(names, rng.uniform(0, 100, count), str(tmp_path / f"per_class{count}.png"))
        plot_confusion_matrix(rng.integers(0, 5, (count, count)), names, str(tmp_path / f"confusion{count}.png"))
        assert_png(tmp_path / f"per_class{count}.png")
        assert_png(tmp_path / f"confusion{count}.png")


def test_confusion_rows_of_classes_without_videos_stay_empty(tmp_path):
    # A class with no videos must not divide by zero (a warning or NaN row would break the picture).
    confusion = np.array([[3, 1], [0, 0]])
    with np.errstate(all="raise"):
        plot_confusion_matrix(confusion, ["a", "b"], str(tmp_path / "confusion.png"))
    assert_png(tmp_path / "confusion.png")
