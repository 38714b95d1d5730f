"""Decode every video of a list once, report the ones that fail, and optionally drop them from the list.

Run it before a long training run so the run never meets a broken file. With --backend all, every
decoder usable on this machine must read every frame (no fallback), which also finds files only one backend
can read. A backend that cannot decode here at all (torchcodec without the system FFmpeg libraries) never
fails a video: `all` leaves it out and says so, and naming it is an error before any video is read.

    python data_prep/check.py --list data/kinetics400/train.csv --workers 8 --drop
"""

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import List

from videonl.command import run
from videonl.prep.common import Outcome, add_common_arguments, decode_failure, report, run_jobs, write_text
from videonl.data.datasets import read_video_list
from videonl.data.decode import BACKEND_NAMES, available_backends, backend_status


def check_video(path: str, backends) -> Outcome:
    reasons = [f"{backend}: {reason}" for backend in backends
               for reason in [decode_failure(path, backend, fallback=backend == "auto")] if reason]
    return Outcome(path, "failed", "; ".join(reasons)) if reasons else Outcome(path, "done", path=path)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="list file of `path label` lines")
    parser.add_argument("--separator", default=" ", help="between path and label (default: a space)")
    parser.add_argument("--prefix", default="", help="folder of relative paths (default: the list's folder)")
    parser.add_argument("--backend", default="auto", choices=("auto", "all") + BACKEND_NAMES,
                        help="auto: any backend may read a file; all: every one usable here must")
    parser.add_argument("--drop", action="store_true", help="rewrite the list without the failing videos")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    try:
        args.backends = backends_to_check(args.backend)
    except ValueError as err:
        parser.error(str(err))
    return args


def backends_to_check(choice: str) -> List[str]:
    """The backends each video must pass; ValueError when `choice` cannot decode on this machine, so that no
    video is failed (and dropped) for what the machine lacks."""
    if not available_backends():
        reasons = "; ".join(f"{name}: {backend_status(name)[1]}" for name in BACKEND_NAMES)
        raise ValueError(f"no decoder backend is usable here ({reasons})")
    if choice == "all":
        for name in BACKEND_NAMES:
            if not backend_status(name)[0]:
                print(f"--backend all leaves out {name}, not usable here: {backend_status(name)[1]}")
        return available_backends()
    if choice != "auto" and not backend_status(choice)[0]:
        raise ValueError(f"--backend {choice} is not usable here: {backend_status(choice)[1]}")
    return [choice]


def main(argv=None) -> dict:
    args = parse_args(argv)
    records = read_video_list(str(args.list), args.separator, args.prefix, parse_label=str)  # any task's labels
    check = partial(check_video, backends=args.backends)
    outcomes = run_jobs(check, [r.path for r in records], args.workers, "check")
    counts = report(outcomes, args.list.with_name(f"{args.list.stem}_failures.txt"))
    if args.drop and counts["failed"]:
        lines = args.list.read_text(encoding="utf-8").splitlines(keepends=True)
        lines = [line for line in lines if line.strip()]
        kept = [line for line, outcome in zip(lines, outcomes) if outcome.status != "failed"]
        write_text(args.list, "".join(kept))
        print(f"dropped {len(lines) - len(kept)} videos from {args.list}")
    return counts


if __name__ == "__main__":
    sys.exit(run(main))
