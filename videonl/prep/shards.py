"""Pack prepared splits into WebDataset shards, which training and testing read by path or URL (DATA.SHARDS).

For each --split, reads {data-dir}/{split}.csv (a list the other prep commands write) and writes into --out-dir
{split}-000000.tar, {split}-000001.tar, ...: the videos' files as prepared (not re-encoded), each as the members
{key}.{extension} and {key}.json ({"id": its path in the list, "label": its label field, as text}), key its
number in 8 digits; a shard closes before the video whose members would take it past --shard-size MB (a
larger video has a shard to itself; the tar's end adds at most 10 kB). Then {split}.shards.json, the index a run
reads first: each shard's name, videos and bytes, each video's id and label field. classes.json is copied beside
them. Every file is written under a temporary name and renamed when complete, the index last.

Labels: each label field is packed as the list holds it, as text, and a run reads it as it reads a list's, with
its task (TASK.NAME); packing checks every field with the task --task names (single_label: a class index;
multi_label: `none` or actions such as `92:11.90:21.20;147:0.00:12.60`).

Order: the list's, shuffled with --seed (a list sorted by class, as Kinetics' are, would give shards of one or
two classes, and a training batch reads a few shards at a time), or kept with --keep-order. The same list and
options give the same shards, byte for byte. Every listed video of every split must be there: a missing one is an
error naming it, before anything is written.

    python data_prep/shards.py --data-dir data/kinetics400 --split train val --out-dir shards/kinetics400
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from videonl.command import run
from videonl.config import ConfigError, get_cfg
from videonl.data.datasets import list_fields, read_video_list
from videonl.data.shards import CLASSES_NAME, INDEX_NAME, SHARD_NAME, Shard, ShardIndex, member_key, video_suffix
from videonl.prep.common import atomic_path, write_text
from videonl.progress import progress
from videonl.tasks import build_task
from videonl.tasks.single_label import parse_class_index

TAR_BLOCK = 512  # a member's header, and the unit its data is padded to


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep shards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="the prepared folder holding {split}.csv")
    parser.add_argument("--split", nargs="+", required=True, help="the lists to pack, e.g. train val")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the shards and their index go")
    parser.add_argument("--shard-size", type=float, default=1000.0,
                        help="most megabytes (1e6 bytes) of videos a shard holds (default: %(default)s)")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--seed", type=int, default=0, help="seed of the shuffled order (default: %(default)s)")
    order.add_argument("--keep-order", action="store_true", help="pack the videos in the list's order")
    parser.add_argument("--separator", default=" ", help="between path and label (default: a space)")
    parser.add_argument("--prefix", default="", help="folder of relative paths (default: the list's folder)")
    parser.add_argument("--task", default="single_label",
                        help="the task (TASK.NAME) whose label fields the lists hold, e.g. multi_label "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.shard_size <= 0:
        parser.error(f"--shard-size must be positive, got {args.shard_size}")
    try:
        args.parse_label = label_parser(args.task)
    except ConfigError as err:
        parser.error(f"--task: {err}")
    return args


def label_parser(task: str) -> Callable[[str], Any]:
    """How a run of the task named `task` (TASK.NAME) reads a label field; ConfigError naming the known tasks."""
    cfg = get_cfg()  # imports the package's tasks and the user's (VIDEONL_PLUGINS)
    cfg.TASK.NAME = task
    return build_task(cfg).parse_label


def member_bytes(size: int) -> int:
    """What a member of `size` bytes takes in a tar: its header and its data padded to whole blocks."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def description(video_id: str, label: str) -> bytes:
    """A video's json member: its id and its label field, as the list has them."""
    return json.dumps({"id": video_id, "label": label}, ensure_ascii=False).encode("utf-8")


def plan_shards(sizes: Sequence[int], limit: float) -> List[int]:
    """How many of the videos (their members taking `sizes` bytes, in order) each shard takes: a shard closes
    before the video that would take it past `limit` bytes."""
    counts, filled = [], 0
    for size in sizes:
        if not counts or filled + size > limit:
            counts.append(0)
            filled = 0
        counts[-1] += 1
        filled += size
    return counts


def listed_videos(list_file: Path, separator: str, prefix: str,
                  parse_label: Callable[[str], Any]) -> List[Tuple[str, str, str]]:
    """(id, label field, file) of every video of a list, the list checked as a run reads it (its labels with
    `parse_label`); FileNotFoundError naming the videos that are not there."""
    records = read_video_list(str(list_file), separator, prefix, parse_label)
    videos = [(path, label, record.path)
              for (_, path, label), record in zip(list_fields(str(list_file), separator), records)]
    missing = [video_id for video_id, _, file in videos if not os.path.isfile(file)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} videos of {list_file} are not there, e.g. "
                                f"{', '.join(missing[:3])}: run `videonl prep check --drop` on the list first")
    return videos


def write_shard(path: Path, videos: Sequence[Tuple[str, str, str]], first: int) -> int:
    """Videos (id, label field, file) numbered from `first` as one tar; its size in bytes."""
    from webdataset import TarWriter

    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream, TarWriter(stream, encoder=False, mtime=0) as tar:
            for number, (video_id, label, file) in enumerate(videos, first):
                tar.write({"__key__": member_key(number), video_suffix(video_id): Path(file).read_bytes(),
                           "json": description(video_id, label)})
        return temporary.stat().st_size


def pack_split(split: str, videos: List[Tuple[str, str, str]], out_dir: Path, shard_size: float,
               seed: Optional[int]) -> ShardIndex:
    """Write the shards and index of `split`'s videos (id, label field, file, in the list's order; shuffled with
    `seed` unless it is None) into `out_dir`, shards of at most `shard_size` bytes."""
    if seed is not None:
        videos = [videos[i] for i in np.random.default_rng(seed).permutation(len(videos))]
    counts = plan_shards([member_bytes(os.path.getsize(file)) + member_bytes(len(description(video_id, label)))
                          for video_id, label, file in videos], shard_size)
    shards, first = [], 0
    bar = progress(total=len(videos), desc=f"packing {split}", unit="video")
    for number, count in enumerate(counts):
        name = SHARD_NAME.format(split=split, number=number)
        shards.append(Shard(name, count, write_shard(out_dir / name, videos[first:first + count], first)))
        first += count
        bar.update(count)
    bar.close()
    index = ShardIndex(split, tuple(shards), tuple((video_id, label) for video_id, label, _ in videos))
    write_text(out_dir / INDEX_NAME.format(split=split), index.to_json())
    return index


def pack(data_dir: Path, splits: Sequence[str], out_dir: Path, shard_size: float = 1000.0, seed: Optional[int] = 0,
         separator: str = " ", prefix: str = "",
         parse_label: Callable[[str], Any] = parse_class_index) -> Dict[str, ShardIndex]:
    """Pack the lists {data_dir}/{split}.csv into `out_dir` (the module's layout), every list checked first (its
    labels with `parse_label`, a task's); `shard_size` in MB, `seed` None for the lists' order. The indexes by
    split."""
    videos = {split: listed_videos(data_dir / f"{split}.csv", separator, prefix, parse_label) for split in splits}
    indexes = {split: pack_split(split, videos[split], out_dir, shard_size * 1e6, seed) for split in splits}
    if (data_dir / CLASSES_NAME).is_file():
        with atomic_path(out_dir / CLASSES_NAME) as temporary:
            shutil.copyfile(data_dir / CLASSES_NAME, temporary)
    return indexes


def main(argv=None) -> Dict[str, ShardIndex]:
    args = parse_args(argv)
    try:
        indexes = pack(args.data_dir, args.split, args.out_dir, args.shard_size,
                       None if args.keep_order else args.seed, args.separator, args.prefix, args.parse_label)
    except ValueError as err:  # a line of a list that a run of the task would refuse
        raise SystemExit(f"{err} (--task {args.task})") from None
    for split, index in indexes.items():
        print(f"{split}: {len(index.videos)} videos in {len(index.shards)} shards, "
              f"{sum(shard.bytes for shard in index.shards) / 1e6:.1f} MB; index "
              f"{args.out_dir / INDEX_NAME.format(split=split)}")
    return indexes


if __name__ == "__main__":
    sys.exit(run(main))
