"""Generate a small multi-label dataset in Charades' format: shapes that each do their own motion in their own time.

The classes are the demo's eight motions (`videonl prep demo`). A video holds two or three shapes, each doing a
different motion during its own interval and standing still outside it, so the video carries two or three
labels, each with its start and end. Every action lasts at least --min-action of its video (60 %): a training
window of two thirds of the video (the demo configs' 8 frames every 5th of 4 s at 15 fps) always sees part of
every action. A tenth of the videos (--empty-fraction) hold only still shapes and no action. Written as the
official download is laid out, {out}/Charades_v1_480/{id}.mp4, {out}/Charades_v1_train.csv,
{out}/Charades_v1_test.csv (the official columns; `actions` like `c003 0.40 3.60;c006 1.07 4.00`) and
{out}/Charades_v1_classes.txt, so that `videonl prep charades` prepares it exactly as it prepares Charades (what
`make demo-charades` runs):

    python data_prep/demo_charades.py --out-dir data/demo_charades_source
    python data_prep/charades.py --annotations-dir data/demo_charades_source \\
        --videos-dir data/demo_charades_source/Charades_v1_480 --out-dir data/demo_charades --short-side 80
"""

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from videonl.command import run
from videonl.prep.charades import CLASSES_FILE, COLUMNS, SPLIT_FILES
from videonl.prep.common import Outcome, add_common_arguments, atomic_path, encode_h264, report, run_jobs, write_text
from videonl.prep.demo import BACKGROUNDS, CLASSES, random_motion, with_noise

CLASS_NAMES = list(CLASSES)
ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # Charades' ids are 5 of these, e.g. 46GP8
STILL_SHAPES = 2  # shapes of a video without actions
# (class name, first frame of its motion, frame where it ends): a shape still before and after its interval.
Shape = Tuple[str, int, int]


def render_video(shapes: Sequence[Shape], seed: int, height: int, width: int, num_frames: int,
                 fps: float) -> np.ndarray:
    """[num_frames, height, width, 3] uint8 frames: each shape in the order given (later ones in front), doing
    its class's motion from its first frame to its end and standing still outside."""
    rng = np.random.default_rng(seed)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    frames[:] = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    for class_name, start, end in shapes:
        motion = random_motion(class_name, rng, height, width, end - start, fps)
        for t in range(num_frames):
            frames[t][motion.mask(height, width, min(max(t - start, 0), end - start))] = motion.colour
    return with_noise(frames, rng)


@dataclass(frozen=True)
class VideoPlan:
    """One video to write: its id, its shapes (no action when `still`), the seed that draws their looks."""
    video_id: str
    shapes: Tuple[Shape, ...]
    still: bool
    seed: int

    def actions(self, fps: float) -> str:
        """The `actions` field of its CSV row: `c000 0.40 3.60;...`, or '' for a video without actions."""
        if self.still:
            return ""
        return ";".join(f"c{CLASS_NAMES.index(name):03d} {start / fps:.2f} {end / fps:.2f}"
                        for name, start, end in self.shapes)


def plan_video(rng: np.random.Generator, video_id: str, seed: int, num_frames: int, min_action: float,
               empty_fraction: float) -> VideoPlan:
    if rng.uniform() < empty_fraction:
        names = rng.choice(CLASS_NAMES, STILL_SHAPES, replace=False)
        return VideoPlan(video_id, tuple((str(name), 0, 0) for name in names), True, seed)
    names = rng.choice(CLASS_NAMES, int(rng.integers(2, 4)), replace=False)
    shapes = []
    for name in names:
        length = int(rng.integers(math.ceil(min_action * num_frames), num_frames + 1))
        start = int(rng.integers(0, num_frames - length + 1))
        shapes.append((str(name), start, start + length))
    return VideoPlan(video_id, tuple(shapes), False, seed)


def video_ids(rng: np.random.Generator, count: int) -> List[str]:
    """`count` different Charades-like ids."""
    ids: Dict[str, None] = {}
    while len(ids) < count:
        ids["".join(rng.choice(list(ID_ALPHABET), 5))] = None
    return list(ids)


def write_video(job) -> Outcome:
    plan, path, (height, width), num_frames, fps = job
    if path.exists():
        return Outcome(plan.video_id, "skipped", path=str(path))
    frames = render_video(plan.shapes, plan.seed, height, width, num_frames, fps)
    with atomic_path(path) as temporary:
        encode_h264(temporary, frames, Fraction(fps))
    return Outcome(plan.video_id, "done", path=str(path))


def csv_text(plans: Sequence[VideoPlan], num_frames: int, fps: float) -> str:
    """An official-format CSV of `plans`: the description names the motions, quoted, as real ones often are."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for plan in plans:
        described = "nothing moves" if plan.still else ", then ".join(name for name, _, _ in plan.shapes)
        writer.writerow({"id": plan.video_id, "subject": "synthetic", "verified": "Yes",
                         "descriptions": f"Shapes: {described}.", "actions": plan.actions(fps),
                         "length": f"{num_frames / fps:.2f}"})
    return out.getvalue()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep demo-charades", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True, help="where Charades_v1_480/ and the files go")
    parser.add_argument("--train", type=int, default=320, help="training videos (Charades_v1_train.csv)")
    parser.add_argument("--val", type=int, default=80, help="validation videos (Charades_v1_test.csv)")
    parser.add_argument("--size", type=int, default=96, help="frame height and width in pixels")
    parser.add_argument("--seconds", type=float, default=4, help="length of every video")
    parser.add_argument("--fps", type=int, default=15, help="frame rate")
    parser.add_argument("--min-action", type=float, default=0.6, help="shortest action, as a fraction of its video")
    parser.add_argument("--empty-fraction", type=float, default=0.1, help="share of videos without actions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the plan and of the first video")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if not 0 < args.min_action <= 1 or not 0 <= args.empty_fraction <= 1:
        parser.error("--min-action must be in (0, 1] and --empty-fraction in [0, 1]")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    num_frames = round(args.seconds * args.fps)
    rng = np.random.default_rng(args.seed)
    ids = iter(video_ids(rng, args.train + args.val))
    plans = {split: [plan_video(rng, next(ids), args.seed + index, num_frames, args.min_action, args.empty_fraction)
                     for index in range(offset, offset + count)]
             for split, offset, count in (("train", 0, args.train), ("val", args.train, args.val))}
    write_text(args.out_dir / CLASSES_FILE, "".join(f"c{index:03d} {name}\n" for index, name in enumerate(CLASS_NAMES)))
    for split, split_plans in plans.items():
        write_text(args.out_dir / SPLIT_FILES[split], csv_text(split_plans, num_frames, args.fps))
    jobs = [(plan, args.out_dir / "Charades_v1_480" / f"{plan.video_id}.mp4", (args.size, args.size), num_frames,
             args.fps) for split_plans in plans.values() for plan in split_plans]
    outcomes = run_jobs(write_video, jobs, args.workers, "demo-charades videos")
    return report(outcomes, args.out_dir / "failures.txt")


if __name__ == "__main__":
    sys.exit(run(main))
