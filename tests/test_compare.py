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


def test_a_multi_label_run_shows_its_map_beside_single_label_runs(tmp_path, capsys):
    single = run_folder(tmp_path, "kinetics", 70.0, 90.0, 100)
    multi = tmp_path / "charades" / "test" / "iter_0001000"
    multi.mkdir(parents=True)
    (multi / "summary.json").write_text(json.dumps({"mAP": 37.5, "constant_mAP": 8.25, "top1": 60.0, "top5": 85.0,
                                                    "clip_top1": 50.0, "videos": 1863, "scored": 1863, "failed": 0,
                                                    "views_per_video": 30}))
    main([single, str(tmp_path / "charades")])
    header, _, kinetics, charades, *notes = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["run", "mAP", "constant", "mAP", "video"]
    assert kinetics.split()[1:3] == ["70.00", "90.00"] and charades.split()[1:4] == ["37.50", "8.25", "60.00"]
    assert kinetics.index("70.00") == charades.index("60.00")  # the kinetics run's mAP cell is empty
    assert notes[0].startswith("(mAP in %")
