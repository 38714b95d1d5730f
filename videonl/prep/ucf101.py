"""Prepare UCF101 lists (and optionally re-encoded videos) from the official split files.

Reads ucfTrainTestlist/: classInd.txt (`1 ApplyEyeMakeup`, CRLF line ends), trainlist0{1,2,3}.txt
(`Class/v_Class_gNN_cMM.avi 1-based-label`) and testlist0{1,2,3}.txt (path only; the label comes from the
folder through classInd). Paths are matched to the files case-insensitively, because the folder
HandstandPushups holds files named v_HandStandPushups_*. Writes, for each split k, {out}/split{k}/train.csv
(trainlist0k) and {out}/split{k}/val.csv (testlist0k) with 0-based labels, and missing_{train,val}.txt there
for list entries with no file.
With --reencode every video is re-encoded like kinetics.py (H.264 mp4, short side --short-side) into
{out}/videos/ and the lists point there; re-running skips finished videos. With --shard I/N (one task of a job
array) only part I of N of each list is done, into {out}/split{k}/parts/; `videonl prep merge --out-dir
{out}/split{k} --split train val --parts N` joins the parts of split k.

    python data_prep/ucf101.py --splits-dir ucfTrainTestlist --videos-dir UCF-101 --out-dir data/ucf101
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from videonl.command import run
from videonl.prep.common import (ClipJob, Outcome, add_common_arguments, add_encoding_arguments, convert_clip,
                                 encoding_options, remove_leftovers, run_jobs)
from videonl.prep.parts import add_shard_argument, select_part, temporary_tag, write_results


def read_class_index(path: Path) -> Dict[str, int]:
    """{lower-case class name: 0-based index} from classInd.txt's 1-based `index name` lines."""
    classes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            index, name = line.split()
            classes[name.lower()] = int(index) - 1
    return classes


def read_split(path: Path, classes: Dict[str, int]) -> List[Tuple[str, int]]:
    """(relative path, 0-based label) of a trainlist (labelled) or testlist (label from the folder)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if not fields:
            continue
        relative = fields[0]
        label = int(fields[1]) - 1 if len(fields) > 1 else classes[relative.split("/")[0].lower()]
        entries.append((relative, label))
    return entries


def index_videos(videos_dir: Path) -> Dict[str, Path]:
    """Lower-case relative path -> file, so that list entries find their file whatever its case."""
    return {path.relative_to(videos_dir).as_posix().lower(): path
            for path in videos_dir.rglob("*") if path.is_file()}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep ucf101", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits-dir", type=Path, required=True, help="ucfTrainTestlist/ of the official zip")
    parser.add_argument("--videos-dir", type=Path, required=True, help="UCF-101/ with one folder per class")
    parser.add_argument("--out-dir", type=Path, required=True, help="where lists (and videos) go")
    parser.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3], help="which splits")
    parser.add_argument("--reencode", action="store_true", help="re-encode to H.264 mp4 under {out}/videos")
    parser.add_argument("--short-side", type=int, default=256, help="short side when re-encoding")
    add_encoding_arguments(parser)
    add_common_arguments(parser)
    add_shard_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, dict]:
    args = parse_args(argv)
    classes = read_class_index(args.splits_dir / "classInd.txt")
    files = index_videos(args.videos_dir)
    if args.reencode:
        remove_leftovers(args.out_dir / "videos", temporary_tag(args.shard))
    counts = {}
    for k in args.splits:
        split_dir = args.out_dir / f"split{k}"
        for kind, list_name in (("train", f"trainlist0{k}.txt"), ("val", f"testlist0{k}.txt")):
            entries = read_split(args.splits_dir / list_name, classes)
            part = select_part([ClipJob(key=relative, source=files.get(relative.lower()),
                                        target=args.out_dir / "videos" / Path(relative).with_suffix(".mp4"),
                                        label=label, short_side=args.short_side,
                                        codec_options=encoding_options(args.gop, args.fast_decode))
                                for relative, label in entries], args.shard)
            if args.reencode:
                outcomes = run_jobs(convert_clip, part.jobs, args.workers, f"ucf101 {kind} split {k}")
            else:
                outcomes = [Outcome(job.key, "skipped", path=str(job.source), label=job.label) if job.source
                            else Outcome(job.key, "failed", job.missing_reason) for job in part.jobs]
            counts[f"split{k}/{kind}"] = write_results(outcomes, part, split_dir, kind)
    return counts


if __name__ == "__main__":
    sys.exit(run(main))
