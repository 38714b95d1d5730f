"""Helpers shared by the tests."""

import os
from pathlib import Path

import torch
from torch import nn

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "kinetics400"
C2D = str(CONFIGS / "c2d_r50_8x8.yaml")
SMALL_C2D = ["RESNET.BLOCKS", "[1,1,1,1]", "RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5"]


def randomize_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so that a lost or swapped BN entry shows in outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
    return model


def structure_of(cfg) -> nn.Module:
    """The config's model without weights (on the meta device, MODEL.INIT not loaded): full-size layers and
    parameter counts for a fraction of a real build's time, since no weight is drawn or stored."""
    from videonl.models import build_model

    with torch.device("meta"):
        return build_model(cfg)


def pretrained_pair(plain_cfg, blocks_cfg):
    """A backbone with trained-like BN (no zero residual branch) and a model with context blocks inserted,
    its other weights loaded from the first; both in eval mode."""
    from videonl.models import build_model

    plain = randomize_batch_norms(build_model(plain_cfg)).eval()
    with_blocks = build_model(blocks_cfg).eval()
    missing, unexpected = with_blocks.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".context." in key for key in missing)
    return plain, with_blocks


def assert_close_to(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-4) -> None:
    """Equal up to `rel` of the expected magnitude (deep float32 networks accumulate rounding)."""
    difference = (actual - expected).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    assert difference <= rel * scale, f"max |difference| {difference:.3g} for values up to {scale:.3g}"


def small_c2d(*opts: str) -> nn.Module:
    """The C2D of c2d_r50_8x8.yaml at one residual block per stage, width 8 and 5 classes; `opts` override."""
    from videonl.config import load_cfg
    from videonl.models import build_model

    return build_model(load_cfg(C2D, [*SMALL_C2D, *opts]))


class RunsCommand:
    """Unpickling this runs `touch marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
