"""Decode every video of a list once, report the ones that fail, and optionally drop them from the list.

Run it before a long training run so the run never meets a broken file. With --backend all, every
installed decoder must read every frame (no fallback), which also finds files only one backend can read.

    python data_prep/check.py --list data/kinetics400/train.csv --workers 8 --drop
"""

import argparse
from functools import partial
from pathlib import Path

from videonl.prep.common import Outcome, add_common_arguments, decode_failure, report, run_jobs, write_text
from videonl.data.datasets import read_video_list
from videonl.data.decode import BACKEND_NAMES, available_backends


def check_video(path: str, backends) -> Outcome:
    reasons = [f"{backend}: {reason}" for backend in backends
               for reason in [decode_failure(path, backend, fallback=backend == "auto")] if reason]
    return Outcome(path, "failed", "; ".join(reasons)) if reasons else Outcome(path, "done", path=path)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="list file of `path label` lines")
    parser.add_argument("--separator", default=" ", help="between path and label (default: a space)")
    parser.add_argument("--prefix", default="", help="folder of relative paths (default: the list's folder)")
    parser.add_argument("--backend", default="auto", choices=("auto", "all") + BACKEND_NAMES,
                        help="auto: any backend may read a file; all: every installed one must")
    parser.add_argument("--drop", action="store_true", help="rewrite the list without the failing videos")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    records = read_video_list(str(args.list), args.separator, args.prefix)
    backends = available_backends() if args.backend == "all" else [args.backend]
    outcomes = run_jobs(partial(check_video, backends=backends), [r.path for r in records], args.workers, "check")
    counts = report(outcomes, args.list.with_name(f"{args.list.stem}_failures.txt"))
    if args.drop and counts["failed"]:
        lines = args.list.read_text(encoding="utf-8").splitlines(keepends=True)
        lines = [line for line in lines if line.strip()]
        kept = [line for line, outcome in zip(lines, outcomes) if outcome.status != "failed"]
        write_text(args.list, "".join(kept))
        print(f"dropped {len(lines) - len(kept)} videos from {args.list}")
    return counts


if __name__ == "__main__":
    main()
