"""Multi-view evaluation: every video of a list scored once; views -> probabilities -> combined -> metrics.

The protocol is the non-local paper's: a test video is cut into TEST.NUM_CLIPS clips x crops views (the
validation split: one centred clip); the task (TASK.NAME) turns each view's windows into class probabilities,
combines a video's views (single-label: the softmax averaged; multi-label: the sigmoid's max) and computes
the metrics (top-1 / top-5; mAP).

This module is the loop that scores the videos; the rest has a module each: `scores` (a video's outcome and the
per-video store an interrupted evaluation resumes from), the task (from scores to numbers, and what the reports
hold) and `reports` (the console table and the files of an output folder).
"""

import contextlib
import logging
from typing import Callable, Iterator, List, Optional

import torch

from videonl.data.datasets import label_range_problem
from videonl.data.loader import build_dataset, build_loader, list_file, view_batches
from videonl.data.transforms import VideoViews
from videonl.engine import distributed
from videonl.engine.reports import class_names, write_reports
from videonl.engine.runtime import autocast
from videonl.engine.scores import ScoresStore, VideoScore, scores_meta
from videonl.progress import progress as progress_bar
from videonl.tasks import Task, build_task

logger = logging.getLogger(__name__)

KeepScores = Callable[[List[VideoScore]], None]


def window_logits(model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """The model's `test_logits` [B, windows, classes] in float32; ValueError naming the model when they have
    another shape (a backbone written for an older interface)."""
    logits = model.test_logits(clips)
    if logits.dim() != 3 or logits.shape[0] != len(clips):
        raise ValueError(f"{type(model).__name__}.test_logits gave {tuple(logits.shape)} for {len(clips)} views; "
                         "the model interface asks for [views, windows, classes] (one window: logits[:, None])")
    return logits.float()


def view_probabilities(model: torch.nn.Module, views: List[VideoViews], cfg, device: torch.device) -> torch.Tensor:
    """[videos, views, classes] class probabilities of the views of loader videos (batch["views"]), on the CPU:
    the task's (TASK.NAME) of the model's `test_logits` (with the fully-convolutional head, a view's windows
    combined: single-label averages their softmax, multi-label their sigmoid)."""
    task = build_task(cfg)
    outputs = []
    for chunk in view_batches(views, cfg, device):
        with autocast(cfg, device):
            logits = window_logits(model, chunk)
        outputs.append(task.view_probabilities(task.view_output(logits)).cpu())
    return torch.cat(outputs).view(len(views), len(views[0]), -1)


def score_batch(model: torch.nn.Module, batch: dict, records, cfg, device: torch.device,
                task: Task) -> List[VideoScore]:
    """The VideoScore of every video of a val / test loader batch, in batch order."""
    decoded = iter(view_probabilities(model, batch["views"], cfg, device)) if batch["valid"].any() else iter(())
    scores = []
    for index, target, valid, error in zip(batch["index"].tolist(), batch["label"], batch["valid"].tolist(),
                                           batch["error"]):
        path, label = records[index].path, task.score_label(target)
        scores.append(VideoScore.from_views(index, path, label, next(decoded), task) if valid
                      else VideoScore(index, path, label, None, error=error))
    return scores


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel, whose forward would wait on ranks with fewer batches."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


@contextlib.contextmanager
def _in_eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode inside, the model's own train / eval mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _score_remaining(model, cfg, split, device, remaining: List[int], keep: KeepScores,
                     progress: bool) -> List[VideoScore]:
    loader = build_loader(cfg, split, indices=remaining)
    bar = progress_bar(total=len(loader.sampler), unit="video", desc=f"evaluating {split}",
                       disable=not (progress and distributed.is_main_process()))
    scores = []
    with bar, torch.no_grad():
        for batch in loader:
            batch_scores = score_batch(model, batch, loader.dataset.records, cfg, device, loader.dataset.task)
            keep(batch_scores)
            scores.extend(batch_scores)
            bar.update(len(batch_scores))
    return scores


def evaluate(model: torch.nn.Module, cfg, split: str = "test", device: torch.device = torch.device("cpu"),
             out_dir: Optional[str] = None, progress: bool = True) -> dict:
    """Score every video of `split` ("test": TEST.SPLIT list with TEST.NUM_CLIPS x crops views; "val": DATA.VAL_SPLIT,
    one centred clip) and return the task's metrics (same dict on every rank).

    Each rank scores its shard; results are gathered so every rank computes the same metrics. With `out_dir`,
    scores are kept per video for resuming (`scores.ScoresStore`) and rank 0 writes predictions.csv,
    per_class.csv, summary.json and the pictures there. The model's train / eval mode is restored at the end.
    """
    model = _unwrapped(model)
    dataset = build_dataset(cfg, split)
    label_problem = label_range_problem(dataset.records, dataset.task, list_file(cfg, split))
    if label_problem:
        raise ValueError(label_problem)
    store, earlier = None, {}
    if out_dir:
        store = ScoresStore(out_dir, scores_meta(cfg, split, dataset, model))
        earlier = store.read()
        distributed.barrier()  # every rank has read the same files before any rank appends to its own
    remaining = [index for index in range(len(dataset)) if index not in earlier]
    if distributed.is_main_process():
        logger.info("evaluating %s: %d videos, %d views each", split, len(dataset), dataset.views_per_video)
        if earlier:
            logger.info("resuming: %d videos already scored in %s, %d left", len(earlier), out_dir, len(remaining))
    kept = store.writer(distributed.rank()) if store else contextlib.nullcontext(lambda scores: None)
    with kept as keep, _in_eval_mode(model):
        new = _score_remaining(model, cfg, split, device, remaining, keep, progress)
    scores = dict(earlier)
    for rank_scores in distributed.all_gather_objects(new):
        scores.update((score.index, score) for score in rank_scores)
    ordered = [scores[index] for index in sorted(scores)]
    metrics = dataset.task.metrics(ordered, videos=len(dataset), views_per_video=dataset.views_per_video,
                                   exclude_failed=cfg.TEST.EXCLUDE_FAILED, split=split)
    if out_dir and distributed.is_main_process():
        write_reports(out_dir, ordered, metrics, class_names(cfg), cfg.TEST.EXCLUDE_FAILED, dataset.task)
    distributed.barrier()  # the reports exist when any rank returns
    return metrics
