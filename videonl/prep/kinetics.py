"""Prepare Kinetics-400 (or a dataset in its CSV format, like the demo) for videonl.

Reads an official CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`; the test CSV has no label),
trims every clip to [time_start, time_end), re-encodes it as H.264 mp4 with the short side resized (frame
rate kept, audio dropped) to {out}/{split}/{label}/{youtube_id}_{start:06d}_{end:06d}.mp4, and writes
{out}/{split}.csv (`path label` of the clips that decode) and {out}/missing_{split}.txt (the others, with
the reason). Class indices are the alphabetical order of the train labels, kept in {out}/classes.json.
Re-running skips the clips already written. With --shard I/N (one task of a job array) only part I of N of the
CSV's rows is prepared, into {out}/parts/; `videonl prep merge` then joins the N parts into the two lists.

    python data_prep/kinetics.py --csv kinetics400/train.csv --split train --raw-dir raw/ --out-dir data/kinetics400
"""

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional


from videonl.command import run
from videonl.prep.common import (ClipJob, add_common_arguments, add_encoding_arguments, convert_clip,
                                 encoding_options, remove_leftovers, run_jobs, write_json)
from videonl.prep.parts import add_shard_argument, select_part, temporary_tag, write_results
from videonl.progress import progress

UNLABELLED = -1


def read_rows(csv_file: Path) -> List[Dict[str, str]]:
    """Rows of an official Kinetics CSV; `label` is '' in the test CSV, which has no such column."""
    with open(csv_file, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = {"youtube_id", "time_start", "time_end"} - set(rows[0] if rows else {})
    if missing:
        raise SystemExit(f"{csv_file}: not a Kinetics CSV, no column {', '.join(sorted(missing))}")
    return [{**row, "label": row.get("label") or ""} for row in rows]


def class_index(out_dir: Path, train_csv: Optional[Path]) -> Dict[str, int]:
    """{label: index}: from {out}/classes.json when an earlier run wrote it, else from the train CSV."""
    classes_file = out_dir / "classes.json"
    if classes_file.exists():
        return json.loads(classes_file.read_text(encoding="utf-8"))
    if train_csv is None:
        raise SystemExit(f"no {classes_file} yet: prepare the train split first or pass --train-csv")
    labels = sorted({row["label"] for row in read_rows(train_csv) if row["label"]})
    classes = {label: index for index, label in enumerate(labels)}
    write_json(classes_file, classes)
    return classes


def clip_name(row: Dict[str, str]) -> str:
    return f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"


def index_raw_videos(raw_dir: Path) -> Dict[str, Path]:
    """Downloaded videos by youtube id (the file name without extension), in any container."""
    return {path.stem: path for path in raw_dir.rglob("*") if path.is_file() and not path.name.startswith(".")}


def download(youtube_id: str, raw_dir: Path) -> Optional[Path]:
    """Fetch one video with yt-dlp into raw_dir; None when it is gone."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    command = ["yt-dlp", "--quiet", "--no-warnings", "-f", "bv*[height<=480]/b[height<=480]/bv*/b",
               "-o", str(raw_dir / f"{youtube_id}.%(ext)s"), f"https://www.youtube.com/watch?v={youtube_id}"]
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return next(iter(sorted(raw_dir.glob(f"{youtube_id}.*"))), None)


def build_jobs(rows, classes, split, out_dir: Path, raw: Dict[str, Path], short_side: int,
               codec_options: dict) -> List[ClipJob]:
    jobs = []
    for row in rows:
        label = row["label"]
        folder = label if label else "unlabelled"
        jobs.append(ClipJob(
            key=clip_name(row), source=raw.get(row["youtube_id"]),
            target=out_dir / split / folder / f"{clip_name(row)}.mp4",
            label=classes[label] if label in classes else UNLABELLED, short_side=short_side,
            start=float(row["time_start"]), end=float(row["time_end"]), missing_reason="not downloaded",
            codec_options=codec_options))
    return jobs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep kinetics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True, help="official CSV of one split")
    parser.add_argument("--split", required=True, help="name of the split: train, val or test")
    parser.add_argument("--out-dir", type=Path, required=True, help="where clips and lists go")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--raw-dir", type=Path, help="downloaded videos, named by youtube id (any container)")
    source.add_argument("--download", action="store_true", help="fetch missing videos with yt-dlp into {out}/raw")
    parser.add_argument("--train-csv", type=Path, help="train CSV that defines the classes (default: --csv "
                        "when --split is train; not needed once {out}/classes.json exists)")
    parser.add_argument("--short-side", type=int, default=256, help="short side of the output in pixels "
                        "(256 as the non-local release; 320 for larger jitter)")
    add_encoding_arguments(parser)
    add_common_arguments(parser)
    add_shard_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    rows = read_rows(args.csv)
    classes = class_index(args.out_dir, args.train_csv or (args.csv if args.split == "train" else None))
    unknown = {row["label"] for row in rows if row["label"] and row["label"] not in classes}
    if unknown:
        raise SystemExit(f"{args.csv}: labels not in {args.out_dir / 'classes.json'}: {sorted(unknown)[:5]}")
    raw_dir = args.out_dir / "raw" if args.download else args.raw_dir
    if args.download and shutil.which("yt-dlp") is None:
        raise SystemExit("--download needs yt-dlp on the PATH (pip install yt-dlp)")
    raw = index_raw_videos(raw_dir) if raw_dir.is_dir() else {}
    part = select_part(build_jobs(rows, classes, args.split, args.out_dir, raw, args.short_side,
                                  encoding_options(args.gop, args.fast_decode)), args.shard)
    remove_leftovers(args.out_dir / args.split, temporary_tag(args.shard))
    if args.download:
        youtube_ids = {clip_name(row): row["youtube_id"] for row in rows}
        for job in progress(part.jobs, desc="download", unit="video"):
            if job.source is None and not job.target.exists():
                job.source = download(youtube_ids[job.key], raw_dir)
    outcomes = run_jobs(convert_clip, part.jobs, args.workers, f"kinetics {args.split}")
    return write_results(outcomes, part, args.out_dir, args.split)


if __name__ == "__main__":
    sys.exit(run(main))
