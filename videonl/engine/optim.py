"""SGD with the paper's options and the learning-rate schedules, both as functions of the config.

The schedule is a pure function of the iteration, so a resumed run needs no scheduler state: the LR of
iteration i is `learning_rate(cfg, i, global_batch)` whether or not the run stopped before it.
"""

import logging
import math

import torch
from torch import nn

from videonl.config import ConfigError

logger = logging.getLogger(__name__)
POLICIES = ("steps", "cosine")


def parameter_groups(model: nn.Module, cfg) -> list:
    """One group with weight decay and, with SOLVER.NO_DECAY_NORM_AND_BIAS, one without (norms and biases)."""
    decay, no_decay = [], []
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            exempt = isinstance(module, norm_types) or name == "bias"
            (no_decay if exempt and cfg.SOLVER.NO_DECAY_NORM_AND_BIAS else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": cfg.SOLVER.WEIGHT_DECAY}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg) -> torch.optim.SGD:
    return torch.optim.SGD(parameter_groups(model, cfg), lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                           nesterov=cfg.SOLVER.NESTEROV)


def scaled_base_lr(cfg, global_batch: int) -> float:
    """BASE_LR scaled linearly from SOLVER.REFERENCE_BATCH_SIZE to the run's global batch (Goyal et al.)."""
    return cfg.SOLVER.BASE_LR * global_batch / cfg.SOLVER.REFERENCE_BATCH_SIZE


def log_lr_scaling(cfg, global_batch: int) -> None:
    if global_batch != cfg.SOLVER.REFERENCE_BATCH_SIZE:
        logger.info("global batch %d differs from SOLVER.REFERENCE_BATCH_SIZE %d: base LR scaled linearly from "
                    "%g to %g", global_batch, cfg.SOLVER.REFERENCE_BATCH_SIZE, cfg.SOLVER.BASE_LR,
                    scaled_base_lr(cfg, global_batch))


def learning_rate(cfg, iteration: int, global_batch: int) -> float:
    """The LR of `iteration` (0-based): the policy's value, times the linear warm-up factor while it lasts."""
    base = scaled_base_lr(cfg, global_batch)
    solver = cfg.SOLVER
    if solver.LR_POLICY == "steps":
        lr = base * solver.GAMMA ** sum(iteration >= step for step in solver.STEPS)
    elif solver.LR_POLICY == "cosine":
        end = base * solver.COSINE_END_FACTOR
        lr = end + (base - end) * 0.5 * (1 + math.cos(math.pi * iteration / solver.MAX_ITER))
    else:
        raise ConfigError(f"SOLVER.LR_POLICY must be one of {', '.join(POLICIES)}, got '{solver.LR_POLICY}'")
    if iteration < solver.WARMUP_ITERS:
        progress = iteration / solver.WARMUP_ITERS
        lr *= solver.WARMUP_START_FACTOR + (1 - solver.WARMUP_START_FACTOR) * progress
    return lr


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
