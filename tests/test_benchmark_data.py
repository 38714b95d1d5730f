import os

import numpy as np
import pytest
import torch

from videonl.benchmark.__main__ import main


def test_loader_benchmark_prints_every_row(video_dir, tmp_path, capsys):
    listing = tmp_path / "val.csv"
    listing.write_text(f"{video_dir}/plain.mp4 0\n{video_dir}/name with spaces.mp4 1\n")
    main(["loader", "--cfg", "configs/kinetics400/c2d_r50_8x8.yaml", "--list", str(listing), "--backend", "pyav",
          "--workers", "0", "--videos", "2", "--separate",
          "--work-dir", str(tmp_path / "work"), "--repeat", "1", "DATA.NUM_FRAMES", "2", "DATA.SAMPLING_RATE", "2",
          "DATA.TRAIN_JITTER_SCALES", "[36, 40]", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
          "TEST.NUM_CLIPS", "2", "DATALOADER.TRAIN_BATCH_SIZE", "1"])
    out = capsys.readouterr().out
    assert out.startswith("2 videos of")
    for row in ("floor", "train", "train item", "train decode", "test 10", "test 30", "test decode", "30 separate",
                "train shards", "test 30 shards"):
        assert f" {row} " in out
    assert out.count(" x seek") == 2 * 7  # train, train item, train decode, test 10, test 30 (+ shards), wall and cpu
    assert out.count(" x files") == 2 * 2  # the shards rows
    assert out.splitlines()[1].startswith("seek (ref)  train ")


def test_the_reference_reader_returns_the_frames_asked_for(video_dir):
    from videonl.benchmark.seek_reader import read_clip
    from videonl.data.decode import decode
    from videos import BRIGHTNESS_STEP, brightness

    clip = np.array([13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33])  # the last three wrap past frame 29
    frames, decoded = read_clip(str(video_dir / "bframes.mp4"), clip, 30)
    frames = torch.from_numpy(frames)
    assert decoded >= 30 - 11 + 3  # from the keyframe before frame 13 (frame 11) to the end, then frames 0-3
    assert torch.equal(frames, decode(video_dir / "bframes.mp4", clip, "pyav", fallback=False))
    assert np.abs(brightness(frames) - (clip % 30) * BRIGHTNESS_STEP).max() < 6


def test_samples_are_prepared_like_kinetics_with_default_encoded_copies(tmp_path):
    from videonl.benchmark.real_clips import SAMPLES, default_encoded_copies, prepare_samples
    from videonl.data.datasets import read_video_list
    from videonl.data.decode import read_frames

    records = read_video_list(str(prepare_samples(tmp_path / "prepared", short_side=32)))
    assert sorted(os.path.basename(r.path).split("_")[0] for r in records) == sorted(SAMPLES)
    copies = default_encoded_copies(records, tmp_path / "copies")
    for record in records:
        ours, _, info = read_frames(record.path, [0], "pyav", fallback=False)
        theirs, _, copy_info = read_frames(copies[record.path], [0], "pyav", fallback=False)
        assert min(ours.shape[1:3]) == 32 and ours.shape == theirs.shape
        assert (info.num_frames, info.fps) == (copy_info.num_frames, copy_info.fps)


def test_gop_benchmark_decodes_fewer_frames_with_shorter_gops(tmp_path, capsys):
    main(["gop", "--gops", "0", "8", "--fast-decode", "yes", "no", "--short-side", "32", "--windows", "3",
          "--frames", "4", "--rate", "2", "--repeat", "1", "--work-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["gop"])
    rows = {tuple(line.split()[:2]): line.split() for line in lines[header + 1:]}
    assert set(rows) == {("0", "yes"), ("8", "yes"), ("0", "no"), ("8", "no"), ("seek", "no")}
    frames_decoded = {setting: float(row[-2]) for setting, row in rows.items()}
    for fast_decode in ("yes", "no"):
        assert frames_decoded[("8", fast_decode)] < frames_decoded[("0", fast_decode)] <= frames_decoded[("seek", "no")]


def test_timeline_benchmark_runs_the_command_on_looped_real_footage(tmp_path, capsys):
    import av

    from videonl.benchmark.timeline import looped

    main(["timeline", "--minutes", "0.05", "0.1", "--short-side", "32", "--work-dir", str(tmp_path),
          "DATA.TEST_CROP_SIZE", "32", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "2"])
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["video"])
    rows = [line.split() for line in lines[header + 1:header + 3]]
    assert [row[:3] for row in rows] == [["0.05", "min", "3"], ["0.1", "min", "6"]]  # a 0.32 s window every second
    assert all(float(row[6]) > 100 for row in rows) and rows[0][7] == "1.000x"  # peak RSS, and its ratio
    six_seconds = looped(tmp_path / "samples_32p.mp4", 0.1, tmp_path / "loop_0.1min_32p.mp4")
    with av.open(str(six_seconds)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert times == pytest.approx(np.arange(150) / 25)  # 15 s of samples cut at 6 s, every frame in its place
