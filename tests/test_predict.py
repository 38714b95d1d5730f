"""`videonl predict` and `videonl.Predictor` on a tiny model trained on moving squares, and on broken files."""

import csv
import json
import shutil

import numpy as np
import pytest

import train_net
import videonl
from videonl.config import load_cfg
from videonl.data.decode import DecodeError
from videonl.models.build import build_model
from videonl.engine.checkpoint_format import save_checkpoint
from videonl.predict import Prediction, format_table, main, parse_views, write_csv
from videonl.tasks.base import Selection

from helpers import DEMO_CFG, tiny

TRAINED_INPUT = ["DATA.MEAN", "[0.45, 0.45, 0.45]", "DATA.STD", "[0.225, 0.225, 0.225]"]


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """A model trained for 4 iterations then tested on the val list, with an input normalisation of its own
    (recorded in its checkpoint), and a config file of the same model that keeps the default normalisation."""
    out = tmp_path_factory.mktemp("run")
    overrides = tiny(data_dir, out, "SOLVER.MAX_ITER", "4", "TRAIN.EVAL_PERIOD", "0", "TRAIN.PRECISE_BN_BATCHES",
                     "0", *TRAINED_INPUT)
    train_net.main(overrides)
    cfg_file = out / "model.yaml"
    cfg_file.write_text(load_cfg(DEMO_CFG, [*tiny(data_dir, out)[2:], "SOLVER.MAX_ITER", "4"]).dump())
    return {"cfg": str(cfg_file), "checkpoint": str(out / "checkpoints" / "iter_0000004.pth"),
            "evaluated": list(csv.DictReader((out / "test" / "iter_0000004" / "predictions.csv").open())),
            "data": data_dir}


def test_predictor_gives_the_evaluators_probabilities_on_the_checkpoints_input(run):
    predictor = videonl.Predictor(run["cfg"], run["checkpoint"])

    assert predictor.cfg.DATA.MEAN == [0.45] * 3 and predictor.cfg.DATA.STD == [0.225] * 3
    assert predictor.class_names == ["right", "left"]
    for row in run["evaluated"]:
        prediction = predictor.predict(row["path"])
        (first, p_first), (second, p_second) = prediction.top(2)
        assert (first, second) == (row["top1_class"], row["top2_class"])
        assert (p_first, p_second) == pytest.approx((float(row["top1_score"]), float(row["top2_score"])), rel=1e-5)
        assert prediction.probabilities.sum() == pytest.approx(1.0)


def test_predictor_raises_naming_an_unreadable_video(run, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(DecodeError, match="broken.mp4"):
        videonl.Predictor(run["cfg"], run["checkpoint"]).predict(str(broken))


def test_a_checkpoint_without_class_names_shows_class_indices(run, tmp_path):
    cfg = load_cfg(run["cfg"])
    save_checkpoint(str(tmp_path / "unnamed.pth"), build_model(cfg), cfg)
    prediction = videonl.Predictor(cfg, str(tmp_path / "unnamed.pth")).predict(run["evaluated"][0]["path"])
    assert [name for name, _ in prediction.top(5)] in (["0", "1"], ["1", "0"])


def test_command_reports_each_broken_file_goes_on_and_exits_non_zero(run, tmp_path, capsys):
    folder = tmp_path / "videos"
    (folder / "nested").mkdir(parents=True)
    good = [folder / "a.mp4", folder / "nested" / "b.mp4"]
    for target, row in zip(good, run["evaluated"]):
        shutil.copy(row["path"], target)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "nested" / "text.avi").write_text("this is a text file\n")
    (folder / "notes.txt").write_text("not a video extension: never tried\n")
    output = tmp_path / "predictions.csv"

    with pytest.raises(SystemExit) as exit_info:
        main(["--cfg", run["cfg"], "--checkpoint", run["checkpoint"], "--top-k", "2", "--output", str(output),
              str(folder)])

    assert exit_info.value.code == "2 of 4 videos could not be read"
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 2
    assert str(folder / "empty.mp4") in failed[0] and str(folder / "nested" / "text.avi") in failed[1]
    rows = list(csv.DictReader(output.open()))
    assert [row["path"] for row in rows] == [str(folder / name) for name in ("a.mp4", "empty.mp4", "nested/b.mp4",
                                                                            "nested/text.avi")]
    for row, source in zip([rows[0], rows[2]], run["evaluated"]):
        assert row["error"] == "" and row["top1_class"] == source["top1_class"]
        assert float(row["top1_probability"]) == pytest.approx(float(source["top1_score"]), rel=1e-5)
    assert rows[1]["top1_class"] == "" and rows[1]["error"] and rows[1]["error"] in failed[0]


def test_command_writes_json_with_the_views_asked_for(run, tmp_path, capsys):
    videos = [row["path"] for row in run["evaluated"][:2]]
    output = tmp_path / "out.json"

    predictions = main(["--cfg", run["cfg"], "--checkpoint", run["checkpoint"], "--views", "1xcenter",
                        "--top-k", "1", "--output", str(output), *videos])

    records = json.loads(output.read_text())
    assert [record["path"] for record in records] == videos
    assert all(len(record["top"]) == 1 and record["error"] == "" for record in records)
    one_view = videonl.Predictor(load_cfg(run["cfg"], ["TEST.NUM_CLIPS", "1", "TEST.CROP", "center"]),
                                 run["checkpoint"]).predict(videos[0])
    np.testing.assert_allclose(predictions[0].probabilities, one_view.probabilities)
    assert records[0]["top"][0] == {"class": one_view.top(1)[0][0], "probability": pytest.approx(one_view.top(1)[0][1])}
    assert videos[0] in capsys.readouterr().out


def test_a_threshold_shows_every_class_that_reaches_it_in_as_many_columns_as_needed(tmp_path):
    names = ["sit", "stand", "walk", "run"]
    predictions = [Prediction("a.mp4", np.float32([0.7, 0.2, 0.55, 0.5]), names),
                   Prediction("b.mp4", np.float32([0.1, 0.9, 0.3, 0.2]), names),
                   Prediction("c.mp4", None, names, "bad")]
    shown = Selection(None, 0.5)
    assert format_table(predictions, shown).splitlines() == [
        "file   classes with probability >= 0.50", "a.mp4  sit 0.700  walk 0.550  run 0.500", "b.mp4  stand 0.900",
        "c.mp4  FAILED: bad"]
    write_csv(str(tmp_path / "p.csv"), predictions, shown)
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[0] == ["path", *[f"top{k}_{field}" for k in (1, 2, 3) for field in ("class", "probability")], "error"]
    assert rows[2] == ["b.mp4", "stand", "0.8999999761581421", *[""] * 4, ""]
    assert format_table(predictions[:2], Selection(2, 0.6)).splitlines()[1:] == ["a.mp4  sit 0.700",
                                                                               "b.mp4  stand 0.900"]
    assert format_table(predictions[:1], Selection(None, 0.8)).splitlines()[1:] == ["a.mp4  none"]


@pytest.mark.parametrize("arguments, message", [
    (["--views", "3xcorner"], "expected CLIPSxCROP"),
    (["--output", "predictions.txt"], "--output must end in .csv or .json"),
    (["--threshold", "1.5"], "--threshold must be a probability in [0, 1]"),
])
def test_command_refuses_bad_options(run, arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--cfg", run["cfg"], "--checkpoint", run["checkpoint"], *arguments, "video.mp4"])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_command_names_a_missing_checkpoint_or_an_empty_folder(run, tmp_path):
    with pytest.raises(SystemExit, match="error: --checkpoint .*missing.pth: no such file"):
        main(["--cfg", run["cfg"], "--checkpoint", str(tmp_path / "missing.pth"), str(tmp_path)])
    with pytest.raises(SystemExit, match="error: no videos found in"):
        main(["--cfg", run["cfg"], "--checkpoint", run["checkpoint"], str(tmp_path)])


def test_views_are_clips_times_crop():
    assert parse_views("10x3crop") == (10, "3crop") and parse_views("1xfull") == (1, "full")
