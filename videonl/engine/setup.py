"""The set-up every run shares, whoever starts it: `videonl train`, train_net.py, or a Python caller of
`engine.train.train`, `engine.test.test` or `engine.launch.launch`.

`prepared_run` joins torchrun's process group, sets up logging (warning when torchrun's restarts could fail to
re-form the group), fixes the decoder of a deterministic run, checks the config, saves it as OUTPUT_DIR/config.yaml
and seeds every RNG; it leaves the process group when the run ends.
"""

import contextlib
import logging
import os
import random
from typing import Iterator, Tuple

import numpy as np
import torch

from videonl.data.decode import available_backends
from videonl.engine import distributed
from videonl.engine.checks import check_config
from videonl.engine.logging import setup_logging


def fixed_decoder(cfg):
    """With TRAIN.DETERMINISTIC, `auto` becomes the first installed backend: `auto` picks by timing, so two
    runs (or a run and its resumption) could decode with different backends, whose pixels differ slightly."""
    if cfg.TRAIN.DETERMINISTIC and cfg.DATA.DECODER == "auto":
        cfg = cfg.clone()
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


@contextlib.contextmanager
def prepared_run(cfg, training: bool, testing: bool) -> Iterator[Tuple[object, torch.device]]:
    """`with prepared_run(cfg, training, testing) as (cfg, device):` the config the run uses and its device.

    The config is checked for what the run will do before anything is written but the log.
    """
    device = distributed.select_device(cfg.DEVICE)
    distributed.init_process_group(device)
    try:
        setup_logging(cfg.OUTPUT_DIR)
        if distributed.restart_hazard() and distributed.is_main_process():
            logging.getLogger(__name__).warning(distributed.restart_hazard())
        cfg = fixed_decoder(cfg)
        check_config(cfg, training=training, testing=testing)
        if distributed.is_main_process():
            with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w", encoding="utf-8") as f:
                f.write(cfg.dump())
        seed_everything(cfg)
        yield cfg, device
    finally:
        distributed.destroy_process_group()
