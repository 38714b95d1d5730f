"""The plug-in contract end to end: a block defined in tests/toy_block.py, with its own config node and YAML,
trains through train_net.py without a change to the package (VIDEONL_PLUGINS names its module)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import DEMO_CFG, ROOT, final_weights, tiny

TESTS = Path(__file__).resolve().parent


def test_a_block_from_outside_the_package_trains_with_its_own_settings(data_dir, tmp_path):
    toy_yaml = tmp_path / "toy.yaml"
    toy_yaml.write_text(f"_BASE_: {DEMO_CFG}\nCONTEXT:\n  BLOCK: toy\n  RES3: [0]\n  RES4: []\n"
                        "TOY:\n  HIDDEN: 3\n  GATE: 0.25\n")
    args = tiny(data_dir, tmp_path / "run", "SOLVER.MAX_ITER", "1", "TEST.ENABLE", "False",
                "SOLVER.WEIGHT_DECAY", "0.0")
    env = {**os.environ, "VIDEONL_PLUGINS": "toy_block",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(ROOT / "train_net.py"), "--cfg", str(toy_yaml), *args[2:]], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]

    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["TOY"] == {"HIDDEN": 3, "GATE": 0.25}
    weights = final_weights(tmp_path / "run", 1)
    assert sorted({key.split(".context.")[0] for key in weights if ".context." in key}) == ["res3.0"]
    assert weights["res3.0.context.down.weight"].shape[0] == 3  # TOY.HIDDEN from the YAML, not the default 4
    assert "res3.0.context.norm.running_mean" in weights  # the backbone's BatchNorm, from the site
    assert weights["res3.0.context.gate"].item() != pytest.approx(0.25)  # one SGD step moved it (no decay)
