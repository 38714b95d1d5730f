"""The `videonl` console command: one subcommand per tool of the package.

Each subcommand is a module's `main(argv)`, imported only when it runs (so `videonl --help` answers at once, and
a module missing from an installation is named, not a traceback), and run with the package's shared error
handling (`videonl.command.run`).
`python -m videonl.info ...` and the other module forms run the same code.
"""

import argparse
import importlib
import sys
from typing import Dict, Optional, Sequence, Tuple

DESCRIPTION = "Video action recognition with non-local and global-context blocks (C2D, I3D, slow-only ResNets)."
PREP_DESCRIPTION = "Dataset preparation: downloaded datasets -> resized clips and the list files videonl reads."
# subcommand -> (module whose main(argv) it runs, one line for the command list): `videonl prep`'s, `videonl`'s
PREP_COMMANDS: Dict[str, Tuple[str, str]] = {
    "kinetics": ("videonl.prep.kinetics", "Kinetics-400 CSVs and videos -> trimmed clips and list files"),
    "mini-kinetics": ("videonl.prep.mini_kinetics", "Mini-Kinetics-200 lists from a prepared Kinetics-400"),
    "ucf101": ("videonl.prep.ucf101", "UCF101 splits -> list files (optionally re-encoded videos)"),
    "charades": ("videonl.prep.charades", "Charades annotations and videos -> resized videos and multi-label lists"),
    "check": ("videonl.prep.check", "decode every video of a list; report (and drop) the failing ones"),
    "demo": ("videonl.prep.demo", "synthetic videos and Kinetics-style CSVs for the demo"),
    "demo-charades": ("videonl.prep.demo_charades", "synthetic multi-label videos and Charades-style annotations"),
    "merge": ("videonl.prep.merge", "join the parts a job array prepared (--shard I/N) into the lists one run writes"),
    "shards": ("videonl.prep.shards", "pack prepared lists into WebDataset shards read by path or URL (DATA.SHARDS)"),
}
COMMANDS: Dict[str, Tuple[str, str]] = {
    "train": ("videonl.train", "train and/or test a model as a config says (train_net.py is the same)"),
    "predict": ("videonl.predict", "class names and probabilities for your own videos"),
    "export": ("videonl.export", "ONNX or TorchScript of a trained model"),
    "info": ("videonl.info", "parameters, GFLOPs, stage shapes and context blocks of a config's model"),
    "convert": ("videonl.convert", "PyTorchVideo or Caffe2 checkpoints -> videonl checkpoints"),
    "analyze": ("videonl.analyze.__main__", "attention statistics and pictures of a trained model"),
    "benchmark": ("videonl.benchmark.__main__", "time and memory figures of models, blocks and loaders"),
    "compare": ("videonl.compare", "test results of several runs side by side"),
    "prep": ("", f"dataset preparation: videonl prep {{{','.join(PREP_COMMANDS)}}}"),
}


def command_list(commands: Dict[str, Tuple[str, str]]) -> str:
    width = max(map(len, commands)) + 2
    return "commands:\n" + "\n".join(f"  {name:{width}s}{text}" for name, (_, text) in commands.items())


def dispatch(prog: str, description: str, commands: Dict[str, Tuple[str, str]], argv: Sequence[str]) -> int:
    """Run the subcommand named by argv[0] with the rest of argv."""
    parser = argparse.ArgumentParser(prog=prog, usage=f"{prog} [-h] COMMAND ...", description=description,
                                     epilog=f"{command_list(commands)}\n\n`{prog} COMMAND --help` describes each.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=commands, metavar="COMMAND", help="one of the commands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "prep":
        return dispatch(f"{prog} prep", PREP_DESCRIPTION, PREP_COMMANDS, args.args)
    from videonl.command import run  # imports torch: not before `videonl --help` has answered

    module_name = commands[args.command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        parser.error(f"{prog} {args.command} is not part of this installation (no module {module_name})")
    return run(module.main, args.args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return dispatch("videonl", DESCRIPTION, COMMANDS, sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
