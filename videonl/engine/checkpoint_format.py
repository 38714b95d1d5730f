"""Our checkpoint files: `{"model": state_dict, "cfg": yaml, "input": ..., "classes": [...], **extra}`.

Training, conversion and tests write them; testing, prediction, export, analysis and MODEL.INIT read them.
They are written atomically and read with `weights_only=True`, so loading one never runs code from the file.
"""

import contextlib
import glob
import os
import tempfile
from typing import List, Optional, Sequence

import torch
from torch import nn

from videonl.models.conversions.common import CheckpointError, describe, load_weights_only
from videonl.engine.input_spec import InputSpec

_TEMPORARY_SUFFIX = ".tmp"  # of the file `save_checkpoint` writes before renaming it


def save_checkpoint(path: str, model: nn.Module, cfg, input_spec: Optional[InputSpec] = None,
                    classes: Optional[Sequence[str]] = None, **extra) -> None:
    """Write `{"model": state_dict, "cfg": yaml, "input": ..., "classes": [...], **extra}` so that a crash never
    leaves a truncated file.

    "input" is the input the weights expect (`input_spec`, by default the one `cfg` feeds); "classes" the
    class names by index, when known. The temporary file sits in the target's folder, so `os.replace` is an
    atomic rename on one file system. `extra` must hold what `weights_only` loading reads: tensors, numbers,
    strings and containers of them.
    """
    reserved = sorted({"model", "cfg"} & extra.keys())
    if reserved:
        raise ValueError(f"save_checkpoint: {reserved} are written from the model and cfg, not from extra")
    content = {"model": model.state_dict(), "cfg": cfg.dump(),
               "input": (input_spec or InputSpec.from_cfg(cfg)).to_record(), **extra}
    if classes is not None:
        content["classes"] = list(classes)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=_TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(content, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def unfinished_writes(folder: str) -> List[str]:
    """The temporary files of `save_checkpoint`s killed while writing into `folder` (a finished one renames its
    file); nothing reads them, and only a process that knows no write is under way may delete them."""
    return sorted(glob.glob(os.path.join(glob.escape(folder), f".*{_TEMPORARY_SUFFIX}")))


def is_videonl_checkpoint(content) -> bool:
    return isinstance(content, dict) and isinstance(content.get("model"), dict) and isinstance(content.get("cfg"), str)


def load_checkpoint(path: str) -> dict:
    """One of our checkpoints: `{"model": state_dict, "cfg": yaml, ...}`."""
    return checked_checkpoint(load_weights_only(path), path)


def checked_checkpoint(content, path: str) -> dict:
    """`content`, read from `path`, if it is one of our checkpoints; a CheckpointError naming what it is else."""
    if not is_videonl_checkpoint(content):
        raise CheckpointError(
            f"{path} is not a videonl checkpoint: expected a dict with 'model' (a state dict) and 'cfg' (YAML), "
            f"found {describe(content)}"
        )
    return content
