"""Multi-view evaluation against hand-computed metrics, resuming, stale scores and two processes, on the flat grey
videos of `grey_videos` (which videos and views the stub model gets right is known without running a network)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from grey_videos import LEVELS, VIDEOS, GreyLevelModel, grey_cfg, grey_dir  # noqa: F401  (grey_dir: the videos fixture)
from helpers import ROOT, shard_size_for
from videonl.config import get_cfg
from videonl.data.loader import build_dataset, build_loader, model_input
from videonl.engine.evaluate import evaluate
from videonl.engine.scores import StaleScoresError
from videonl.prep import shards as prep_shards


# Hand computation over the 6 videos (5 decoded x 3 views; the broken one would be 3 wrong views).
EXPECTED = {
    False: dict(top1=100 * 2 / 6, top5=100 * 4 / 6, clip_top1=100 * (3 + 3 + 1) / 18,
                # classes 0 (1/1), 1 (1/1), 3 (0/1, the broken video), 4 (0/1), 5 (0/2)
                mean_class_accuracy=100 * 2 / 5, failed_policy="counted as wrong"),
    True: dict(top1=100 * 2 / 5, top5=100 * 4 / 5, clip_top1=100 * 7 / 15, mean_class_accuracy=100 * 2 / 4,
               failed_policy="excluded"),
}


@pytest.mark.parametrize("exclude_failed", [False, True])
def test_metrics_match_the_hand_computation(grey_dir, exclude_failed):
    model = GreyLevelModel().train()
    metrics = evaluate(model, grey_cfg(grey_dir, **{"TEST.EXCLUDE_FAILED": exclude_failed}), progress=False)
    expected = EXPECTED[exclude_failed]
    for key in ("top1", "top5", "clip_top1", "mean_class_accuracy"):
        assert metrics[key] == pytest.approx(expected[key]), key
    assert {k: metrics[k] for k in ("videos", "scored", "failed", "failed_policy", "views_per_video", "split")} == \
        dict(videos=6, scored=5, failed=1, failed_policy=expected["failed_policy"], views_per_video=3, split="test")
    assert model.training and model.views_seen == 15
    json.dumps(metrics)


@pytest.mark.parametrize("exclude_failed, top1", [(False, 50.0), (True, 100.0)])
def test_a_listed_file_that_does_not_exist_is_scored_as_a_failed_video(grey_dir, tmp_path, exclude_failed, top1):
    (tmp_path / "val.csv").write_text(f"{grey_dir / 'grey40.mp4'} 0\n{tmp_path / 'missing.mp4'} 2\n")
    (tmp_path / "classes.json").write_text((grey_dir / "classes.json").read_text())
    cfg = grey_cfg(tmp_path, **{"TEST.EXCLUDE_FAILED": exclude_failed})
    metrics = evaluate(GreyLevelModel(), cfg, out_dir=str(tmp_path / "out"), progress=False)
    assert (metrics["videos"], metrics["scored"], metrics["failed"], metrics["top1"]) == (2, 1, 1, top1)
    failed = [line for line in score_lines(tmp_path / "out") if line["probabilities"] is None]
    assert [line["label"] for line in failed] == [2] and "file not found" in failed[0]["error"]


def test_validation_split_scores_one_centred_clip(grey_dir):
    metrics = evaluate(GreyLevelModel(), grey_cfg(grey_dir), split="val", progress=False)
    # The centred clip (frames 14, 15) of mixed.mp4 is grey 120: still wrong; the other videos as at test.
    assert metrics["views_per_video"] == 1 and metrics["top1"] == pytest.approx(100 * 2 / 6)
    assert metrics["clip_top1"] == pytest.approx(metrics["top1"])


def score_lines(out_dir):
    """Every complete video line of the folder's scores files (headers left out)."""
    lines = []
    for name in sorted(os.listdir(out_dir)):
        if name.startswith("scores.rank"):
            text = (out_dir / name).read_text()
            lines += [json.loads(line) for line in text.split("\n")[:-1] if "meta" not in json.loads(line)]
    return lines


def test_resume_scores_only_the_missing_videos_once(grey_dir, tmp_path):
    cfg = grey_cfg(grey_dir)
    complete = evaluate(GreyLevelModel(), cfg, out_dir=str(tmp_path / "full"), progress=False)
    header, *records = (tmp_path / "full" / "scores.rank0.jsonl").read_text().splitlines(keepends=True)
    by_index = {json.loads(line)["index"]: line for line in records}
    # As if an earlier two-process run was killed: rank 1 had scored video 1; rank 0 video 0, and was writing 3.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "scores.rank0.jsonl").write_text(header + by_index[0] + by_index[3][: len(by_index[3]) // 2])
    (resumed / "scores.rank1.jsonl").write_text(header + by_index[1])
    model = GreyLevelModel()
    assert evaluate(model, cfg, out_dir=str(resumed), progress=False) == complete
    assert model.views_seen == 3 * 3  # videos 2, 3 and 4 (5 fails to decode)
    assert sorted(line["index"] for line in score_lines(resumed)) == list(range(len(VIDEOS)))
    again = GreyLevelModel()
    assert evaluate(again, cfg, out_dir=str(resumed), progress=False) == complete and again.views_seen == 0


def test_scores_of_another_evaluation_are_refused(grey_dir, tmp_path):
    cfg = grey_cfg(grey_dir)
    evaluate(GreyLevelModel(), cfg, out_dir=str(tmp_path), progress=False)
    with pytest.raises(StaleScoresError, match="different weights"):
        evaluate(GreyLevelModel([45, 80, 120, 160, 200, 240]), cfg, out_dir=str(tmp_path), progress=False)
    with pytest.raises(StaleScoresError, match="different views_per_video"):
        evaluate(GreyLevelModel(), grey_cfg(grey_dir, **{"TEST.NUM_CLIPS": 2}), out_dir=str(tmp_path),
                 progress=False)


def tiny_model_cfg(grey_dir):
    cfg = grey_cfg(grey_dir, **{"TEST.CROP": "3crop", "RUNTIME.CHANNELS_LAST": True})
    cfg.DATA.TEST_CROP_SIZE, cfg.MODEL.HEAD_POOL = 64, 1  # res5 is 2 x 2: four windows, log-averaged softmax
    cfg.RESNET.BLOCKS, cfg.RESNET.WIDTH, cfg.RESNET.ZERO_INIT_FINAL_BN = [1, 1, 1, 1], 4, False
    cfg.TEST.NUM_CLIPS = 1
    return cfg


def test_views_are_scored_by_the_softmax_averaged_over_the_windows_not_of_the_pooled_logits():
    from helpers import randomize_batch_norms
    from videonl.data.transforms import VideoViews
    from videonl.engine.evaluate import view_probabilities
    from videonl.models import build_model

    torch.manual_seed(0)
    cfg = get_cfg()
    cfg.merge_from_list(["RESNET.BLOCKS", [1, 1, 1, 1], "RESNET.WIDTH", 4, "RESNET.ZERO_INIT_FINAL_BN", False,
                         "MODEL.NUM_CLASSES", 5, "MODEL.HEAD_POOL", 1, "TEST.VIEWS_PER_FORWARD", 4])
    model = randomize_batch_norms(build_model(cfg)).eval()
    nn.init.normal_(model.head.fc.weight)  # confident scores: windows that disagree average to another softmax
    # two videos of three 4-frame clips, full 64 x 64 frames (res5 2 x 2: four windows a view)
    views = [VideoViews(torch.randint(0, 256, (12, 64, 64, 3), dtype=torch.uint8), torch.arange(12).view(3, 4),
                        ((0, 0, 64, 64),)) for _ in range(2)]
    clips = model_input(torch.cat([video.cut() for video in views]), cfg, torch.device("cpu"))
    with torch.no_grad():
        scored = view_probabilities(model, views, cfg, torch.device("cpu"))
        windows = model.test_logits(clips).softmax(-1).mean(dim=1).view(2, 3, 5)
        pooled = model(clips).softmax(-1).view(2, 3, 5)
    torch.testing.assert_close(scored, windows)
    assert (scored - pooled).abs().max() > 1e-3


def test_a_real_model_is_scored_by_the_average_of_its_view_probabilities(grey_dir, tmp_path):
    from videonl.models import build_model

    torch.manual_seed(0)
    cfg = tiny_model_cfg(grey_dir)
    model = build_model(cfg).train()
    evaluate(model, cfg, out_dir=str(tmp_path), progress=False)
    assert model.training
    stored = {line["index"]: line for line in score_lines(tmp_path)}
    views = next(iter(build_loader(cfg, "test")))["views"][0].cut()  # grey40.mp4: 3 crops
    with torch.no_grad():
        windows = model.eval().test_logits(model_input(views, cfg, torch.device("cpu")))
    assert windows.shape == (3, 4, len(LEVELS))  # 3 crops, 4 windows each
    probabilities = windows.softmax(dim=-1).mean(dim=1)
    expected = probabilities.mean(dim=0)
    assert torch.allclose(torch.tensor(stored[0]["probabilities"]), expected, rtol=1e-5, atol=1e-7)


def _evaluate_in_process(rank, world_size, init_file, cfg, out_dir, results_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                         world_size=world_size)
    try:
        metrics = evaluate(GreyLevelModel(), cfg, out_dir=out_dir, progress=False)
    finally:
        torch.distributed.destroy_process_group()
    with open(os.path.join(results_dir, f"metrics{rank}.json"), "w") as f:
        json.dump(metrics, f)


def test_two_processes_share_the_videos_and_agree_on_the_metrics(grey_dir, tmp_path):
    cfg = grey_cfg(grey_dir)
    single = evaluate(GreyLevelModel(), cfg, progress=False)
    out_dir = tmp_path / "out"
    mp.spawn(_evaluate_in_process, args=(2, str(tmp_path / "init"), cfg, str(out_dir), str(tmp_path)), nprocs=2)
    per_rank = [json.loads((tmp_path / f"metrics{rank}.json").read_text()) for rank in range(2)]
    assert per_rank[0] == per_rank[1] == single
    shards = [{json.loads(line)["index"] for line in (out_dir / f"scores.rank{rank}.jsonl").read_text().splitlines()
               if "meta" not in json.loads(line)} for rank in range(2)]
    assert shards == [{0, 2, 4}, {1, 3, 5}]
    assert json.loads((out_dir / "summary.json").read_text()) == single


def test_a_label_outside_the_classifier_is_named(grey_dir):
    with pytest.raises(ValueError, match=r"val\.csv: label 5 of .*grey170\.mp4 is outside 0\.\.4"):
        evaluate(GreyLevelModel(), grey_cfg(grey_dir, **{"MODEL.NUM_CLASSES": 5}), progress=False)


# ------------------------------------------------------------------------- distributed and interrupted tests

THIRTY_VIEWS = {"TEST.NUM_CLIPS": 10, "TEST.CROP": "3crop"}  # the paper's test: 10 clips x 3 crops
# One decoder first in every process: the broken video's reason lists the decoders in the order they were tried.
ONE_ORDER = {"DATA.DECODER": "pyav"}


def uneven_list(grey_dir, folder):
    """Five of the grey videos (the broken one among them) in a list of its own: five do not divide by two ranks."""
    lines = [f"{grey_dir / name} {label}\n" for name, (_, _, label) in VIDEOS.items() if name != "grey80.mp4"]
    folder.mkdir()
    (folder / "val.csv").write_text("".join(lines))
    (folder / "classes.json").write_text((grey_dir / "classes.json").read_text())
    return folder


def scored_indices(out_dir, rank):
    return [json.loads(line)["index"] for line in (out_dir / f"scores.rank{rank}.jsonl").read_text().splitlines()
            if "meta" not in json.loads(line)]


@pytest.mark.parametrize("source", ["files", "shards"])
def test_a_thirty_view_test_over_two_ranks_scores_each_video_of_an_uneven_list_once(grey_dir, tmp_path, source):
    cfg = grey_cfg(uneven_list(grey_dir, tmp_path / "data"), **THIRTY_VIEWS)
    if source == "shards":  # 3 shards of 2, 2 and 1 videos
        prep_shards.main(["--data-dir", str(tmp_path / "data"), "--split", "val", "--out-dir", str(tmp_path / "shards"),
                          "--shard-size", shard_size_for(2, grey_dir), "--keep-order"])
        cfg.DATA.SHARDS = str(tmp_path / "shards")
        assert [shard.videos for shard in build_dataset(cfg, "test").shards.index.shards] == [2, 2, 1]
    single = evaluate(GreyLevelModel(), cfg, progress=False)
    assert (single["videos"], single["views_per_video"]) == (5, 30)
    out_dir = tmp_path / "out"
    mp.spawn(_evaluate_in_process, args=(2, str(tmp_path / "init"), cfg, str(out_dir), str(tmp_path)), nprocs=2)
    per_rank = [json.loads((tmp_path / f"metrics{rank}.json").read_text()) for rank in range(2)]
    assert per_rank[0] == per_rank[1] == single
    shares = [scored_indices(out_dir, rank) for rank in range(2)]
    assert sorted(shares[0] + shares[1]) == list(range(5)) and sorted(map(len, shares)) == [2, 3]
    assert json.loads((out_dir / "summary.json").read_text()) == single


STALLING_EVALUATION = """
import json, sys, time
import torch
import torch.multiprocessing as mp
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from grey_videos import GreyLevelModel, grey_cfg
from videonl.engine.evaluate import evaluate


class StallingGreyLevelModel(GreyLevelModel):
    # Scores one video (30 views, 2 a forward), then hangs: each rank writes exactly one video's scores.
    def forward(self, x):
        if self.views_seen >= 30:
            time.sleep(3600)
        return super().forward(x)  # test_logits calls it


def rank_main(rank, data_dir, out_dir, init_file, overrides):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    evaluate(StallingGreyLevelModel(), grey_cfg(data_dir, **json.loads(overrides)), out_dir=out_dir, progress=False)


if __name__ == "__main__":
    mp.spawn(rank_main, args=tuple(sys.argv[3:7]), nprocs=2)
"""


def test_a_two_process_test_killed_midway_resumes_from_the_scores_written_and_ends_as_an_uninterrupted_one(
        grey_dir, tmp_path):
    data = uneven_list(grey_dir, tmp_path / "data")
    one_video_a_batch = {**THIRTY_VIEWS, **ONE_ORDER, "DATALOADER.TEST_BATCH_SIZE": 1}
    cfg = grey_cfg(data, **one_video_a_batch)
    uninterrupted = evaluate(GreyLevelModel(), cfg, out_dir=str(tmp_path / "whole"), progress=False)
    script, out_dir = tmp_path / "stalling_evaluation.py", tmp_path / "out"
    script.write_text(STALLING_EVALUATION)
    process = subprocess.Popen([sys.executable, str(script), str(ROOT / "tests"), str(ROOT), str(data), str(out_dir),
                                str(tmp_path / "init"), json.dumps(one_video_a_batch)],
                               start_new_session=True)
    try:
        while process.poll() is None and sum(len(scored_indices(out_dir, rank)) for rank in range(2)
                                             if (out_dir / f"scores.rank{rank}.jsonl").exists()) < 2:
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = {rank: scored_indices(out_dir, rank) for rank in range(2)}
    scored = before[0] + before[1]
    assert sorted(map(len, before.values())) == [1, 1], "each rank was killed after writing one video's scores"

    model = GreyLevelModel()
    assert evaluate(model, cfg, out_dir=str(out_dir), progress=False) == uninterrupted
    assert model.views_seen == 30 * len({0, 1, 2, 3} - set(scored))  # video 4 is the broken one: no views
    assert sorted(scored_indices(out_dir, 0) + before[1]) == list(range(5))  # each video scored once, in all
    for name in ("predictions.csv", "summary.json"):
        assert (out_dir / name).read_text() == (tmp_path / "whole" / name).read_text()
