"""Train and/or test a video model as a config says.

    videonl train --cfg kinetics400/nl_i3d_r50_32x2.yaml [KEY VALUE ...]
    python train_net.py --cfg configs/kinetics400/nl_i3d_r50_32x2.yaml [KEY VALUE ...]   (the same, from a checkout)

TRAIN.ENABLE and TEST.ENABLE decide whether it trains, tests, or both (the default: train, then run the
multi-view test on the final weights). Every key, its default and its meaning: videonl/config.py, or
`--show-config` for the merged result. Evaluating given weights (ours, or converted PyTorchVideo / Caffe2):

    videonl train --cfg C TRAIN.ENABLE False TEST.ENABLE True TEST.CHECKPOINT FILE

Many GPUs or machines: launch the same command with torchrun (see the README), e.g.
    torchrun --nproc_per_node 8 train_net.py --cfg C
Outputs go to OUTPUT_DIR: config.yaml, log.txt, metrics.jsonl, tensorboard/, checkpoints/,
training_curves.png, test/<weights>/ (predictions, per-class accuracy, confusion matrix, summary.json).
"""

import argparse
import sys

from videonl.command import add_overrides, parse_args, run
from videonl.config import load_cfg
from videonl.engine.launch import launch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videonl train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, action="append",
                        help="config file or packaged config name (e.g. kinetics400/nl_i3d_r50_32x2.yaml); "
                        "repeat to compose, later files win")
    parser.add_argument("--show-config", action="store_true", help="print the merged config and exit")
    add_overrides(parser)
    return parser


def main(argv=None) -> dict:
    """Returns the test's results ({} when not tested)."""
    args = parse_args(build_parser(), argv)
    cfg = load_cfg(args.cfg, args.opts)
    if args.show_config:
        print(cfg.dump())
        return {}
    return launch(cfg)


if __name__ == "__main__":
    sys.exit(run(main))
