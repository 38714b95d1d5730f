"""`videonl benchmark loader --cfg FILE`: clips per second of data loading, per decoder backend.

For the first --videos videos of the test list, and each backend (no fallback, so each is timed alone):
  floor        decode every frame of each video once, nothing else: the least any loader must spend
  train        training clips (random window, scale jitter, crop, flip, normalise) through a DataLoader
  test 10      whole videos as 10 full-frame views (the paper's test), one decode per video
  test 30      whole videos as 30 views (10 clips x 3 crops, the official test), one decode per video
  30 separate  the same 30 views, each decoded on its own (what a loader without multi-view items does)
Test rows give views per second and seconds per video; `x floor` is their time over the floor's. Each row
shows wall time (the median of --repeat passes, from `timing.measure`) and the CPU time of this process and
its threads, which other work on a shared machine disturbs much less; with --workers > 0 the decoding runs in
worker processes, which that CPU time does not count.
"""

import argparse
import statistics
import time
from typing import Callable, Dict, List

import numpy as np
import torch
from torch.utils.data import DataLoader

from videonl.benchmark.timing import measure
from videonl.command import add_overrides
from videonl.config import load_cfg
from videonl.data.datasets import VideoDataset, read_video_list
from videonl.data.decode import available_backends, read_frames
from videonl.data.loader import collate_train, collate_views, list_file

CPU = torch.device("cpu")


def _dataset(cfg, mode: str, backend: str, records, **overrides) -> VideoDataset:
    """A dataset reading with `backend` alone: a failure should show, not be hidden by a fallback."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATA.DECODER, cfg.DATA.DECODER_FALLBACK = backend, False
    for key, value in overrides.items():
        cfg.merge_from_list([key, str(value)])
    return VideoDataset(records, mode, cfg)


def _drain(dataset, collate, batch_size: int, workers: int) -> Callable[[], None]:
    def run():
        for _ in DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate):
            pass
    return run


def _floor(records, backend: str) -> Callable[[], None]:
    def run():
        for record in records:
            read_frames(record.path, lambda info: np.arange(info.num_frames), backend, fallback=False)
    return run


def _separate_views(dataset: VideoDataset) -> Callable[[], None]:
    """Every view of every video decoded and transformed on its own (one decode per clip and crop)."""
    def run():
        for record in dataset.records:
            _, _, info = dataset.read(record.path)
            for clip in dataset.clip_indices(info):
                for _ in range(dataset.transform.crops_per_clip):
                    frames, positions, _ = read_frames(record.path, clip, dataset.decoder, fallback=False)
                    dataset.transform(frames, torch.from_numpy(positions)[None])
    return run


def _wall_and_cpu(run: Callable[[], None], repeat: int) -> Dict[str, float]:
    cpu = []

    def timed():
        start = time.process_time()
        run()
        cpu.append(time.process_time() - start)

    wall = measure(timed, CPU, warmup=1, repeat=repeat)["seconds"]
    return {"wall": wall, "cpu": statistics.median(cpu[1:])}


def benchmark_backend(cfg, backend: str, records, workers: int, repeat: int) -> Dict[str, Dict[str, float]]:
    """Wall and CPU seconds for each row of the module docstring, over all `records`."""
    test10 = _dataset(cfg, "test", backend, records, **{"TEST.CROP": "full"})
    test30 = _dataset(cfg, "test", backend, records, **{"TEST.CROP": "3crop"})
    train = _dataset(cfg, "train", backend, records)
    rows = {
        "floor": _floor(records, backend),
        "train": _drain(train, collate_train, cfg.DATALOADER.TRAIN_BATCH_SIZE, workers),
        "test 10": _drain(test10, collate_views, 1, workers),
        "test 30": _drain(test30, collate_views, 1, workers),
        "30 separate": _separate_views(test30),
    }
    return {name: _wall_and_cpu(run, repeat) for name, run in rows.items()}


def format_rows(backend: str, seconds: Dict[str, Dict[str, float]], num_videos: int, num_clips: int) -> List[str]:
    floor = seconds["floor"]
    views = {"floor": 0, "train": 1, "test 10": num_clips, "test 30": 3 * num_clips, "30 separate": 3 * num_clips}
    lines = []
    for name, per_video in views.items():
        wall, cpu = seconds[name]["wall"], seconds[name]["cpu"]
        rate = f"{num_videos * per_video / wall:8.2f} clips/s" if per_video else f"{num_videos / wall:8.2f} videos/s"
        lines.append(f"{backend if name == 'floor' else '':<11} {name:<12} {rate} | wall {wall / num_videos:7.3f} "
                     f"s/video {wall / floor['wall']:6.2f} x floor | cpu {cpu / num_videos:7.3f} s/video "
                     f"{cpu / floor['cpu']:6.2f} x floor")
    return lines


def run(args: argparse.Namespace) -> int:
    cfg = load_cfg(args.cfg, args.opts)
    listing = args.list or list_file(cfg, "test")
    records = read_video_list(listing, cfg.DATA.LIST_SEPARATOR, cfg.DATA.PATH_PREFIX)[: args.videos]
    backends = args.backend or available_backends()
    workers = cfg.DATALOADER.NUM_WORKERS if args.workers is None else args.workers
    _, _, info = read_frames(records[0].path, [0])
    print(f"{len(records)} videos of {listing} (first: {info.num_frames} frames at {info.fps:.2f} fps); clips "
          f"{cfg.DATA.NUM_FRAMES}x{cfg.DATA.SAMPLING_RATE}, {cfg.TEST.NUM_CLIPS} test clips, {workers} workers, "
          f"{torch.get_num_threads()} threads")
    for backend in backends:
        seconds = benchmark_backend(cfg, backend, records, workers, args.repeat)
        print("\n".join(format_rows(backend, seconds, len(records), cfg.TEST.NUM_CLIPS)))
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("loader", help="data loading throughput per decoder backend",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="config file or packaged name (its test list is read)")
    parser.add_argument("--list", help="list file to read instead of the config's test list")
    parser.add_argument("--backend", action="append", choices=("decord", "pyav", "torchcodec"),
                        help="backend to time (repeatable; default: every one usable here)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: DATALOADER.NUM_WORKERS)")
    parser.add_argument("--videos", type=int, default=8, help="how many videos of the list to read")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per row (median is reported)")
    add_overrides(parser)
    parser.set_defaults(run=run)
