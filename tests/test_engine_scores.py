"""Per-video scores and their store: rounding as kept, files of several ranks, a line cut by a kill, stale files."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from videonl.engine.scores import ScoresStore, StaleScoresError, VideoScore, weights_fingerprint
from videonl.tasks.single_label import SingleLabel

AVERAGE = SingleLabel(3)  # views combined by their mean

META = {"list": "/data/val.csv", "videos": 4, "classes": 3, "views_per_video": 2, "frames": [8, 8, 0.0],
        "weights": "abc"}


def score(index: int, label: int = 0) -> VideoScore:
    return VideoScore.from_views(index, f"v{index}.mp4", label, torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]),
                                 AVERAGE)


def test_a_score_is_rounded_as_the_store_keeps_it_and_read_back_unchanged():
    views = torch.tensor([[0.123456789, 0.876543211], [0.2, 0.8]])
    kept = VideoScore.from_views(3, "a.mp4", 1, views, AVERAGE)
    assert np.array_equal(kept.probabilities, np.float32([0.161728, 0.838272]))  # means to 6 significant digits
    assert kept.probabilities.dtype == np.float32 and (kept.view_hits, kept.views) == (2, 2)
    again = VideoScore.from_json(kept.to_json())
    assert np.array_equal(again.probabilities, kept.probabilities) and again.top_classes == [1, 0]
    failed = VideoScore(4, "b.mp4", 0, None, error="b.mp4: not a video")
    assert json.loads(failed.to_json())["probabilities"] is None and VideoScore.from_json(failed.to_json()).failed


def test_the_store_reads_every_ranks_file_and_leaves_out_a_line_cut_short(tmp_path):
    store = ScoresStore(str(tmp_path), META)
    with store.writer(0) as keep:
        keep([score(0), score(2)])
    with store.writer(1) as keep:
        keep([score(1)])
    with open(tmp_path / "scores.rank1.jsonl", "a") as f:
        f.write(score(3).to_json()[:20])  # a kill while writing video 3
    assert sorted(store.read()) == [0, 1, 2]

    with store.writer(1) as keep:  # resumed: the cut line goes, the header stays the only one
        keep([score(3)])
    lines = (tmp_path / "scores.rank1.jsonl").read_text().splitlines()
    assert [json.loads(line).get("meta") for line in lines] == [META, None, None]
    assert [json.loads(line)["index"] for line in lines[1:]] == [1, 3]
    assert sorted(store.read()) == [0, 1, 2, 3]


def test_scores_of_another_evaluation_are_refused_naming_what_differs(tmp_path):
    with ScoresStore(str(tmp_path), META).writer(0) as keep:
        keep([score(0)])
    other = dict(META, classes=5, weights="def")
    with pytest.raises(StaleScoresError, match=r"scores.rank0.jsonl holds scores of another evaluation "
                                               r"\(different classes, weights\)"):
        ScoresStore(str(tmp_path), other).read()
    assert len((tmp_path / "scores.rank0.jsonl").read_text().splitlines()) == 2  # nothing deleted


def test_the_fingerprint_follows_every_parameter_and_buffer():
    torch.manual_seed(0)
    model = nn.BatchNorm1d(3)
    same = nn.BatchNorm1d(3)
    first = weights_fingerprint(model)
    assert weights_fingerprint(same) == first
    model.running_mean[1] = 0.5
    assert weights_fingerprint(model) != first
