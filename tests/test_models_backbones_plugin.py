"""The backbone plug-in contract: a backbone defined in tests/toy_backbone.py, with its own config node and YAML,
trains, tests, reports and exports through the ordinary commands without a change to the package
(VIDEONL_PLUGINS names its module); and what build_model, the initialisation and the conversions check of a
backbone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from helpers import ROOT, final_weights, tiny
from videonl.config import ConfigError, load_cfg
from videonl.engine.checks import check_config
from videonl.engine.checkpoint_format import save_checkpoint
from videonl.engine.initialization import initialize
from videonl.engine.weight_sources import open_weights
from videonl.models import build_model, register_backbone
from videonl.models.conversions import (CheckpointError, convert_caffe2, convert_pytorchvideo, imagenet_state_dict,
                                        inflate_2d_state_dict)

TESTS = Path(__file__).resolve().parent
DEMO_RECIPE = ROOT / "configs" / "_base_" / "demo.yaml"  # the demo's data and schedule, no model of its own


def videonl(*args: str) -> subprocess.CompletedProcess:
    """`videonl ARGS` in a fresh process that imports the toy backbone as a user's plug-in."""
    env = {**os.environ, "VIDEONL_PLUGINS": "toy_backbone",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "videonl", *args], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_a_backbone_from_outside_the_package_trains_tests_reports_and_exports(data_dir, tmp_path):
    toy_yaml = tmp_path / "toy.yaml"
    toy_yaml.write_text(f"_BASE_: {DEMO_RECIPE}\nMODEL:\n  BACKBONE: toynet\nTOYNET:\n  WIDTH: 3\n")
    overrides = tiny(data_dir, tmp_path / "run", "SOLVER.MAX_ITER", "2", "TRAIN.EVAL_PERIOD", "0")[2:]

    videonl("train", "--cfg", str(toy_yaml), *overrides)

    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["TOYNET"] == {"WIDTH": 3}
    weights = final_weights(tmp_path / "run", 2)
    assert weights["stage.0.weight"].shape == (6, 3, 3, 3, 3)  # TOYNET.WIDTH from the YAML, not the default 4
    assert weights["classifier.weight"].shape == (2, 6)
    summary = json.loads((tmp_path / "run" / "test" / "iter_0000002" / "summary.json").read_text())
    assert summary["videos"] == 4 and summary["views_per_video"] == 2

    report = json.loads(videonl("info", "--cfg", str(toy_yaml), "--json", *overrides).stdout)
    # 4 frames of 32 x 32: the stem halves height and width, the stage halves all three
    assert report["stages"] == {"stem": [3, 4, 16, 16], "stage": [6, 2, 8, 8]}
    convs, norms, classifier = 3 * 3 * 27 + 6 * 3 * 27, 2 * (3 + 6), 6 * 2 + 2
    assert round(report["params_m"] * 1e6) == convs + norms + classifier
    assert report["context_blocks"] == []

    exported = tmp_path / "toy.pt"
    checkpoint = tmp_path / "run" / "checkpoints" / "iter_0000002.pth"
    printed = videonl("export", "--cfg", str(toy_yaml), "--checkpoint", str(checkpoint), "--format",
                      "torchscript", "--output", str(exported), *overrides).stdout
    assert "parity: logits equal PyTorch's on 3 random views" in printed
    with torch.no_grad():
        assert torch.jit.load(str(exported))(torch.randn(5, 3, 4, 32, 32)).shape == (5, 2)


# --------------------------------------------------------------------------- what the package checks in-process


class Layers(nn.Module):
    """One conv, a global average and a classifier, built from the config: a backbone before its interface."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.conv, self.fc = nn.Conv3d(3, 4, 1), nn.Linear(4, classes)

    @classmethod
    def from_config(cls, cfg) -> "Layers":
        return cls(cfg.MODEL.NUM_CLASSES)

    def forward(self, clips):
        return self.fc(self.conv(clips).mean(dim=(2, 3, 4)))


class Pooled(Layers):
    """The smallest model of the interface."""

    classifier_name = "fc"

    def stage_modules(self):
        return [("conv", self.conv)]

    def features(self, clips):
        return self.conv(clips)

    def test_logits(self, clips):
        return self(clips)[:, None]


register_backbone("test_pooled")(Pooled)
# test_logits without windows ([B, classes]): the interface before tasks combined a view's windows
register_backbone("test_windowless")(type("Windowless", (Pooled,), {"test_logits": Layers.forward}))
INTERFACE = ("classifier_name", "test_logits", "features", "stage_modules")
for _member in INTERFACE:  # a backbone without each member of the interface in turn
    register_backbone(f"test_without_{_member}")(type(f"PooledWithout_{_member}", (Layers,), {
        name: vars(Pooled)[name] for name in INTERFACE if name != _member}))
register_backbone("test_misnamed_classifier")(type("Misnamed", (Pooled,), {"classifier_name": "head.fc"}))


def cfg_of(backbone: str, *opts: str):
    return load_cfg(str(DEMO_RECIPE), ["MODEL.BACKBONE", backbone, "MODEL.NUM_CLASSES", "2", *opts])


def test_the_backbone_is_the_one_model_backbone_names():
    assert type(build_model(cfg_of("test_pooled"))) is Pooled
    assert type(build_model(cfg_of("resnet3d"))).__name__ == "VideoResNet"
    with pytest.raises(KeyError, match="MODEL.BACKBONE 'nosuch' is not a registered backbone .*resnet3d.*test_pooled"):
        build_model(cfg_of("nosuch"))


@pytest.mark.parametrize("member", INTERFACE)
def test_a_backbone_lacking_part_of_the_interface_fails_naming_it(member):
    with pytest.raises(TypeError, match=rf"MODEL.BACKBONE 'test_without_{member}' built a PooledWithout_{member}, "
                                        rf"which lacks {member} of the model interface"):
        build_model(cfg_of(f"test_without_{member}"))


def test_test_logits_without_a_windows_dimension_fail_the_config_checks(data_dir):
    cfg = cfg_of("test_windowless", "DATA.PATH_TO_DATA_DIR", str(data_dir))
    check_config(cfg_of("test_pooled", "DATA.PATH_TO_DATA_DIR", str(data_dir)), training=False, testing=True)
    with pytest.raises(ConfigError, match=r"MODEL.BACKBONE test_windowless: its test_logits gives \[1, 2\] for one "
                                          r"clip, not \['B', 'windows', 'MODEL.NUM_CLASSES'\]"):
        check_config(cfg, training=False, testing=True)


def test_a_classifier_name_that_names_no_module_fails():
    with pytest.raises(TypeError, match="classifier_name 'head.fc' names no module with parameters in Misnamed"):
        build_model(cfg_of("test_misnamed_classifier"))


def test_a_backbone_that_places_no_context_blocks_refuses_a_config_that_asks_for_them():
    with pytest.raises(ValueError, match="CONTEXT.BLOCK 'nonlocal' is set, but MODEL.BACKBONE 'test_pooled' placed"):
        build_model(cfg_of("test_pooled", "CONTEXT.BLOCK", "nonlocal", "CONTEXT.RES3", "[0]"))


def test_a_registered_name_is_taken_once():
    with pytest.raises(ValueError, match="backbone 'test_pooled' is already registered by Pooled"):
        register_backbone("test_pooled")(type("Other", (Pooled,), {}))
    with pytest.raises(TypeError, match=r"backbone NoBuilder needs a from_config\(cfg\) classmethod"):
        register_backbone("test_no_builder")(type("NoBuilder", (nn.Module,), {}))


def test_fine_tuning_for_other_classes_leaves_the_backbones_own_classifier_fresh(tmp_path):
    torch.manual_seed(0)
    source, fresh = Pooled(classes=2), Pooled(classes=3)
    save_checkpoint(str(tmp_path / "two_classes.pth"), source, cfg_of("test_pooled"))
    fresh_classifier = fresh.fc.weight.clone()

    report = initialize(fresh, open_weights(str(tmp_path / "two_classes.pth")))

    assert report.missing == ["fc.weight", "fc.bias"] and report.mismatched == []
    torch.testing.assert_close(fresh.conv.weight, source.conv.weight)
    torch.testing.assert_close(fresh.fc.weight, fresh_classifier)


@pytest.mark.parametrize("source_format, convert", [
    ("ImageNet", imagenet_state_dict),
    ("torchvision ResNet", lambda model: inflate_2d_state_dict({}, model)),
    ("PyTorchVideo", lambda model: convert_pytorchvideo({}, model)),
    ("Caffe2", lambda model: convert_caffe2({}, model)),
])
def test_foreign_weights_convert_to_the_resnet3d_backbone_only(source_format, convert):
    with pytest.raises(CheckpointError, match=f"{source_format} weights convert to the resnet3d backbone's parameters "
                                              "only, not to MODEL.BACKBONE 'test_pooled'"):
        convert(build_model(cfg_of("test_pooled")))
