"""Average precision per class and its mean (mAP), as the official Charades evaluation computes them.

`Charades_v1_classify.m` (the dataset's classification evaluation, adapted from THUMOS'15), for each class:
the videos sorted by descending score with MATLAB's `sort(-conf)`, which is stable, so videos of equal score
keep the order of the list; precision taken at every positive; AP = the sum of those precisions / the number of
positives. A video missing from the submission scores -inf for every class there (ranked last). The mAP is the
mean over the classes; classes without a positive video (whose AP the official code leaves undefined) are
left out, as PySlowFast's `get_map` (slowfast/utils/meters.py) leaves them out.
"""

from typing import Tuple

import numpy as np


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """AP of one class: `scores` [videos] (higher: more likely), `positives` [videos] bool; NaN without a
    positive. Equal scores keep the list's order (the official code's stable sort)."""
    positives = np.asarray(positives, dtype=bool)
    count = int(positives.sum())
    if count == 0:
        return float("nan")
    ranked = positives[np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")]
    precision_at_positives = np.cumsum(ranked)[ranked] / (np.flatnonzero(ranked) + 1)
    return float(precision_at_positives.sum() / count)


def per_class_average_precision(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """[classes] AP of each column of `scores` [videos, classes] against `positives` [videos, classes] bool;
    NaN for a class without a positive video."""
    return np.array([average_precision(scores[:, c], positives[:, c]) for c in range(scores.shape[1])])


def mean_average_precision(scores: np.ndarray, positives: np.ndarray) -> Tuple[float, np.ndarray]:
    """(mAP over the classes that have a positive video, 0 when none has; per-class AP with NaN for the others)."""
    per_class = per_class_average_precision(scores, positives)
    measured = per_class[~np.isnan(per_class)]
    return (float(measured.mean()) if measured.size else 0.0), per_class
