"""`python -m videonl.analyze`: statistics and pictures from a checkpoint, on tiny models and videos."""

import json
import math

import pytest
import torch

import videos
from helpers import TINY_NL_I3D, assert_png_drawn, randomize_batch_norms, randomized
from videonl.analyze import attention_statistics, load_model, render_attention_maps
from videonl.analyze.__main__ import main
from videonl.command import run
from videonl.config import load_cfg
from videonl.models import build_model
from videonl.engine.checkpoint_format import save_checkpoint

NL_CFG = "configs/kinetics400/nl_i3d_r50_8x8.yaml"
GC_CFG = "configs/kinetics400/gc_slow_r50_8x8_1gc.yaml"
SMALL_VIEW = ["DATA.TRAIN_JITTER_SCALES", "[64, 80]"]  # the 48 x 64 test videos' short side to 64, crop 64
NL_OPTS = TINY_NL_I3D + SMALL_VIEW
GC_OPTS = ["RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5", "RESNET.BLOCKS", "[1, 1, 2, 1]", "CONTEXT.RES4", "[1]",
           "DATA.TRAIN_CROP_SIZE", "64"] + SMALL_VIEW


def trained_like_checkpoint(path, cfg_file, opts):
    """A checkpoint of random weights everywhere (no block at its identity init), as the engine saves one."""
    torch.manual_seed(0)
    cfg = load_cfg(cfg_file, opts)
    model = randomize_batch_norms(build_model(cfg))
    for name, module in model.named_modules():
        if name.endswith(".context"):
            randomized(module)
    save_checkpoint(str(path), model, cfg, epoch=3, optimizer={"lr": 0.1})
    return str(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    videos.write_h264(root / "a.mp4", 20)
    videos.write_h264(root / "b.mp4", 24)
    (root / "list.csv").write_text("a.mp4 0\nb.mp4 1\nmissing.mp4 2\n")
    trained_like_checkpoint(root / "nl.pth", NL_CFG, NL_OPTS)
    trained_like_checkpoint(root / "gc.pth", GC_CFG, GC_OPTS)
    return root


def maps_args(workdir, out, *extra):
    return ["attention-maps", "--cfg", NL_CFG, "--checkpoint", str(workdir / "nl.pth"), "--video",
            str(workdir / "a.mp4"), "--out", str(out), *extra, "--", *NL_OPTS]


def assert_png(path):
    height, width = assert_png_drawn(path).shape[:2]
    assert 200 <= height <= 4000 and 300 <= width <= 4000


@pytest.mark.parametrize("command", ["attention", "attention-maps"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--checkpoint" in capsys.readouterr().out


def test_statistics_command_prints_and_writes_the_table(workdir, capsys):
    out = workdir / "stats"
    main(["attention", "--cfg", NL_CFG, "--checkpoint", str(workdir / "nl.pth"), "--list", str(workdir / "list.csv"),
          "--queries", "100", "--out", str(out), *NL_OPTS])
    printed = capsys.readouterr().out
    assert "res3.0.context" in printed and "res4.1.context" in printed and "up to 100 query positions" in printed
    report = json.loads((out / "attention_statistics.json").read_text())
    assert [row["block"] for row in report["rows"]] == ["res3.0.context", "res4.1.context"]
    assert all(row["videos"] == 2 for row in report["rows"])  # the missing video is left out
    assert [(row["positions"], row["queries"]) for row in report["rows"]] == [(4 * 8 * 8, 100), (4 * 4 * 4, 64)]
    assert all(0 < row["att_cos_dist"] < 0.5 and 0 < row["att_jsd"] < math.log(2) for row in report["rows"])
    csv_lines = (out / "attention_statistics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("block,stage,type") and len(csv_lines) == 3


def test_maps_command_writes_a_png_per_block_and_filters_blocks(workdir, capsys):
    main(maps_args(workdir, workdir / "all", "--queries", "0,10,20", "7,63,63"))
    assert sorted(p.name for p in (workdir / "all").iterdir()) == ["res3.0.context.png", "res4.1.context.png"]
    for path in (workdir / "all").iterdir():
        assert_png(path)
    main(maps_args(workdir, workdir / "one", "--block", "res4.1.context"))
    assert [p.name for p in (workdir / "one").iterdir()] == ["res4.1.context.png"]


@pytest.mark.parametrize("extra, message", [
    (["--queries", "8,0,0"], "outside the clip: t < 8 frames"),
    (["--queries", "0,64,0"], "outside the clip"),
    (["--queries", "1,2"], "must be three non-negative integers"),
    (["--block", "res4.0.context"], "no attention block named 'res4.0.context'; the model has: res3.0.context"),
])
def test_maps_command_refuses_bad_queries_and_block_names(workdir, extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(maps_args(workdir, workdir / "bad", *extra))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (workdir / "bad").exists()


def test_checkpoint_of_another_model_is_refused_by_name(workdir, capsys):
    status = run(main, ["attention-maps", "--cfg", GC_CFG, "--checkpoint", str(workdir / "nl.pth"), "--video",
                        str(workdir / "a.mp4"), *GC_OPTS])
    assert status == 1
    assert "does not fit the config's model" in capsys.readouterr().err


def test_gc_blocks_through_the_python_api(workdir):
    cfg = load_cfg(GC_CFG, GC_OPTS)
    model = load_model(cfg, str(workdir / "gc.pth"), torch.device("cpu"))
    [row] = attention_statistics(model, cfg, [str(workdir / "a.mp4")], queries=30, seed=0)
    assert row["block"] == "res4.1.context" and row["type"] == "gc attention pooling"
    assert row["att_cos_dist"] < 1e-12 and row["att_jsd"] < 1e-12 and row["input_cos_dist"] > 0
    assert "by construction" in row["note"]
    [path] = render_attention_maps(model, cfg, str(workdir / "b.mp4"), str(workdir / "gc_maps"))
    assert_png(path)
