"""Batch normalisation for video backbones: trainable, or frozen ("affine") for small per-GPU batches."""

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm3d(nn.Module):
    """BatchNorm with fixed statistics and parameters, as the non-local paper's 128-frame models use.

    Holds the same state-dict entries as `nn.BatchNorm3d` (less `num_batches_tracked`), so checkpoints of
    either kind load into it.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


def make_norm(eps: float = 1e-5, momentum: float = 0.1, frozen: bool = False) -> Callable[[int], nn.Module]:
    """A constructor `norm(num_features)` for every normalisation layer of a model."""
    if frozen:
        return partial(FrozenBatchNorm3d, eps=eps)
    return partial(nn.BatchNorm3d, eps=eps, momentum=momentum)


def learns(norm: Callable[[int], nn.Module]) -> bool:
    """Whether the layers `norm` makes have parameters to train (frozen BatchNorm's have none)."""
    return any(True for _ in norm(1).parameters())


def backbone_norm(cfg) -> Callable[[int], nn.Module]:
    """The normalisation every layer of a backbone, and every context block that normalises, uses (BN.*)."""
    return make_norm(cfg.BN.EPS, cfg.BN.MOMENTUM, cfg.BN.FROZEN)
