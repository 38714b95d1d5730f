"""The plug-in contract end to end: a block defined in tests/toy_block.py, with its own config node and YAML,
trains through train_net.py without a change to the package."""

import pytest
import torch

import toy_block  # noqa: F401  (registers the toy block and its TOY node, as a user's import would)
import train_net
from test_engine_train import DEMO_CFG, data_dir, final_weights, tiny  # noqa: F401  (data_dir: a fixture)
from videonl.config import load_cfg


@pytest.fixture
def toy_yaml(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(f"_BASE_: {DEMO_CFG}\nCONTEXT:\n  BLOCK: toy\n  RES3: [0]\n  RES4: []\n"
                    "TOY:\n  HIDDEN: 3\n  GATE: 0.25\n")
    return str(path)


def test_a_block_from_outside_the_package_trains_with_its_own_settings(data_dir, toy_yaml, tmp_path):
    args = tiny(data_dir, tmp_path / "run", "SOLVER.MAX_ITER", "1", "TEST.ENABLE", "False",
                "SOLVER.WEIGHT_DECAY", "0.0")
    train_net.main(["--cfg", toy_yaml, *args[2:]])

    assert load_cfg(str(tmp_path / "run" / "config.yaml")).TOY.HIDDEN == 3  # the run records the toy's settings
    weights = final_weights(tmp_path / "run", 1)
    blocks = sorted({key.split(".context.")[0] for key in weights if ".context." in key})
    assert blocks == ["res3.0"]
    assert weights["res3.0.context.down.weight"].shape[0] == 3  # TOY.HIDDEN from the YAML, not the default 4
    assert "res3.0.context.norm.running_mean" in weights  # the backbone's BatchNorm
    assert weights["res3.0.context.gate"].item() != pytest.approx(0.25)  # one SGD step moved it (no decay)
    assert torch.isfinite(weights["res3.0.context.up.weight"]).all()
