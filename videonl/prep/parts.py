"""One list prepared as N parts, by the tasks of a job array (`--shard I/N`), and joined again (`videonl prep merge`).

Part I of N is the block of positions [I * n // N, (I + 1) * n // N) of the list's n jobs. Blocks by position
in the list (every row of the CSV, missing videos included, never what happens to be on disk) are the same on
every re-run, differ in size by one job at most, and follow one another in the list's order: joining the parts'
files in part order gives exactly the files one run over the whole list writes, byte for byte.

A part writes {folder}/parts/{split}.{I}-of-{N}.csv (its entries of the list), missing_{split}.{I}-of-{N}.txt
(its failures) and, last, {split}.{I}-of-{N}.json: its report, which says which part of which list it is and
holds digests of the two files, so that `merge_parts` can name a part that is missing, present twice, made from
another list, or whose files were changed since.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from videonl.prep.common import (STATUSES, ClipJob, Outcome, print_counts, report, write_bytes, write_json,
                                 write_list)


@dataclass(frozen=True)
class Shard:
    """Part `index` of `count`, counted from 0 as a job array's task ids are."""
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """`I/N` as the command line gives it (an argparse `type`)."""
        match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not match or not int(match.group(1)) < int(match.group(2)):
            raise argparse.ArgumentTypeError(f"'{text}' is not I/N, part I of N counted from 0 (0 <= I < N)")
        return cls(int(match.group(1)), int(match.group(2)))

    def bounds(self, size: int) -> Tuple[int, int]:
        """[start, end) of this part in a list of `size` jobs."""
        return size * self.index // self.count, size * (self.index + 1) // self.count

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"


@dataclass
class Part:
    """The jobs one run does: a whole list (`shard` None) or one shard's block of it."""
    jobs: List[ClipJob]
    shard: Optional[Shard]
    list_size: int  # jobs in the whole list
    list_digest: str  # of the whole list's keys and labels, the same in every part of one list


def temporary_tag(shard: Optional[Shard]) -> str:
    """The tag of a part's temporary files (`common.atomic_path`), so that its re-run removes its own leftovers
    and never the file another part is writing beside it; '' for a whole list, whose run removes every one."""
    return f"{shard.index}of{shard.count}." if shard else ""


def add_shard_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard", type=Shard.parse, metavar="I/N",
                        help="prepare only part I of N (0 <= I < N) of the list, e.g. $SLURM_ARRAY_TASK_ID/16, into "
                        "{out}/parts/; `videonl prep merge` joins the N parts into the files one run writes")


def select_part(jobs: Sequence[ClipJob], shard: Optional[Shard]) -> Part:
    """The jobs of `shard` (all of them for None), their temporary files tagged with the part."""
    digest = hashlib.sha256("".join(f"{job.key}\t{job.label}\n" for job in jobs).encode("utf-8")).hexdigest()
    if shard is None:
        return Part(list(jobs), None, len(jobs), digest)
    start, end = shard.bounds(len(jobs))
    tag = temporary_tag(shard)
    return Part([dataclasses.replace(job, temporary_tag=tag) for job in jobs[start:end]], shard, len(jobs), digest)


@dataclass(frozen=True)
class SplitFiles:
    """Where a split's list and failures go: {folder}/{split}.csv and missing_{split}.txt, or a part's files."""
    list: Path
    failures: Path
    report: Optional[Path] = None  # a part's report; None for the whole list

    @classmethod
    def of(cls, folder: Path, split: str, shard: Optional[Shard] = None) -> "SplitFiles":
        if shard is None:
            return cls(folder / f"{split}.csv", folder / f"missing_{split}.txt")
        parts = folder / "parts"
        return cls(parts / f"{split}.{shard.name}.csv", parts / f"missing_{split}.{shard.name}.txt",
                   parts / f"{split}.{shard.name}.json")


def write_results(outcomes: Sequence[Outcome], part: Part, folder: Path, split: str) -> Dict[str, int]:
    """The list of what did not fail (`path label`, paths relative to `folder`) and the failures, as the split's
    files or, for a shard, as its part files and report; returns the counts."""
    files = SplitFiles.of(folder, split, part.shard)
    write_list(files.list, ((Path(os.path.relpath(o.path, folder)).as_posix(), o.label)
                            for o in outcomes if o.status != "failed"))
    counts = report(outcomes, files.failures)
    if files.report is not None:  # written last: a part with a report is complete
        write_json(files.report, {"part": part.shard.index, "parts": part.shard.count, "list_size": part.list_size,
                                  "list_digest": part.list_digest, "counts": counts,
                                  "digests": {"list": file_digest(files.list),
                                              "failures": file_digest(files.failures)}})
    return counts


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_part_reports(folder: Path, split: str, count: int) -> List[Tuple[SplitFiles, dict]]:
    """(files, report) of parts 0 .. count-1, checked to be the parts of one list, each once and unchanged."""
    found = {}  # part index its report names -> files of the reports naming it
    for index in range(count):
        files = SplitFiles.of(folder, split, Shard(index, count))
        if files.report.is_file():
            content = json.loads(files.report.read_text(encoding="utf-8"))
            if content.get("parts") != count:
                raise SystemExit(f"{files.report} is part {content.get('part')} of {content.get('parts')}, not of "
                                 f"{count}: it was renamed")
            found.setdefault(content["part"], []).append((files, content))
    doubled = [reports for reports in found.values() if len(reports) > 1]
    if doubled:
        raise SystemExit(f"part {doubled[0][0][1]['part']} of {count} of {split} is there twice: "
                         f"{' and '.join(str(files.report) for files, _ in doubled[0])}")
    missing = [str(SplitFiles.of(folder, split, Shard(index, count)).report) for index in range(count)
               if index not in found]
    if missing:
        raise SystemExit(f"{len(missing)} of the {count} parts of {split} missing: no {', '.join(missing)} (a part "
                         "writes its report when it finishes: run the part, or copy its parts/ files here)")
    parts = [found[index][0] for index in range(count)]
    first = parts[0][1]
    for files, content in parts:
        if (content["list_size"], content["list_digest"]) != (first["list_size"], first["list_digest"]):
            raise SystemExit(f"{files.report} was prepared from another list than part 0 ({content['list_size']} "
                             f"jobs against {first['list_size']}, or other keys or labels): prepare every part "
                             "from the same list and classes")
        for name, path in (("list", files.list), ("failures", files.failures)):
            if not path.is_file() or file_digest(path) != content["digests"][name]:
                raise SystemExit(f"{path} is not the file part {content['part']} of {count} wrote (missing, or "
                                 f"changed since): run part {content['part']} again")
    return parts


def merge_parts(folder: Path, split: str, count: int) -> Dict[str, int]:
    """{folder}/{split}.csv and missing_{split}.txt from the split's `count` parts: the files one run over the
    whole list writes. A part that is missing, there twice, from another list or changed since is named."""
    parts = read_part_reports(folder, split, count)
    whole = SplitFiles.of(folder, split)
    write_bytes(whole.list, b"".join(files.list.read_bytes() for files, _ in parts))
    write_bytes(whole.failures, b"".join(files.failures.read_bytes() for files, _ in parts))
    counts = {status: sum(content["counts"][status] for _, content in parts) for status in STATUSES}
    print_counts(counts, whole.failures)
    return counts
