"""What every videonl command shares: config overrides anywhere on the line, and errors as one line.

A command that takes a config declares its `KEY VALUE` overrides with `add_overrides` and parses with
`parse_args`, so options may come before or after the overrides (`--cfg C RESNET.DEPTH 101 --json`). Every
command runs through `run`: a mistake in the input (a config key, a missing file, a checkpoint for another
model) is one `error: ...` line on stderr, never a traceback. Exit status 2: the command line or its config is
wrong (as argparse's own usage errors); 1: a file it names cannot be used.
"""

import argparse
import re
import sys
from typing import Callable, Optional, Sequence

from videonl.config import ConfigError
from videonl.data.decode import DecodeError
from videonl.models.conversions import CheckpointError

KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*$")
INPUT_ERRORS = (CheckpointError, DecodeError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
                PermissionError)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Config overrides; `parse_args` also collects the pairs that follow later options."""
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE",
                        help="config overrides, e.g. SOLVER.BASE_LR 0.005 OUTPUT_DIR runs/nl (anywhere on the line; "
                        "after -- when a value starts with -)")


def parse_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """argparse, with every `KEY VALUE` pair gathered into `opts` wherever it stands on the line.

    Anything else argparse does not know (a misspelt option) is a usage error, as with `parse_args`.
    """
    args, rest = parser.parse_known_args(argv)
    if not hasattr(args, "opts"):
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args
    args.opts = list(args.opts) + [arg for arg in rest if arg != "--"]
    unknown = [key for key in args.opts[::2] if not KEY.match(key)]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} "
                     "(neither an option nor a config key like SOLVER.BASE_LR)")
    return args


def run(main: Callable, argv: Optional[Sequence[str]] = None) -> int:
    """Call a command's `main(argv)`; returns its exit status (an int it returns, else 0)."""
    try:
        result = main(argv)
    except ConfigError as err:
        return _fail(err, 2)
    except INPUT_ERRORS as err:
        return _fail(err, 1)
    except SystemExit as stop:  # a command's own `raise SystemExit("message")`: the same one line
        if not isinstance(stop.code, str):
            raise
        return _fail(stop.code.removeprefix("error: "), 1)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _fail(message, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status
