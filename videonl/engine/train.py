"""The training loop, counted in iterations as the non-local paper's schedule is.

Everything that decides iteration i (the LR, the sampler's epoch and batch, every RNG) is a function of i
or restored with the checkpoint, so a run stopped at any point and resumed from its newest checkpoint ends
with the weights an uninterrupted run would have had (exactly so in deterministic CPU mode).
"""

import itertools
import logging
import math
import os
import time
from typing import Iterator, Optional

import torch
from torch import nn

from videonl.data.loader import build_loader, model_input, set_epoch
from videonl.engine import distributed
from videonl.engine.checkpoint import CheckpointManager, rng_state, set_rng_state
from videonl.engine.evaluate import evaluate
from videonl.engine.initialization import initialize
from videonl.engine.logging import MetricsWriter
from videonl.engine.optim import build_optimizer, learning_rate, log_lr_scaling, set_learning_rate
from videonl.engine.plots import plot_training_curves
from videonl.engine.precise_bn import recompute_batch_norm_statistics, updatable_batch_norms
from videonl.engine.reports import format_results
from videonl.engine.runtime import autocast, compiled, grad_scaler, place_model
from videonl.engine.setup import prepared_run
from videonl.engine.weight_sources import Weights, cfg_for_weights, open_weights
from videonl.models.build import build_model
from videonl.progress import Progress, progress
from videonl.tasks import build_task

logger = logging.getLogger(__name__)
PRECISE_BN_EPOCH = 10 ** 6  # sampler epochs from here on feed precise BN, never the training batches


class NonFiniteError(RuntimeError):
    """The loss or the weights became NaN or infinite; the message names the iteration, the LR and (for the
    loss) the batch's videos. No checkpoint is written after it, so the newest one is the last good state."""


def train(cfg) -> nn.Module:
    """The Python entry for training alone: the set-up every run shares (`setup.prepared_run`: seeds, checks,
    decoder choice, logging), then `train_model`; returns the trained model."""
    with prepared_run(cfg, training=True, testing=False) as (cfg, device):
        return train_model(cfg, device)


def train_model(cfg, device: torch.device) -> nn.Module:
    """Train as the config says (resuming when a checkpoint exists) and return the trained model; the run is
    set up already (`train` and `launch` do it).

    The run starts from its own newest checkpoint, else from MODEL.INIT; that one file is opened once, and
    the data feed its weights the input they were trained on, unless the config sets its own.
    """
    checkpoints = CheckpointManager(cfg.OUTPUT_DIR, cfg.TRAIN.CHECKPOINT_KEEP)
    resume_from = checkpoints.resume_point() if cfg.TRAIN.AUTO_RESUME else None
    start_from = resume_from or cfg.MODEL.INIT
    weights = open_weights(start_from) if start_from else None
    cfg = cfg_for_weights(cfg, weights)
    global_batch = cfg.DATALOADER.TRAIN_BATCH_SIZE * distributed.world_size()
    log_lr_scaling(cfg, global_batch)
    model = training_model(cfg, device, init=None if resume_from else weights)
    optimizer, scaler = build_optimizer(model, cfg), grad_scaler(cfg, device)
    start = restore(weights, model, optimizer, scaler) if resume_from else 0
    loop = TrainingLoop(cfg, device, model, optimizer, scaler, checkpoints, global_batch)
    loop.run(start)
    return model


def training_model(cfg, device: torch.device, init: Optional[Weights]) -> nn.Module:
    """The model on `device`, with `init` (MODEL.INIT, unless a checkpoint will overwrite it anyway) loaded."""
    model = build_model(cfg)
    if init is not None:
        initialize(model, init)
    if cfg.TRAIN.SYNC_BN and distributed.world_size() > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return place_model(model, cfg, device)


def restore(weights: Weights, model: nn.Module, optimizer, scaler) -> int:
    """Load a training checkpoint into the run; returns the iteration to continue from."""
    state, path = weights.checkpoint(), weights.source
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    rng_states = state["rng"]
    if len(rng_states) == distributed.world_size():
        set_rng_state(rng_states[distributed.rank()])
    else:
        logger.warning("%s was written by %d processes, this run has %d: RNG states not restored, so dropout "
                       "draws differ from an uninterrupted run", path, len(rng_states), distributed.world_size())
    logger.info("resumed from %s at iteration %d", path, state["iteration"])
    return state["iteration"]


def training_batches(loader, epoch: int, offset: int = 0) -> Iterator[dict]:
    """Endless batches of a training loader, from batch `offset` of `epoch` on."""
    for epoch in itertools.count(epoch):
        set_epoch(loader, epoch, offset)
        offset = 0
        yield from loader


class TrainingLoop:
    """One run's iterations, with the periodic logging, validation and checkpoints the config asks for."""

    def __init__(self, cfg, device, model, optimizer, scaler, checkpoints: CheckpointManager, global_batch: int):
        self.cfg, self.device = cfg, device
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.checkpoints, self.global_batch = checkpoints, global_batch
        self.trainable = self._wrapped(model)
        self.task = build_task(cfg)
        self.loader = build_loader(cfg, "train")
        self.precise_bn_loader = None  # a loader of its own: sharing would reset the training iterator
        self.metrics = MetricsWriter(cfg.OUTPUT_DIR)
        self.window = []  # (loss, data seconds, compute seconds) since the last logged line
        self.replaced = 0  # videos that failed to decode and were replaced, since the last logged line

    def _wrapped(self, model: nn.Module) -> nn.Module:
        if distributed.world_size() > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return compiled(model, self.cfg)

    def run(self, start: int) -> None:
        max_iter = self.cfg.SOLVER.MAX_ITER
        bar = progress(total=max_iter, initial=start, desc="train", unit="it",
                       disable=not distributed.is_main_process())
        batches = training_batches(self.loader, *divmod(start, self.loader.sampler.batches_per_epoch))
        for iteration in range(start, max_iter):
            fetch_start = time.perf_counter()
            batch = next(batches)
            data_time = time.perf_counter() - fetch_start
            loss = self.step(iteration, batch)
            self.window.append((loss, data_time, time.perf_counter() - fetch_start - data_time))
            self.replaced += len(batch["failures"])
            self._after_step(iteration + 1, bar)
        bar.close()
        self.metrics.close()
        if distributed.is_main_process():
            curves = plot_training_curves(self.metrics.path, os.path.join(self.cfg.OUTPUT_DIR, "training_curves.png"))
            logger.info("training curves: %s", curves)

    def step(self, iteration: int, batch: dict) -> float:
        """One SGD step; returns the loss averaged over processes."""
        cfg = self.cfg
        lr = learning_rate(cfg, iteration, self.global_batch)
        set_learning_rate(self.optimizer, lr)
        clips = model_input(batch["clip"], cfg, self.device)
        with autocast(cfg, self.device):
            loss = self.task.loss(self.trainable(clips), batch["label"].to(self.device))
        mean_loss = self._mean_over_processes(loss.detach().float())
        if not math.isfinite(mean_loss):
            raise NonFiniteError(self._non_finite_message(mean_loss, iteration, lr, batch))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.TRAIN.CLIP_GRAD_NORM > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.TRAIN.CLIP_GRAD_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return mean_loss

    @staticmethod
    def _mean_over_processes(value: torch.Tensor) -> float:
        if distributed.world_size() > 1:
            torch.distributed.all_reduce(value)
            value /= distributed.world_size()
        return value.item()

    def _non_finite_message(self, loss: float, iteration: int, lr: float, batch: dict) -> str:
        records = self.loader.dataset.records
        videos = [records[index].path for index in batch["index"].tolist()]
        return (f"loss is {loss} at iteration {iteration} (LR {lr:g}); training stopped. Videos of this process's "
                f"batch: {', '.join(videos)}. Newest good checkpoint: {self.checkpoints.latest() or 'none yet'}")

    def _after_step(self, done: int, bar: Progress) -> None:
        """Log, validate, checkpoint: in that order, so a checkpoint holds the precise-BN statistics too."""
        cfg, last = self.cfg, done == self.cfg.SOLVER.MAX_ITER
        bar.update(1)
        if done % cfg.TRAIN.LOG_PERIOD == 0 or last:
            self._log(done, bar)
        if last or (cfg.TRAIN.EVAL_PERIOD and done % cfg.TRAIN.EVAL_PERIOD == 0):
            self.validate(done)
        if last or done % cfg.TRAIN.CHECKPOINT_PERIOD == 0:
            self._check_weights_finite(done)
            states = distributed.all_gather_objects(rng_state())
            if distributed.is_main_process():
                self.checkpoints.save(done, self.model, cfg, self.optimizer, self.scaler, states)
            distributed.barrier()

    def _check_weights_finite(self, done: int) -> None:
        """A finite loss can still come with an infinite step: never save weights that are not all finite."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            lr = learning_rate(self.cfg, done - 1, self.global_batch)
            raise NonFiniteError(f"weights are not finite after iteration {done - 1} (LR {lr:g}); training stopped "
                                 f"without saving them. Newest good checkpoint: "
                                 f"{self.checkpoints.latest() or 'none yet'}")

    def _log(self, done: int, bar: Progress) -> None:
        losses, data_times, compute_times = zip(*self.window)
        seconds = sum(data_times) + sum(compute_times)
        values = {
            "loss": sum(losses) / len(losses),
            "lr": learning_rate(self.cfg, done - 1, self.global_batch),
            "clips_per_s": self.global_batch * len(losses) / seconds,
            "data_time": sum(data_times) / len(losses),
            "compute_time": sum(compute_times) / len(losses),
            "replaced_videos": self.replaced,
        }
        bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{values['lr']:.2g}",
                        clips_s=f"{values['clips_per_s']:.1f}",
                        data_compute=f"{values['data_time']:.2f}/{values['compute_time']:.2f}s")
        self.metrics.write(done, "train", values)
        self.window, self.replaced = [], 0

    def validate(self, done: int) -> Optional[dict]:
        """Precise BN (when asked and the BN is not frozen), then single-clip validation on DATA.VAL_SPLIT."""
        cfg = self.cfg
        if cfg.TRAIN.PRECISE_BN_BATCHES > 0 and updatable_batch_norms(self.model):
            recompute_batch_norm_statistics(self.model, self._precise_bn_clips(done))
        results = evaluate(self.model, cfg, "val", self.device, progress=False)
        logger.info("validation at iteration %d:\n%s", done, format_results(results, self.task))
        self.metrics.write(done, "val", results)
        return results

    def _precise_bn_clips(self, done: int) -> Iterator[torch.Tensor]:
        if self.precise_bn_loader is None:
            self.precise_bn_loader = build_loader(self.cfg, "train")
        batches = training_batches(self.precise_bn_loader, PRECISE_BN_EPOCH + done)
        for batch in itertools.islice(batches, self.cfg.TRAIN.PRECISE_BN_BATCHES):
            yield model_input(batch["clip"], self.cfg, self.device)
