"""Run a trained model on your own videos: the most probable classes of each, by name.

    python -m videonl.predict --cfg configs/demo/nl_i3d.yaml --checkpoint W.pth video.mp4 folder/ [--top-k 5]
        [--threshold P] [--output predictions.csv|.json] [--views 10x3crop]

Each video is scored as testing scores it: TEST.NUM_CLIPS clips x TEST.CROP crops (--views overrides both),
the views combined as the config's task combines them (TASK.NAME single_label: the softmax averaged;
multi_label: each class's sigmoid, the max over the views by default). Shown are the classes ranked by
probability, at most --top-k of them, those reaching --threshold; by default a single-label model shows its 5
best classes and a multi-label model every class that reaches MULTI_LABEL.THRESHOLD (0.5). Class names and the
input normalisation come from the checkpoint (ours record both; converted ones their source's input). A folder
is searched recursively for video files. A video that cannot be read is reported on its own line with the
reason and the others go on; the exit status is 1 when any failed.
"""

import argparse
import csv
import dataclasses
import json
import logging
import os
import sys
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from videonl import command
from videonl.config import ConfigError, load_cfg
from videonl.data.datasets import VideoDataset, VideoRecord
from videonl.data.decode import DecodeError
from videonl.data.loader import collate_views
from videonl.data.transforms import TEST_CROPS
from videonl.engine.distributed import select_device
from videonl.engine.evaluate import view_probabilities
from videonl.engine.runtime import load_trained
from videonl.progress import progress
from videonl.tasks import build_task
from videonl.tasks.base import Selection

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


@dataclasses.dataclass
class Prediction:
    """One video's outcome: its views' combined class probabilities, or (`error`) why it could not be read."""

    path: str
    probabilities: Optional[np.ndarray]
    class_names: Sequence[str]
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.probabilities is None

    def top(self, k: int = 5) -> List[Tuple[str, float]]:
        """The k most probable (class name, probability), best first (equal scores: lower class first)."""
        return self.shown(Selection(k, 0.0))

    def shown(self, selection: Selection) -> List[Tuple[str, float]]:
        """(class name, probability) of the classes `selection` picks, best first."""
        if self.failed:
            return []
        return [(self.class_names[c], float(self.probabilities[c])) for c in selection.classes(self.probabilities)]


class Predictor:
    """A model and its checkpoint's class names and input, scoring videos with the config's test views and task.

    `cfg` is a config (CfgNode) or config file(s); `checkpoint` anything TEST.CHECKPOINT accepts.
    """

    def __init__(self, cfg, checkpoint: str, device: Optional[torch.device] = None):
        cfg = load_cfg(cfg) if isinstance(cfg, (str, list, tuple)) else cfg
        self.device = device or select_device(cfg.DEVICE)
        self.cfg, self.model, metadata = load_trained(cfg, checkpoint, self.device)
        self.task = build_task(self.cfg)
        self.class_names = self._names(metadata.classes, self.cfg.MODEL.NUM_CLASSES, checkpoint)

    @staticmethod
    def _names(recorded: Optional[List[str]], num_classes: int, checkpoint: str) -> List[str]:
        """The checkpoint's class names; class indices where it records none (or names another count)."""
        if recorded and len(recorded) == num_classes:
            return list(recorded)
        if recorded:
            logger.warning("%s names %d classes, the model has %d: showing class indices", checkpoint,
                           len(recorded), num_classes)
        return [str(index) for index in range(num_classes)]

    def predict(self, path: str) -> Prediction:
        """The prediction for one video; raises DecodeError when it cannot be read."""
        prediction = next(self.predict_all([path]))
        if prediction.failed:
            raise DecodeError(path, prediction.error)
        return prediction

    def predict_all(self, paths: Sequence[str]) -> Iterator[Prediction]:
        """A Prediction per path, in order; unreadable videos give failed ones. Several videos are decoded
        ahead of the model by DATALOADER.NUM_WORKERS processes."""
        dataset = VideoDataset([VideoRecord(str(path), None) for path in paths], "test", self.cfg)
        workers = self.cfg.DATALOADER.NUM_WORKERS if len(dataset) > 1 else 0
        loader = DataLoader(dataset, batch_size=1, collate_fn=collate_views, num_workers=workers)
        with torch.no_grad():
            for batch in loader:
                path = dataset.records[int(batch["index"][0])].path
                if not batch["valid"][0]:  # the dataset's error is "path: reason"
                    yield Prediction(path, None, self.class_names, batch["error"][0].removeprefix(f"{path}: "))
                    continue
                views = view_probabilities(self.model, batch["views"], self.cfg, self.device)[0]
                yield Prediction(path, self.task.combine_views(views).numpy(), self.class_names)


# ----------------------------------------------------------------------------------------- command line


def find_videos(paths: Iterable[str]) -> List[str]:
    """Each named file as it is, and the video files (by extension) under each named folder (symbolic links
    followed), sorted."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += sorted(os.path.join(root, name) for root, _, names in os.walk(path, followlinks=True)
                            for name in names if name.lower().endswith(VIDEO_EXTENSIONS))
        else:
            found.append(path)
    return found


def parse_views(text: str) -> Tuple[int, str]:
    """'CLIPSxCROP' (10x3crop, 1xcenter, 4xfull) -> (clips, crop)."""
    clips, _, crop = text.partition("x")
    if not clips.isdigit() or int(clips) < 1 or crop not in TEST_CROPS:
        raise argparse.ArgumentTypeError(f"expected CLIPSxCROP with CROP one of {', '.join(TEST_CROPS)} "
                                         f"(e.g. 10x3crop, 1xcenter), got '{text}'")
    return int(clips), crop


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a video, or a folder searched for videos")
    parser.add_argument("--cfg", required=True, action="append",
                        help="config file of the model; repeat to compose, later files win")
    parser.add_argument("--checkpoint", required=True, metavar="FILE",
                        help="weights: ours (.pth), or a PyTorchVideo / Caffe2 file as TEST.CHECKPOINT takes")
    parser.add_argument("--top-k", type=int, metavar="K",
                        help="classes shown per video at most (default: 5 for single-label, all for multi-label)")
    parser.add_argument("--threshold", type=float, metavar="P",
                        help="show only classes of at least this probability (default: 0 for single-label, "
                             "MULTI_LABEL.THRESHOLD for multi-label)")
    parser.add_argument("--output", metavar="FILE", help="also write the predictions to FILE.csv or FILE.json")
    parser.add_argument("--views", type=parse_views, metavar="CLIPSxCROP",
                        help="test views instead of the config's TEST.NUM_CLIPS x TEST.CROP, e.g. 1xcenter")
    args = parser.parse_args(argv)
    if args.output and os.path.splitext(args.output)[1].lower() not in (".csv", ".json"):
        parser.error(f"--output must end in .csv or .json, got '{args.output}'")
    if args.top_k is not None and args.top_k < 1:
        parser.error(f"--top-k must be at least 1, got {args.top_k}")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        parser.error(f"--threshold must be a probability in [0, 1], got {args.threshold}")
    return args


def selection(args: argparse.Namespace, default: Selection) -> Selection:
    """The classes shown: the options given, the task's choice (`default`) for the others."""
    return Selection(default.top_k if args.top_k is None else args.top_k,
                     default.threshold if args.threshold is None else args.threshold)


def format_table(predictions: Sequence[Prediction], shown: Selection) -> str:
    """One aligned line per video: the file, then its shown classes with probabilities ("none" when no class
    reaches the threshold), or why it failed."""
    width = max(len(p.path) for p in predictions)
    lines = []
    for prediction in predictions:
        if prediction.failed:
            scores = f"FAILED: {prediction.error}"
        else:  # "none": no class reaches the threshold
            scores = "  ".join(f"{name} {probability:.3f}" for name, probability in prediction.shown(shown)) or "none"
        lines.append(f"{prediction.path:<{width}}  {scores}")
    return "\n".join([f"{'file':<{width}}  {shown}"] + lines)


def write_csv(path: str, predictions: Sequence[Prediction], shown: Selection) -> None:
    """Columns for the shown classes: --top-k of them, or as many as the video with the most shows."""
    rows = [[cell for pair in prediction.shown(shown) for cell in pair] for prediction in predictions]
    k = shown.top_k or max(len(cells) // 2 for cells in rows) or 1
    header = ["path"] + [f"top{rank}_{field}" for rank in range(1, k + 1) for field in ("class", "probability")]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header + ["error"])
        for prediction, cells in zip(predictions, rows):
            writer.writerow([prediction.path, *cells, *[""] * (2 * k - len(cells)), prediction.error])


def write_json(path: str, predictions: Sequence[Prediction], shown: Selection) -> None:
    records = [{"path": p.path, "top": [{"class": name, "probability": probability}
                                        for name, probability in p.shown(shown)], "error": p.error}
               for p in predictions]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(records, f, indent=2)


def run(args: argparse.Namespace) -> List[Prediction]:
    cfg = load_cfg(args.cfg, ["TEST.NUM_CLIPS", args.views[0], "TEST.CROP", args.views[1]] if args.views else [])
    if not os.path.isfile(args.checkpoint):
        raise ConfigError(f"--checkpoint {args.checkpoint}: no such file")
    videos = find_videos(args.paths)
    if not videos:
        raise ConfigError(f"no videos found in {', '.join(args.paths)} (extensions: {' '.join(VIDEO_EXTENSIONS)})")
    predictor = Predictor(cfg, args.checkpoint)
    bar = progress(predictor.predict_all(videos), total=len(videos), unit="video", desc="predicting",
                   disable=len(videos) < 2)
    predictions = list(bar)
    shown = selection(args, predictor.task.shown)
    print(format_table(predictions, shown))
    if args.output:
        writer = write_json if args.output.lower().endswith(".json") else write_csv
        writer(args.output, predictions, shown)
        print(f"predictions written to {args.output}")
    return predictions


def main(argv: Optional[Sequence[str]] = None) -> List[Prediction]:
    """The command; returns the predictions when every video was scored. Exits with status 1 when any video
    failed, and with a one-line error for a config, checkpoint or file that cannot be used."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        predictions = run(args)
    except (OSError, ValueError) as err:  # ConfigError and CheckpointError are ValueErrors
        raise SystemExit(f"error: {err}") from err
    failed = sum(prediction.failed for prediction in predictions)
    if failed:
        raise SystemExit(f"{failed} of {len(predictions)} videos could not be read")
    return predictions


if __name__ == "__main__":
    sys.exit(command.run(main))
