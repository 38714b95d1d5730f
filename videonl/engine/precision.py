"""Mixed precision from TRAIN.MIXED_PRECISION: one autocast context and one grad scaler for train and test.

bf16 needs no scaler; fp16 does. A CPU without native bf16 runs bf16 autocast many times slower than fp32
(25-100x measured on the development machine), which is why `none` is the default.
"""

import contextlib

import torch

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
