"""How a model runs, the same in training, testing and benchmarks: on which device, in which memory format
(TRAIN.CHANNELS_LAST), compiled or not (TRAIN.COMPILE), and in which precision (TRAIN.MIXED_PRECISION: one
autocast context and one grad scaler). Inputs get the memory format in `data.loader.model_input`.

bf16 needs no scaler; fp16 does. A CPU without native bf16 runs bf16 autocast many times slower than fp32
(25-100x measured on the development machine), which is why `none` is the default.
"""

import contextlib

import torch
from torch import nn

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
