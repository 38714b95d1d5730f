"""`python -m videonl.benchmark transforms`: the spatial transforms alone, per item, on one core.

Inputs are decoded-size uint8 frames (random pixels; --size, default 340x256 as data_prep leaves Kinetics):
  train    one 32x2 training clip: 32 frames -> jittered short side, 224 crop, flip (TRAIN_JITTER_SCALES, ...)
  test 10  the distinct frames of 10 clips of 32x2 spread over a 10 s, 30 fps video -> 10 full-frame views
  test 30  the same frames -> 30 views (10 clips x 3 crops of 256)
all uint8 out, as with DATA.NORMALIZE_ON_DEVICE. Times are CPU time of this process (`time.process_time`: a
loaded machine disturbs it much less than wall time), median of --repeat calls. With --against REV, the same calls of the transforms module of
git revision REV (read from this checkout) take turns with ours in this process (`timing.interleaved`), and the
table gives our time over theirs.
"""

import argparse
import subprocess
import time
import types
from pathlib import Path
from typing import Callable, Dict

import torch

from videonl.benchmark.timing import interleaved, torch_threads
from videonl.data import transforms

CPU = torch.device("cpu")
MODULE_PATH = "videonl/data/transforms.py"
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def revision_module(revision: str) -> types.ModuleType:
    """The transforms module as it is at git `revision` of the checkout this package runs from."""
    root = Path(__file__).resolve().parents[2]
    try:
        source = subprocess.run(["git", "-C", str(root), "show", f"{revision}:{MODULE_PATH}"], check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise SystemExit(f"--against needs a git checkout holding {revision}:{MODULE_PATH} ({err})")
    module = types.ModuleType(f"transforms_at_{revision}")
    exec(compile(source, f"{revision}:{MODULE_PATH}", "exec"), module.__dict__)
    return module


def cases(module: types.ModuleType, height: int, width: int, frames_per_video: int) -> Dict[str, Callable]:
    """One call per row, of `module`'s transforms, on fixed random frames."""
    generator = torch.Generator().manual_seed(0)
    clip_frames = torch.randint(0, 256, (32, height, width, 3), dtype=torch.uint8, generator=generator)
    positions = torch.stack([torch.arange(0, 64, 2) + k * frames_per_video // 10 for k in range(10)])
    distinct = positions.unique()
    video = torch.randint(0, 256, (len(distinct), height, width, 3), dtype=torch.uint8, generator=generator)
    positions = torch.searchsorted(distinct, positions)  # into the distinct frames, as the decoder gives them
    train = module.TrainTransform([256, 320], 224, True, MEAN, STD, normalize=False)
    full = module.EvalTransform(256, 256, "full", MEAN, STD, normalize=False)
    three_crops = module.EvalTransform(256, 256, "3crop", MEAN, STD, normalize=False)
    return {"train": lambda: train(clip_frames), "test 10": lambda: full(video, positions),
            "test 30": lambda: three_crops(video, positions)}


def run(args) -> None:
    with torch_threads(args.threads):
        print_rows(args)


def print_rows(args) -> None:
    width, height = (int(side) for side in args.size.split("x"))
    ours = cases(transforms, height, width, args.video_frames)
    theirs = cases(revision_module(args.against), height, width, args.video_frames) if args.against else {}
    print(f"{width}x{height} frames, {torch.get_num_threads()} thread(s), CPU ms per call, median of {args.repeat}")
    print(f"{'row':<8} {'ours':>8}" + (f" {args.against:>10} {'ours / theirs':>14}" if theirs else ""))
    for row in ours:
        fns = {"ours": ours[row], **({"theirs": theirs[row]} if theirs else {})}
        seconds = interleaved(fns, CPU, warmup=1, repeat=args.repeat, clock=time.process_time)
        line = f"{row:<8} {seconds['ours'] * 1e3:>8.1f}"
        if theirs:
            line += f" {seconds['theirs'] * 1e3:>10.1f} {seconds['ours'] / seconds['theirs']:>14.2f}"
        print(line)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("transforms", help="time the training and test transforms alone",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="340x256", help="decoded frame WIDTHxHEIGHT (default: 340x256)")
    parser.add_argument("--video-frames", type=int, default=300,
                        help="frames of the tested video the 10 clips spread over (default: 300)")
    parser.add_argument("--against", metavar="REV", help="also time the transforms of this git revision")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, one core)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per row (default: 5)")
    parser.set_defaults(run=run)
