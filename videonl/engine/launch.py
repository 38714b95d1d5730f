"""One run as its config says: the shared set-up (`setup.prepared_run`), then training and/or the multi-view
test.

Both `videonl train` and train_net.py call `launch`, and it is the Python entry for a whole run, so a run
started any of these ways is the same run.
"""

from videonl.engine.setup import prepared_run
from videonl.engine.test import test_model
from videonl.engine.train import train_model


def launch(cfg) -> dict:
    """Train (TRAIN.ENABLE), then test (TEST.ENABLE); returns the test's results ({} when not tested)."""
    with prepared_run(cfg, training=cfg.TRAIN.ENABLE, testing=cfg.TEST.ENABLE) as (cfg, device):
        model = train_model(cfg, device) if cfg.TRAIN.ENABLE else None
        return test_model(cfg, device, model) if cfg.TEST.ENABLE else {}
