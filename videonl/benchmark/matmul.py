"""`python -m videonl.benchmark matmul`: the machine's fp32 matmul rate, the yardstick beside a wall time.

Machines of one kind differ in speed (2-core CPUs by up to 2x), so a time measured on one says little
about another without a figure of each machine's speed: the demo prints this one beside its total time,
and the model benchmark states each step's GFLOP/s as a share of it. FLOPs count 2 per multiply-add.
"""

import argparse
from typing import Callable

import torch

from videonl.benchmark.timing import measure


def matmul(size: int, device: str = "cpu") -> Callable[[], None]:
    """One fp32 product of two random `size` x `size` matrices, ready to time."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return lambda: torch.mm(a, b)


def matmul_gflops(size: int = 2048, device: str = "cpu", repeat: int = 5) -> float:
    """GFLOP/s of the median of `repeat` fp32 `size` x `size` products (after one warm-up)."""
    seconds = measure(matmul(size, device), torch.device(device), warmup=1, repeat=repeat)["seconds"]
    return 2 * size ** 3 / seconds / 1e9


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    rate = matmul_gflops(args.size, args.device, args.repeat)
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    print(f"fp32 matmul: {rate:.1f} GFLOP/s ({args.size} x {args.size}, {args.device}{threads})")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("matmul", help="the machine's fp32 matmul rate in GFLOP/s",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="side of the square matrices")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=5, help="timed products (the median is reported)")
    parser.set_defaults(run=run)
