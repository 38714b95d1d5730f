"""How a model runs, the same in training, testing, prediction and benchmarks (the RUNTIME keys): on which
device, in which memory format (RUNTIME.CHANNELS_LAST), compiled or not (RUNTIME.COMPILE), and in which
precision (RUNTIME.PRECISION: one autocast context and one grad scaler). The memory format is the data layer's
`data.loader.memory_format`, in which `model_input` lays out the inputs and `place_model` the model.

bf16 needs no scaler; fp16 does. A CPU without native bf16 runs bf16 autocast many times slower than fp32
(25-100x measured on the development machine), which is why `fp32` is the default.
"""

import contextlib
from typing import NamedTuple, Optional

import torch
from fvcore.common.config import CfgNode
from torch import nn

from videonl.data.loader import memory_format
from videonl.engine.distributed import select_device
from videonl.engine.weight_sources import Weights, WeightsMetadata, cfg_for_trained, open_weights
from videonl.models.build import build_model
from videonl.models.conversions import CheckpointError

# RUNTIME.PRECISION -> autocast dtype (None: no autocast); also the choices of `videonl benchmark model --precision`
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _dtype(cfg):
    if cfg.RUNTIME.PRECISION not in PRECISIONS:
        raise ValueError(f"RUNTIME.PRECISION must be one of {', '.join(PRECISIONS)}, got '{cfg.RUNTIME.PRECISION}'")
    return PRECISIONS[cfg.RUNTIME.PRECISION]


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
    """`model` moved to `device`, in the `memory_format` of the config (in place; returned for chaining)."""
    return model.to(device, memory_format=memory_format(cfg))


def compiled(model: nn.Module, cfg) -> nn.Module:
    """torch.compile of `model` when RUNTIME.COMPILE, else `model` itself."""
    return torch.compile(model) if cfg.RUNTIME.COMPILE else model


class TrainedModel(NamedTuple):
    """A trained model, the config that feeds it the input its weights expect, and what the weights say of
    themselves."""

    cfg: CfgNode
    model: nn.Module
    metadata: WeightsMetadata


def load_trained(cfg, checkpoint: str, device: Optional[torch.device] = None) -> TrainedModel:
    """The one way testing, prediction, export and analysis load weights: `checkpoint` opened once, the input
    its weights expect and the task they were trained for adopted into `cfg` (`weight_sources.cfg_for_trained`),
    the model loaded (`load_model`)."""
    weights = open_weights(checkpoint)
    cfg = cfg_for_trained(cfg, weights)
    return TrainedModel(cfg, _model_with(cfg, weights, device), weights.metadata)


def load_model(cfg, checkpoint: str, device: Optional[torch.device] = None) -> nn.Module:
    """The config's model with a checkpoint's weights, placed as `place_model` does (on DEVICE unless `device`
    is given), in eval mode; weights that do not fit fail by name. The config is taken as it is: `load_trained`
    also gives the config that feeds the weights their input.

    Any format the evaluation command reads (`weight_sources.open_weights`); of our training checkpoints only the
    "model" entry is read, the optimiser state and other entries are ignored.
    """
    return _model_with(cfg, open_weights(checkpoint), device)


def _model_with(cfg, weights: Weights, device: Optional[torch.device]) -> nn.Module:
    model = build_model(cfg)
    try:
        weights.load_into(model)
    except CheckpointError as error:
        raise CheckpointError(f"{weights.source} does not fit the config's model (is it the config it was "
                              f"trained with?): {error}") from error
    return place_model(model, cfg, device or select_device(cfg.DEVICE)).eval()
