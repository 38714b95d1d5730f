"""`videonl benchmark SUBCOMMAND ...` (or `python -m videonl.benchmark`): the benchmark modules, one per subcommand."""

import argparse
import importlib
import pkgutil
import sys

import videonl.benchmark as package
from videonl.command import parse_args, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videonl benchmark", description="Time and memory figures.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = parse_args(build_parser(), argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(run(main))
