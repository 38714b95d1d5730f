"""Weights sources are opened once per command: training from MODEL.INIT (and its resumption), testing, prediction,
export and analysis each read a weights file one time, its input and its weights from that one read."""

import builtins
import collections
import os

import pytest
import torch

import train_net
from videonl.analyze.__main__ import main as analyze
from videonl.config import load_cfg
from videonl.engine.checkpoint_format import load_checkpoint, save_checkpoint
from videonl.engine.input_spec import CAFFE2_INPUT, InputSpec
from videonl.engine.weight_sources import WEIGHT_FILES, open_weights
from videonl.export import main as export
from videonl.models.build import build_model
from videonl.models.conversions import CheckpointError
from videonl.predict import main as predict

from helpers import DEMO_CFG, tiny

SHORT = ["SOLVER.MAX_ITER", "2", "TRAIN.EVAL_PERIOD", "0", "TRAIN.PRECISE_BN_BATCHES", "0"]


@pytest.fixture
def opened(monkeypatch):
    """file name -> how many times a weights file was opened for reading (torch.load and the Caffe2 reader open
    files with the built-in open)."""
    counts = collections.Counter()
    real_open = builtins.open

    def counting_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and str(file).endswith(WEIGHT_FILES) and "r" in mode:
            counts[os.path.basename(str(file))] += 1
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return counts


def test_training_from_model_init_then_resuming_opens_each_file_once(data_dir, tmp_path, opened):  # noqa: F811
    cfg = load_cfg(DEMO_CFG, tiny(data_dir, tmp_path)[2:])
    save_checkpoint(str(tmp_path / "init.pth"), build_model(cfg), cfg, input_spec=CAFFE2_INPUT)
    opened.clear()
    run = tiny(data_dir, tmp_path / "run", "MODEL.INIT", str(tmp_path / "init.pth"), *SHORT)
    train_net.main(run)  # trains from MODEL.INIT, then tests its final checkpoint
    assert opened == {"init.pth": 1, "iter_0000002.pth": 1}

    opened.clear()
    train_net.main([*run, "SOLVER.MAX_ITER", "4"])  # resumes at iteration 2: MODEL.INIT is not read at all
    assert opened == {"iter_0000002.pth": 1, "iter_0000004.pth": 1}
    resumed = load_checkpoint(str(tmp_path / "run" / "checkpoints" / "iter_0000004.pth"))
    assert InputSpec.from_record(resumed["input"]).config_values() == CAFFE2_INPUT.config_values()


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):  # noqa: F811
    """A tiny model's checkpoint recording PyTorchVideo's input, and a saved config file of the model."""
    folder = tmp_path_factory.mktemp("trained")
    cfg = load_cfg(DEMO_CFG, tiny(data_dir, folder)[2:])
    save_checkpoint(str(folder / "weights.pth"), build_model(cfg), cfg,
                    input_spec=InputSpec((0.45,) * 3, (0.225,) * 3))
    (folder / "model.yaml").write_text(cfg.dump())
    return folder


def test_testing_opens_the_checkpoint_once(data_dir, trained, tmp_path, opened):  # noqa: F811
    train_net.main(tiny(data_dir, tmp_path, "TRAIN.ENABLE", "False", "TEST.CHECKPOINT", str(trained / "weights.pth")))
    assert opened == {"weights.pth": 1}


def test_prediction_opens_the_checkpoint_once(data_dir, trained, opened):  # noqa: F811
    predict(["--cfg", str(trained / "model.yaml"), "--checkpoint", str(trained / "weights.pth"),
             str(data_dir / "0_6.mp4")])
    assert opened == {"weights.pth": 1}


def test_export_opens_the_checkpoint_once_and_prints_the_input_the_file_records(data_dir, trained, tmp_path,
                                                                                opened, capsys):  # noqa: F811
    export(["--cfg", DEMO_CFG, "--checkpoint", str(trained / "weights.pth"), "--format", "torchscript",
            "--output", str(tmp_path / "model.pt"), *tiny(data_dir, tmp_path)[2:]])
    assert opened == {"weights.pth": 1}
    printed = capsys.readouterr().out
    assert "mean [0.45, 0.45, 0.45], std [0.225, 0.225, 0.225]" in printed and "0.485" not in printed


def test_analysis_opens_the_checkpoint_once(data_dir, trained, tmp_path, opened):  # noqa: F811
    analyze(["attention", "--cfg", DEMO_CFG, "--checkpoint", str(trained / "weights.pth"), "--videos", "1",
             "--queries", "4", "--out", str(tmp_path), *tiny(data_dir, tmp_path)[2:]])
    assert opened == {"weights.pth": 1}


def test_a_file_of_no_known_format_fails_when_opened_naming_what_it_holds(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "wrapped.pth")
    with pytest.raises(CheckpointError, match=r"wrapped.pth is neither a videonl checkpoint.*\['state_dict'\]"):
        open_weights(str(tmp_path / "wrapped.pth"))
    torch.save({"model_state": {}}, tmp_path / "zoo.pyth")
    zoo = open_weights(str(tmp_path / "zoo.pyth"))
    assert zoo.format == "pytorchvideo"
    with pytest.raises(CheckpointError, match=r"zoo.pyth is not a videonl checkpoint"):
        zoo.checkpoint()  # a run resumes from ours alone
