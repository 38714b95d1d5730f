import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from videonl.prep import check, common, demo, kinetics, mini_kinetics, ucf101
from videonl.data.datasets import read_video_list
from videonl.data import decode as decode_module
from videonl.data.decode import read_frames
from videos import write_h264, write_mpeg4_avi

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["passing American football (in game)", "massaging person's head", "abseiling"]
HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"


@pytest.fixture
def kinetics_source(tmp_path):
    """Raw videos named by youtube id (3 s at 10 fps, 64x48) and a train CSV in the official layout."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write_h264(raw / "-abcdefghij.mp4", 30, fps=Fraction(10))
    write_mpeg4_avi(raw / "k_lmnopqrst.avi", 30, fps=10)
    write_h264(raw / "uvwxyz01234.mp4", 30, fps=Fraction(10))
    (raw / "broken00000.mp4").write_text("not a video")
    rows = [
        f'"{LABELS[0]}",-abcdefghij,1,2,train,0',
        f'"{LABELS[1]}",k_lmnopqrst,0,2,train,0',
        f"{LABELS[2]},uvwxyz01234,5,15,train,1",  # starts after the video ends
        f"{LABELS[2]},broken00000,0,10,train,0",
        f"{LABELS[2]},notdownload,0,10,train,0",
    ]
    csv_file = tmp_path / "train.csv"
    csv_file.write_text(HEADER + "\n".join(rows) + "\n")
    return tmp_path


def prepare(source, out, *extra):
    return kinetics.main(["--csv", str(source / "train.csv"), "--split", "train", "--raw-dir", str(source / "raw"),
                          "--out-dir", str(out), "--short-side", "32", "--workers", "1", *extra])


def test_kinetics_trims_resizes_lists_and_reports(kinetics_source, tmp_path):
    out = tmp_path / "k400"
    counts = prepare(kinetics_source, out)
    assert counts == {"done": 2, "skipped": 0, "failed": 3}
    classes = json.loads((out / "classes.json").read_text())
    assert classes == {"abseiling": 0, "massaging person's head": 1, "passing American football (in game)": 2}
    records = read_video_list(str(out / "train.csv"))
    assert [(Path(r.path).relative_to(out).as_posix(), r.label) for r in records] == [
        (f"train/{LABELS[0]}/-abcdefghij_000001_000002.mp4", 2),
        (f"train/{LABELS[1]}/k_lmnopqrst_000000_000002.mp4", 1)]
    frames, _, info = read_frames(records[0].path, lambda info: np.arange(info.num_frames), "pyav", fallback=False)
    assert info.num_frames == 10 and info.fps == 10  # [1, 2) s at 10 fps, rate kept
    assert frames.shape[1:] == (32, 42, 3)  # short side 32, 64x48 -> 42.7 rounded to even
    assert abs(frames[0, :, 24:].float().mean() - 80) < 6  # the first frame kept is frame 10 (grey 8 * 10)
    import av
    with av.open(records[0].path) as container:
        assert not container.streams.audio and container.streams.video[0].codec_context.name == "h264"
    missing = dict(line.split("\t") for line in (out / "missing_train.txt").read_text().splitlines())
    assert missing["notdownload_000000_000010"] == "not downloaded"
    assert missing["uvwxyz01234_000005_000015"].startswith("too short")
    assert missing["broken00000_000000_000010"].startswith("undecodable")


def keyframe_gaps(path):
    """Packets from each keyframe to the next (or to the end)."""
    import av
    with av.open(str(path)) as container:
        keys = [packet.is_keyframe for packet in container.demux(video=0) if packet.size]
    return np.diff(np.append(np.flatnonzero(keys), len(keys)))


@pytest.mark.parametrize("gop", [4, 0])
def test_kinetics_bounds_the_gop_as_asked(kinetics_source, tmp_path, gop):
    out = tmp_path / "k400"
    prepare(kinetics_source, out, "--gop", str(gop))
    gaps = keyframe_gaps(out / "train" / LABELS[1] / "k_lmnopqrst_000000_000002.mp4")  # 20 frames
    assert gaps.sum() == 20
    assert gaps.max() <= 4 if gop else len(gaps) == 1  # 0: x264's own GOP, up to 250 frames


@pytest.mark.parametrize("flag, cabac, deblock", [("--fast-decode", b"cabac=0", b"deblock=0"),
                                                  ("--no-fast-decode", b"cabac=1", b"deblock=1")])
def test_kinetics_tunes_x264_for_fast_decoding_as_asked(kinetics_source, tmp_path, flag, cabac, deblock):
    """x264 writes its settings into the stream (a user-data SEI): fastdecode turns CABAC and deblocking off."""
    out = tmp_path / "k400"
    prepare(kinetics_source, out, flag)
    stream = (out / "train" / LABELS[1] / "k_lmnopqrst_000000_000002.mp4").read_bytes()
    assert cabac in stream and deblock in stream


def test_kinetics_rerun_skips_finished_clips(kinetics_source, tmp_path):
    out = tmp_path / "k400"
    prepare(kinetics_source, out)
    clip = next((out / "train").rglob("*.mp4"))
    stamp = clip.stat().st_mtime_ns
    assert prepare(kinetics_source, out) == {"done": 0, "skipped": 2, "failed": 3}
    assert clip.stat().st_mtime_ns == stamp
    assert len(read_video_list(str(out / "train.csv"))) == 2


def test_an_interrupted_write_leaves_no_file_and_a_rerun_finishes(kinetics_source, tmp_path, monkeypatch):
    out = tmp_path / "k400"
    real_transcode = common.transcode

    def killed_midway(source, target, *args):
        Path(target).write_bytes(b"\x00" * 1000)  # part of a file is on disk when the run dies
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "transcode", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        prepare(kinetics_source, out)
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix == ".mp4"]
    # A SIGKILL cannot clean up: the temporary file stays, under a name no reader lists; the rerun removes it.
    leftover = out / "train" / LABELS[0] / ".part-123-x.mp4"
    leftover.write_bytes(b"\x00" * 1000)
    monkeypatch.setattr(common, "transcode", real_transcode)
    assert prepare(kinetics_source, out)["done"] == 2
    assert not leftover.exists()


def test_kinetics_test_csv_without_labels(kinetics_source, tmp_path):
    out = tmp_path / "k400"
    prepare(kinetics_source, out)
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("youtube_id,time_start,time_end,split\n-abcdefghij,0,1,test\n")
    kinetics.main(["--csv", str(test_csv), "--split", "test", "--raw-dir", str(kinetics_source / "raw"),
                   "--out-dir", str(out), "--short-side", "32", "--workers", "1"])
    assert (out / "test.csv").read_text() == "test/unlabelled/-abcdefghij_000000_000001.mp4 -1\n"


def test_mini_kinetics_joins_ids_and_renumbers_classes(kinetics_source, tmp_path):
    k400 = tmp_path / "k400"
    prepare(kinetics_source, k400)
    (tmp_path / "train_ytid_list.txt").write_text("-abcdefghij\ndeadid00000\n")
    (tmp_path / "val_ytid_list.txt").write_text("k_lmnopqrst\n")
    ids = ["--train-ids", str(tmp_path / "train_ytid_list.txt"), "--val-ids", str(tmp_path / "val_ytid_list.txt")]
    out = tmp_path / "mini"
    counts = mini_kinetics.main(["--k400-dir", str(k400), "--out-dir", str(out), *ids])
    assert counts == {"classes": 2, "train": (1, 1), "val": (1, 0)}
    assert json.loads((out / "classes.json").read_text()) == {LABELS[1]: 0, LABELS[0]: 1}
    train = read_video_list(str(out / "train.csv"))
    assert [(Path(r.path).resolve().name, r.label) for r in train] == [("-abcdefghij_000001_000002.mp4", 1)]
    assert Path(train[0].path).is_file()
    assert (out / "missing_train.txt").read_text().startswith("deadid00000\t")

    from_csv = tmp_path / "mini_csv"
    counts = mini_kinetics.main(["--csv", str(kinetics_source / "train.csv"), "--out-dir", str(from_csv), *ids])
    assert counts["train"] == (1, 1)
    assert kinetics.read_rows(from_csv / "kinetics200_val.csv")[0]["label"] == LABELS[1]


@pytest.fixture
def ucf_source(tmp_path):
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n")
    (splits / "trainlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nHandStandPushups/v_HandStandPushups_g08_c01.avi 2\r\n")
    (splits / "testlist01.txt").write_bytes(
        b"HandstandPushups/v_HandStandPushups_g01_c01.avi\r\nYoYo/v_YoYo_g01_c01.avi\r\n")
    videos = tmp_path / "UCF-101"
    for relative in ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi",
                     "HandstandPushups/v_HandStandPushups_g01_c01.avi"]:  # YoYo's video is missing
        (videos / relative).parent.mkdir(parents=True, exist_ok=True)
        write_mpeg4_avi(videos / relative, 8)
    return tmp_path


def ucf_args(source, out, *extra):
    return ["--splits-dir", str(source / "ucfTrainTestlist"), "--videos-dir", str(source / "UCF-101"),
            "--out-dir", str(out), "--splits", "1", "--workers", "1", *extra]


def test_ucf101_lists_with_zero_based_labels_and_the_case_quirk(ucf_source, tmp_path):
    out = tmp_path / "ucf"
    counts = ucf101.main(ucf_args(ucf_source, out))
    assert counts["split1/train"]["failed"] == 0 and counts["split1/val"]["failed"] == 1
    train = read_video_list(str(out / "split1" / "train.csv"))
    assert [(Path(r.path).name, r.label) for r in train] == [("v_ApplyEyeMakeup_g08_c01.avi", 0),
                                                             ("v_HandStandPushups_g08_c01.avi", 1)]
    assert all(Path(r.path).is_file() for r in train)
    test = read_video_list(str(out / "split1" / "val.csv"))
    assert [(Path(r.path).name, r.label) for r in test] == [("v_HandStandPushups_g01_c01.avi", 1)]
    assert (out / "split1" / "missing_val.txt").read_text().startswith("YoYo/v_YoYo_g01_c01.avi\t")


def test_ucf101_reencode_is_resumable(ucf_source, tmp_path):
    out = tmp_path / "ucf"
    assert ucf101.main(ucf_args(ucf_source, out, "--reencode", "--short-side", "32"))["split1/train"]["done"] == 2
    train = read_video_list(str(out / "split1" / "train.csv"))
    assert all(r.path.endswith(".mp4") and Path(r.path).is_file() for r in train)
    assert ucf101.main(ucf_args(ucf_source, out, "--reencode", "--short-side", "32"))["split1/train"]["skipped"] == 2


def test_check_reports_and_drops_failing_videos(video_dir, tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text(f"{video_dir}/plain.mp4 0\n{video_dir}/truncated.mp4 1\n{video_dir}/name with spaces.mp4 2\n")
    counts = check.main(["--list", str(listing), "--backend", "all", "--drop", "--workers", "1"])
    assert counts == {"done": 2, "skipped": 0, "failed": 1}
    assert [Path(r.path).name for r in read_video_list(str(listing))] == ["plain.mp4", "name with spaces.mp4"]
    failures = (tmp_path / "train_failures.txt").read_text()
    assert failures.startswith(f"{video_dir}/truncated.mp4\t") and "pyav:" in failures


def test_check_all_never_fails_a_video_for_a_backend_unusable_here(video_dir, tmp_path, torchcodec_without_ffmpeg,
                                                                  capsys):
    listing = tmp_path / "train.csv"
    listing.write_text(f"{video_dir}/plain.mp4 0\n{video_dir}/name with spaces.mp4 1\n")
    counts = check.main(["--list", str(listing), "--backend", "all", "--drop", "--workers", "1"])
    assert counts == {"done": 2, "skipped": 0, "failed": 0}
    assert listing.read_text() == f"{video_dir}/plain.mp4 0\n{video_dir}/name with spaces.mp4 1\n"
    assert "leaves out torchcodec, not usable here" in capsys.readouterr().out


@pytest.mark.parametrize("backend, message", [("torchcodec", "--backend torchcodec is not usable here: "),
                                              ("auto", "no decoder backend is usable here (decord: simulated")])
def test_check_with_no_usable_backend_stops_before_reading_a_video(backend, message, video_dir, tmp_path, monkeypatch,
                                                                   torchcodec_without_ffmpeg, capsys):
    if backend == "auto":
        for name in ("decord", "pyav"):
            monkeypatch.setitem(decode_module._AVAILABILITY, name, (False, "simulated: not installed"))
    listing = tmp_path / "train.csv"
    listing.write_text(f"{video_dir}/plain.mp4 0\n")
    with pytest.raises(SystemExit):
        check.main(["--list", str(listing), "--backend", backend, "--drop", "--workers", "1"])
    assert message in capsys.readouterr().err
    assert listing.read_text() == f"{video_dir}/plain.mp4 0\n"
    assert not (tmp_path / "train_failures.txt").exists()


def shape_track(frames):
    """Centroid x, y and area of the pixels that differ from the first pixel's colour (the background)."""
    mask = np.abs(frames.astype(int) - frames[:, :1, :1].astype(int)).sum(-1) > 60
    ys, xs = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    area = mask.sum((1, 2))
    return (mask * xs).sum((1, 2)) / area, (mask * ys).sum((1, 2)) / area, area


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_classes_differ_by_their_motion(seed):
    tracks = {name: shape_track(demo.render(name, seed, 48, 64, 30, 10)) for name in demo.CLASSES}
    x, y, area = tracks["moving right"]
    assert x[-1] - x[0] > 3 and abs(y[-1] - y[0]) < 1
    x, y, area = tracks["moving up"]
    assert y[0] - y[-1] > 3 and abs(x[-1] - x[0]) < 1
    assert tracks["growing"][2][-1] > 1.5 * tracks["growing"][2][0]
    assert tracks["shrinking"][2][-1] < tracks["shrinking"][2][0] / 1.5
    for spinning in ("rotating clockwise", "rotating counterclockwise"):
        x, y, area = tracks[spinning]
        assert abs(x[-1] - x[0]) < 1 and abs(area[-1] - area[0]) < 0.2 * area[0]


def principal_axis(frames):
    """Angle (radians, y down) of the shape's long axis in each frame, and how elongated it is (the ratio of its
    second moments: 1 for a regular polygon, whose axis is undefined)."""
    mask = np.abs(frames.astype(int) - frames[:, :1, :1].astype(int)).sum(-1) > 60
    ys, xs = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    axes, elongation = [], []
    for m in mask:
        x, y = xs[m] - xs[m].mean(), ys[m] - ys[m].mean()
        moments = np.array([[np.mean(x * x), np.mean(x * y)], [np.mean(x * y), np.mean(y * y)]])
        values, vectors = np.linalg.eigh(moments)
        axes.append(np.arctan2(vectors[1, 1], vectors[0, 1]))
        elongation.append(values[1] / values[0])
    return np.array(axes), np.array(elongation)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_demo_shape_turning_one_way_never_looks_like_turning_the_other(seed):
    """The shapes have a long axis, and between the frames a demo clip samples (every 5th at 15 fps) it turns by
    well under 90 degrees: the direction of the turn is never ambiguous, as it is for a square turning 45."""
    for name, sign in (("rotating clockwise", 1), ("rotating counterclockwise", -1)):
        axes, elongation = principal_axis(demo.render(name, seed, 96, 96, 60, 15)[::5])
        turns = np.angle(np.exp(2j * np.diff(axes))) / 2  # the axis is a line: its angle is modulo 180 degrees
        assert elongation.min() > 1.5
        assert np.all(sign * turns > np.radians(10)) and np.all(np.abs(turns) < np.radians(60)), np.degrees(turns)


def test_demo_runs_the_kinetics_path_end_to_end(tmp_path):
    source = tmp_path / "demo_source"
    demo.main(["--out-dir", str(source), "--train-per-class", "1", "--val-per-class", "1", "--size", "32",
               "--seconds", "1", "--fps", "8", "--workers", "1"])
    for split in ("train", "val"):
        counts = kinetics.main(["--csv", str(source / f"kinetics_{split}.csv"), "--split", split, "--raw-dir",
                                str(source / "raw"), "--out-dir", str(tmp_path / "demo"), "--short-side", "32",
                                "--workers", "1"])
        assert counts == {"done": 8, "skipped": 0, "failed": 0}
    assert sorted(r.label for r in read_video_list(str(tmp_path / "demo" / "val.csv"))) == list(range(8))


def test_checkout_scripts_run_with_worker_processes(tmp_path):
    """The scripts' jobs go to worker processes by pickling functions, which must live in an importable module."""
    result = subprocess.run([sys.executable, str(ROOT / "data_prep" / "demo.py"), "--out-dir", str(tmp_path),
                             "--train-per-class", "1", "--val-per-class", "0", "--size", "32", "--seconds", "1",
                             "--fps", "8", "--workers", "2"], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "raw").iterdir())) == 8


@pytest.mark.parametrize("script", ["kinetics", "mini_kinetics", "ucf101", "charades", "check", "demo", "demo_charades",
                                    "merge", "shards"])
def test_every_script_has_help(script):
    result = subprocess.run([sys.executable, str(ROOT / "data_prep" / f"{script}.py"), "--help"],
                            capture_output=True, text=True, cwd="/")
    assert result.returncode == 0 and "usage:" in result.stdout
