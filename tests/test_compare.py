"""python -m videonl.compare: runs side by side, and the mean over UCF101's three splits."""

import json

import pytest

from videonl.compare import main


def run_folder(root, name, top1, top5, videos):
    """A run folder holding one test summary, as train_net.py writes it."""
    test_dir = root / name / "test" / "iter_0006000"
    test_dir.mkdir(parents=True)
    summary = {"top1": top1, "top5": top5, "mean_class_accuracy": top1 - 1, "clip_top1": top1 - 10,
               "videos": videos, "scored": videos, "failed": 1, "views_per_video": 30}
    (test_dir / "summary.json").write_text(json.dumps(summary))
    return str(root / name)


def test_mean_of_three_splits_weights_each_split_equally(tmp_path, capsys):
    runs = [run_folder(tmp_path, "split1", 90.0, 99.0, 3783), run_folder(tmp_path, "split2", 93.0, 99.5, 3734),
            run_folder(tmp_path, "split3", 96.0, 100.0, 3696)]
    main(["--mean", *runs])
    mean = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mean of 3 runs"))
    assert mean.split()[4:] == ["93.00", "99.50", "92.00", "83.00", "30", "3/11213"]


def test_without_mean_only_the_runs_are_listed(tmp_path, capsys):
    main([run_folder(tmp_path, "split1", 90.0, 99.0, 10)])
    assert "mean of" not in capsys.readouterr().out


def test_a_run_never_tested_is_named(tmp_path):
    (tmp_path / "untested").mkdir()
    with pytest.raises(SystemExit, match="untested has no test results"):
        main([str(tmp_path / "untested")])
