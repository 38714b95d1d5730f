"""Average precision as the official Charades evaluation computes it: against scikit-learn on random scores, and
small cases worked by hand (ties in the list's order, classes without a positive left out)."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from videonl.tasks.average_precision import average_precision, mean_average_precision


def test_agrees_with_scikit_learn_on_random_scores():
    rng = np.random.default_rng(0)
    scores = rng.random((300, 12))  # continuous scores: no ties, where the two definitions agree
    positives = rng.random((300, 12)) < np.linspace(0.02, 0.5, 12)
    positives[:, 3] = False  # a class without a positive video
    mean_ap, per_class = mean_average_precision(scores, positives)
    measured = [c for c in range(12) if positives[:, c].any()]
    expected = [average_precision_score(positives[:, c], scores[:, c]) for c in measured]
    np.testing.assert_allclose(per_class[measured], expected, rtol=0, atol=1e-6)
    assert math.isnan(per_class[3])
    assert mean_ap == pytest.approx(np.mean(expected), abs=1e-6)


def test_a_small_case_worked_by_hand():
    # ranked: v0 (+), v1 (-), v2 (+), v3 (-): precision 1/1 at v0 and 2/3 at v2
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    # a video that failed scores -inf and ranks last: its positive is found at 3 of 3
    assert average_precision(np.array([0.2, -np.inf, 0.1]), np.array([1, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    # two classes, the second with no positive video: the mAP is the first's AP alone
    scores, positives = np.array([[0.3, 0.9], [0.6, 0.1]]), np.array([[1, 0], [0, 0]], dtype=bool)
    mean_ap, per_class = mean_average_precision(scores, positives)
    assert mean_ap == pytest.approx(0.5) and per_class[0] == pytest.approx(0.5) and math.isnan(per_class[1])
    assert mean_average_precision(np.zeros((2, 3)), np.zeros((2, 3), dtype=bool))[0] == 0.0


def test_equal_scores_keep_the_order_of_the_list():
    """The official code's stable sort: a tied positive listed first counts as found first (scikit-learn, which
    takes a tie as one threshold, gives 0.5 for both)."""
    tied = np.array([0.5, 0.5])
    assert average_precision(tied, np.array([1, 0])) == 1.0
    assert average_precision(tied, np.array([0, 1])) == 0.5
