"""Context blocks inside models: their configs, their starting state in a pretrained backbone, the report."""

import json

import pytest
import torch

from block_checks import randomise, small_cfg
from helpers import pretrained_pair, structure_of
from videonl.benchmark.__main__ import main as benchmark_main
from videonl.benchmark.blocks import format_table
from videonl.config import load_cfg
from videonl.info import main as info_main
from videonl.models.registry import context_block_names

# config -> (block class, blocks placed, position)
CONFIGS = {
    "gc_slow_r50_8x8_1nl": ("NonLocal", 1, "after_block"),
    "gc_slow_r50_8x8_1snl": ("SimplifiedNonLocal", 1, "after_conv_c"),
    "gc_slow_r50_8x8_1gc": ("GCBlock", 1, "after_conv_c"),
    "gc_slow_r50_8x8_gc_all": ("GCBlock", 13, "after_conv_c"),
    "gc_c2d_r50_32x2_all": ("GCBlock", 13, "after_conv_c"),
    "se_slow_r50_8x8_all": ("SqueezeExcite", 16, "after_conv_c"),
    "cgnl_i3d_r50_32x2_1block": ("CompactGeneralizedNonLocal", 1, "after_block"),
    "cgnl_i3d_r50_32x2_5block": ("CompactGeneralizedNonLocal", 5, "after_block"),
    "sge_slow_r50_8x8_all": ("SpatialGroupEnhance", 16, "after_conv_c"),
    "sge_c2d_r50_32x2_all": ("SpatialGroupEnhance", 16, "after_conv_c"),
    "cot_c2d_r50_32x2": ("ContextualTransformer", 16, "conv_b"),
    "cot_slow_r50_8x8": ("ContextualTransformer", 16, "conv_b"),
    "cot_slow_r50_8x8_res45": ("ContextualTransformer", 9, "conv_b"),
}


def context_blocks(model):
    return {name: m for name, m in model.named_modules() if name.endswith(".context") and m is not None}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_place_their_blocks(name):
    cfg = load_cfg(f"configs/kinetics400/{name}.yaml")
    assert cfg.CONTEXT.BLOCK in context_block_names(), f"{name} names an unregistered block {cfg.CONTEXT.BLOCK}"
    class_name, count, position = CONFIGS[name]
    blocks = context_blocks(structure_of(cfg))
    assert len(blocks) == count and {type(b).__name__ for b in blocks.values()} == {class_name}
    assert cfg.CONTEXT.POSITION == position
    if count == 1:
        assert list(blocks) == ["res4.4.context"]  # before the last residual block of res4


def test_kinetics_gc_settings_and_sizes():
    """GC r = 4 on Kinetics; per block 2 C^2 / r + C / r + 2 C / r (LayerNorm) + C (mask) + 1 + C parameters."""
    blocks = context_blocks(structure_of(load_cfg("configs/kinetics400/gc_slow_r50_8x8_gc_all.yaml")))
    for block in blocks.values():
        c = block.mask.in_channels
        assert block.transform[0].out_channels == c // 4
        assert sum(p.numel() for p in block.parameters()) == 2 * c * c // 4 + 3 * c // 4 + 2 * c + 1
    sge = context_blocks(structure_of(load_cfg("configs/kinetics400/sge_slow_r50_8x8_all.yaml")))
    assert sum(p.numel() for b in sge.values() for p in b.parameters()) == 16 * 2 * 64


def _pretrained_pair(name, *opts):
    """The config's backbone without and with its blocks (see helpers.pretrained_pair)."""
    opts = ["MODEL.DROPOUT", "0.0", *opts]
    no_blocks = ["CONTEXT.BLOCK", "", *(item for stage in range(2, 6) for item in (f"CONTEXT.RES{stage}", "[]"))]
    return pretrained_pair(small_cfg(name, *opts, *no_blocks), small_cfg(name, *opts))


@pytest.mark.parametrize("name, opts, frames", [
    ("gc_slow_r50_8x8_gc_all", [], 8),
    ("gc_slow_r50_8x8_gc_all", ["CONTEXT.POSITION", "after_add"], 8),
    ("gc_slow_r50_8x8_1snl", [], 8),
    ("cgnl_i3d_r50_32x2_5block", [], 32),
    ("cgnl_i3d_r50_32x2_1block", ["CGNL.KERNEL", "gaussian"], 32),
])
def test_residual_blocks_leave_a_pretrained_backbone_unchanged(name, opts, frames):
    plain, model = _pretrained_pair(name, *opts)
    assert all(torch.count_nonzero(m.bn_c.weight) > 0 for m in model.modules() if hasattr(m, "bn_c"))
    clip = torch.randn(2, 3, frames, 64, 64)
    with torch.no_grad():
        expected = plain(clip)
        torch.testing.assert_close(model(clip), expected, rtol=0, atol=1e-6)
        for block in context_blocks(model).values():  # the blocks are on the path: trained ones change the logits
            randomise(block, torch.Generator().manual_seed(1))
        assert (model(clip) - expected).abs().max() > 1e-3


SMALL = ["RESNET.WIDTH", "8", "DATA.TRAIN_CROP_SIZE", "64", "SGE.GROUPS", "8"]


@pytest.mark.parametrize("name", ["gc_slow_r50_8x8_1gc", "sge_slow_r50_8x8_all", "cot_slow_r50_8x8_res45"])
def test_info_reports_each_block_with_parameters_and_flops(name, capsys):
    class_name, count, position = CONFIGS[name]
    assert info_main(["--cfg", f"configs/kinetics400/{name}.yaml", "--json", *SMALL]) == 0
    blocks = json.loads(capsys.readouterr().out)["context_blocks"]
    assert len(blocks) == count
    modules = dict(structure_of(load_cfg(f"configs/kinetics400/{name}.yaml", SMALL)).named_modules())
    for block in blocks:
        assert (block["type"], block["position"]) == (class_name, position)
        assert block["params_m"] == sum(p.numel() for p in modules[block["name"]].parameters()) / 1e6, block
        assert block["gflops"] > 0, block
    info_main(["--cfg", f"configs/kinetics400/{name}.yaml", *SMALL])
    assert capsys.readouterr().out.count(class_name) == count


def test_benchmark_lists_every_registered_block(capsys):
    opts = ["RESNET.WIDTH", "8", "DATA.TRAIN_CROP_SIZE", "64", "DATA.NUM_FRAMES", "2"]
    assert benchmark_main(["blocks", "--blocks", "gc", "cot", "--repeat", "1", *opts]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        (block, stage) for stage in ("res3", "res4", "res5") for block in ("cot", "gc")]
    assert rows[1][2].strip() == "2x64x2x8x8" and rows[0][2].strip() == "2x16x2x8x8"  # cot at the inner width
    assert all(float(r[3]) > 0 and float(r[5]) > 0 for r in rows)
    with pytest.raises(SystemExit, match="not registered: nosuch"):
        benchmark_main(["blocks", "--blocks", "nosuch"])


def test_benchmark_table_compares_with_the_non_local_block():
    def row(block, stage, gflops, ms):
        return {"block": block, "stage": stage, "input": [2, 8, 1, 2, 2], "params_m": 0.1, "gflops": gflops,
                "ms": ms, "peak_mib": 1.0}

    rows = [row("nonlocal", "res3", 8.0, 40.0), row("gc", "res3", 0.02, 10.0)]
    lines = format_table(rows).splitlines()
    assert lines[0].endswith("| FLOPs / NL | time / NL |") and lines[1].count("---") == 9
    assert lines[2].endswith("| 100.0% | 100.0% |") and lines[3].endswith("| 0.2% | 25.0% |")
    assert "/ NL" not in format_table(rows[1:])
