"""`videonl benchmark blocks`: every context block at the res3, res4 and res5 shapes of a clip.

For each registered block (or those named with --blocks) and stage: its parameters, its FLOPs on one clip
(multiply-adds, fvcore), the seconds of a training step of the block alone (forward and backward through
the block and its input) on --batch clips, and that step's peak memory. The shapes are the stage outputs of
the --cfg model (default: slow-only R50 8x8 at 224); blocks that replace the 3x3 conv (CoT) get the
bottleneck's inner width. Block settings come from the config and its KEY VALUE overrides (after `--`
when they follow --blocks):

    videonl benchmark blocks --blocks gc nonlocal --repeat 5 GC.RATIO 4

On CUDA the peak is `torch.cuda.max_memory_allocated` above what was allocated before the step. On the CPU
every measurement runs in a fresh process and the peak is its peak resident memory above its resident
memory before the step (the resident peak of a process never falls, so a shared process would not do).
"""

import argparse
from typing import Dict, List

import torch

from videonl.benchmark.timing import isolated, measure
from videonl.command import add_overrides
from videonl.config import load_cfg
from videonl.flops import flop_analysis
from videonl.info import stage_shapes
from videonl.models import build_model
from videonl.models.norm import backbone_norm
from videonl.models.registry import STAGES, build_context_block, context_block_names, site_for

MEASURED_STAGES = STAGES[1:]  # res3..res5, where the papers place their blocks (SE's res2 aside)
REFERENCE_BLOCK = "nonlocal"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("blocks", help="parameters, FLOPs, time and memory of every context block",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="kinetics400/slow_r50_8x8.yaml",
                        help="model whose shapes to use (config file or packaged name)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=2, help="clips per training step")
    parser.add_argument("--repeat", type=int, default=3, help="timed steps (the median is reported)")
    parser.add_argument("--blocks", nargs="+", metavar="NAME", help="registered block names (default: all)")
    add_overrides(parser)
    parser.set_defaults(run=run)


def stage_inputs(cfg_file: str, opts: List[str]) -> Dict[str, dict]:
    """Per stage: the bottleneck widths and the output shape `[T, H, W]` of the config's model."""
    cfg = load_cfg(cfg_file, opts)
    model = build_model(cfg).eval()
    clip = torch.zeros(1, cfg.DATA.INPUT_CHANNELS, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE,
                       cfg.DATA.TRAIN_CROP_SIZE)
    shapes = stage_shapes(model, clip)
    return {stage: {"dim_inner": getattr(model, stage)[-1].conv_a.out_channels, "dim_out": shapes[stage][0],
                    "thw": shapes[stage][1:]} for stage in MEASURED_STAGES}


def measure_block(job: dict) -> dict:
    """Build one block at one stage's shape and measure it (see module doc); `job` is plain data."""
    cfg = load_cfg(job["cfg"], job["opts"])
    device = torch.device(job["device"])
    site = site_for(job["block"], job["stage"], job["dim_inner"], job["dim_out"], 1, backbone_norm(cfg))  # stride 1
    block = build_context_block(cfg, job["block"], site)
    shape = (site.dim, *job["thw"])
    block.train().to(device)
    x = torch.randn(job["batch"], *shape, device=device, requires_grad=True)

    def step():
        block(x).sum().backward()

    timing = measure(step, device, warmup=1, repeat=job["repeat"])  # peak above the block and its input
    flops = flop_analysis(block.cpu().eval(), torch.zeros(1, *shape)).total()
    return {"block": job["block"], "stage": job["stage"], "input": [job["batch"], *shape],
            "params_m": sum(p.numel() for p in block.parameters()) / 1e6, "gflops": flops / 1e9,
            "ms": timing["seconds"] * 1e3, "peak_mib": timing["peak_mib"]}


def benchmark(cfg_file: str, opts: List[str], names: List[str], device: str, batch: int, repeat: int) -> List[dict]:
    def jobs(stages: Dict[str, dict]) -> List[dict]:
        return [{"cfg": cfg_file, "opts": list(opts), "block": name, "stage": stage, "device": device,
                 "batch": batch, "repeat": repeat, **inputs} for stage, inputs in stages.items() for name in names]

    if device == "cuda":
        return [measure_block(job) for job in jobs(stage_inputs(cfg_file, opts))]
    # Each case in a fresh process; this one stays small, since a resident peak survives into the
    # processes it starts: even the model that gives the shapes is built in another.
    return [isolated(measure_block, job) for job in jobs(isolated(stage_inputs, cfg_file, opts))]


def format_table(rows: List[dict]) -> str:
    """A Markdown table; with the non-local block measured, each block's FLOPs and time as a share of its."""
    reference = {row["stage"]: row for row in rows if row["block"] == REFERENCE_BLOCK}
    header = "| block | stage | input | params (M) | GFLOPs / clip | fwd+bwd (ms) | peak (MiB) |"
    if reference:
        header += " FLOPs / NL | time / NL |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        cells = [row["block"], row["stage"], "x".join(map(str, row["input"])), f"{row['params_m']:.3f}",
                 f"{row['gflops']:.3f}", f"{row['ms']:.1f}", f"{row['peak_mib']:.0f}"]
        if reference:
            nl = reference[row["stage"]]
            cells += [f"{row['gflops'] / nl['gflops']:.1%}", f"{row['ms'] / nl['ms']:.1%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    load_cfg(args.cfg, args.opts)  # fails early on a bad config, and imports the user's blocks (VIDEONL_PLUGINS)
    names = args.blocks or list(context_block_names())
    unknown = [name for name in names if name not in context_block_names()]
    if unknown:
        raise SystemExit(f"not registered: {', '.join(unknown)} (known: {', '.join(context_block_names())})")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    rows = benchmark(args.cfg, args.opts, names, args.device, args.batch, args.repeat)
    rows.sort(key=lambda row: (MEASURED_STAGES.index(row["stage"]), row["block"] != REFERENCE_BLOCK, row["block"]))
    print(format_table(rows))
    return 0
