"""Segments of a timeline: windows stand for the time nearest them, runs of a leading class, each class's own stretches
over a threshold, smoothing, minimum length."""

import numpy as np
import pytest

from videonl.engine.segments import Segment, class_segments, leading_segments, smoothed, window_bounds


def one_hot(labels, classes=3, confidence=0.8):
    """[W, classes]: `confidence` on each window's label, the rest shared by the others."""
    probabilities = np.full((len(labels), classes), (1 - confidence) / (classes - 1))
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


def test_windows_stand_for_the_time_nearest_their_centres():
    starts = np.array([0.0, 1.0, 2.0, 3.0])
    bounds = window_bounds(starts, starts + 2.0, duration=5.5)  # 2 s windows every second: centres 1, 2, 3, 4
    np.testing.assert_allclose(bounds, [0.0, 1.5, 2.5, 3.5, 5.5])
    np.testing.assert_allclose(window_bounds(np.array([0.0]), np.array([0.8]), duration=0.8), [0.0, 0.8])


def test_smoothing_averages_each_window_with_its_neighbours():
    probabilities = np.random.default_rng(0).dirichlet(np.ones(4), size=9)
    by_hand = np.array([probabilities[max(w - 2, 0):w + 3].mean(axis=0) for w in range(9)])
    np.testing.assert_allclose(smoothed(probabilities, 2), by_hand)
    assert smoothed(probabilities, 0) is probabilities


def test_consecutive_windows_of_one_leading_class_make_a_segment():
    labels = [0, 0, 0, 2, 2, 1, 1, 1, 1]
    probabilities = one_hot(labels)
    bounds = np.arange(10) * 0.5

    segments = leading_segments(probabilities, bounds)

    assert segments == [Segment(0, 0.0, 1.5, pytest.approx(0.8)), Segment(2, 1.5, 2.5, pytest.approx(0.8)),
                        Segment(1, 2.5, 4.5, pytest.approx(0.8))]
    assert segments[1].length == 1.0


def test_a_short_segment_joins_the_neighbour_its_windows_rate_higher():
    probabilities = one_hot([0, 0, 0, 2, 1, 1, 1, 1])
    probabilities[3] = [0.3, 0.28, 0.42]  # a window of class 2 that rates class 0 above class 1
    bounds = np.arange(9) * 1.0

    assert [s.label for s in leading_segments(probabilities, bounds, min_length=1.0)] == [0, 2, 1]
    merged = leading_segments(probabilities, bounds, min_length=2.0)

    assert [(s.label, s.start, s.end) for s in merged] == [(0, 0.0, 4.0), (1, 4.0, 8.0)]
    assert merged[0].probability == pytest.approx((0.8 * 3 + 0.3) / 4)  # the class's mean over all its windows


def test_short_segments_join_shortest_first_until_none_is_short():
    probabilities = one_hot([0, 0, 0, 0, 1, 2, 2, 0, 0, 0])
    bounds = np.arange(11) * 1.0
    # class 1 (1 s) joins a neighbour first (both rated alike: the earlier), then class 2 (2 s) joins class 0
    assert [(s.label, s.start, s.end) for s in leading_segments(probabilities, bounds, min_length=2.5)] == [
        (0, 0.0, 10.0)]
    assert [s.label for s in leading_segments(probabilities, bounds, min_length=1.5)] == [0, 2, 0]
    assert [s.label for s in leading_segments(probabilities, bounds, min_length=100.0)] == [0]


def test_each_class_of_its_own_has_its_stretches_over_the_threshold_and_they_may_overlap():
    # windows of 1 s: class 0 is there in windows 0-3, class 1 in 2-7, class 2 never; p >= 0.6 counts
    probabilities = np.full((8, 3), 0.2)
    probabilities[0:4, 0] = [0.9, 0.7, 0.6, 0.8]
    probabilities[2:8, 1] = 0.75
    probabilities[5, 2] = 0.59  # just under the threshold
    bounds = np.arange(9) * 1.0

    segments = class_segments(probabilities, bounds, threshold=0.6)

    assert segments == [Segment(0, 0.0, 4.0, pytest.approx(0.75)), Segment(1, 2.0, 8.0, pytest.approx(0.75))]
    assert [(s.label, s.start, s.end) for s in class_segments(probabilities, bounds, threshold=0.5)] == [
        (0, 0.0, 4.0), (1, 2.0, 8.0), (2, 5.0, 6.0)]
    assert class_segments(probabilities, bounds, threshold=0.95) == []


def test_a_short_stretch_of_a_class_of_its_own_is_dropped_and_a_short_gap_closed():
    p = np.array([0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1])  # one class, 14 windows
    probabilities = np.stack([p, 1 - p], axis=1)  # class 1 is there where class 0 is not
    bounds = np.arange(15) * 1.0

    assert [(s.label, s.start, s.end) for s in class_segments(probabilities, bounds, 0.5)] == [
        (0, 0.0, 3.0), (1, 3.0, 4.0), (0, 4.0, 7.0), (1, 7.0, 11.0), (0, 11.0, 12.0), (1, 12.0, 14.0)]
    tidy = class_segments(probabilities, bounds, 0.5, min_length=2.0)  # 1 s stretches join their neighbours
    assert [(s.label, s.start, s.end) for s in tidy] == [(0, 0.0, 7.0), (1, 7.0, 14.0)]
    assert tidy[0].probability == pytest.approx((0.9 * 6 + 0.1) / 7)
