from videonl.benchmark.__main__ import main


def test_loader_benchmark_prints_every_row(video_dir, tmp_path, capsys):
    listing = tmp_path / "val.csv"
    listing.write_text(f"{video_dir}/plain.mp4 0\n{video_dir}/name with spaces.mp4 1\n")
    main(["loader", "--cfg", "configs/kinetics400/c2d_r50_8x8.yaml", "--list", str(listing), "--backend", "pyav",
          "--workers", "0", "--videos", "2", "DATA.NUM_FRAMES", "2", "DATA.SAMPLING_RATE", "2",
          "DATA.TRAIN_JITTER_SCALES", "[36, 40]", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
          "TEST.NUM_CLIPS", "2", "DATALOADER.TRAIN_BATCH_SIZE", "1"])
    out = capsys.readouterr().out
    assert out.startswith("2 videos of")
    for row in ("floor", "train", "test 10", "test 30", "30 separate"):
        assert f" {row} " in out
