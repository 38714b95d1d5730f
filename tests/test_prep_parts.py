"""Preparation as a job array: `--shard I/N` parts of a list and `videonl prep merge`, which joins them into exactly
the files one run over the whole list writes."""

import shutil
from fractions import Fraction

import pytest

from videonl.command import run
from videonl.prep import charades, demo_charades, kinetics, merge, ucf101
from videonl.prep.common import ClipJob
from videonl.prep.parts import Shard, select_part
from videos import write_h264

HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"
# youtube id -> what raw/ holds for it: a video, a file that is no video, or nothing (not downloaded)
SOURCES = {"aaaaaaaaaaa": "video", "bbbbbbbbbbb": "none", "ccccccccccc": "video", "ddddddddddd": "broken",
           "eeeeeeeeeee": "video", "fffffffffff": "none", "ggggggggggg": "video"}


@pytest.fixture
def kinetics_source(tmp_path):
    """Seven rows of two classes: four clips that prepare, one undecodable source and two not downloaded, mixed
    so that each of three parts holds some of each."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = []
    for number, (youtube_id, kind) in enumerate(SOURCES.items()):
        if kind == "video":
            write_h264(raw / f"{youtube_id}.mp4", 10, fps=Fraction(10), height=32, width=40)
        elif kind == "broken":
            (raw / f"{youtube_id}.mp4").write_text("not a video")
        rows.append(f"{('waving', 'yawning')[number % 2]},{youtube_id},0,1,train,0\n")
    (tmp_path / "train.csv").write_text(HEADER + "".join(rows))
    return tmp_path


def prepare(source, out, *extra):
    return kinetics.main(["--csv", str(source / "train.csv"), "--split", "train", "--raw-dir", str(source / "raw"),
                          "--out-dir", str(out), "--short-side", "32", "--workers", "1", *extra])


@pytest.mark.parametrize("count", [1, 3])
def test_merged_kinetics_parts_are_byte_identical_to_one_run(kinetics_source, tmp_path, count):
    whole = tmp_path / "whole"
    assert prepare(kinetics_source, whole) == {"done": 4, "skipped": 0, "failed": 3}
    parts = tmp_path / "parts"
    for index in range(count):
        prepare(kinetics_source, parts, "--shard", f"{index}/{count}")
    assert not (parts / "train.csv").exists() and not (parts / "missing_train.txt").exists()

    assert merge.main(["--out-dir", str(parts), "--split", "train", "--parts", str(count)]) == {
        "train": {"done": 4, "skipped": 0, "failed": 3}}
    for name in ("train.csv", "missing_train.txt", "classes.json"):
        assert (parts / name).read_bytes() == (whole / name).read_bytes(), name
    assert sorted(p.relative_to(parts) for p in (parts / "train").rglob("*.mp4")) == \
        sorted(p.relative_to(whole) for p in (whole / "train").rglob("*.mp4"))


def test_merged_charades_parts_are_byte_identical_to_one_run(tmp_path):
    """Charades' lists carry multi-label fields, and each part also writes the whole CSV's notes."""
    source = tmp_path / "source"
    demo_charades.main(["--out-dir", str(source), "--train", "7", "--val", "4", "--size", "32", "--seconds", "1",
                        "--fps", "8", "--empty-fraction", "0.3", "--seed", "2", "--workers", "1"])
    next(iter(sorted((source / "Charades_v1_480").iterdir()))).unlink()  # a video not downloaded

    def prepare_charades(out, *extra):
        return charades.main(["--annotations-dir", str(source), "--videos-dir", str(source / "Charades_v1_480"),
                              "--out-dir", str(out), "--short-side", "32", "--workers", "1", *extra])

    whole = prepare_charades(tmp_path / "whole")
    assert sum(whole[split]["failed"] for split in whole) == 1
    parts = tmp_path / "parts"
    for index in range(3):
        prepare_charades(parts, "--shard", f"{index}/3")
    merge.main(["--out-dir", str(parts), "--split", "train", "val", "--parts", "3"])
    for name in ("train.csv", "missing_train.txt", "notes_train.txt", "val.csv", "missing_val.txt", "notes_val.txt",
                 "classes.json"):
        assert (parts / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert ";" in (parts / "train.csv").read_text()
    assert sorted(p.name for p in (parts / "videos").iterdir()) == \
        sorted(p.name for p in (tmp_path / "whole" / "videos").iterdir())


def jobs_of(keys, present):
    return [ClipJob(key=key, source=f"raw/{key}.mp4" if key in present else None, target=f"out/{key}.mp4",
                    label=index % 3, short_side=32) for index, key in enumerate(keys)]


@pytest.mark.parametrize("size, count", [(10, 3), (7, 7), (2, 5), (1000, 16)])
def test_parts_are_disjoint_balanced_in_list_order_and_independent_of_what_is_on_disk(size, count):
    keys = [f"video{number:04d}" for number in range(size)]
    every = [select_part(jobs_of(keys, set(keys)), Shard(index, count)) for index in range(count)]
    assert [job.key for part in every for job in part.jobs] == keys
    sizes = [len(part.jobs) for part in every]
    assert max(sizes) - min(sizes) <= 1
    # a re-run after some videos were downloaded, or lost, does the same jobs in each part
    some = set(keys[::2])
    assert [[job.key for job in select_part(jobs_of(keys, some), Shard(index, count)).jobs]
            for index in range(count)] == [[job.key for job in part.jobs] for part in every]


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1", "a/b", "0/0"])
def test_a_shard_that_is_not_a_part_of_n_is_a_usage_error(kinetics_source, tmp_path, text, capsys):
    with pytest.raises(SystemExit) as stop:
        prepare(kinetics_source, tmp_path / "out", f"--shard={text}")
    assert stop.value.code == 2 and f"'{text}' is not I/N" in capsys.readouterr().err


def test_a_part_removes_only_its_own_leftovers(kinetics_source, tmp_path):
    """A task of a job array may start while another writes beside it: it must not delete that one's file."""
    folder = tmp_path / "out" / "train" / "waving"
    folder.mkdir(parents=True)
    own, other = folder / ".part-0of3.1a2b-x.mp4", folder / ".part-1of3.3c4d-x.mp4"
    own.write_bytes(b"\0")
    other.write_bytes(b"\0")
    prepare(kinetics_source, tmp_path / "out", "--shard", "0/3")
    assert not own.exists() and other.exists()


@pytest.fixture
def ucf_source(tmp_path):
    """Split 1 of a UCF101 layout with eight training and three test videos, two of them absent. The list-only
    mode reads no video, so empty files stand for them."""
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Archery\n2 Bowling\n")
    train = [f"{name}/v_{name}_g0{group}_c01.avi" for group in range(1, 5) for name in ("Archery", "Bowling")]
    test = ["Archery/v_Archery_g05_c01.avi", "Bowling/v_Bowling_g05_c01.avi", "Bowling/v_Bowling_g06_c01.avi"]
    (splits / "trainlist01.txt").write_text("".join(f"{path} {1 + path.startswith('B')}\n" for path in train))
    (splits / "testlist01.txt").write_text("".join(f"{path}\n" for path in test))
    for path in train[:3] + train[4:] + test[:2]:  # train[3] and test[2] are missing
        (tmp_path / "UCF-101" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "UCF-101" / path).write_bytes(b"")
    return tmp_path


def ucf_part(source, out, index, count):
    """Part `index` of `count` of split 1's lists; the folder of their parts/."""
    ucf101.main(["--splits-dir", str(source / "ucfTrainTestlist"), "--videos-dir", str(source / "UCF-101"),
                 "--out-dir", str(out), "--splits", "1", "--shard", f"{index}/{count}"])
    return out / "split1"


def ucf_parts(source, out, count):
    return [ucf_part(source, out, index, count) for index in range(count)][0]


def merge_command(folder, count, capsys):
    """`videonl prep merge` on split1's train list: (exit status, stderr)."""
    status = run(merge.main, ["--out-dir", str(folder), "--split", "train", "--parts", str(count)])
    return status, capsys.readouterr().err


def test_merged_ucf101_parts_are_byte_identical_to_one_run(ucf_source, tmp_path):
    ucf101.main(["--splits-dir", str(ucf_source / "ucfTrainTestlist"), "--videos-dir", str(ucf_source / "UCF-101"),
                 "--out-dir", str(tmp_path / "whole"), "--splits", "1"])
    folder = ucf_parts(ucf_source, tmp_path / "parts", 3)
    merge.main(["--out-dir", str(folder), "--split", "train", "val", "--parts", "3"])
    for name in ("train.csv", "missing_train.txt", "val.csv", "missing_val.txt"):
        assert (folder / name).read_bytes() == (tmp_path / "whole" / "split1" / name).read_bytes(), name


def test_merge_names_a_missing_part(ucf_source, tmp_path, capsys):
    folder = ucf_parts(ucf_source, tmp_path / "out", 3)
    (folder / "parts" / "train.1-of-3.json").unlink()  # its task was killed before it finished
    status, err = merge_command(folder, 3, capsys)
    assert status == 1 and f"no {folder / 'parts' / 'train.1-of-3.json'}" in err
    assert "train.0-of-3.json" not in err and "train.2-of-3.json" not in err
    assert not (folder / "train.csv").exists()


def test_merge_names_a_part_that_is_there_twice(ucf_source, tmp_path, capsys):
    folder = ucf_parts(ucf_source, tmp_path / "out", 3)
    for suffix in ("csv", "json"):  # part 1's files copied over part 2's
        shutil.copy(folder / "parts" / f"train.1-of-3.{suffix}", folder / "parts" / f"train.2-of-3.{suffix}")
    shutil.copy(folder / "parts" / "missing_train.1-of-3.txt", folder / "parts" / "missing_train.2-of-3.txt")
    status, err = merge_command(folder, 3, capsys)
    assert status == 1 and "part 1 of 3 of train is there twice" in err
    assert f"{folder / 'parts' / 'train.1-of-3.json'} and {folder / 'parts' / 'train.2-of-3.json'}" in err
    assert not (folder / "train.csv").exists()


def test_merge_names_a_part_changed_since_its_run(ucf_source, tmp_path, capsys):
    folder = ucf_parts(ucf_source, tmp_path / "out", 3)
    (folder / "parts" / "train.0-of-3.csv").write_text("Archery/v_Archery_g01_c01.avi 0\n")  # edited by hand
    status, err = merge_command(folder, 3, capsys)
    assert status == 1 and f"{folder / 'parts' / 'train.0-of-3.csv'} is not the file part 0 of 3 wrote" in err
    assert not (folder / "train.csv").exists()


def test_merge_names_a_part_prepared_from_another_list(ucf_source, tmp_path, capsys):
    folder = ucf_parts(ucf_source, tmp_path / "out", 3)
    trainlist = ucf_source / "ucfTrainTestlist" / "trainlist01.txt"
    trainlist.write_text(trainlist.read_text() + "Bowling/v_Bowling_g09_c01.avi 2\n")  # the list grew
    ucf_part(ucf_source, tmp_path / "out", 2, 3)
    status, err = merge_command(folder, 3, capsys)
    assert status == 1 and f"{folder / 'parts' / 'train.2-of-3.json'} was prepared from another list" in err
    assert not (folder / "train.csv").exists()
