"""Join the N parts a job array prepared (`--shard I/N` on kinetics, ucf101) into the files one run writes.

Reads {out}/parts/{split}.{I}-of-{N}.csv, missing_{split}.{I}-of-{N}.txt and their reports for I = 0 .. N-1 and
writes {out}/{split}.csv and {out}/missing_{split}.txt, byte for byte what one run over the whole list writes.
A part that is missing, there twice (a file renamed), prepared from another list, or changed since its run is
an error naming it, and nothing is written. --out-dir is the folder the lists go to: the --out-dir of
kinetics, {out}/split{k} of ucf101.

    python data_prep/merge.py --out-dir data/kinetics400 --split train val --parts 16
"""

import argparse
import sys
from pathlib import Path
from typing import Dict

from videonl.command import run
from videonl.prep.parts import merge_parts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="videonl prep merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True, help="the folder of the lists, holding parts/")
    parser.add_argument("--split", nargs="+", required=True, help="the splits to merge, e.g. train val")
    parser.add_argument("--parts", type=int, required=True, help="N, the number of parts each split was cut into")
    args = parser.parse_args(argv)
    if args.parts < 1:
        parser.error(f"--parts must be at least 1, got {args.parts}")
    return args


def main(argv=None) -> Dict[str, dict]:
    args = parse_args(argv)
    return {split: merge_parts(args.out_dir, split, args.parts) for split in args.split}


if __name__ == "__main__":
    sys.exit(run(main))
