"""Helpers shared by the test modules (their shared fixtures are in conftest.py)."""

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "kinetics400"
C2D = str(CONFIGS / "c2d_r50_8x8.yaml")
SMALL_C2D = ["RESNET.BLOCKS", "[1,1,1,1]", "RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5"]
DEMO_CFG = str(ROOT / "configs" / "demo" / "nl_i3d.yaml")
I3D = str(CONFIGS / "i3d_r50_8x8.yaml")
SMALL_I3D = ["RESNET.BLOCKS", "[1,2,1,1]", "RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5"]
# A tiny NL I3D: non-local blocks on res3 (4 x 8 x 8) and res4 (4 x 4 x 4) for 8-frame 64 x 64 clips.
TINY_NL_I3D = ["RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5", "RESNET.BLOCKS", "[1, 1, 2, 1]", "CONTEXT.RES3", "[0]",
               "CONTEXT.RES4", "[1]", "DATA.TRAIN_CROP_SIZE", "64"]


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


def assert_png_drawn(path: Path, colour=None, min_bytes: int = 10_000):
    """A PNG that is not blank: many shades and, if `colour` (RGB in [0, 1]) is given, pixels of that colour
    (what the data is drawn in). Returns the RGB pixels."""
    from matplotlib.image import imread

    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes, path
    pixels = imread(path)[..., :3]
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, f"{path}: (almost) one colour"
    if colour is not None:
        assert np.all(np.abs(pixels - colour) < 0.02, axis=-1).sum() > 100, f"{path}: nothing drawn in {colour}"
    return pixels


def randomized(block: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every weight random (no zero-initialised part), in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.5)
    return block.eval()


# ------------------------------------------------------------------------------------ train_net at toy size


def tiny(data_dir, output_dir, *overrides) -> list:
    """train_net arguments: the demo config at toy size on `data_dir`, CPU, deterministic, no workers."""
    return ["--cfg", DEMO_CFG,
            "DATA.PATH_TO_DATA_DIR", str(data_dir), "OUTPUT_DIR", str(output_dir), "DEVICE", "cpu",
            "MODEL.NUM_CLASSES", "2", "RESNET.WIDTH", "4", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "3",
            "DATA.TRAIN_JITTER_SCALES", "[32, 36]", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
            "TEST.NUM_CLIPS", "2", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_BATCH_SIZE", "2",
            "SOLVER.MAX_ITER", "6", "SOLVER.WARMUP_ITERS", "2", "TRAIN.CHECKPOINT_PERIOD", "2",
            "TRAIN.CHECKPOINT_KEEP", "2", "TRAIN.EVAL_PERIOD", "3", "TRAIN.LOG_PERIOD", "2",
            "TRAIN.PRECISE_BN_BATCHES", "2", "TRAIN.DETERMINISTIC", "True", *overrides]


def shard_size_for(videos: int, folder) -> str:
    """`videonl prep shards --shard-size` (MB) that packs `videos` of the folder's .mp4 files a shard (short ids)."""
    from videonl.prep.shards import member_bytes

    largest = max(path.stat().st_size for path in Path(folder).glob("*.mp4"))
    return str((videos * (member_bytes(largest) + member_bytes(1)) + 1) / 1e6)


def assert_same_weights(actual: dict, expected: dict, **tolerance) -> None:
    """Two state dicts with the same keys and (within `tolerance`) the same tensors."""
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], msg=key, **tolerance)


def final_weights(output_dir, iteration) -> dict:
    from videonl.engine.checkpoint_format import load_checkpoint

    return load_checkpoint(str(Path(output_dir) / "checkpoints" / f"iter_{iteration:07d}.pth"))["model"]


# ------------------------------------------------------------------------ Caffe2 checkpoints of our models

CONV_BLOBS = {"conv_a": "branch2a", "conv_b": "branch2b", "conv_c": "branch2c", "proj_conv": "branch1"}
BN_BLOBS = {"bn_a": "branch2a", "bn_b": "branch2b", "bn_c": "branch2c", "proj_bn": "branch1"}
BN_FIELDS = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}


def caffe2_name(key: str) -> str:
    """Our key -> the non-local release's blob name: the converter's rules, inverted by hand."""
    *module, field = key.split(".")
    if module == ["stem", "conv"]:
        return "conv1_w"
    if module == ["stem", "bn"]:
        return f"res_conv1_bn_{BN_FIELDS[field]}"
    if module == ["head", "fc"]:
        return f"pred_{field[0]}"
    if "context" in module:  # a non-local block after residual block res{S}.{I}: nonlocal_conv{S}_{I}
        stage, index, _, layer = module
        prefix = f"nonlocal_conv{stage[-1]}_{index}"
        if layer == "bn":
            return f"{prefix}_bn_{BN_FIELDS[field]}"
        return f"{prefix}_{layer[len('conv_'):]}_{field[0]}"
    stage, index, layer = module
    if layer in CONV_BLOBS:
        return f"{stage}_{index}_{CONV_BLOBS[layer]}_w"
    return f"{stage}_{index}_{BN_BLOBS[layer]}_bn_{BN_FIELDS[field]}"


def caffe2_blobs(model) -> dict:
    state = model.state_dict()
    return {caffe2_name(key): state[key].numpy().copy() for key in state if not key.endswith("num_batches_tracked")}


def write_pickle(path: Path, content) -> str:
    path.write_bytes(pickle.dumps(content, protocol=2))
    return str(path)
