"""Multi-view testing of a run: which weights, where the results go, and the console table."""

import logging
import os
from typing import Optional

import torch
from torch import nn

from videonl.engine.checkpoint import CheckpointManager
from videonl.engine.evaluate import evaluate
from videonl.engine.reports import format_results
from videonl.engine.runtime import load_trained
from videonl.engine.setup import prepared_run
from videonl.engine.weight_sources import cfg_for_weights, open_weights
from videonl.models.conversions import CheckpointError
from videonl.tasks import build_task

logger = logging.getLogger(__name__)


def weights_to_test(cfg) -> str:
    """TEST.CHECKPOINT when given; else this run's newest checkpoint; else MODEL.INIT."""
    if cfg.TEST.CHECKPOINT:
        return cfg.TEST.CHECKPOINT
    newest = CheckpointManager(cfg.OUTPUT_DIR).latest()
    if newest:
        return newest
    if cfg.MODEL.INIT:
        return cfg.MODEL.INIT
    raise CheckpointError(f"nothing to test: set TEST.CHECKPOINT, or MODEL.INIT, or train into OUTPUT_DIR "
                          f"{cfg.OUTPUT_DIR} first")


def test(cfg) -> dict:
    """The Python entry for testing alone: the set-up every run shares (`setup.prepared_run`), then
    `test_model` on the weights `weights_to_test` names; returns the results."""
    with prepared_run(cfg, training=False, testing=True) as (cfg, device):
        return test_model(cfg, device)


def test_model(cfg, device: torch.device, trained: Optional[nn.Module] = None) -> dict:
    """Test `trained` (the model this run just trained, whose newest checkpoint records its input) or the
    weights `weights_to_test` names, on the input those weights expect (`cfg_for_weights`); results go to
    OUTPUT_DIR/test/<weights name>/, where an interrupted test resumes."""
    source = weights_to_test(cfg)
    if trained is not None and not cfg.TEST.CHECKPOINT:
        cfg, model = cfg_for_weights(cfg, open_weights(source)), trained
    else:
        cfg, model, _ = load_trained(cfg, source, device)
    out_dir = os.path.join(cfg.OUTPUT_DIR, "test", os.path.splitext(os.path.basename(source))[0])
    logger.info("testing %s on %s (%d clips x %s crop per video); results in %s", source, cfg.TEST.SPLIT,
                cfg.TEST.NUM_CLIPS, cfg.TEST.CROP, out_dir)
    results = evaluate(model, cfg, "test", device, out_dir)
    logger.info("test results of %s:\n%s", source, format_results(results, build_task(cfg)))
    return results
