"""What happens when in a long video: a model's probabilities for windows sliding over it, and their segments.

`score_timeline` streams the video (`data.frame_stream`, `data.sliding_windows`: memory bounded by the clip and the
stride, whatever the video's length) and scores each batch of windows through the test's own path
(`evaluate.view_probabilities`: the task's probabilities of a view): a window's probabilities are what testing
gives a view on the same frames, its crops combined as the task combines a video's views. The `Timeline` holds
every window's times and probabilities and reads its segments from them as its task's kind asks (`segments`:
the leading class's, or each class's over the threshold, with TIMELINE.SMOOTH and TIMELINE.MIN_SEGMENT);
`write_timeline` writes its files: the windows and the segments as CSV, both in one JSON, and the picture.
"""

import csv
import json
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from videonl.config import ConfigError
from videonl.data.decode import DecodeError
from videonl.data.sliding_windows import sliding_windows
from videonl.data.frame_stream import format_time, open_stream, stream_backends
from videonl.data.transforms import TEST_CROPS
from videonl.engine.evaluate import view_probabilities
from videonl.engine.plots import plot_timeline
from videonl.engine.segments import Segment, class_segments, leading_segments, smoothed, window_bounds
from videonl.progress import progress as progress_bar
from videonl.tasks import Task, build_task, task_name
from videonl.tasks.base import Selection, shown_columns

logger = logging.getLogger(__name__)


@dataclass
class Timeline:
    """A video's windows (`starts`, `ends` in seconds; `probabilities` [W, classes]) and how they were taken:
    by a model of `task`, whose classes `selection` shows of each window (its threshold is also where a class of
    a multi-label task is there)."""

    path: str
    task: Task
    selection: Selection
    class_names: Sequence[str]
    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray
    duration: float  # seconds read: the whole video, or up to where it broke
    window: float  # seconds one window spans (at the average frame rate)
    stride: float  # seconds between window starts
    smooth: int = 0  # TIMELINE.SMOOTH
    min_segment: float = 0.0  # TIMELINE.MIN_SEGMENT
    looped: bool = False  # shorter than one window: one clip whose frames loop, as testing pads short videos
    broken: str = ""  # where and why decoding stopped early; "" when the video was read to its end

    def __len__(self) -> int:
        return len(self.starts)

    def shown(self, window: int, selection: Optional[Selection] = None) -> List[Tuple[str, float]]:
        """(class name, probability) of the classes of one window that `selection` (the timeline's own by
        default) picks, best first (ties: lower class first)."""
        probabilities = self.probabilities[window]
        return [(self.class_names[c], float(probabilities[c])) for c in (selection or self.selection).classes(
            probabilities)]

    @property
    def bounds(self) -> np.ndarray:
        """[W + 1] seconds: window w stands for the time from bounds[w] to bounds[w + 1] (`window_bounds`)."""
        return window_bounds(self.starts, self.ends, self.duration)

    @property
    def segments(self) -> List[Segment]:
        """The classes over time, by start (after smoothing): stretches of one leading class when the task's
        classes exclude each other, else each class's stretches over the threshold; none shorter than
        `min_segment` unless it is the only one."""
        probabilities = smoothed(self.probabilities, self.smooth)
        if self.task.exclusive:
            return leading_segments(probabilities, self.bounds, self.min_segment)
        return class_segments(probabilities, self.bounds, self.selection.threshold, self.min_segment)

    @property
    def notes(self) -> List[str]:
        """What a reader must know besides the windows: a looped short video, a broken one."""
        notes = []
        if self.looped:
            notes.append(f"shorter than one window ({self.duration:.2f} s < {self.window:.2f} s): scored once as "
                         f"a clip whose frames loop past the end, as testing pads short videos")
        if self.broken:
            notes.append(f"{self.broken}; the {len(self)} windows before it are kept")
        return notes


def check_timeline_config(cfg) -> None:
    """ConfigError naming the TIMELINE key that cannot work."""
    node = cfg.TIMELINE
    problems = []
    if not node.STRIDE > 0:
        problems.append(f"TIMELINE.STRIDE must be a positive number of seconds, got {node.STRIDE}")
    if node.CROP not in TEST_CROPS:
        problems.append(f"TIMELINE.CROP must be one of {', '.join(TEST_CROPS)}, got '{node.CROP}'")
    if node.SMOOTH < 0:
        problems.append(f"TIMELINE.SMOOTH must be 0 or more windows, got {node.SMOOTH}")
    if node.MIN_SEGMENT < 0:
        problems.append(f"TIMELINE.MIN_SEGMENT must be 0 or more seconds, got {node.MIN_SEGMENT}")
    if problems:
        raise ConfigError("; ".join(problems))


def score_timeline(model: torch.nn.Module, path: str, cfg, device: torch.device, class_names: Sequence[str],
                   selection: Optional[Selection] = None, progress: bool = False) -> Timeline:
    """The timeline of the video at `path` (`model` in eval mode, of the config's task), each window showing
    the classes `selection` picks (the task's `shown` by default). Raises DecodeError when no backend opens it
    or it breaks before its first window; a later break ends the timeline there (`Timeline.broken`)."""
    check_timeline_config(cfg)
    task = build_task(cfg)
    starts, ends, probabilities = [], [], []
    with open_stream(path, stream_backends(cfg.DATA.DECODER, cfg.DATA.DECODER_FALLBACK)) as stream:
        windows = sliding_windows(stream, cfg)
        bar = progress_bar(total=windows.expected, unit="window", desc=os.path.basename(path), disable=not progress)
        with bar, torch.no_grad():
            for batch in windows:
                views = view_probabilities(model, [batch.views], cfg, device)[0]
                crops = views.view(len(batch.starts), -1, views.shape[-1])
                probabilities.append(torch.stack([task.combine_views(window) for window in crops]).numpy())
                starts += batch.starts
                ends += batch.ends
                bar.update(len(batch.starts))
    if not starts:
        raise DecodeError(path, str(windows.broken) if windows.broken else "no frames")
    return Timeline(path, task, selection or task.shown, list(class_names), np.array(starts), np.array(ends),
                    np.concatenate(probabilities),
                    windows.duration, windows.span_seconds, cfg.TIMELINE.STRIDE, cfg.TIMELINE.SMOOTH,
                    cfg.TIMELINE.MIN_SEGMENT, windows.looped, str(windows.broken or ""))


# ---------------------------------------------------------------------------------------------- files


def format_segments(timeline: Timeline) -> str:
    """The segments as aligned lines: start, end, class, its mean probability (a line saying so when none)."""
    segments = timeline.segments
    if not segments:
        return f"  no segments: no class reaches {timeline.selection.threshold:.2f}"
    width = max([len("class")] + [len(timeline.class_names[s.label]) for s in segments])
    lines = [f"  {'start':<9}{'end':<9}{'class':<{width}}  probability"]
    lines += [f"  {format_time(s.start):<9}{format_time(s.end):<9}{timeline.class_names[s.label]:<{width}}  "
              f"{s.probability:.3f}" for s in segments]
    return "\n".join(lines)


def _segment_records(timeline: Timeline) -> List[Dict]:
    return [{"start": round(s.start, 3), "end": round(s.end, 3), "class": timeline.class_names[s.label],
             "probability": round(s.probability, 4)} for s in timeline.segments]


def _shown_rounded(timeline: Timeline) -> List[List[Tuple[str, float]]]:
    """Each window's shown (class name, probability), the probability to 4 decimals."""
    return [[(name, round(p, 4)) for name, p in timeline.shown(w)] for w in range(len(timeline))]


def write_timeline(timeline: Timeline, stem: str) -> List[str]:
    """STEM.windows.csv (each window's start, end and shown classes), STEM.segments.csv, STEM.json (both, and
    how they were taken) and STEM.png; the paths written."""
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    times = [(round(float(start), 3), round(float(end), 3)) for start, end in zip(timeline.starts, timeline.ends)]
    shown, segments = _shown_rounded(timeline), _segment_records(timeline)
    paths = [f"{stem}.windows.csv", f"{stem}.segments.csv", f"{stem}.json", f"{stem}.png"]
    header, rows = shown_columns(timeline.selection, shown)
    with open(paths[0], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["start", "end", *header])
        writer.writerows([*window_times, *cells] for window_times, cells in zip(times, rows))
    with open(paths[1], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["start", "end", "class", "probability"])
        writer.writeheader()
        writer.writerows(segments)
    windows = [{"start": start, "end": end, "top": [{"class": name, "probability": p} for name, p in classes]}
               for (start, end), classes in zip(times, shown)]
    with open(paths[2], "w", encoding="utf-8") as f:
        json.dump({"path": timeline.path, "task": task_name(timeline.task), "duration": round(timeline.duration, 3),
                   "window": round(timeline.window, 3), "stride": timeline.stride, "smooth": timeline.smooth,
                   "min_segment": timeline.min_segment, "shown": str(timeline.selection),
                   "threshold": timeline.selection.threshold, "notes": timeline.notes, "segments": segments,
                   "windows": windows}, f, indent=1)
    plot_timeline(timeline, paths[3])
    return paths
