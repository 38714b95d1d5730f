"""Runs side by side: `videonl compare OUTPUT_DIR [OUTPUT_DIR ...]`.

For every run folder written by `videonl train` (or train_net.py): the model (its config's block and
backbone), the newest test results (test/<weights>/summary.json: the mAP of a multi-label run, video-level
top-1 / top-5 and the mean class accuracy of a single-label one, with the clip-level top-1 labelled apart)
and where its pictures are. A column shows when a run has its score; a run without it leaves the cell empty.
`--mean` adds the runs' average, the figure UCF101 reports over its three splits:

    videonl compare --mean output/ucf101/split1 output/ucf101/split2 output/ucf101/split3
"""

import argparse
import glob
import json
import os
import sys
from typing import List

from videonl.command import parse_args, run

PICTURES = ("training_curves.png", "per_class_accuracy.png", "confusion_matrix.png", "per_class_ap.png")
# summary.json's scores as columns: key -> header; each task's summary holds some of them
SCORES = {"mAP": "mAP", "constant_mAP": "constant mAP", "top1": "video top-1", "top5": "video top-5",
          "mean_class_accuracy": "mean class", "clip_top1": "clip top-1"}


def newest_test(run_dir: str) -> str:
    """The test folder of the run's newest tested weights ('' when the run was never tested)."""
    summaries = glob.glob(os.path.join(run_dir, "test", "*", "summary.json"))
    return os.path.dirname(max(summaries, key=os.path.getmtime)) if summaries else ""


def run_row(run_dir: str) -> dict:
    test_dir = newest_test(run_dir)
    if not test_dir:
        raise SystemExit(f"{run_dir} has no test results (test/*/summary.json); run videonl train with "
                         "TEST.ENABLE True first")
    with open(os.path.join(test_dir, "summary.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    pictures = [os.path.join(run_dir, PICTURES[0])] + [os.path.join(test_dir, name) for name in PICTURES[1:]]
    return {"run": run_dir, "weights": os.path.basename(test_dir), **metrics,
            "pictures": [path for path in pictures if os.path.isfile(path)]}


def mean_row(rows: List[dict]) -> dict:
    """The runs' scores averaged with equal weight per run (as splits are averaged, not pooled); a score some run
    lacks has no mean."""
    shared = [key for key in SCORES if all(key in row for row in rows)]
    return {"run": f"mean of {len(rows)} runs", **{key: sum(row[key] for row in rows) / len(rows) for key in shared},
            "views_per_video": "/".join(sorted({str(row["views_per_video"]) for row in rows})),
            "failed": sum(row["failed"] for row in rows), "videos": sum(row["videos"] for row in rows)}


def format_rows(rows: List[dict], mean: bool = False) -> str:
    shown = [key for key in SCORES if any(key in row for row in rows)]
    header = ("run", *(SCORES[key] for key in shown), "views", "failed")
    table = [header] + [(row["run"], *(f"{row[key]:.2f}" if key in row else "" for key in shown),
                         str(row["views_per_video"]), f"{row['failed']}/{row['videos']}")
                        for row in rows + [mean_row(rows)] * mean]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if "mAP" in shown:
        lines.append("(mAP in %: the official Charades evaluation's, over the classes with actions; video level = "
                     "each class's sigmoid combined over the views as the run's task says; constant mAP = every video "
                     "scored alike, the floor)")
    if "mean_class_accuracy" in shown:
        lines.append("(accuracies in %; video level = softmax averaged over the views; clip top-1 = each view "
                     "alone)")
    for row in rows:
        lines.append(f"{row['run']} ({row['weights']}): " + ", ".join(row["pictures"]))
    return "\n".join(lines)


def main(argv=None) -> List[dict]:
    parser = argparse.ArgumentParser(prog="videonl compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="OUTPUT_DIR", help="run folders of videonl train")
    parser.add_argument("--mean", action="store_true", help="add the runs' average (e.g. UCF101's three splits)")
    args = parse_args(parser, argv)
    rows = [run_row(run_dir) for run_dir in args.runs]
    print(format_rows(rows, args.mean))
    return rows


if __name__ == "__main__":
    sys.exit(run(main))
