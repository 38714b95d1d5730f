"""Train and/or test a video model as a config says.

    python train_net.py --cfg configs/kinetics400/nl_i3d_r50_32x2.yaml [KEY VALUE ...]

TRAIN.ENABLE and TEST.ENABLE decide whether it trains, tests, or both (the default: train, then run the
multi-view test on the final weights). Every key, its default and its meaning: videonl/config.py, or
`--show-config` for the merged result. Evaluating given weights (ours, or converted PyTorchVideo / Caffe2):

    python train_net.py --cfg C TRAIN.ENABLE False TEST.ENABLE True TEST.CHECKPOINT FILE

Many GPUs or machines: launch the same command with torchrun (see the README), e.g.
    torchrun --nproc_per_node 8 train_net.py --cfg C
Outputs go to OUTPUT_DIR: config.yaml, log.txt, metrics.jsonl, tensorboard/, checkpoints/,
training_curves.png, test/<weights>/ (predictions, per-class accuracy, confusion matrix, summary.json).
"""

import argparse
import logging
import os
import random

import numpy as np
import torch

from videonl.config import ConfigError, load_cfg
from videonl.data.decode import available_backends
from videonl.engine import distributed
from videonl.engine.checks import check_config
from videonl.engine.logging import setup_logging
from videonl.engine.test import test
from videonl.engine.train import train


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, action="append",
                        help="YAML config file (see configs/); repeat to compose, later files win")
    parser.add_argument("--show-config", action="store_true", help="print the merged config and exit")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides, e.g. SOLVER.BASE_LR 0.005 OUTPUT_DIR runs/nl")
    return parser.parse_args(argv)


def fixed_decoder(cfg):
    """With TRAIN.DETERMINISTIC, `auto` becomes the first installed backend: `auto` picks by timing, so two
    runs (or a run and its resumption) could decode with different backends, whose pixels differ slightly."""
    if cfg.TRAIN.DETERMINISTIC and cfg.DATA.DECODER == "auto":
        cfg.defrost()
        cfg.DATA.DECODER = available_backends()[0]
        cfg.freeze()
        logging.getLogger(__name__).info("TRAIN.DETERMINISTIC: DATA.DECODER auto fixed to %s", cfg.DATA.DECODER)
    return cfg


def seed_everything(cfg) -> None:
    """Seed every RNG (offset by rank, so processes draw different dropout masks); data order and
    augmentation are seeded by the training sampler, independently of these."""
    seed = cfg.TRAIN.SEED + distributed.rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cfg.TRAIN.DETERMINISTIC:
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not cfg.TRAIN.DETERMINISTIC


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        cfg = load_cfg(args.cfg, args.opts)
    except ConfigError as err:
        raise SystemExit(f"error: {err}")
    if args.show_config:
        print(cfg.dump())
        return {}
    device = distributed.select_device(cfg.DEVICE)
    distributed.init_process_group(device)
    try:
        setup_logging(cfg.OUTPUT_DIR)
        cfg = fixed_decoder(cfg)
        try:
            check_config(cfg, training=cfg.TRAIN.ENABLE, testing=cfg.TEST.ENABLE)
        except ConfigError as err:
            raise SystemExit(f"error: {err}")
        if distributed.is_main_process():
            with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w", encoding="utf-8") as f:
                f.write(cfg.dump())
        seed_everything(cfg)
        model = train(cfg, device) if cfg.TRAIN.ENABLE else None
        return test(cfg, device, model) if cfg.TEST.ENABLE else {}
    finally:
        distributed.destroy_process_group()


if __name__ == "__main__":
    main()
