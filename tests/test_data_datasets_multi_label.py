"""Multi-label lists through the data layer: labels read by the task, a training clip's target from the frames it
decoded, the whole video's for testing, stacked by the loader."""

import numpy as np
import pytest
import torch

from videonl.config import get_cfg
from videonl.data.datasets import VideoDataset, VideoRecord, clip_span, label_range_problem, read_video_list
from videonl.data.decode import VideoInfo
from videonl.data.loader import build_loader
from videonl.tasks import build_task
from videos import BRIGHTNESS_STEP

FPS = 25  # plain.mp4 of the video_dir fixture: 30 frames at 25 fps, frame i of brightness 8 i


def multi_label_cfg(**overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["TASK.NAME", "multi_label", "MODEL.NUM_CLASSES", 4, "DATA.NUM_FRAMES", 4,
                         "DATA.SAMPLING_RATE", 2, "DATA.TRAIN_JITTER_SCALES", [36, 40], "DATA.TRAIN_CROP_SIZE", 32,
                         "DATA.TEST_CROP_SIZE", 32, "DATA.RANDOM_FLIP", False, "DATALOADER.NUM_WORKERS", 0,
                         "DATALOADER.TEST_BATCH_SIZE", 2, "TEST.NUM_CLIPS", 1])
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


def test_a_multi_label_list_is_read_by_the_task_and_a_bad_field_named_by_file_and_line(tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text("a b.mp4 0:1.5:2;3\nc.mp4 none\nd.mp4 2;5:1:0.5\n")
    parse = build_task(multi_label_cfg()).parse_label
    with pytest.raises(ValueError, match=r"train\.csv:3: expected 'path label', got 'd.mp4 2;5:1:0.5' "
                                         r"\(label '2;5:1:0.5': action '5:1:0.5' ends before it starts\)"):
        read_video_list(str(listing), parse_label=parse)
    listing.write_text("a b.mp4 0:1.5:2;3\nc.mp4 none\nd.mp4 2;5\n")
    records = read_video_list(str(listing), parse_label=parse)
    assert [r.path for r in records] == [str(tmp_path / name) for name in ("a b.mp4", "c.mp4", "d.mp4")]
    assert records[0].label == ((0, 1.5, 2.0), (3, 0.0, float("inf"))) and records[1].label == ()
    assert label_range_problem(records, build_task(multi_label_cfg()), "train.csv") == (
        "train.csv: label 5 of " + str(tmp_path / "d.mp4") + " is outside 0..3 (MODEL.NUM_CLASSES 4)")


def test_a_clips_span_runs_from_its_first_to_its_last_decoded_frame():
    info = VideoInfo(num_frames=30, fps=25.0)
    assert clip_span(np.array([5, 7, 9, 11]), info) == (0.2, 0.44)
    assert clip_span(np.array([26, 28, 30, 32]), info) == (0.0, 28 / 25)  # past the end: frames 0 and 2 again
    assert clip_span(np.array([1, 2]), VideoInfo(30, 0.0)) is None


def frame_indices(clip: torch.Tensor) -> np.ndarray:
    """The frame indices of a uint8 clip [C, T, H, W] of plain.mp4, from each frame's grey level."""
    return np.round(clip.float().flatten(2).median(dim=2).values.mean(dim=0).numpy() / BRIGHTNESS_STEP).astype(int)


def test_a_training_clip_is_scored_against_the_actions_its_frames_overlap(video_dir):
    # class 0: the whole video; 1: frames 0-7 (0.0-0.3 s); 2: frames 20-30 (0.8-1.2 s); 3: a clip never reaches it
    actions = build_task(multi_label_cfg()).parse_label("0;1:0.0:0.3;2:0.8:1.2;3:5:6")
    dataset = VideoDataset([VideoRecord(str(video_dir / "plain.mp4"), actions)], "train", multi_label_cfg())
    seen = set()
    for seed in range(12):
        item = dataset[(0, seed)]
        first, last = frame_indices(item["clip"])[[0, -1]]
        expected = [1, int(first / FPS <= 0.3), int(last / FPS >= 0.8), 0]
        assert item["label"].tolist() == expected, (first, last)
        seen.add(tuple(expected))
    assert len(seen) > 1  # the draws covered clips with different actions
    whole = VideoDataset(dataset.records, "train", multi_label_cfg(**{"MULTI_LABEL.CLIP_LABELS": "video"}))
    assert whole[(0, 0)]["label"].tolist() == [1, 1, 1, 1]  # every action of the video, wherever it lies


def test_validation_and_test_batches_stack_the_whole_videos_targets(tmp_path, video_dir):
    lines = [f"{video_dir / 'plain.mp4'} 1:0:0.3;3", f"{video_dir / 'short.mp4'} none"]
    for split in ("val", "test"):
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n")
    cfg = multi_label_cfg(**{"DATA.PATH_TO_DATA_DIR": str(tmp_path), "DATA.VAL_SPLIT": "val", "TEST.SPLIT": "test"})
    for split in ("val", "test"):
        batch = next(iter(build_loader(cfg, split)))
        assert batch["label"].dtype == torch.float32 and batch["label"].tolist() == [[0, 1, 0, 1], [0, 0, 0, 0]]
