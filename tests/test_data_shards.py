"""Shards as a source of videos (data/shards.py, through data/loader.py): every video once over ranks x workers
from a real HTTP server, each worker reading its shards once, corrupt members named and counted, broken shards."""

import functools
import http.server
import json
import shutil
import tarfile
import threading
from fractions import Fraction

import numpy as np
import pytest
import torch

from helpers import shard_size_for
from videonl.config import get_cfg
from videonl.data.datasets import VideoDataset, data_class_names
from videonl.data.decode import DecodeError, available_backends
from videonl.data.loader import build_dataset, build_loader
from videonl.data.shards import ShardError, ShardIndex, ShardReader
from videonl.data.stream_samplers import StreamTestSampler, StreamTrainSampler
from videonl.prep import shards as prep_shards
from videonl.prep.common import encode_h264

GOOD = 13
GREY = {f"v{i:02d}.mp4": 12 + 18 * i for i in range(GOOD)}  # each video one flat grey: which one a clip is


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """13 flat grey videos in `train` and `val` (val also lists a text file as broken.mp4), packed in their lists'
    order into shards of 3 videos (the last of 1): 5 shards for 2 ranks x 2 workers."""
    root = tmp_path_factory.mktemp("grey_shards")
    data = root / "data"
    data.mkdir()
    for name, grey in GREY.items():
        encode_h264(data / name, (np.full((32, 40, 3), grey, np.uint8) for _ in range(8)), Fraction(25))
    (data / "broken.mp4").write_text("not a video\n")
    lines = [f"{name} {i % 3}\n" for i, name in enumerate(GREY)]
    (data / "train.csv").write_text("".join(lines))
    (data / "val.csv").write_text("".join(lines[:6] + ["broken.mp4 2\n"] + lines[6:]))
    (data / "classes.json").write_text(json.dumps({"a": 0, "b": 1, "c": 2}))
    prep_shards.main(["--data-dir", str(data), "--split", "train", "val", "--out-dir", str(root / "shards"),
                      "--shard-size", shard_size_for(3, data), "--keep-order"])
    available_backends()  # probed here once, the loaders' forked workers inherit it (each would take seconds)
    return root


@pytest.fixture(scope="module")
def http_url(packed):
    """The shards folder served by Python's HTTP server on 127.0.0.1, in a thread of this process."""
    if shutil.which("curl") is None:
        pytest.skip("webdataset reads http(s) URLs with curl, which is not installed here")
    handler = functools.partial(QuietHandler, directory=str(packed / "shards"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests = []  # paths asked for, in order

    def log_message(self, *args):
        QuietHandler.requests.append(self.path)


def shard_cfg(location, **overrides):
    cfg = get_cfg()
    cfg.DATA.SHARDS, cfg.DATA.SHARD_SHUFFLE = str(location), 2
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TRAIN_JITTER_SCALES = 2, 2, [32, 32]
    cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE, cfg.DATA.DECODER = 32, 32, "pyav"
    cfg.TEST.NUM_CLIPS, cfg.TEST.CROP = 2, "3crop"
    cfg.DATALOADER.NUM_WORKERS, cfg.DATALOADER.TRAIN_BATCH_SIZE, cfg.DATALOADER.TEST_BATCH_SIZE = 2, 2, 1
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


def grey_of(record) -> int:
    return GREY[record.path]


def test_the_index_and_shards_hold_the_lists_videos_in_uneven_shards(packed):
    index = ShardIndex.read(str(packed / "shards"), "train")
    assert [shard.videos for shard in index.shards] == [3, 3, 3, 3, 1]
    assert [video for video, _ in index.videos] == list(GREY)
    reader = ShardReader(index, lookahead=2)
    for position, name in enumerate(GREY):
        assert reader.member(position) == (packed / "data" / name).read_bytes()
    assert reader.opened == [0, 1, 2, 3, 4]
    reader = ShardReader(index, lookahead=1)  # asked out of the streams' order: a passed video is read again
    assert [reader.member(position) for position in reversed(range(GOOD))] == [
        (packed / "data" / name).read_bytes() for name in reversed(GREY)]
    assert reader.opened == [4, 3, 3, 2, 2, 1, 1, 0, 0]


def test_every_video_is_loaded_once_over_two_ranks_of_two_workers_from_an_http_server(http_url):
    QuietHandler.requests.clear()
    cfg = shard_cfg(http_url, **{"TEST.SPLIT": "train"})  # testing 13 videos: they divide by neither 2 nor 4
    for split, videos in (("val", GOOD + 1), ("test", GOOD)):
        seen = []
        for rank in range(2):
            loader = build_loader(cfg, split, rank=rank, world_size=2)
            for batch in loader:
                seen += batch["index"].tolist()
                records = [loader.dataset.records[i] for i in batch["index"].tolist()]
                for video, record in zip(batch["views"], [r for r, ok in zip(records, batch["valid"]) if ok]):
                    assert abs(video.frames.float().mean() - grey_of(record)) < 3  # the member is the video's
                for record, error in zip(records, batch["error"]):
                    assert error.startswith(f"broken.mp4 in {http_url}/val-000002.tar: pyav: ") if \
                        record.path == "broken.mp4" else error == ""
        assert sorted(seen) == list(range(videos)), split

    for epoch in range(2):
        seen = []
        for rank in range(2):
            loader = build_loader(cfg, "train", rank=rank, world_size=2)
            loader.sampler.set_epoch(epoch)
            for batch in loader:
                seen += batch["index"].tolist()
                greys = batch["clip"].float().mean(dim=(1, 2, 3, 4))
                expected = [grey_of(loader.dataset.records[i]) for i in batch["index"].tolist()]
                assert torch.allclose(greys, torch.tensor(expected, dtype=torch.float32), atol=3)
        assert len(seen) == len(set(seen)) == GOOD // 4 * 4  # a remainder of 1 left out, nothing doubled
    assert QuietHandler.requests and all(path.endswith((".tar", ".json")) for path in QuietHandler.requests)
    assert data_class_names(cfg) == ["a", "b", "c"]  # from beside the shards: a node may have no data folder


def test_each_worker_opens_each_of_its_shards_once(packed):
    """The keys a worker is asked for, in the samplers' order, cost one pass over each shard it reads."""
    dataset = build_dataset(shard_cfg(packed / "shards"), "train")
    index = dataset.shards.index
    sizes = [shard.videos for shard in index.shards]
    for sampler in [StreamTrainSampler(sizes, rank, 2, 2, seed=3, workers=2, shuffle_buffer=2) for rank in (0, 1)] + \
                   [StreamTestSampler(GOOD, rank, 2, 1, workers=2) for rank in (0, 1)]:
        keys = [key[0] if isinstance(key, tuple) else key for key in sampler]
        batch = 2 if isinstance(sampler, StreamTrainSampler) else 1
        for worker in range(2):
            reader = ShardReader(index, lookahead=2)
            asked = [k for i in range(worker * batch, len(keys), 2 * batch) for k in keys[i:i + batch]]
            assert all(reader.member(position) for position in asked)
            assert len(reader.opened) == len(set(reader.opened)), reader.opened


def test_a_corrupt_member_is_named_and_counted_like_a_corrupt_file_and_the_run_goes_on(packed):
    cfg = shard_cfg(packed / "shards", **{"TEST.CROP": "center"})
    test = build_dataset(cfg, "val")
    broken = [record.path for record in test.records].index("broken.mp4")
    item = test[broken]
    assert item["views"] is None and item["error"].startswith(f"broken.mp4 in {packed}/shards/val-000002.tar: pyav: ")
    assert test[broken + 1]["views"] is not None  # the shard reads on

    training = VideoDataset(test.records, "train", cfg, test.shards)
    item = training[(broken, 5)]
    assert len(item["failures"]) == 1 and item["failures"][0].startswith("broken.mp4 in ")
    assert item["index"] != broken and abs(item["clip"].float().mean() - grey_of(test.records[item["index"]])) < 3
    again = VideoDataset(test.records, "train", cfg, ShardReader(test.shards.index, 2))[(broken, 5)]
    assert again["index"] == item["index"] and torch.equal(again["clip"], item["clip"])  # the same replacement


def test_a_shard_cut_short_fails_its_lost_videos_and_a_missing_shard_or_another_packing_stops(packed, tmp_path):
    folder = tmp_path / "shards"
    shutil.copytree(packed / "shards", folder)
    with tarfile.open(folder / "train-000001.tar") as tar:
        cut = tar.getmember("00000004.mp4").offset_data + 100  # the second of its three videos is cut
    (folder / "train-000001.tar").write_bytes((folder / "train-000001.tar").read_bytes()[:cut])
    reader = ShardReader(ShardIndex.read(str(folder), "train"), lookahead=2)
    assert reader.member(3) == (packed / "data" / "v03.mp4").read_bytes()
    for position in (5, 4):
        with pytest.raises(DecodeError, match=rf"^v0{position}\.mp4 in {folder}/train-000001\.tar: the shard"):
            reader.member(position)

    (folder / "train-000002.tar").unlink()
    with pytest.raises(ShardError, match="cannot open shard .*train-000002.tar"):
        reader.member(6)
    shutil.copyfile(folder / "val-000004.tar", folder / "train-000003.tar")  # another list's shard in its place
    with pytest.raises(ShardError, match="shards and index of different packings"):
        reader.member(9)
    assert reader.member(12) == (packed / "data" / "v12.mp4").read_bytes()


def test_a_pipe_url_with_the_name_in_it_reads_as_the_folder_does(packed):
    """The way to object storage without a library of ours: a command that writes the file, as `aws s3 cp ... -`;
    an s3: URL, which webdataset cannot open, is an error that says so."""
    folder = build_dataset(shard_cfg(packed / "shards"), "val")
    piped = build_dataset(shard_cfg(f"pipe:cat {packed}/shards/{{name}}"), "val")
    assert piped.records == folder.records
    assert [piped.shards.member(i) for i in (0, 7, 13)] == [folder.shards.member(i) for i in (0, 7, 13)]
    assert piped.shards.name(7) == f"v06.mp4 in pipe:cat {packed}/shards/val-000002.tar"
    assert data_class_names(shard_cfg(f"pipe:cat {packed}/shards/{{name}}")) == ["a", "b", "c"]
    assert data_class_names(shard_cfg(f"pipe:cat {packed}/{{name}}")) is None  # no classes.json there
    with pytest.raises(ShardError, match=r"^s3://bucket/k400/val\.shards\.json: webdataset opens no s3: URLs; .* "
                                         r"'pipe:aws s3 cp s3://bucket/kinetics400/\{name\} -'"):
        build_dataset(shard_cfg("s3://bucket/k400"), "val")


def test_a_multi_label_list_packs_into_shards_that_give_the_targets_the_list_gives(packed, tmp_path):
    """A multi-label list (actions CLASS, CLASS:START:END, none) through `prep shards --task multi_label`: each
    shard sample's label field is read by the task as the list's line is, so clips and videos get the same
    targets from either source, the clip's from the actions its frames overlap (8 frames at 25 fps: 0.00-0.28 s)."""
    fields = ["none", "2", "0;2", "1:0.00:0.10;2:0.16:0.30", "0:0.00:0.05", "1:0.10:0.12;0"]
    data = tmp_path / "data"
    data.mkdir()
    lines = [f"{packed / 'data' / name} {field}\n" for name, field in zip(GREY, fields)]
    for split in ("train", "val"):
        (data / f"{split}.csv").write_text("".join(lines))
    prep_shards.main(["--data-dir", str(data), "--split", "train", "val", "--out-dir", str(tmp_path / "shards"),
                      "--shard-size", shard_size_for(2, packed / "data"), "--task", "multi_label"])
    task = {"TASK.NAME": "multi_label", "MODEL.NUM_CLASSES": 3}
    from_list = shard_cfg("", **task, **{"DATA.PATH_TO_DATA_DIR": str(data), "TEST.CROP": "center"})
    from_shards = shard_cfg(tmp_path / "shards", **task, **{"TEST.CROP": "center"})

    videos = build_dataset(from_list, "val")
    shard_videos = build_dataset(from_shards, "val")
    position = {record.path: index for index, record in enumerate(shard_videos.records)}
    assert sorted(position) == [record.path for record in videos.records]
    for index, record in enumerate(videos.records):
        assert torch.equal(videos[index]["label"], shard_videos[position[record.path]]["label"])
    assert videos[2]["label"].tolist() == [1, 0, 1] and videos[0]["label"].tolist() == [0, 0, 0]

    clips, shard_clips = build_dataset(from_list, "train"), build_dataset(from_shards, "train")
    targets = set()
    for index, record in enumerate(clips.records):
        for seed in range(4):
            clip, shard_clip = clips[(index, seed)], shard_clips[(position[record.path], seed)]
            assert torch.equal(clip["label"], shard_clip["label"]) and torch.equal(clip["clip"], shard_clip["clip"])
            targets.add((index, tuple(clip["label"].tolist())))
    overlapped = {target for index, target in targets if index == 3}  # class 1 at 0.00-0.10 s, class 2 at 0.16-0.30 s
    assert len(overlapped) > 1 and overlapped <= {(0.0, 1.0, 0.0), (0.0, 1.0, 1.0), (0.0, 0.0, 1.0)}

    with pytest.raises(ValueError, match=r"val\.shards\.json: video .*v03\.mp4: label "):
        build_dataset(shard_cfg(tmp_path / "shards"), "val")  # a single-label run refuses actions, naming the video
