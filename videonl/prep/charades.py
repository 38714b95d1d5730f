"""Prepare Charades (or data in its format, like `videonl prep demo-charades`) for the multi-label task.

Reads the official annotation files in --annotations-dir:
  Charades_v1_classes.txt  `c000 Holding some clothes` lines -> {out}/classes.json ({name: index}, the index
                           being the id's number)
  Charades_v1_train.csv    -> {out}/train.csv
  Charades_v1_test.csv     -> {out}/val.csv: the set the non-local paper (Sec. 5.2) and PySlowFast call
                           validation (the challenge's test set has no public labels)
A CSV row is a video: columns id, subject, scene, quality, relevance, verified, script, objects, descriptions,
actions, length (s); `actions` is `c092 11.90 21.20;c147 0.00 12.60` (class, start, end in seconds) or empty.
Each video, found by id in --videos-dir (Charades_v1_480/{id}.mp4 or the original files, any container), is
re-encoded whole like `videonl prep kinetics` (H.264 mp4, short side --short-side, frame rate kept, no audio)
to {out}/videos/{id}.mp4 and listed as `videos/{id}.mp4 ACTIONS`, ACTIONS keeping every action with its times
as `92:11.9:21.2;147:0:12.6` (class index:start:end), or `none` for a video without actions (written by the
multi-label task's `format_actions`, which its `parse_actions` reads back).

A video without actions stays in train.csv as all-negative (--drop-empty-train leaves it out) and is left out
of val.csv (--keep-empty-val keeps it), as the official evaluation (Charades_v1_classify.m) does: it reads no
score for such a video, which sits last in every class's ranking, where it changes no AP.
An action ending after its video's `length` is clipped to the video, as the dataset's author advises
(gsig/charades-algorithms#5), and noted. A malformed row (unknown class, unparsable number, end before start,
an action that is not `class start end`, a repeated or empty id) stops the preparation before any video is
read, naming file, line and problem for each (--skip-bad-rows leaves them out instead, noted). Nothing is lost
silently: {out}/notes_{split}.txt names every row that was clipped or left out, with its file and line, and
the report counts every row. Videos that fail go to {out}/missing_{split}.txt as for Kinetics.
Re-running skips finished videos; --shard I/N prepares part I of N of each list (a job array's task) into
{out}/parts/, and `videonl prep merge --out-dir {out} --split train val --parts N` joins them.

    python data_prep/charades.py --annotations-dir Charades --videos-dir Charades_v1_480 --out-dir data/charades
"""

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from videonl.command import run
from videonl.prep.common import (ClipJob, add_common_arguments, add_encoding_arguments, convert_clip,
                                 encoding_options, remove_leftovers, run_jobs, write_json, write_text)
from videonl.prep.kinetics import index_raw_videos
from videonl.prep.parts import add_shard_argument, select_part, temporary_tag, write_results
from videonl.tasks.multi_label import Action, format_actions

CLASSES_FILE = "Charades_v1_classes.txt"
SPLIT_FILES = {"train": "Charades_v1_train.csv", "val": "Charades_v1_test.csv"}  # our split -> official file
COLUMNS = ("id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
           "actions", "length")
REQUIRED_COLUMNS = ("id", "actions", "length")  # what preparation reads; the others travel untouched
# The default short side: Charades is tested at a single scale of 320 (non-local paper, Sec. 5.2), as Kinetics
# is tested at 256, the short side `prep kinetics` writes; the training scales above it are upsampled, as
# Kinetics' [256, 320] are from 256.
SHORT_SIDE = 320


@dataclass
class Row:
    """One CSV row read: its video's actions, or the problems that make it malformed; notes on what was changed."""
    line: int  # the file's line where the row starts (a quoted field may span lines)
    video_id: str
    actions: List[Action] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return format_actions(self.actions)


def read_classes(path: Path) -> Dict[str, Tuple[int, str]]:
    """{class id: (index, name)} from `c000 Holding some clothes` lines, checked: every id of the form c<number>
    once, every name once, and the numbers 0..K-1 with none missing (they are the classifier's outputs)."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (the class list of the official annotations)")
    classes, names = {}, {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*(c(\d+))\s+(\S.*?)\s*", line)
        if not match:
            raise SystemExit(f"{path}:{number}: expected 'c<number> <name>', got {line!r}")
        class_id, index, name = match.group(1), int(match.group(2)), match.group(3)
        for seen, key, what in ((classes, class_id, "class id"), (names, name, "class name")):
            if key in seen:
                raise SystemExit(f"{path}:{number}: {what} {key!r} again (first on line {seen[key][2]})")
        classes[class_id] = names[name] = (index, name, number)
    missing = sorted(set(range(len(classes))) - {index for index, _, _ in classes.values()})
    if missing:
        raise SystemExit(f"{path}: {len(classes)} classes, but no class numbered {missing[0]} (c{missing[0]:03d}): "
                         "the numbers must run from 0 without gaps")
    return {class_id: (index, name) for class_id, (index, name, _) in classes.items()}


def parse_seconds(text: str, what: str, problems: List[str]) -> float:
    """`text` as a finite number of seconds >= 0; NaN with a problem noted when it is not one."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        problems.append(f"{what} {text!r} is not a number of seconds")
        return math.nan
    return value


def parse_row(fields: Dict[str, str], line: int, classes: Dict[str, Tuple[int, str]], classes_file: str) -> Row:
    """A CSV row's video, its actions parsed and checked against the classes and its length."""
    row = Row(line, fields["id"].strip())
    if not row.video_id or re.search(r"[/\\\s]", row.video_id) or row.video_id.startswith("."):
        row.problems.append(f"id {fields['id']!r} is not a video name")
    length = parse_seconds(fields["length"].strip(), "length", row.problems)
    for item in filter(None, (part.strip() for part in fields["actions"].split(";"))):
        parts = item.split()
        if len(parts) != 3:
            row.problems.append(f"action {item!r} is not 'class start end'")
            continue
        class_id, start_text, end_text = parts
        start = parse_seconds(start_text, f"action {item!r}: start", row.problems)
        end = parse_seconds(end_text, f"action {item!r}: end", row.problems)
        if class_id not in classes:
            row.problems.append(f"action {item!r}: class {class_id!r} is not in {classes_file}")
        elif end < start:
            row.problems.append(f"action {item!r} ends before it starts")
        elif not math.isnan(length) and end > length:
            row.notes.append(f"action {item!r} ends after the video's length {length:g} s: clipped to "
                             f"{min(start, length):g}-{length:g} s")
            row.actions.append(Action(classes[class_id][0], min(start, length), length))
        elif not any(math.isnan(value) for value in (start, end, length)):
            row.actions.append(Action(classes[class_id][0], start, end))
    return row


def read_rows(path: Path, classes: Dict[str, Tuple[int, str]], classes_file: str) -> List[Row]:
    """Every row of an official CSV, each with its first line; a repeated id is a problem of the later row."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    rows, first_line = [], {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise SystemExit(f"{path}: not a Charades CSV: no column {', '.join(missing)} in its header {header}")
        end_of_last = reader.line_num
        while True:
            try:
                values = next(reader, None)
            except csv.Error as error:
                raise SystemExit(f"{path}:{end_of_last + 1}: unreadable CSV: {error}") from error
            line, end_of_last = end_of_last + 1, reader.line_num
            if values is None:
                return rows
            if not values:  # a blank line
                continue
            if len(values) != len(header):
                row = Row(line, values[0].strip() if values else "")
                row.problems.append(f"{len(values)} fields where the header has {len(header)}")
            else:
                row = parse_row(dict(zip(header, values)), line, classes, classes_file)
            if row.video_id in first_line:
                row.problems.append(f"id {row.video_id!r} again (first on line {first_line[row.video_id]})")
            first_line.setdefault(row.video_id, line)
            rows.append(row)


def malformed_message(path: Path, malformed: Sequence[Row], shown: int = 10) -> str:
    lines = [f"{path}:{row.line}: {row.video_id or '(no id)'}: {'; '.join(row.problems)}" for row in malformed]
    more = f"\n... and {len(lines) - shown} more malformed rows" if len(lines) > shown else ""
    return (f"{len(lines)} malformed rows in {path} (nothing was prepared; --skip-bad-rows leaves them out, "
            f"noted):\n" + "\n".join(lines[:shown]) + more)


@dataclass
class SplitRows:
    """What a split's CSV gives: the rows to prepare, and a note per row changed or left out (`file:line<TAB>
    id<TAB>what`), counted by kind."""
    kept: List[Row]
    notes: List[str]
    counts: Dict[str, int]


def select_rows(path: Path, rows: List[Row], drop_empty: bool, skip_bad: bool) -> SplitRows:
    """The rows to prepare: a malformed one stops everything unless `skip_bad`; one without actions is dropped
    when `drop_empty`. Every row that is not prepared as read gets a note."""
    malformed = [row for row in rows if row.problems]
    if malformed and not skip_bad:
        raise SystemExit(malformed_message(path, malformed))
    kept, notes = [], []
    counts = {"rows": len(rows), "malformed": len(malformed), "without_actions": 0, "empty_dropped": 0,
              "clipped": 0}
    for row in rows:
        where = f"{path.name}:{row.line}\t{row.video_id}\t"
        if row.problems:
            notes.append(where + "left out, malformed: " + "; ".join(row.problems))
            continue
        notes.extend(where + note for note in row.notes)
        counts["clipped"] += len(row.notes)
        if not row.actions:
            counts["without_actions"] += 1
            if drop_empty:
                counts["empty_dropped"] += 1
                notes.append(where + "left out: no actions")
                continue
        kept.append(row)
    return SplitRows(kept, notes, counts)


def print_summary(path: Path, split: str, selected: SplitRows, notes_file: Path) -> None:
    counts = selected.counts
    print(f"{path.name} -> {split}: {counts['rows']} rows: {len(selected.kept)} videos to prepare "
          f"({counts['without_actions'] - counts['empty_dropped']} without actions, kept all-negative); left out: "
          f"{counts['empty_dropped']} without actions, {counts['malformed']} malformed; {counts['clipped']} actions "
          f"clipped to their video's length (notes: {notes_file})")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep charades", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations-dir", type=Path, required=True,
                        help=f"folder of {CLASSES_FILE} and the CSVs ({', '.join(SPLIT_FILES.values())})")
    parser.add_argument("--videos-dir", type=Path, required=True,
                        help="the videos named by id: Charades_v1_480/ or the original files, any container")
    parser.add_argument("--out-dir", type=Path, required=True, help="where videos/, the lists and classes.json go")
    parser.add_argument("--splits", nargs="+", choices=tuple(SPLIT_FILES), default=list(SPLIT_FILES),
                        help="which lists: train (Charades_v1_train.csv), val (Charades_v1_test.csv)")
    parser.add_argument("--short-side", type=int, default=SHORT_SIDE,
                        help="short side of the output in pixels (default: %(default)s, the test scale of the "
                        "non-local paper's Charades models)")
    parser.add_argument("--drop-empty-train", action="store_true",
                        help="leave videos without actions out of train.csv (default: kept, all-negative)")
    parser.add_argument("--keep-empty-val", action="store_true",
                        help="keep videos without actions in val.csv, all-negative (default: left out, as the "
                        "official evaluation leaves them out)")
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help="leave malformed rows out, each noted, instead of stopping before any video is read")
    add_encoding_arguments(parser)
    add_common_arguments(parser)
    add_shard_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, Dict[str, int]]:
    args = parse_args(argv)
    classes_file = args.annotations_dir / CLASSES_FILE
    classes = read_classes(classes_file)
    selected = {}
    for split in args.splits:  # every CSV is read and checked before any video is
        path = args.annotations_dir / SPLIT_FILES[split]
        drop_empty = args.drop_empty_train if split == "train" else not args.keep_empty_val
        selected[split] = (path, select_rows(path, read_rows(path, classes, CLASSES_FILE), drop_empty,
                                             args.skip_bad_rows))
    write_json(args.out_dir / "classes.json", {name: index for index, name in sorted(classes.values())})
    videos = index_raw_videos(args.videos_dir) if args.videos_dir.is_dir() else {}
    remove_leftovers(args.out_dir / "videos", temporary_tag(args.shard))
    counts = {}
    for split, (path, rows) in selected.items():
        notes_file = args.out_dir / f"notes_{split}.txt"
        write_text(notes_file, "".join(note + "\n" for note in rows.notes))
        print_summary(path, split, rows, notes_file)
        part = select_part([ClipJob(key=row.video_id, source=videos.get(row.video_id),
                                    target=args.out_dir / "videos" / f"{row.video_id}.mp4", label=row.label,
                                    short_side=args.short_side, missing_reason="no such video in --videos-dir",
                                    codec_options=encoding_options(args.gop, args.fast_decode))
                            for row in rows.kept], args.shard)
        outcomes = run_jobs(convert_clip, part.jobs, args.workers, f"charades {split}")
        counts[split] = {**rows.counts, **write_results(outcomes, part, args.out_dir, split)}
    return counts


if __name__ == "__main__":
    sys.exit(run(main))
