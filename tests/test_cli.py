"""The `videonl` command: every subcommand's help, overrides anywhere on the line, one-line errors."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videonl import cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["RESNET.WIDTH", "4", "RESNET.BLOCKS", "[1, 1, 1, 1]", "DATA.TRAIN_CROP_SIZE", "64"]
ALL_COMMANDS = [[name] for name in cli.COMMANDS if name != "prep"] + [["prep", name] for name in cli.PREP_COMMANDS]


def module_of(command):
    table = cli.PREP_COMMANDS if command[0] == "prep" else cli.COMMANDS
    return table[command[-1]][0]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help_under_its_videonl_name(command, capsys):
    if importlib.util.find_spec(module_of(command)) is None:
        pytest.skip(f"{module_of(command)} is not in this checkout")
    with pytest.raises(SystemExit) as stop:
        cli.main([*command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: videonl {' '.join(command)} ")


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.split("commands:\n")[1].splitlines() if line]
    assert listed[:len(cli.COMMANDS)] == list(cli.COMMANDS)


@pytest.mark.parametrize("line", [
    ["--cfg", "kinetics400/i3d_r50_32x2.yaml", *SMALL, "--json"],
    ["--json", *SMALL[:2], "--cfg", "kinetics400/i3d_r50_32x2.yaml", *SMALL[2:]],
    ["--cfg", "kinetics400/i3d_r50_32x2.yaml", "--json", "--", *SMALL],
])
def test_options_may_come_before_between_or_after_the_overrides(line, capsys):
    assert cli.main(["info", *line]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_shape"] == [1, 3, 32, 64, 64] and report["stages"]["res3"] == [32, 4, 8, 8]


def test_a_misspelt_option_is_a_usage_error_not_an_override(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["info", "--cfg", "kinetics400/i3d_r50_32x2.yaml", *SMALL, "--jsn"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --jsn" in capsys.readouterr().err


def videonl(*args, cwd):
    """The command in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_config_error_is_one_line_and_status_2_in_every_form(tmp_path):
    bad = ["--cfg", "kinetics400/i3d_r50_32x2.yaml", "RESNET.DEPTHS", "101"]
    results = [videonl("-m", "videonl", "info", *bad, cwd=tmp_path), videonl("-m", "videonl.info", *bad, cwd=tmp_path)]
    for result in results:
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr == "error: command-line override: Non-existent key: RESNET.DEPTHS\n"


def test_files_that_cannot_be_used_are_one_line_and_status_1(tmp_path, capsys):
    assert cli.main(["convert", "pytorchvideo", "--cfg", "kinetics400/i3d_r50_8x8.yaml", *SMALL,
                     "--in", str(tmp_path / "missing.pyth")]) == 1
    assert cli.main(["compare", str(tmp_path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert "missing.pyth" in errors[0] and "has no test results" in errors[1]


def test_a_command_missing_from_the_installation_is_named(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("videonl.ghost", "not written yet"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["ghost"])
    assert stop.value.code == 2
    assert "videonl ghost is not part of this installation (no module videonl.ghost)" in capsys.readouterr().err
