"""One run as its config says: the set-up every run shares, then training and/or the multi-view test.

Both `videonl train` and train_net.py call `launch`, so a run started either way is the same run.
"""

import logging
import os
import random

import numpy as np
import torch

from videonl.data.decode import available_backends
from videonl.engine import distributed
from videonl.engine.checks import check_config
from videonl.engine.logging import setup_logging
from videonl.engine.test import test
from videonl.engine.train import train


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


def launch(cfg) -> dict:
    """Train (TRAIN.ENABLE), then test (TEST.ENABLE); returns the test's results ({} when not tested).

    The config is checked before anything is written but the log, and saved as OUTPUT_DIR/config.yaml.
    """
    device = distributed.select_device(cfg.DEVICE)
    distributed.init_process_group(device)
    try:
        setup_logging(cfg.OUTPUT_DIR)
        cfg = fixed_decoder(cfg)
        check_config(cfg, training=cfg.TRAIN.ENABLE, testing=cfg.TEST.ENABLE)
        if distributed.is_main_process():
            with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w", encoding="utf-8") as f:
                f.write(cfg.dump())
        seed_everything(cfg)
        model = train(cfg, device) if cfg.TRAIN.ENABLE else None
        return test(cfg, device, model) if cfg.TEST.ENABLE else {}
    finally:
        distributed.destroy_process_group()
