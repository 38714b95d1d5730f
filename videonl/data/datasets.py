"""One dataset over a list file of `path label` lines; Kinetics, Mini-Kinetics, UCF101 and Charades only differ
in lists, and in the task (TASK.NAME) that reads the labels and turns them into targets.

Training items are one random clip; validation and test items are a whole video with all its views, cut from
one decode. A video that fails to decode is logged once (path and reason) per process; in training another
video takes its place (at most DATA.MAX_RETRIES times), in validation and testing it is never replaced: the
item says it failed and the evaluator scores it as wrong or leaves it out (TEST.EXCLUDE_FAILED).
"""

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from videonl.data import sampling
from videonl.data.decode import DecodeError, VideoInfo, read_frames
from videonl.data.transforms import EvalTransform, TrainTransform
from videonl.tasks import Task, build_task
from videonl.tasks.base import Span
from videonl.tasks.single_label import parse_class_index

logger = logging.getLogger(__name__)
MODES = ("train", "val", "test")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's CPU generator seeded with `seed` inside, the caller's state back after: what a seeded training
    item draws from. The CPU's generator alone: torch.manual_seed also queues a seed, with a stack trace, for
    every accelerator module (0.5 ms a clip)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


@dataclass(frozen=True)
class VideoRecord:
    """A video of a list: its path and its label as the task parsed it (an int for single-label; None: unknown,
    a video to predict)."""

    path: str
    label: Any


def read_video_list(list_file: str, separator: str = " ", prefix: str = "",
                    parse_label: Callable[[str], Any] = parse_class_index) -> List[VideoRecord]:
    """Records of a `path{separator}label` file; the label follows the last separator, so paths may hold it.

    Relative paths are joined to `prefix`, or to the list file's folder when `prefix` is empty. `parse_label` reads
    the label field (the task's `parse_label`; by default a class index); a field it refuses fails naming the
    file and line.
    """
    root = prefix or os.path.dirname(os.path.abspath(list_file))
    records = []
    with open(list_file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            path, _, field = line.rpartition(separator)
            try:
                if not path:
                    raise ValueError("no label")
                label = parse_label(field)
            except ValueError as err:
                raise ValueError(f"{list_file}:{number}: expected 'path{separator}label', got {line!r} ({err})") \
                    from None
            records.append(VideoRecord(os.path.join(root, path), label))
    return records


def read_class_names(path: str) -> List[str]:
    """Names by class index from a `{name: index}` JSON file (a prepared data folder's classes.json; PyTorchVideo's
    kinetics_classnames.json has the same form); an index the file skips is named "class i"."""
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    if not isinstance(index, dict) or not all(isinstance(i, int) and i >= 0 for i in index.values()):
        raise ValueError(f"{path}: expected a JSON object {{class name: index >= 0}}")
    names = [f"class {i}" for i in range(max(index.values(), default=-1) + 1)]
    for name, i in index.items():
        names[i] = name
    return names


def data_class_names(cfg) -> Optional[List[str]]:
    """The class names of the config's data, from {DATA.PATH_TO_DATA_DIR}/classes.json; None without one."""
    path = os.path.join(cfg.DATA.PATH_TO_DATA_DIR, "classes.json")
    return read_class_names(path) if os.path.isfile(path) else None


def label_range_problem(records: List[VideoRecord], task: Task, list_path: str) -> str:
    """"" when every class the labels of the list at `list_path` name is in 0..MODEL.NUM_CLASSES - 1; else one
    line naming the list, its first video with another class, and how many more there are."""
    num_classes = task.num_classes
    outside = [(record.path, [c for c in task.classes_of(record.label) if not 0 <= c < num_classes])
               for record in records]
    outside = [(path, classes) for path, classes in outside if classes]
    if not outside:
        return ""
    (path, classes), more = outside[0], len(outside) - 1
    return (f"{list_path}: label {classes[0]} of {path} is outside 0..{num_classes - 1} (MODEL.NUM_CLASSES "
            f"{num_classes})" + (f", and {more} more videos with labels outside: "
                                 f"{sorted({c for _, found in outside for c in found})[:5]}" if more else ""))


def clip_span(indices: np.ndarray, info: VideoInfo) -> Optional[Span]:
    """Seconds from the video's start to the first and last frame a clip decodes (indices past the end wrap around,
    as the decoder reads them); None when the frame rate is unknown."""
    if info.fps <= 0:
        return None
    frames = np.mod(indices, info.num_frames)
    return float(frames.min()) / info.fps, float(frames.max()) / info.fps


class _RememberedChoice:
    """A frame choice that keeps the indices of its last call: those of the read that succeeded (a decoder
    tried before it, or a timing read, chose earlier)."""

    def __init__(self, choose: Callable[[VideoInfo], np.ndarray]):
        self.choose, self.indices = choose, None

    def __call__(self, info: VideoInfo) -> np.ndarray:
        self.indices = self.choose(info)
        return self.indices


_REPORTED_PATHS = set()


def report_failure(error: DecodeError) -> None:
    """Log a failing video once per process, with its path and the reason of every backend."""
    if error.path not in _REPORTED_PATHS:
        _REPORTED_PATHS.add(error.path)
        logger.warning("cannot decode %s", error)


class VideoDataset(Dataset):
    """Videos of a list file, as training clips (`train`) or multi-view items (`val`, `test`).

    train: {"clip": [C, T, S, S], "label": the task's target of the clip, "index",
            "failures": ["path: reason" of replaced videos]}
    val/test: {"views": `VideoViews` (the distinct frames and the plan of the V views, cut where the model runs)
               or None when the video failed, "label": the task's target of the whole video, "index",
               "error": "" or "path: reason"}.
               V = TEST.NUM_CLIPS x crops (test), 1 centred clip (val).
    Targets are the task's (`Task.clip_target`, `Task.video_target`): a class index for single-label, a
    multi-hot vector for multi-label, where a training clip's holds the actions its frames overlap.
    Clips and frames are uint8 when DATA.NORMALIZE_ON_DEVICE (see `loader.model_input`), else float.
    """

    def __init__(self, records: List[VideoRecord], mode: str, cfg):
        if mode not in MODES:
            raise ValueError(f"unknown dataset mode '{mode}'; choose from {', '.join(MODES)}")
        self.records = records
        self.mode = mode
        self.task = build_task(cfg)
        self.decoder = cfg.DATA.DECODER
        self.fallback = cfg.DATA.DECODER_FALLBACK
        self.num_frames = cfg.DATA.NUM_FRAMES
        self.sampling_rate = cfg.DATA.SAMPLING_RATE
        self.target_fps = cfg.DATA.TARGET_FPS
        self.max_retries = cfg.DATA.MAX_RETRIES
        self.num_clips = cfg.TEST.NUM_CLIPS
        self.clip_starts = cfg.TEST.CLIP_STARTS
        colour = dict(mean=cfg.DATA.MEAN, std=cfg.DATA.STD, channel_order=cfg.DATA.CHANNEL_ORDER,
                      normalize=not cfg.DATA.NORMALIZE_ON_DEVICE)
        if mode == "train":
            self.transform = TrainTransform(cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE,
                                            cfg.DATA.RANDOM_FLIP, **colour)
        elif mode == "val":
            self.transform = EvalTransform(cfg.DATA.TRAIN_JITTER_SCALES[0], cfg.DATA.TRAIN_CROP_SIZE, "center",
                                           **colour)
        else:
            self.transform = EvalTransform(cfg.DATA.TEST_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE, cfg.TEST.CROP, **colour)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def views_per_video(self) -> int:
        """Views in a multi-view item: TEST.NUM_CLIPS x crops in testing, the one centred clip in validation."""
        return self.num_clips * self.transform.crops_per_clip if self.mode == "test" else 1

    def __getitem__(self, key) -> Dict:
        """`key` is an index, or in training an (index, seed) pair from `loader.TrainSampler`: the clip's random
        window, scale, crop and flip (and any replacement video) are then drawn from `seed` alone."""
        if self.mode != "train":
            return self._multi_view_item(key)
        if isinstance(key, int):
            return self._train_item(key)
        index, seed = key
        with seeded(seed):
            return self._train_item(index)

    def clip_indices(self, info) -> np.ndarray:
        """Frame indices for one video: [T] in training, [clips, T] in validation and testing."""
        if self.mode == "train":
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            return sampling.random_clip(info, self.num_frames, self.sampling_rate, rng, self.target_fps)
        if self.mode == "val":
            return sampling.center_clip(info, self.num_frames, self.sampling_rate, self.target_fps)[None]
        return sampling.uniform_clips(info, self.num_frames, self.sampling_rate, self.num_clips,
                                      self.clip_starts, self.target_fps)

    def read(self, path: str, choose: Optional[Callable[[VideoInfo], np.ndarray]] = None):
        """(distinct frames, positions [T] or [clips, T], info) of one video, sampled for this mode (or by
        `choose`, a function of the video's info like `clip_indices`); in training the frames are the random
        crop's box alone."""
        crop = self.transform.crop_box if self.mode == "train" else None
        return read_frames(path, choose or self.clip_indices, self.decoder, self.fallback, crop)

    def _train_item(self, index: int) -> Dict:
        failures = []
        for _ in range(self.max_retries + 1):
            record = self.records[index]
            choice = _RememberedChoice(self.clip_indices)
            try:
                frames, positions, info = self.read(record.path, choice)
            except DecodeError as error:
                report_failure(error)
                failures.append(str(error))
                index = int(torch.randint(0, len(self.records), ()))
                continue
            clip = self.transform.from_boxes(frames, torch.from_numpy(positions))
            target = self.task.clip_target(record.label, clip_span(choice.indices, info))
            return {"clip": clip, "label": target, "index": index, "failures": failures}
        raise RuntimeError(f"{len(failures)} videos in a row failed to decode; last: {failures[-1]}")

    def _multi_view_item(self, index: int) -> Dict:
        record = self.records[index]
        item = {"views": None, "label": self.task.video_target(record.label), "index": index, "error": ""}
        try:
            frames, positions, _ = self.read(record.path)
        except DecodeError as error:
            report_failure(error)
            item["error"] = str(error)
            return item
        item["views"] = self.transform.plan(frames, torch.from_numpy(positions))
        return item
