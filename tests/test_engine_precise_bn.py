"""Precise BN against the statistics computed by hand."""

import torch
from torch import nn

from videonl.engine.precise_bn import recompute_batch_norm_statistics


def test_statistics_become_the_plain_mean_over_the_batches_and_the_model_is_left_as_it_was():
    torch.manual_seed(0)
    conv, norm = nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4, momentum=0.3)
    model = nn.Sequential(conv, norm).eval()
    norm.running_mean.fill_(5.0)  # stale statistics, far from those of the batches
    batches = [torch.randn(2, 3, 2, 4, 4) * scale + shift for scale, shift in ((1, 0), (3, 1), (0.5, -2))]

    assert recompute_batch_norm_statistics(model, iter(batches)) == 3

    with torch.no_grad():
        features = [conv(x).transpose(0, 1).flatten(1) for x in batches]  # [channels, values] per batch
    torch.testing.assert_close(norm.running_mean, torch.stack([f.mean(1) for f in features]).mean(0))
    torch.testing.assert_close(norm.running_var, torch.stack([f.var(1) for f in features]).mean(0))
    assert not model.training and norm.momentum == 0.3
