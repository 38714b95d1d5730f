"""From a timeline's windows to segments: stretches of the video with one leading class, or each class's own.

Windows overlap (a clip is usually longer than the stride), so a window stands for the time nearest to it:
from half-way between its centre and the previous window's to half-way to the next one's, the first from the
video's start, the last to its end (`window_bounds`). `smoothed` averages each window's probabilities with its
neighbours' before the segments are read. The task's kind (`Task.exclusive`) decides how they are read:

- classes that exclude each other (single-label): consecutive windows of one leading class make a segment
  (`leading_segments`); a change of class between two windows is placed half-way between their centres,
  within half a stride of where their clips' contents change;
- classes of their own (multi-label): each class's segments are its stretches of windows whose probability
  reaches the threshold (`class_segments`), so segments of different classes may overlap.

A stretch shorter than a minimum length joins its neighbours: a segment shorter than it takes the class its
windows rate higher of its neighbours' (for one class of its own, a short stretch over the threshold is
dropped, and a short gap under it closed).
"""

from dataclasses import dataclass
from typing import List

import numpy as np


@dataclass(frozen=True)
class Segment:
    label: int  # class index
    start: float  # seconds
    end: float
    probability: float  # the class's mean probability over the segment's windows

    @property
    def length(self) -> float:
        return self.end - self.start


def window_bounds(starts: np.ndarray, ends: np.ndarray, duration: float) -> np.ndarray:
    """[W + 1] seconds: window w stands for [bounds[w], bounds[w + 1]); the first from 0, the last to
    `duration`, the others split half-way between neighbouring windows' centres."""
    centres = (np.asarray(starts, float) + np.asarray(ends, float)) / 2
    return np.concatenate([[0.0], (centres[:-1] + centres[1:]) / 2, [max(duration, centres[-1])]])


def smoothed(probabilities: np.ndarray, radius: int) -> np.ndarray:
    """[W, C]: each window's probabilities averaged with up to `radius` windows on each side (fewer at the ends)."""
    if radius <= 0:
        return probabilities
    cumulative = np.concatenate([np.zeros((1, probabilities.shape[1])), np.cumsum(probabilities, axis=0)])
    rows = np.arange(len(probabilities))
    first, last = np.maximum(rows - radius, 0), np.minimum(rows + radius + 1, len(probabilities))
    return (cumulative[last] - cumulative[first]) / (last - first)[:, None]


def _runs(labels: np.ndarray) -> List[List[int]]:
    """[label, first window, last window] of each stretch of equal labels."""
    runs = []
    for window, label in enumerate(labels.tolist()):
        if runs and runs[-1][0] == label:
            runs[-1][2] = window
        else:
            runs.append([label, window, window])
    return runs


def _merged_runs(labels: np.ndarray, rating: np.ndarray, bounds: np.ndarray, min_length: float) -> List[List[int]]:
    """The runs of `labels` (`_runs`). While the shortest of several is shorter than `min_length` seconds, it takes
    the label of the neighbour whose label `rating` [W, labels] rates higher on average over its windows (the
    earlier on a tie), and joins it."""
    labels = labels.copy()
    runs = _runs(labels)
    while len(runs) > 1:
        lengths = [bounds[last + 1] - bounds[first] for _, first, last in runs]
        shortest = int(np.argmin(lengths))
        if lengths[shortest] >= min_length:
            break
        _, first, last = runs[shortest]
        neighbours = [runs[n][0] for n in (shortest - 1, shortest + 1) if 0 <= n < len(runs)]
        rated = rating[first:last + 1].mean(axis=0)
        labels[first:last + 1] = max(neighbours, key=lambda label: rated[label])
        runs = _runs(labels)
    return runs


def leading_segments(probabilities: np.ndarray, bounds: np.ndarray, min_length: float = 0.0) -> List[Segment]:
    """The segments of the windows' leading classes (`probabilities` [W, C], `bounds` [W + 1] from
    `window_bounds`), none shorter than `min_length` seconds unless it is the only one (`_merged_runs`)."""
    runs = _merged_runs(probabilities.argmax(axis=1), probabilities, bounds, min_length)
    return [Segment(label, float(bounds[first]), float(bounds[last + 1]),
                    float(probabilities[first:last + 1, label].mean())) for label, first, last in runs]


def class_segments(probabilities: np.ndarray, bounds: np.ndarray, threshold: float,
                   min_length: float = 0.0) -> List[Segment]:
    """Each class's own segments, by start (then class): the stretches of windows where its probability reaches
    `threshold`, after those and the gaps between them shorter than `min_length` seconds joined their
    neighbours (`_merged_runs` of the class being there or not, rated by p and 1 - p)."""
    segments = []
    for label, column in enumerate(probabilities.T):
        there = (column >= threshold).astype(int)
        if there.any():
            runs = _merged_runs(there, np.stack([1 - column, column], axis=1), bounds, min_length)
            segments += [Segment(label, float(bounds[first]), float(bounds[last + 1]),
                                 float(column[first:last + 1].mean())) for on, first, last in runs if on]
    return sorted(segments, key=lambda segment: (segment.start, segment.label))
