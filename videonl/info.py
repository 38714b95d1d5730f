"""Model report: parameters, GFLOPs per view, output shape per stage, where context blocks sit and the task.

    videonl info --cfg kinetics400/i3d_r50_32x2.yaml [KEY VALUE ...] [--json]
    videonl info --table configs/kinetics400/*.yaml
"""

import argparse
import json
import sys
from typing import Dict, List, Optional

import torch

from videonl.command import add_overrides, parse_args, run
from videonl.config import load_cfg
from videonl.flops import flop_analysis
from videonl.models import build_model
from videonl.models.interface import ModelForTest
from videonl.models.registry import is_context_block
from videonl.tasks import build_task


def _count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def stage_shapes(model, clip: torch.Tensor) -> Dict[str, List[int]]:
    """Output shape `[C, T, H, W]` of every stage for one clip."""
    shapes = {}
    hooks = [module.register_forward_hook(lambda m, i, out, name=name: shapes.__setitem__(name, list(out.shape[1:])))
             for name, module in model.stage_modules()]
    with torch.no_grad():
        model.features(clip)
    for hook in hooks:
        hook.remove()
    return shapes


def model_report(cfg, crop: Optional[int] = None, frames: Optional[int] = None) -> dict:
    """Figures for one view of `frames` x `crop` x `crop` (defaults: the config's training clip)."""
    task = build_task(cfg)  # before the model: a bad TASK.NAME or task setting fails first, naming the key
    model = build_model(cfg).eval()
    crop = crop or cfg.DATA.TRAIN_CROP_SIZE
    frames = frames or cfg.DATA.NUM_FRAMES
    clip = torch.zeros(1, cfg.DATA.INPUT_CHANNELS, frames, crop, crop)
    analysis = flop_analysis(ModelForTest(model), clip)  # as testing runs a view (the head's windows)
    by_module = {name.removeprefix("model."): count for name, count in analysis.by_module().items()}
    blocks = [
        {
            "name": name,
            "type": type(module).__name__,
            "position": cfg.CONTEXT.POSITION,
            "params_m": _count_params(module) / 1e6,
            "gflops": by_module.get(name, 0) / 1e9,
        }
        for name, module in model.named_modules()
        if is_context_block(module)
    ]
    return {
        "input_shape": list(clip.shape),
        "params_m": _count_params(model) / 1e6,
        "gflops": analysis.total() / 1e9,
        "stages": stage_shapes(model, clip),
        "context_blocks": blocks,
        "task": {"name": cfg.TASK.NAME, "output": task.output_contract()},
    }


def format_report(cfg_file: str, report: dict) -> str:
    lines = [
        f"config      {cfg_file}",
        f"input       {'x'.join(map(str, report['input_shape']))} (one view)",
        f"parameters  {report['params_m']:.2f} M",
        f"GFLOPs      {report['gflops']:.2f} (multiply-adds, fvcore)",
        f"task        {report['task']['name']}: {report['task']['output']}",
        "",
        f"{'stage':8s}output C x T x H x W",
    ]
    lines += [f"{name:8s}{' x '.join(map(str, shape))}" for name, shape in report["stages"].items()]
    lines.append("")
    if not report["context_blocks"]:
        lines.append("context blocks: none")
    else:
        lines.append(f"context blocks: {len(report['context_blocks'])}")
        lines += [
            f"  {b['name']:18s}{b['type']:28s}{b['position']:14s}{b['params_m']:7.3f} M  {b['gflops']:7.3f} GFLOPs"
            for b in report["context_blocks"]
        ]
    return "\n".join(lines)


def markdown_table(cfg_files: List[str]) -> str:
    """One row per config, as the README's model table shows them."""
    rows = ["| config | clip | params (M) | GFLOPs / view | context blocks |", "|---|---|---|---|---|"]
    for cfg_file in cfg_files:
        cfg = load_cfg(cfg_file)
        report = model_report(cfg)
        _, _, t, h, w = report["input_shape"]
        blocks = report["context_blocks"]
        placed = f"{len(blocks)} x {blocks[0]['type']}" if blocks else "-"
        rows.append(f"| `{cfg_file}` | {t}x{h}x{w} | {report['params_m']:.2f} | {report['gflops']:.2f} | {placed} |")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videonl info",
        description="Report a model's parameters, GFLOPs per view (fvcore, one multiply-add = one FLOP), "
        "output shape per stage and context-block placement.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cfg", action="append", help="config file or packaged config name "
                        "(kinetics400/i3d_r50_32x2.yaml); repeat to compose (a model, then a recipe)")
    source.add_argument("--table", nargs="+", metavar="CFG", help="print a Markdown table row per config file")
    parser.add_argument("--crop", type=int, help="view height and width (default: DATA.TRAIN_CROP_SIZE)")
    parser.add_argument("--frames", type=int, help="frames per view (default: DATA.NUM_FRAMES)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_overrides(parser)
    return parser


def main(argv=None) -> int:
    args = parse_args(build_parser(), argv)
    if args.table:
        print(markdown_table(args.table))
        return 0
    cfg = load_cfg(args.cfg, args.opts)
    report = model_report(cfg, crop=args.crop, frames=args.frames)
    print(json.dumps(report, indent=2) if args.json else format_report(" + ".join(args.cfg), report))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
