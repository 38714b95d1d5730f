"""Where a run's numbers go: the console and log.txt, metrics.jsonl (every logged value, one JSON object per
line, for plots and scripts) and TensorBoard scalars when tensorboard is installed. Only rank 0 writes."""

import json
import logging
import os
import sys
from typing import Optional

from videonl.engine.distributed import is_main_process

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(output_dir: Optional[str]) -> None:
    """INFO to the console and to {output_dir}/log.txt on rank 0; warnings and errors only elsewhere."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO if is_main_process() else logging.WARNING)
    handlers = [logging.StreamHandler(sys.stderr)]
    if output_dir and is_main_process():
        os.makedirs(output_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(output_dir, "log.txt")))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)


class MetricsWriter:
    """Appends `{"iter": i, "split": s, **values}` to metrics.jsonl and mirrors them to TensorBoard."""

    def __init__(self, output_dir: str):
        self.enabled = is_main_process()
        self.path = os.path.join(output_dir, "metrics.jsonl")
        self.tensorboard = _tensorboard_writer(os.path.join(output_dir, "tensorboard")) if self.enabled else None

    def write(self, iteration: int, split: str, values: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"iter": iteration, "split": split, **values}) + "\n")
        if self.tensorboard is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tensorboard.add_scalar(f"{split}/{key}", value, iteration)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _tensorboard_writer(folder: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(folder)
