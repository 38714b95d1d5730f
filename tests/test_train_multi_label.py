"""A multi-label model end to end on moving squares (TASK.NAME multi_label, the conftest's multi_label_dir): it
trains on binary cross-entropy, validates and tests with mAP, predicts the classes over a threshold and exports
to ONNX with per-class probabilities."""

import csv
import json

import pytest
import torch
import torch.nn.functional as F

import train_net
from helpers import DEMO_CFG, assert_png_drawn, tiny
from videonl import export as export_module
from videonl.config import load_cfg
from videonl.data.loader import build_loader, model_input
from videonl.engine.checkpoint import CheckpointManager
from videonl.engine.optim import build_optimizer
from videonl.engine.runtime import grad_scaler
from videonl.engine.train import TrainingLoop, training_model
from videonl.predict import Predictor, main as predict

MULTI_LABEL = ["TASK.NAME", "multi_label", "MODEL.NUM_CLASSES", "3"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run(multi_label_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    results = train_net.main(tiny(multi_label_dir, out, *MULTI_LABEL, "SOLVER.MAX_ITER", "4", "TRAIN.EVAL_PERIOD", "2",
                                  "TRAIN.PRECISE_BN_BATCHES", "0"))
    cfg_file = out / "model.yaml"
    cfg_file.write_text(load_cfg(DEMO_CFG, [*tiny(multi_label_dir, out)[2:], *MULTI_LABEL]).dump())
    return {"out": out, "results": results, "cfg": str(cfg_file), "data": multi_label_dir,
            "checkpoint": str(out / "checkpoints" / "iter_0000004.pth"), "test": out / "test" / "iter_0000004"}


def test_a_training_step_descends_the_binary_cross_entropy_of_the_clips_actions(multi_label_dir, tmp_path):
    cfg = load_cfg(DEMO_CFG, tiny(multi_label_dir, tmp_path, *MULTI_LABEL, "MODEL.DROPOUT", "0.0")[2:])
    model = training_model(cfg, CPU, init=None)
    loop = TrainingLoop(cfg, CPU, model, build_optimizer(model, cfg), grad_scaler(cfg, CPU),
                        CheckpointManager(str(tmp_path)), cfg.DATALOADER.TRAIN_BATCH_SIZE)
    batch = next(iter(build_loader(cfg, "train")))
    assert batch["label"].shape == (2, 3) and set(batch["label"].flatten().tolist()) <= {0.0, 1.0}
    with torch.no_grad():
        expected = F.binary_cross_entropy_with_logits(model(model_input(batch["clip"], cfg, CPU)), batch["label"])
    assert loop.step(0, batch) == pytest.approx(expected.item(), rel=1e-5)


def test_validation_and_test_report_the_map(run):
    records = [json.loads(line) for line in (run["out"] / "metrics.jsonl").read_text().splitlines()]
    assert [record["iter"] for record in records if record["split"] == "val"] == [2, 4]
    assert all(0 <= record["mAP"] <= 100 for record in records if record["split"] == "val")
    summary = json.loads((run["test"] / "summary.json").read_text())
    assert summary == run["results"] and summary["classes_in_mAP"] == 3 and summary["view_combine"] == "max"
    with open(run["test"] / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(row["label"], row["label_names"]) for row in rows} == {("0;2", "right;in the left half"),
                                                                  ("1;2", "left;in the left half")}
    assert_png_drawn(run["test"] / "per_class_ap.png")
    assert not (run["test"] / "confusion_matrix.png").exists()


def test_predict_shows_the_classes_over_the_threshold_with_the_tests_probabilities(run, capsys):
    stored = [json.loads(line) for line in (run["test"] / "scores.rank0.jsonl").read_text().splitlines()[1:]]
    predictor = Predictor(run["cfg"], run["checkpoint"])
    for score in stored:
        prediction = predictor.predict(score["path"])
        assert prediction.probabilities.tolist() == pytest.approx(score["probabilities"], rel=1e-5)
    names = ["right", "left", "in the left half"]
    video, probabilities = stored[0]["path"], stored[0]["probabilities"]
    threshold = sum(sorted(probabilities)[:2]) / 2  # between the 3rd and the 2nd most probable class
    predict(["--cfg", run["cfg"], "--checkpoint", run["checkpoint"], "--threshold", str(threshold), video])
    header, line = capsys.readouterr().out.splitlines()
    assert header.endswith(f"classes with probability >= {threshold:.2f}")
    best = sorted(range(3), key=lambda c: -probabilities[c])[:2]
    assert line.split()[1:] == [word for c in best for word in (*names[c].split(), f"{probabilities[c]:.3f}")]


def test_the_checkpoints_task_is_adopted_unless_the_config_sets_one(run, caplog):
    model_only = [*tiny(run["data"], run["out"])[2:], "MODEL.NUM_CLASSES", "3"]  # the demo model: no TASK.NAME
    predictor = Predictor(load_cfg(DEMO_CFG, model_only), run["checkpoint"])
    assert predictor.cfg.TASK.NAME == "multi_label" and predictor.task.shown.threshold == 0.5
    assert predictor.cfg.MULTI_LABEL.VIEW_COMBINE == "max"
    chosen = load_cfg(DEMO_CFG, [*model_only, "TASK.NAME", "single_label"])
    assert Predictor(chosen, run["checkpoint"]).cfg.TASK.NAME == "single_label"
    assert "the config sets TASK.NAME single_label, the weights of" in caplog.text


def test_onnx_export_gives_each_views_class_probabilities(run, tmp_path, capsys):
    output = tmp_path / "model.onnx"
    model_only = [*tiny(run["data"], run["out"])[2:], "MODEL.NUM_CLASSES", "3"]  # the task comes from the checkpoint
    assert export_module.main(["--cfg", DEMO_CFG, "--checkpoint", run["checkpoint"], "--format", "onnx",
                               "--output", str(output), *model_only]) == 0
    printed = capsys.readouterr().out
    assert "output: probabilities: [B, 3], each class's sigmoid; combine a video's views by their max" in printed
    assert "parity: probabilities equal PyTorch's on 3 random views" in printed
    cfg = load_cfg(run["cfg"])
    model = Predictor(cfg, run["checkpoint"]).model
    clip = export_module.example_clip(cfg, 3, seed=2)
    with torch.no_grad():
        expected = torch.sigmoid(model.test_logits(clip)).mean(dim=1)
    actual = export_module.run_exported(str(output), "onnx", clip, "probabilities")
    torch.testing.assert_close(actual, expected, **export_module.PARITY)
