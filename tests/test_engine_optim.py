"""The optimiser's parameter groups and the learning-rate schedules of the non-local paper and of cosine runs."""

import logging
import math

import pytest
import torch
from torch import nn

from videonl.config import get_cfg
from videonl.engine.optim import build_optimizer, learning_rate, log_lr_scaling, parameter_groups


def cfg_with(**solver):
    cfg = get_cfg()
    for key, value in solver.items():
        setattr(cfg.SOLVER, key, value)
    return cfg


def test_the_papers_step_schedule_at_its_reference_batch():
    cfg = get_cfg()  # the defaults are the paper's: 0.01 for batch 64, x0.1 at 150k and 300k, 400k iterations
    lrs = [learning_rate(cfg, i, 64) for i in (0, 149_999, 150_000, 299_999, 300_000, 399_999)]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])


def test_lr_scales_linearly_with_the_global_batch_and_says_so(caplog):
    cfg = get_cfg()
    assert learning_rate(cfg, 0, 16) == pytest.approx(0.0025)  # the 128-frame recipe: batch 16, LR 0.0025
    with caplog.at_level(logging.INFO, logger="videonl.engine.optim"):
        log_lr_scaling(cfg, 16)
        log_lr_scaling(cfg, 64)
    assert caplog.text.count("scaled linearly from 0.01 to 0.0025") == 1


def test_cosine_schedule_with_linear_warm_up():
    cfg = cfg_with(LR_POLICY="cosine", BASE_LR=0.1, REFERENCE_BATCH_SIZE=8, MAX_ITER=100, WARMUP_ITERS=10,
                   WARMUP_START_FACTOR=0.1, COSINE_END_FACTOR=0.01)
    cosine = lambda i: 0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * i / 100))  # noqa: E731
    assert learning_rate(cfg, 0, 8) == pytest.approx(cosine(0) * 0.1)
    assert learning_rate(cfg, 5, 8) == pytest.approx(cosine(5) * (0.1 + 0.9 * 0.5))
    assert learning_rate(cfg, 10, 8) == pytest.approx(cosine(10))
    assert learning_rate(cfg, 100, 8) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="SOLVER.LR_POLICY must be one of steps, cosine"):
        learning_rate(cfg_with(LR_POLICY="poly"), 0, 64)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Parameter(torch.zeros(1), requires_grad=False)


def test_norms_and_biases_skip_weight_decay_only_when_asked():
    model = Tiny()
    decay, no_decay = parameter_groups(model, get_cfg())
    assert {id(p) for p in decay["params"]} == {id(model.conv.weight), id(model.fc.weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model.conv.bias), id(model.bn.weight), id(model.bn.bias),
                                                   id(model.fc.bias)}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (1e-4, 0.0)
    cfg = get_cfg()
    cfg.SOLVER.NO_DECAY_NORM_AND_BIAS = False
    (everything,) = parameter_groups(model, cfg)
    assert len(everything["params"]) == 6  # the frozen parameter is left out either way


def test_optimizer_is_nesterov_sgd_with_the_configured_momentum():
    optimizer = build_optimizer(Tiny(), get_cfg())
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9
