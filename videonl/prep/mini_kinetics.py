"""Build Mini-Kinetics-200 from Kinetics-400 and the published YouTube id lists.

The lists (`train_ytid_list.txt`, `val_ytid_list.txt`) hold one id per line and nothing else; each id is
joined to Kinetics-400 on its youtube id, and the classes present are renumbered 0..N-1 alphabetically.
Dead ids are expected: they go to {out}/missing_{split}.txt and the counts are printed.

From a Kinetics-400 folder prepared by kinetics.py (its train.csv, val.csv, classes.json): writes
{out}/train.csv, {out}/val.csv (paths relative to {out}) and {out}/classes.json.

    python data_prep/mini_kinetics.py --k400-dir data/kinetics400 --train-ids train_ytid_list.txt \\
        --val-ids val_ytid_list.txt --out-dir data/mini_kinetics200

From the official Kinetics-400 CSVs instead (--csv, repeatable): writes {out}/kinetics200_{split}.csv in the
same format, to prepare with kinetics.py (--train-csv {out}/kinetics200_train.csv).
"""

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from videonl.command import run
from videonl.prep.common import write_json, write_list, write_text
from videonl.prep.kinetics import read_rows
from videonl.data.datasets import read_video_list

CLIP_SUFFIX_LENGTH = len("_000000_000000")


def read_ids(path: Path) -> List[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def youtube_id_of(video_path: str) -> str:
    """The id in a kinetics.py clip name, {youtube_id}_{start:06d}_{end:06d}.mp4 (ids may hold '_' or '-')."""
    return Path(video_path).stem[:-CLIP_SUFFIX_LENGTH]


def prepared_clips(k400_dir: Path) -> Dict[str, Tuple[str, str]]:
    """youtube id -> (absolute clip path, label name) over the prepared train and val lists."""
    names = {index: name for name, index in json.loads((k400_dir / "classes.json").read_text("utf-8")).items()}
    clips = {}
    for split in ("train", "val"):
        list_file = k400_dir / f"{split}.csv"
        if list_file.exists():
            for record in read_video_list(str(list_file)):
                clips[youtube_id_of(record.path)] = (record.path, names[record.label])
    return clips


def renumber(labels) -> Dict[str, int]:
    return {label: index for index, label in enumerate(sorted(set(labels)))}


def split_ids(args) -> Dict[str, List[str]]:
    return {"train": read_ids(args.train_ids), "val": read_ids(args.val_ids)}


def from_prepared(args) -> dict:
    clips = prepared_clips(args.k400_dir)
    ids = split_ids(args)
    classes = renumber(clips[i][1] for split in ids.values() for i in split if i in clips)
    counts = {}
    for split, split_ids_ in ids.items():
        found = [clips[i] for i in split_ids_ if i in clips]
        write_list(args.out_dir / f"{split}.csv",
                   ((Path(os.path.relpath(path, args.out_dir)).as_posix(), classes[label]) for path, label in found))
        write_text(args.out_dir / f"missing_{split}.txt",
                   "".join(f"{i}\tnot in the prepared Kinetics-400 lists\n" for i in split_ids_ if i not in clips))
        counts[split] = (len(found), len(split_ids_) - len(found))
    write_json(args.out_dir / "classes.json", classes)
    return {"classes": len(classes), **counts}


def from_csvs(args) -> dict:
    rows = {row["youtube_id"]: row for csv_file in args.csv for row in read_rows(csv_file)}
    ids = split_ids(args)
    classes = renumber(rows[i]["label"] for split in ids.values() for i in split if i in rows)
    counts = {}
    for split, split_ids_ in ids.items():
        out = io.StringIO()
        writer = csv.DictWriter(out, ["label", "youtube_id", "time_start", "time_end", "split"],
                                extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({**rows[i], "split": split} for i in split_ids_ if i in rows)
        write_text(args.out_dir / f"kinetics200_{split}.csv", out.getvalue())
        write_text(args.out_dir / f"missing_{split}.txt",
                   "".join(f"{i}\tnot in the Kinetics-400 CSVs\n" for i in split_ids_ if i not in rows))
        counts[split] = (sum(i in rows for i in split_ids_), sum(i not in rows for i in split_ids_))
    return {"classes": len(classes), **counts}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep mini-kinetics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--k400-dir", type=Path, help="Kinetics-400 folder prepared by kinetics.py")
    source.add_argument("--csv", type=Path, action="append", help="official Kinetics-400 CSV (train, val)")
    parser.add_argument("--train-ids", type=Path, required=True, help="train_ytid_list.txt")
    parser.add_argument("--val-ids", type=Path, required=True, help="val_ytid_list.txt")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the lists go")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    counts = from_prepared(args) if args.k400_dir else from_csvs(args)
    per_split = [f"{split}: {counts[split][0]} found, {counts[split][1]} missing (missing_{split}.txt)"
                 for split in ("train", "val")]
    print(f"{counts['classes']} classes; " + "; ".join(per_split))
    return counts


if __name__ == "__main__":
    sys.exit(run(main))
