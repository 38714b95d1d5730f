"""Generate the built-in demo dataset: shapes whose class is their motion, in the Kinetics layout.

Eight classes (moving left / right / up / down, rotating clockwise / counterclockwise, growing, shrinking);
every video has its own shape, colours, size, position and speed, so only the motion tells the class. Writes
raw videos named by a made-up 11-character youtube id to {out}/raw/ and Kinetics-style CSVs
{out}/kinetics_train.csv and {out}/kinetics_val.csv, so the demo runs the real Kinetics path (what
`make demo` runs: 320 videos of 96 x 96 px, prepared at a short side of 80 for configs/demo/):

    python data_prep/demo.py --out-dir data/demo_source
    python data_prep/kinetics.py --csv data/demo_source/kinetics_train.csv --split train \\
        --raw-dir data/demo_source/raw --out-dir data/demo --short-side 80
    python data_prep/kinetics.py --csv data/demo_source/kinetics_val.csv --split val \\
        --raw-dir data/demo_source/raw --out-dir data/demo --short-side 80
"""

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from videonl.command import run
from videonl.prep.common import (Outcome, add_common_arguments, atomic_path, encode_h264, report,
                              run_jobs, write_text)

# Class name -> (velocity direction (x, y), spin sign, growth sign); speeds are drawn per video.
CLASSES = {
    "moving left": ((-1, 0), 0, 0),
    "moving right": ((1, 0), 0, 0),
    "moving up": ((0, -1), 0, 0),
    "moving down": ((0, 1), 0, 0),
    "rotating clockwise": ((0, 0), 1, 0),
    "rotating counterclockwise": ((0, 0), -1, 0),
    "growing": ((0, 0), 0, 1),
    "shrinking": ((0, 0), 0, -1),
}
# Few colours, shared by every class: each look recurs across classes, so a model cannot score by
# remembering what each training video looks like and has to learn the motion.
BACKGROUNDS = np.array([[25, 25, 25], [95, 95, 95], [30, 50, 90], [90, 65, 35]])
SHAPE_COLOURS = np.array([[235, 60, 60], [70, 210, 90], [90, 140, 250], [245, 215, 60], [230, 100, 230],
                          [250, 250, 250]])
CLIP_START = 1  # seconds of the raw video before the annotated window, as in Kinetics' trimmed clips


def polygon_mask(height: int, width: int, centre, radius: float, sides: int, angle: float,
                 aspect: float) -> np.ndarray:
    """Boolean [height, width] mask of a convex polygon (y axis pointing down): a regular one squashed across
    to `aspect` of its width, then turned by `angle`."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    inside = np.ones((height, width), bool)
    corner_angles = 2 * np.pi * np.arange(sides) / sides
    along, across = radius * np.cos(corner_angles), aspect * radius * np.sin(corner_angles)
    corners = [(centre[0] + a * np.cos(angle) - b * np.sin(angle), centre[1] + a * np.sin(angle) + b * np.cos(angle))
               for a, b in zip(along, across)]
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


@dataclass(frozen=True)
class Motion:
    """One shape doing one class's motion: its look, and where it is after `t` frames of the motion."""
    colour: np.ndarray
    sides: int
    aspect: float  # across / along: the polygon is squashed, so every turn is visible (see `random_motion`)
    centre: np.ndarray  # (x, y) at t = 0
    velocity: np.ndarray  # (x, y) pixels per frame
    radius: float  # at t = 0
    scale_rate: float  # radius factor per frame
    angle: float  # radians at t = 0
    turn: float  # radians per frame

    def mask(self, height: int, width: int, t: float) -> np.ndarray:
        """Boolean [height, width] mask of the shape after `t` frames of its motion."""
        return polygon_mask(height, width, self.centre + self.velocity * t, self.radius * self.scale_rate ** t,
                            self.sides, self.angle + self.turn * t, self.aspect)


def random_motion(class_name: str, rng: np.random.Generator, height: int, width: int, num_frames: int,
                  fps: float) -> Motion:
    """A shape of random look, size, place and speed doing `class_name`, inside the frame for `num_frames`."""
    size = min(height, width)
    frame_size = np.array([width, height])
    (dx, dy), spin, growth = CLASSES[class_name]
    colour = SHAPE_COLOURS[rng.integers(len(SHAPE_COLOURS))]
    sides = int(rng.integers(3, 5))
    speed = size * rng.uniform(0.12, 0.16) / fps  # pixels per frame: the shape crosses about half the frame
    # Radians per frame: a shape sampled every 4th or 5th frame turns by 24-42 degrees, a clear angle, and far
    # less than half its symmetry angle: the shapes are squashed across (below), so a square is a rhombus
    # (symmetric under 180 degrees, not 90) and a triangle has no symmetry, and no turn looks like the opposite one.
    turn = spin * rng.uniform(0.4, 0.7) * np.pi / fps
    scale_rate = np.exp(growth * rng.uniform(0.15, 0.25) / fps)
    radius = size * rng.uniform(0.11, 0.16) / (scale_rate ** num_frames if growth < 0 else 1)
    largest = radius * max(1.0, scale_rate ** num_frames)
    travel = speed * num_frames * np.array([dx, dy])
    low = largest + np.maximum(-travel, 0)
    high = frame_size - largest - np.maximum(travel, 0)
    centre = rng.uniform(np.minimum(low, high), np.maximum(low, high))
    angle = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(0.5, 0.65)
    return Motion(colour, sides, aspect, centre, speed * np.array([dx, dy]), radius, scale_rate, angle, turn)


def with_noise(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Frames with light noise, a texture that gives the encoder real work."""
    noise = rng.integers(-6, 7, frames.shape, dtype=np.int16)
    return np.clip(frames + noise, 0, 255).astype(np.uint8)


def render(class_name: str, seed: int, height: int, width: int, num_frames: int, fps: float) -> np.ndarray:
    """[num_frames, height, width, 3] uint8 frames of one video of `class_name`."""
    rng = np.random.default_rng(seed)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    frames[:] = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    motion = random_motion(class_name, rng, height, width, num_frames, fps)
    for t in range(num_frames):
        frames[t][motion.mask(height, width, t)] = motion.colour
    return with_noise(frames, rng)


def youtube_like_id(seed: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    rng = np.random.default_rng(10_000 + seed)
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 11))


def write_video(job) -> Outcome:
    class_name, seed, path, (height, width), seconds, fps = job
    if path.exists():
        return Outcome(path.stem, "skipped", path=str(path))
    frames = render(class_name, seed, height, width, int((CLIP_START + seconds) * fps), fps)
    with atomic_path(path) as temporary:
        encode_h264(temporary, frames, Fraction(fps))
    return Outcome(path.stem, "done", path=str(path))


def csv_text(rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
    writer.writerows(rows)
    return out.getvalue()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True, help="where raw/ and the CSVs go")
    parser.add_argument("--train-per-class", type=int, default=32, help="training videos per class")
    parser.add_argument("--val-per-class", type=int, default=8, help="validation videos per class")
    parser.add_argument("--size", type=int, default=96, help="frame height in pixels")
    parser.add_argument("--width", type=int, help="frame width (default: --size; 340 with --size 256 gives "
                        "the shape of prepared Kinetics clips)")
    parser.add_argument("--seconds", type=int, default=3, help="length of the annotated window")
    parser.add_argument("--fps", type=int, default=15, help="frame rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first video")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    jobs, rows = [], {"train": [], "val": []}
    seed = args.seed
    for class_name in CLASSES:
        for split, count in (("train", args.train_per_class), ("val", args.val_per_class)):
            for _ in range(count):
                youtube_id = youtube_like_id(seed)
                jobs.append((class_name, seed, args.out_dir / "raw" / f"{youtube_id}.mp4",
                             (args.size, args.width or args.size), args.seconds, args.fps))
                rows[split].append([class_name, youtube_id, CLIP_START, CLIP_START + args.seconds, split, 0])
                seed += 1
    outcomes = run_jobs(write_video, jobs, args.workers, "demo videos")
    for split, split_rows in rows.items():
        write_text(args.out_dir / f"kinetics_{split}.csv", csv_text(split_rows))
    return report(outcomes, args.out_dir / "failures.txt")


if __name__ == "__main__":
    sys.exit(run(main))
