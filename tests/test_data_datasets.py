import logging
from fractions import Fraction

import numpy as np
import pytest
import torch

from videonl.config import get_cfg, load_cfg
from videonl.prep.common import encode_h264
from videonl.data import datasets as datasets_module
from videonl.data.datasets import VideoDataset, VideoRecord, read_video_list
from videonl.data.decode import backend_status, read_frames
from videonl.data.loader import ShardSampler, TrainSampler, build_dataset, build_loader
from videonl.data.sampling import uniform_clips
from videonl.data.transforms import EvalTransform, normalize
from videos import BAD, GOOD


def small_cfg(**data):
    cfg = get_cfg()
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 4, 2
    cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = [36, 40], 32, 32
    cfg.DATALOADER.NUM_WORKERS, cfg.DATALOADER.TRAIN_BATCH_SIZE, cfg.DATALOADER.TEST_BATCH_SIZE = 0, 2, 2
    for key, value in data.items():
        cfg.merge_from_list([key, value])
    return cfg


def write_list(path, names, separator=" "):
    path.write_text("".join(f"{name}{separator}{i % 3}\n" for i, name in enumerate(names)))
    return path


def test_list_paths_with_spaces_separator_prefix_and_crlf(tmp_path):
    listing = tmp_path / "lists" / "train.csv"
    listing.parent.mkdir()
    listing.write_bytes(b"a/name with spaces.mp4 3\r\n\r\nb/plain.mp4 0\r\n/abs/x.mp4 7\n")
    records = read_video_list(str(listing))
    assert records == [VideoRecord(str(tmp_path / "lists/a/name with spaces.mp4"), 3),
                       VideoRecord(str(tmp_path / "lists/b/plain.mp4"), 0), VideoRecord("/abs/x.mp4", 7)]
    listing.write_text("a, b.mp4,4\n")
    assert read_video_list(str(listing), ",", "/data") == [VideoRecord("/data/a, b.mp4", 4)]


def test_a_malformed_line_is_named(tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text("ok.mp4 1\nno_label_here\n")
    with pytest.raises(ValueError, match=r"train\.csv:2"):
        read_video_list(str(listing))


def records(video_dir, names):
    return [VideoRecord(str(video_dir / name), i) for i, name in enumerate(names)]


def test_train_item_is_one_normalised_clip(video_dir):
    dataset = VideoDataset(records(video_dir, ["plain.mp4", "name with spaces.mp4"]), "train", small_cfg())
    item = dataset[1]
    assert item["clip"].shape == (3, 4, 32, 32) and item["label"] == 1 and item["failures"] == []


def test_training_replaces_a_bad_video_and_reports_it_once(video_dir, caplog, monkeypatch):
    monkeypatch.setattr(datasets_module, "_REPORTED_PATHS", set())
    # Replacements are drawn from torch's generator: seeded, so that earlier tests' draws cannot leave it where
    # it picks the bad one of the two videos MAX_RETRIES times in a row (a 1-in-1024 stretch that came up).
    torch.manual_seed(0)
    dataset = VideoDataset(records(video_dir, ["truncated.mp4", "plain.mp4"]), "train", small_cfg())
    with caplog.at_level(logging.WARNING, logger="videonl.data.datasets"):
        items = [dataset[0] for _ in range(3)]
    for item in items:
        assert item["label"] == 1 and item["failures"]
        assert all("truncated.mp4" in failure for failure in item["failures"])
    warnings = [r for r in caplog.records if "truncated.mp4" in r.getMessage()]
    assert len(warnings) == 1


def test_training_gives_up_after_the_retry_budget(video_dir):
    dataset = VideoDataset(records(video_dir, BAD), "train", small_cfg(**{"DATA.MAX_RETRIES": 3}))
    with pytest.raises(RuntimeError, match="4 videos in a row failed"):
        dataset[0]


def test_test_item_holds_all_views_equal_to_views_cut_separately(video_dir):
    cfg = small_cfg(**{"TEST.NUM_CLIPS": 4, "TEST.CROP": "3crop"})
    dataset = VideoDataset(records(video_dir, ["bframes.mp4"]), "test", cfg)
    views = dataset[0]["views"].cut()
    assert views.shape == (12, 3, 4, 32, 32)
    path = str(video_dir / "bframes.mp4")
    _, _, info = read_frames(path, [0])
    transform = EvalTransform(32, 32, "3crop", cfg.DATA.MEAN, cfg.DATA.STD, normalize=False)
    clips = uniform_clips(info, 4, 2, 4, "official")
    separately = []
    for clip in clips:  # one decode per clip, as a loader without multi-view items would do
        frames, positions, _ = read_frames(path, clip)
        separately.append(transform(frames, torch.from_numpy(positions)[None]))
    assert views.dtype == torch.uint8 and torch.equal(views, torch.cat(separately))


def test_a_failing_test_video_is_reported_not_replaced(video_dir):
    dataset = VideoDataset(records(video_dir, ["plain.mp4", "empty.mp4"]), "test", small_cfg())
    item = dataset[1]
    assert item["views"] is None and item["label"] == 1 and "empty.mp4" in item["error"]


def test_validation_item_is_one_centred_view(video_dir):
    item = VideoDataset(records(video_dir, ["plain.mp4"]), "val", small_cfg())[0]
    assert item["views"].cut().shape == (1, 3, 4, 32, 32)


def dataset_dir(tmp_path, video_dir, names):
    for split in ("train", "val"):
        write_list(tmp_path / f"{split}.csv", [str(video_dir / name) for name in names])
    return small_cfg(**{"DATA.PATH_TO_DATA_DIR": str(tmp_path), "TEST.NUM_CLIPS": 2})


def test_loader_batches_mark_failed_videos(tmp_path, video_dir):
    cfg = dataset_dir(tmp_path, video_dir, ["plain.mp4", "not_a_video.mp4", "short.mp4"])
    batches = list(build_loader(cfg, "test"))
    assert [b["valid"].tolist() for b in batches] == [[True, False], [True]]
    assert len(batches[0]["views"]) == 1 and batches[0]["views"][0].cut().shape == (6, 3, 4, 32, 32)
    assert batches[0]["label"].tolist() == [0, 1] and "not_a_video.mp4" in batches[0]["error"][1]
    train = next(iter(build_loader(cfg, "train")))
    assert train["clip"].shape == (2, 3, 4, 32, 32) and train["label"].shape == (2,)


def test_two_ranks_score_every_test_video_exactly_once(tmp_path, video_dir):
    names = sorted(GOOD)[:8] + ["empty.mp4"]  # 9 videos: uneven over 2 ranks, and one that fails
    cfg = dataset_dir(tmp_path, video_dir, names)
    cfg.DATA.NUM_FRAMES = 1
    seen = []
    for rank in range(2):
        for batch in build_loader(cfg, "test", rank=rank, world_size=2):
            seen.extend(batch["index"].tolist())
    assert sorted(seen) == list(range(len(names)))


def test_shard_sampler_partitions_and_distributed_training_splits():
    shards = [list(ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))
    assert [len(s) for s in shards] == [4, 4, 3]


def test_shard_sampler_over_a_subset_partitions_only_the_subset():
    subset = [0, 2, 3, 7, 8, 10]
    shards = [list(ShardSampler(11, rank, 4, subset)) for rank in range(4)]
    assert sorted(sum(shards, [])) == subset and [len(s) for s in shards] == [2, 2, 1, 1]


def test_loader_over_given_indices_loads_only_those(tmp_path, video_dir):
    cfg = dataset_dir(tmp_path, video_dir, ["plain.mp4", "short.mp4", "vfr.mp4", "mpeg4.avi"])
    cfg.DATA.NUM_FRAMES = 1
    loaded = [i for rank in range(2) for b in build_loader(cfg, "test", rank, 2, indices=[3, 1])
              for i in b["index"].tolist()]
    assert sorted(loaded) == [1, 3]
    with pytest.raises(ValueError, match="training loader"):
        build_loader(cfg, "train", indices=[0])


def test_views_per_video_counts_clips_and_crops(video_dir):
    names = ["plain.mp4"]
    cfg = small_cfg(**{"TEST.NUM_CLIPS": 4, "TEST.CROP": "3crop"})
    test = VideoDataset(records(video_dir, names), "test", cfg)
    assert test.views_per_video == 12 == len(test[0]["views"])
    assert VideoDataset(records(video_dir, names), "val", cfg).views_per_video == 1


def test_the_kinetics_configs_test_30_full_size_views_left_centre_right(tmp_path):
    """configs/kinetics400: 10 clips x 3 crops of 32 x 256 x 256 from a 256-pixel short side, crops spread
    across the long side (exact offsets belong to the transform's tests)."""
    gradient = np.broadcast_to(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (256, 320, 3))
    encode_h264(tmp_path / "wide.mp4", (gradient for _ in range(80)), Fraction(25))
    cfg = load_cfg("configs/kinetics400/nl_i3d_r50_32x2.yaml")
    test = VideoDataset([VideoRecord(str(tmp_path / "wide.mp4"), 0)], "test", cfg)
    views = test[0]["views"].cut()
    assert test.views_per_video == 30 and views.shape == (30, 3, 32, 256, 256)
    crop_means = views.float().mean(dim=(1, 2, 3, 4)).view(10, 3)  # clip-major, then the crops
    assert torch.all(crop_means[:, 0] < crop_means[:, 1]) and torch.all(crop_means[:, 1] < crop_means[:, 2])


def test_two_training_ranks_draw_disjoint_videos(tmp_path, video_dir):
    cfg = dataset_dir(tmp_path, video_dir, sorted(GOOD))
    cfg.DATALOADER.TRAIN_BATCH_SIZE = 1
    per_rank = [set(np.concatenate([b["index"].numpy() for b in build_loader(cfg, "train", rank, 2)]).tolist())
                for rank in range(2)]
    # Global batches of two: each rank takes one video of each, the odd video is dropped.
    assert not per_rank[0] & per_rank[1] and len(per_rank[0]) == len(per_rank[1]) == len(GOOD) // 2


def test_loader_with_worker_processes(tmp_path, video_dir):
    cfg = dataset_dir(tmp_path, video_dir, ["plain.mp4", "truncated.mp4", "vfr.mp4", "mpeg4.avi"])
    cfg.DATALOADER.NUM_WORKERS = 2
    batches = list(build_loader(cfg, "test"))
    assert sorted(i for b in batches for i in b["index"].tolist()) == [0, 1, 2, 3]
    assert sum(b["valid"].sum().item() for b in batches) == 3
    train = list(build_loader(cfg, "train"))
    assert len(train) == 2 and all(b["clip"].dtype == torch.uint8 for b in train)
    # Two full batches of two visit all four videos: the truncated one is met, replaced and reported.
    assert any("truncated.mp4" in failure for b in train for failure in b["failures"])
    assert 1 not in {i for b in train for i in b["index"].tolist()}


def test_view_batches_split_views_in_order_and_normalise(tmp_path, video_dir):
    from videonl.data.loader import model_input, view_batches

    cfg = dataset_dir(tmp_path, video_dir, ["plain.mp4", "bframes.mp4"])
    cfg.TEST.VIEWS_PER_FORWARD = 4
    videos = next(iter(build_loader(cfg, "test")))["views"]  # 2 videos of 6 views
    chunks = list(view_batches(videos, cfg, torch.device("cpu")))
    assert [len(c) for c in chunks] == [4, 4, 4]  # the second holds the end of one video and the start of the next
    cut_in_the_loader = torch.cat([video.cut() for video in videos])  # the former path: views cut on the CPU
    expected = model_input(cut_in_the_loader, cfg, torch.device("cpu"))
    assert chunks[0].dtype == torch.float32 and torch.equal(torch.cat(chunks), expected)


def test_train_sampler_ranks_split_the_single_process_global_batches():
    single = list(TrainSampler(10, 0, 1, batch_size=4, seed=3))
    ranks = [list(TrainSampler(10, rank, 2, batch_size=2, seed=3)) for rank in range(2)]
    assert len(single) == 8  # two global batches of 4; two videos dropped
    for batch in range(2):
        assert single[4 * batch:4 * batch + 4] == ranks[0][2 * batch:2 * batch + 2] + ranks[1][2 * batch:2 * batch + 2]
    assert len({seed for _, seed in single}) == 8


def test_train_sampler_resumes_mid_epoch_and_reshuffles_per_epoch():
    sampler = TrainSampler(12, 0, 1, batch_size=3, seed=0)
    sampler.set_epoch(2)
    epoch = list(sampler)
    sampler.set_epoch(2, start_batch=3)
    assert list(sampler) == epoch[9:] and len(sampler) == 3
    sampler.set_epoch(3)
    assert list(sampler) != epoch
    with pytest.raises(ValueError, match="fewer than one global batch"):
        TrainSampler(5, 0, 2, batch_size=3, seed=0)


def test_seeded_training_items_do_not_depend_on_the_process_drawing_them(tmp_path, video_dir):
    cfg = dataset_dir(tmp_path, video_dir, ["plain.mp4", "vfr.mp4"])
    dataset = build_dataset(cfg, "train")
    first = dataset[(0, 1234)]["clip"]
    torch.manual_seed(99)  # the caller's RNG state must not matter, and must not be consumed
    state = torch.get_rng_state()
    assert torch.equal(dataset[(0, 1234)]["clip"], first)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(dataset[(0, 4321)]["clip"], first)


@pytest.mark.parametrize("backend", ["decord", "pyav", "torchcodec"])
def test_a_training_clip_read_as_its_crop_is_the_clip_of_the_whole_frames(video_dir, backend):
    """The dataset draws the crop before decoding, so the decoder converts the box alone; the clip must be the
    one the transform would cut from the whole frames with the same random numbers."""
    if not backend_status(backend)[0]:
        pytest.skip(f"{backend} is not usable here")
    dataset = VideoDataset(records(video_dir, ["bframes.mp4", "odd_fps.mp4"]), "train",
                           small_cfg(**{"DATA.DECODER": backend, "DATA.TRAIN_JITTER_SCALES": [52, 60],
                                        "DATA.TRAIN_CROP_SIZE": 40, "DATA.RANDOM_FLIP": True}))
    for index, seed in [(0, 1), (1, 2), (0, 3), (1, 4)]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            frames, positions, _ = read_frames(dataset.records[index].path, dataset.clip_indices, backend)
            expected = dataset.transform(frames, torch.from_numpy(positions))
        assert torch.equal(dataset[(index, seed)]["clip"], expected)


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_clips_reach_the_model_in_its_memory_format_with_the_same_output(
        tmp_path, video_dir, channels_last):
    from helpers import randomize_batch_norms
    from videonl.data.loader import model_input, view_batches
    from videonl.engine.evaluate import view_probabilities
    from videonl.engine.runtime import place_model
    from videonl.models import build_model

    cfg = dataset_dir(tmp_path, video_dir, ["plain.mp4", "bframes.mp4"])
    cfg.merge_from_list(["RUNTIME.CHANNELS_LAST", channels_last, "TEST.VIEWS_PER_FORWARD", 4, "RESNET.WIDTH", 8,
                         "RESNET.BLOCKS", [1, 1, 1, 1], "MODEL.NUM_CLASSES", 5, "MODEL.HEAD_POOL", 1])
    cut_layout = torch.channels_last_3d
    model_layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    clips = next(iter(build_loader(cfg, "train")))["clip"]  # [2, C, T, S, S]
    assert clips.is_contiguous(memory_format=cut_layout)
    assert model_input(clips, cfg, torch.device("cpu")).is_contiguous(memory_format=model_layout)
    views = next(iter(build_loader(cfg, "test")))["views"]  # 2 videos of 6 views
    assert all(video.cut().is_contiguous(memory_format=cut_layout) for video in views)
    chunks = view_batches(views, cfg, torch.device("cpu"))
    assert all(c.is_contiguous(memory_format=model_layout) for c in chunks)

    model = randomize_batch_norms(build_model(cfg)).eval()
    with torch.no_grad():
        plain_input = normalize(torch.cat([video.cut() for video in views]).contiguous(), cfg.DATA.MEAN, cfg.DATA.STD)
        expected = model.test_logits(plain_input).softmax(-1).mean(dim=1).view(2, 6, -1)  # contiguous, as before
        got = view_probabilities(place_model(model, cfg, torch.device("cpu")), views, cfg, torch.device("cpu"))
    assert torch.allclose(got, expected, atol=1e-5)
