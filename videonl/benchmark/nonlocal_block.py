"""`videonl benchmark nonlocal`: the non-local block's plain and fast paths, and PyTorchVideo's.

Time of the forward pass and of forward + backward, and peak memory of forward + backward, at the res3 and
res4 shapes of 32-frame and 128-frame clips (the paper's 32-frame layout: 4 and 16 frames at res3/res4).
"""

import argparse
from typing import Dict, List

import torch

from videonl.benchmark.timing import isolated, measure

# name -> (channels, frames, height, width) of the map a block sees.
SHAPES = {
    "32f-res3": (512, 4, 28, 28),
    "32f-res4": (1024, 4, 14, 14),
    "128f-res3": (512, 16, 28, 28),
    "128f-res4": (1024, 16, 14, 14),
}
IMPLEMENTATIONS = ("pytorchvideo", "plain", "fast")


def build_block(implementation: str, channels: int, instantiation: str) -> torch.nn.Module:
    """A block with the official settings: C/2 inner channels, 1x2x2 max-pool of phi's and g's input."""
    if implementation == "pytorchvideo":
        from pytorchvideo.layers.nonlocal_net import create_nonlocal

        theirs = {"embedded_gaussian": "softmax", "dot_product": "dot_product"}[instantiation]
        return create_nonlocal(dim_in=channels, dim_inner=channels // 2, pool_size=(1, 2, 2), instantiation=theirs)
    from videonl.models.context.non_local import NonLocal

    return NonLocal(channels, channels // 2, instantiation, fast=implementation == "fast")


def run_case(implementation: str, shape_name: str, batch: int, instantiation: str, device: str, repeat: int,
             threads: int) -> Dict[str, float]:
    """Forward and forward + backward figures of one block on one input; a module-level function for `isolated`."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(device)
    channels, frames, height, width = SHAPES[shape_name]
    block = build_block(implementation, channels, instantiation).to(device).train()
    clip = torch.randn(batch, channels, frames, height, width, device=device, requires_grad=True)

    def forward():
        with torch.no_grad():
            block(clip)

    def forward_backward():
        block(clip).sum().backward()

    figures = {"forward_s": measure(forward, device, repeat=repeat)["seconds"]}
    train = measure(forward_backward, device, repeat=repeat)
    figures.update(train_s=train["seconds"], peak_mib=train["peak_mib"])
    return figures


def benchmark(args: argparse.Namespace) -> None:
    rows = []
    for shape_name in args.shapes:
        for batch in args.batches:
            for implementation in args.implementations:
                case = (implementation, shape_name, batch, args.instantiation, args.device, args.repeat, args.threads)
                # CPU peaks are only a process's own in a fresh process; CUDA peaks are reset per case.
                figures = isolated(run_case, *case) if args.device == "cpu" else run_case(*case)
                rows.append({"shape": shape_name, "batch": batch, "implementation": implementation, **figures})
                print_row(rows[-1], rows)


def print_row(row: Dict, rows: List[Dict]) -> None:
    """One line per case; the fast path's line adds its speed-up and memory ratio over the others."""
    if len(rows) == 1:
        print(f"{'shape':10s}{'batch':>6s}  {'implementation':14s}{'forward s':>11s}{'fwd+bwd s':>11s}{'peak MiB':>10s}")
    line = (f"{row['shape']:10s}{row['batch']:6d}  {row['implementation']:14s}"
            f"{row['forward_s']:11.3f}{row['train_s']:11.3f}{row['peak_mib']:10.0f}")
    if row["implementation"] == "fast":
        same_case = [r for r in rows if (r["shape"], r["batch"]) == (row["shape"], row["batch"]) and r is not row]
        line += "".join(f"   vs {r['implementation']}: {r['train_s'] / row['train_s']:.2f}x faster, "
                        f"{r['peak_mib'] / max(row['peak_mib'], 1):.1f}x less memory" for r in same_case)
    print(line, flush=True)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("nonlocal", help="non-local block: plain vs fast path vs PyTorchVideo",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--implementations", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    parser.add_argument("--instantiation", default="embedded_gaussian", choices=("embedded_gaussian", "dot_product"))
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per figure (median reported)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.set_defaults(run=benchmark)
