"""Training checkpoints: everything a resumed run needs to continue as if it had never stopped.

Files are `checkpoints/iter_0000100.pth` under OUTPUT_DIR, written atomically by `checkpoint_format.save_checkpoint`
(temporary file, fsync, rename), so a kill at any moment leaves the newest complete one in place. Beside
the model, the input it was trained on and the data's class names (classes.json, when the folder has one),
they hold the optimiser, the grad scaler, the iteration (which fixes the LR and the sampler's
epoch and batch) and every process's RNG states (which fix dropout). A resumed run, after a kill or a torchrun
restart, continues from the checkpoint rank 0 chooses for every process (`CheckpointManager.resume_point`).
"""

import glob
import logging
import os
import random
import re
from typing import Optional

import numpy as np
import torch

from videonl.data.datasets import data_class_names
from videonl.engine import distributed
from videonl.engine.checkpoint_format import save_checkpoint, unfinished_writes

logger = logging.getLogger(__name__)
_NAME = re.compile(r"iter_(\d+)\.pth$")


def rng_state() -> dict:
    """This process's Python, numpy and torch RNG states, as tensors and plain data (weights-only loadable)."""
    state = {
        "python": torch.tensor(random.getstate()[1], dtype=torch.int64),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": np.random.get_state()[2],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate((random.getstate()[0], tuple(state["python"].tolist()), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class CheckpointManager:
    """Writes, lists and prunes one run's training checkpoints (`checkpoint_format.load_checkpoint` reads them)."""

    def __init__(self, output_dir: str, keep: int = 0):
        self.folder = os.path.join(output_dir, "checkpoints")
        self.keep = keep

    def path(self, iteration: int) -> str:
        return os.path.join(self.folder, f"iter_{iteration:07d}.pth")

    def existing(self) -> list:
        """Paths of the complete checkpoints, oldest first (temporary files of an interrupted write excluded)."""
        found = [(int(_NAME.search(p).group(1)), p) for p in glob.glob(os.path.join(self.folder, "iter_*.pth"))]
        return [path for _, path in sorted(found)]

    def latest(self) -> Optional[str]:
        existing = self.existing()
        return existing[-1] if existing else None

    def resume_point(self) -> Optional[str]:
        """The checkpoint every process of the run resumes from (None: none yet), chosen by rank 0 and sent to the
        others, since a shared file system may show a new file on one machine before another; rank 0 first
        deletes the temporary files of a write killed with its run (torchrun restarts every process).

        Raises FileNotFoundError on a process that cannot read rank 0's choice: OUTPUT_DIR is not shared.
        """
        newest = None
        if distributed.is_main_process():
            for leftover in unfinished_writes(self.folder):
                os.remove(leftover)
                logger.info("removed %s, left by a checkpoint write that was killed", leftover)
            newest = self.latest()
        newest = distributed.broadcast_object(newest)
        if newest is not None and not os.path.isfile(newest):
            raise FileNotFoundError(f"process {distributed.rank()} cannot read {newest}, the checkpoint rank 0 "
                                    "resumes from: OUTPUT_DIR must be a folder every machine of the run shares")
        return newest

    def save(self, iteration: int, model, cfg, optimizer, scaler, rng_states: list) -> str:
        path = self.path(iteration)
        save_checkpoint(path, model, cfg, classes=data_class_names(cfg), iteration=iteration,
                        optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), rng=rng_states)
        self._prune()
        logger.info("checkpoint written: %s", path)
        return path

    def _prune(self) -> None:
        if self.keep <= 0:
            return
        for path in self.existing()[:-self.keep]:
            os.remove(path)
