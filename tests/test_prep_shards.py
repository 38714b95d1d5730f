"""`videonl prep shards`: prepared lists packed into WebDataset shards as they were prepared, with their ids and
label fields, under a size target, in a seeded order, the same bytes on every run; and its index."""

import json
import re
import tarfile

import pytest

from helpers import shard_size_for
from videonl.command import run
from videonl.data.datasets import list_fields
from videonl.data.shards import ShardIndex
from videonl.prep import shards as prep_shards


def pack(data_dir, out_dir, *options):
    return prep_shards.main(["--data-dir", str(data_dir), "--split", "train", "val", "--out-dir", str(out_dir),
                             *options])


def members(tar_path):
    with tarfile.open(tar_path) as tar:
        return [(member.name, tar.extractfile(member).read()) for member in tar.getmembers()]


def test_packing_keeps_each_videos_bytes_id_and_label_field_within_the_size_target(data_dir, tmp_path):
    target = float(shard_size_for(2, data_dir)) * 1e6  # two videos a shard, whatever their sizes
    indexes = pack(data_dir, tmp_path / "shards", "--shard-size", str(target / 1e6))
    for split in ("train", "val"):
        listed = {path: label for _, path, label in list_fields(str(data_dir / f"{split}.csv"))}
        index = ShardIndex.read(str(tmp_path / "shards"), split)
        assert index == ShardIndex(split, indexes[split].shards, indexes[split].videos, str(tmp_path / "shards"))
        assert sorted(index.videos) == sorted(listed.items())
        assert [shard.videos for shard in index.shards] == [2] * (len(listed) // 2)
        position = 0
        for shard in index.shards:
            stored = members(tmp_path / "shards" / shard.name)
            assert (tmp_path / "shards" / shard.name).stat().st_size == shard.bytes
            assert sum(prep_shards.member_bytes(len(data)) for _, data in stored) <= target
            for (json_name, text), (video_name, video) in zip(stored[::2], stored[1::2]):
                video_id, label = index.videos[position]
                assert (json_name, video_name) == (f"{position:08d}.json", f"{position:08d}.mp4")
                assert video == (data_dir / video_id).read_bytes()
                assert json.loads(text) == {"id": video_id, "label": label}
                position += 1
        assert position == len(listed)
    assert (tmp_path / "shards" / "classes.json").read_bytes() == (data_dir / "classes.json").read_bytes()


def test_the_order_is_the_lists_shuffled_by_the_seed_and_the_same_every_run(data_dir, tmp_path):
    listed = [path for _, path, _ in list_fields(str(data_dir / "train.csv"))]
    orders = {}
    for name, options in [("seed0", []), ("again", ["--seed", "0"]), ("seed1", ["--seed", "1"]),
                          ("kept", ["--keep-order"])]:
        pack(data_dir, tmp_path / name, "--shard-size", "0.01", *options)
        orders[name] = [video for video, _ in ShardIndex.read(str(tmp_path / name), "train").videos]
    assert orders["kept"] == listed and sorted(orders["seed0"]) == sorted(listed)
    assert orders["seed0"] == orders["again"] != orders["seed1"] and orders["seed0"] != listed
    files = sorted(path.name for path in (tmp_path / "seed0").iterdir())
    assert files == sorted(path.name for path in (tmp_path / "again").iterdir())
    for name in files:
        assert (tmp_path / "seed0" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_a_video_larger_than_the_target_has_a_shard_to_itself():
    assert prep_shards.plan_shards([1024, 3584, 1024, 1024, 1024], limit=3100) == [1, 1, 3]


def test_a_listed_video_that_is_missing_is_named_and_nothing_is_written(data_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text(f"{data_dir / '0_0.mp4'} 0\ngone.mp4 1\n")
    (data / "val.csv").write_text(f"{data_dir / '0_6.mp4'} 0\n")
    status = run(prep_shards.main, ["--data-dir", str(data), "--split", "val", "train", "--out-dir",
                                    str(tmp_path / "out")])
    assert status == 1 and capsys.readouterr().err == (
        f"error: 1 videos of {data / 'train.csv'} are not there, e.g. gone.mp4: run `videonl prep check --drop` on "
        "the list first\n")
    assert not (tmp_path / "out").exists()


def test_a_label_field_the_list_reader_refuses_is_named_before_packing(data_dir, tmp_path, capsys):
    (tmp_path / "train.csv").write_text(f"{data_dir / '0_0.mp4'} 0\n{data_dir / '0_1.mp4'} 2;5\n")
    argv = ["--data-dir", str(tmp_path), "--split", "train", "--out-dir", str(tmp_path / "out")]
    assert run(prep_shards.main, argv) == 1
    assert re.fullmatch(r"error: .*train\.csv:2: .*\(label '2;5' is not a class index\) \(--task single_label\)\n",
                        capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
    assert run(prep_shards.main, argv + ["--task", "multi_label"]) == 0  # actions, as a multi-label run reads them
    with pytest.raises(SystemExit):
        prep_shards.main(argv + ["--task", "multilabel"])
    assert "--task: TASK.NAME 'multilabel' is not a registered task (known: multi_label, " in capsys.readouterr().err
