"""`videonl prep charades`: the official annotation files -> resized videos and lists that keep every action with its
times; malformed rows named by file and line, nothing lost; and the synthetic multi-label set in that format."""

import csv
import json
import re
from fractions import Fraction

import numpy as np
import pytest

from videonl.command import run
from videonl.data.decode import read_frames
from videonl.prep import charades, demo_charades
from videos import write_h264

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
CLASSES = ("c000 Holding some clothes\n"
           "c001 Putting clothes somewhere\n"
           "c002 Taking a cup/glass/bottle from somewhere\n")
# Rows of Charades_v1_train.csv, one a line except where a quoted description spans two; line numbers by hand:
TRAIN = (HEADER +
         'AAAAA,P1,Bedroom,6,7,Yes,"A person holds clothes, then puts them down.",clothes,"Holds clothes;\n'  # 2-3
         'puts them away",c000 0.00 2.50;c001 1.20 3.00,3.00\n'
         "BBBBB,P2,Kitchen,5,7,Yes,script,cup,desc,,2.10\n"  # 4: no actions
         "CCCCC,P3,Kitchen,5,7,Yes,script,cup,desc,c002 0.50 4.70,3.20\n"  # 5: ends after the video's 3.2 s
         "DDDDD,P4,Hall,5,7,Yes,script,cup,desc,c002 0.00 1.00,1.50\n"  # 6: no video file
         "EEEEE,P5,Hall,5,7,Yes,script,cup,desc,c001 0.10 0.90,1.00\n")  # 7: a file that is no video
TEST = (HEADER +
        "FFFFF,P6,Bedroom,6,7,Yes,script,clothes,desc,c000 0.25 1.75,2.00\n"  # 2
        "GGGGG,P7,Bedroom,6,7,Yes,script,clothes,desc,,2.00\n")  # 3: no actions


@pytest.fixture
def source(tmp_path):
    """Official annotation files and Charades_v1_480/ with 30-frame videos (64x48 at 10 fps), one missing and one
    that is no video."""
    annotations, videos = tmp_path / "Charades", tmp_path / "Charades_v1_480"
    annotations.mkdir()
    videos.mkdir()
    (annotations / "Charades_v1_classes.txt").write_text(CLASSES)
    (annotations / "Charades_v1_train.csv").write_text(TRAIN)
    (annotations / "Charades_v1_test.csv").write_text(TEST)
    for video_id in ("AAAAA", "BBBBB", "CCCCC", "FFFFF", "GGGGG"):
        write_h264(videos / f"{video_id}.mp4", 30, fps=Fraction(10))
    (videos / "EEEEE.mp4").write_text("not a video")
    return tmp_path


def prepare(source, out, *extra):
    return charades.main(["--annotations-dir", str(source / "Charades"), "--videos-dir",
                          str(source / "Charades_v1_480"), "--out-dir", str(out), "--short-side", "32",
                          "--workers", "1", *extra])


def lines(path):
    return path.read_text().splitlines()


def test_lists_keep_every_action_with_its_times_and_classes_keep_their_numbers(source, tmp_path):
    out = tmp_path / "charades"
    counts = prepare(source, out)
    assert lines(out / "train.csv") == ["videos/AAAAA.mp4 0:0:2.5;1:1.2:3", "videos/BBBBB.mp4 none",
                                        "videos/CCCCC.mp4 2:0.5:3.2"]
    assert lines(out / "val.csv") == ["videos/FFFFF.mp4 0:0.25:1.75"]
    assert json.loads((out / "classes.json").read_text()) == {
        "Holding some clothes": 0, "Putting clothes somewhere": 1, "Taking a cup/glass/bottle from somewhere": 2}
    missing = dict(line.split("\t") for line in lines(out / "missing_train.txt"))
    assert missing["DDDDD"] == "no such video in --videos-dir" and missing["EEEEE"].startswith("undecodable")
    frames, _, info = read_frames(str(out / "videos" / "AAAAA.mp4"), lambda info: np.arange(info.num_frames),
                                  "pyav", fallback=False)
    assert frames.shape[1:] == (32, 42, 3) and info.num_frames == 30  # the whole video, short side 32
    assert counts["train"]["done"] == 3 and counts["val"]["done"] == 1


def test_every_row_is_counted_and_each_one_changed_or_left_out_is_noted_with_its_line(source, tmp_path):
    out = tmp_path / "charades"
    counts = prepare(source, out)
    for split, rows in (("train", 5), ("val", 2)):
        listed, missing = len(lines(out / f"{split}.csv")), len(lines(out / f"missing_{split}.txt"))
        left_out = [note for note in lines(out / f"notes_{split}.txt") if "\tleft out" in note]
        assert counts[split]["rows"] == rows == listed + missing + len(left_out)
    assert lines(out / "notes_train.txt") == [
        "Charades_v1_train.csv:5\tCCCCC\taction 'c002 0.50 4.70' ends after the video's length 3.2 s: clipped to "
        "0.5-3.2 s"]
    assert lines(out / "notes_val.txt") == ["Charades_v1_test.csv:3\tGGGGG\tleft out: no actions"]
    assert counts["train"]["clipped"] == 1 and counts["val"]["empty_dropped"] == 1


def test_videos_without_actions_stay_in_train_and_leave_val_unless_told(source, tmp_path):
    out = tmp_path / "flipped"
    counts = prepare(source, out, "--drop-empty-train", "--keep-empty-val")
    assert "videos/BBBBB.mp4 none" not in lines(out / "train.csv")
    assert "Charades_v1_train.csv:4\tBBBBB\tleft out: no actions" in lines(out / "notes_train.txt")
    assert lines(out / "val.csv") == ["videos/FFFFF.mp4 0:0.25:1.75", "videos/GGGGG.mp4 none"]
    assert (counts["train"]["empty_dropped"], counts["val"]["empty_dropped"]) == (1, 0)


# A malformed row put in place of line 5 (CCCCC's) of the train CSV, and what the error must say about it.
MALFORMED = {
    "unknown class": ("CCCCC,P,K,5,7,Yes,s,o,d,c157 0.50 1.70,3.20", "class 'c157' is not in Charades_v1_classes.txt"),
    "class not an id": ("CCCCC,P,K,5,7,Yes,s,o,d,092 0.50 1.70,3.20", "class '092' is not in"),
    "end before start": ("CCCCC,P,K,5,7,Yes,s,o,d,c002 1.70 0.50,3.20", "'c002 1.70 0.50' ends before it starts"),
    "start not a number": ("CCCCC,P,K,5,7,Yes,s,o,d,c002 0.5s 1.70,3.20", "start '0.5s' is not a number of seconds"),
    "end not a number": ("CCCCC,P,K,5,7,Yes,s,o,d,c002 0.5 1.7.0,3.20", "end '1.7.0' is not a number of seconds"),
    "negative time": ("CCCCC,P,K,5,7,Yes,s,o,d,c002 -0.5 1.70,3.20", "start '-0.5' is not a number of seconds"),
    "length not a number": ("CCCCC,P,K,5,7,Yes,s,o,d,c002 0.5 1.70,", "length '' is not a number of seconds"),
    "two fields": ("CCCCC,P,K,5,7,Yes,s,o,d,c002 0.50,3.20", "'c002 0.50' is not 'class start end'"),
    "fields missing": ("CCCCC,P,K,5,7,Yes,s,o,c002 0.50 1.70,3.20", "10 fields where the header has 11"),
    "repeated id": ("AAAAA,P,K,5,7,Yes,s,o,d,c002 0.50 1.70,3.20", "id 'AAAAA' again (first on line 2)"),
    "empty id": (",P,K,5,7,Yes,s,o,d,c002 0.50 1.70,3.20", "id '' is not a video name"),
}


def with_line_5(text, row):
    rows = text.splitlines(keepends=True)
    return "".join(rows[:4] + [row + "\n"] + rows[5:])


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_row_stops_before_any_video_naming_file_line_and_problem(source, tmp_path, case, capsys):
    row, problem = MALFORMED[case]
    train_csv = source / "Charades" / "Charades_v1_train.csv"
    train_csv.write_text(with_line_5(TRAIN, row))
    out = tmp_path / "charades"
    assert run(charades.main, ["--annotations-dir", str(source / "Charades"), "--videos-dir",
                               str(source / "Charades_v1_480"), "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{train_csv}:5: " in err and problem in err and "nothing was prepared" in err
    assert not out.exists()


def test_bad_rows_may_be_left_out_each_noted(source, tmp_path):
    (source / "Charades" / "Charades_v1_train.csv").write_text(with_line_5(TRAIN, MALFORMED["unknown class"][0]))
    out = tmp_path / "charades"
    counts = prepare(source, out, "--skip-bad-rows")
    assert [line.split()[0] for line in lines(out / "train.csv")] == ["videos/AAAAA.mp4", "videos/BBBBB.mp4"]
    assert lines(out / "notes_train.txt") == [
        "Charades_v1_train.csv:5\tCCCCC\tleft out, malformed: action 'c157 0.50 1.70': class 'c157' is not in "
        "Charades_v1_classes.txt"]
    assert counts["train"]["malformed"] == 1


def test_every_malformed_row_is_named_at_once(source, tmp_path, capsys):
    rows = TRAIN.splitlines(keepends=True)
    bad = rows[:4] + [MALFORMED["end before start"][0] + "\n", MALFORMED["unknown class"][0].replace(
        "CCCCC", "DDDDD") + "\n"] + rows[7:]
    (source / "Charades" / "Charades_v1_train.csv").write_text("".join(bad))
    with pytest.raises(SystemExit, match="2 malformed rows") as stop:
        prepare(source, tmp_path / "out")
    assert ":5: CCCCC: action 'c002 1.70 0.50' ends" in str(stop.value)
    assert ":6: DDDDD: action 'c157 0.50 1.70'" in str(stop.value)


@pytest.mark.parametrize("classes, problem", [
    ("c000 Holding some clothes\nc002 Taking a cup\n", "2 classes, but no class numbered 1 (c001)"),
    ("c000 Holding some clothes\nc001 Holding some clothes\n", ":2: class name 'Holding some clothes' again"),
    ("c000 Holding some clothes\nc000 Putting clothes\n", ":2: class id 'c000' again (first on line 1)"),
    ("c000 Holding some clothes\n001 Putting clothes\n", ":2: expected 'c<number> <name>', got '001 Putting"),
])
def test_a_class_list_that_cannot_number_the_outputs_is_refused(source, tmp_path, classes, problem):
    (source / "Charades" / "Charades_v1_classes.txt").write_text(classes)
    with pytest.raises(SystemExit, match=re.escape(problem)):
        prepare(source, tmp_path / "out")


def test_a_csv_without_the_actions_column_is_named(source, tmp_path):
    (source / "Charades" / "Charades_v1_test.csv").write_text("id,length\nFFFFF,2.00\n")
    with pytest.raises(SystemExit, match="Charades_v1_test.csv: not a Charades CSV: no column actions"):
        prepare(source, tmp_path / "out")


def foreground_x(frames):
    """Per frame, the mean column of the pixels far from the background's colour (the first pixel's)."""
    mask = np.abs(frames.astype(int) - frames[:, :1, :1].astype(int)).sum(-1) > 60
    return (mask * np.arange(frames.shape[2])).sum((1, 2)) / mask.sum((1, 2))


def test_a_synthetic_shape_moves_only_during_its_action():
    x = foreground_x(demo_charades.render_video([("moving right", 10, 20)], 3, 48, 64, 30, 10))
    assert np.ptp(x[:11]) < 0.3 and np.ptp(x[20:]) < 0.3  # still before and after
    assert np.all(np.diff(x[10:21]) > 0.2) and x[20] - x[10] > 3  # moving right in between


def test_the_synthetic_set_goes_through_charades_preparation(tmp_path):
    source = tmp_path / "source"
    demo_charades.main(["--out-dir", str(source), "--train", "4", "--val", "3", "--size", "32", "--seconds", "1",
                        "--fps", "8", "--empty-fraction", "0.3", "--seed", "2", "--workers", "1"])
    counts = charades.main(["--annotations-dir", str(source), "--videos-dir", str(source / "Charades_v1_480"),
                            "--out-dir", str(tmp_path / "out"), "--short-side", "32", "--workers", "1"])
    for split, name in (("train", "Charades_v1_train.csv"), ("val", "Charades_v1_test.csv")):
        with open(source / name, newline="") as f:
            rows = list(csv.DictReader(f))
        expected = [f"videos/{row['id']}.mp4 " + (";".join(
            f"{int(cls[1:])}:{float(start):g}:{float(end):g}"
            for cls, start, end in (action.split() for action in row["actions"].split(";"))) or "none")
            for row in rows if row["actions"] or split == "train"]
        assert lines(tmp_path / "out" / f"{split}.csv") == expected
        assert all(2 <= len(row["actions"].split(";")) <= 3 for row in rows if row["actions"])
        assert counts[split]["failed"] == 0
    assert counts["train"]["without_actions"] + counts["val"]["without_actions"] > 0
