"""How a model runs, the same in training, testing and benchmarks: on which device, in which memory format
(TRAIN.CHANNELS_LAST), compiled or not (TRAIN.COMPILE), and in which precision (TRAIN.MIXED_PRECISION: one
autocast context and one grad scaler). Inputs get the memory format in `data.loader.model_input`.

bf16 needs no scaler; fp16 does. A CPU without native bf16 runs bf16 autocast many times slower than fp32
(25-100x measured on the development machine), which is why `none` is the default.
"""

import contextlib
from typing import Optional

import torch
from torch import nn

from videonl.engine.distributed import select_device
from videonl.models.build import build_model
from videonl.engine.weight_sources import load_weights
from videonl.models.conversions import CheckpointError

PRECISIONS = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _dtype(cfg):
    if cfg.TRAIN.MIXED_PRECISION not in PRECISIONS:
        raise ValueError(f"TRAIN.MIXED_PRECISION must be one of {', '.join(PRECISIONS)}, "
                         f"got '{cfg.TRAIN.MIXED_PRECISION}'")
    return PRECISIONS[cfg.TRAIN.MIXED_PRECISION]


def autocast(cfg, device: torch.device):
    """The forward pass's context: autocast to the configured dtype, or nothing."""
    dtype = _dtype(cfg)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(cfg, device: torch.device) -> torch.amp.GradScaler:
    """A scaler that is active only for fp16 (disabled scalers pass losses and steps through unchanged)."""
    return torch.amp.GradScaler(device.type, enabled=_dtype(cfg) is torch.float16)


def place_model(model: nn.Module, cfg, device: torch.device) -> nn.Module:
    """`model` moved to `device`, in channels-last-3d when TRAIN.CHANNELS_LAST (in place; returned for chaining)."""
    model.to(device)
    if cfg.TRAIN.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last_3d)
    return model


def compiled(model: nn.Module, cfg) -> nn.Module:
    """torch.compile of `model` when TRAIN.COMPILE, else `model` itself."""
    return torch.compile(model) if cfg.TRAIN.COMPILE else model


def load_model(cfg, checkpoint: str, device: Optional[torch.device] = None) -> nn.Module:
    """The config's model with a checkpoint's weights, placed as `place_model` does (on DEVICE
    unless `device` is given), in eval mode; weights that
    do not fit fail by name.

    Any format the evaluation command reads (`weight_sources.load_weights`); of our training checkpoints only the
    "model" entry is read, the optimiser state and other entries are ignored. The one way testing,
    prediction, export and analysis load a trained model.
    """
    model = build_model(cfg)
    try:
        load_weights(model, checkpoint)
    except CheckpointError as error:
        raise CheckpointError(f"{checkpoint} does not fit the config's model (is it the config it was trained "
                              f"with?): {error}") from error
    return place_model(model, cfg, device or select_device(cfg.DEVICE)).eval()
