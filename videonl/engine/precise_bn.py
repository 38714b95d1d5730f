"""Precise BN: before an evaluation, replace the BN running averages (dominated by the last few hundred
training batches, taken while the weights moved) by the plain mean of the statistics of N batches of the
final weights, averaged over processes."""

from typing import Iterable

import torch
from torch import nn

from videonl.engine.distributed import world_size


def updatable_batch_norms(model: nn.Module) -> list:
    """The BN layers whose statistics training updates (frozen / affine BN has none)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_batch_norm_statistics(model: nn.Module, clips: Iterable[torch.Tensor]) -> int:
    """Run `clips` (model inputs) through `model` in train mode with a cumulative average (momentum None);
    returns the number of batches used. The model's mode and the layers' momenta are restored."""
    norms = updatable_batch_norms(model)
    if not norms:
        return 0
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    was_training = model.training
    model.train()
    batches = 0
    for batch in clips:
        model(batch)
        batches += 1
    model.train(was_training)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
        if world_size() > 1:
            for statistic in (norm.running_mean, norm.running_var):
                torch.distributed.all_reduce(statistic)
                statistic /= world_size()
    return batches
