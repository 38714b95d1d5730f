"""Anything MODEL.INIT or TEST.CHECKPOINT may name, opened once, read in a model's parameter names, with what it
says of itself.

"imagenet" (torchvision's weights, inflated), a `.pth`/`.pt`/`.pyth` file (ours, a torchvision 2D ResNet, a
PyTorchVideo model-zoo file) or a Caffe2 `.pkl`. `open_weights` recognises the format and reads a torch file
once; the `Weights` it returns give both the metadata (the input the weights expect, their class names, the task
they were trained for) and the state for a model, so no command reads a file twice. Reading a foreign format is
the conversion package's job, ours is our own checkpoints'.
"""

import dataclasses
import os
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import nn

from videonl.engine.checkpoint_format import checked_checkpoint, is_videonl_checkpoint
from videonl.engine.input_spec import CAFFE2_INPUT, IMAGENET_INPUT, PYTORCHVIDEO_INPUT, InputSpec, adopt_input
from videonl.engine.task_spec import adopt_task, recorded_task
from videonl.models.conversions import (
    convert_caffe2,
    convert_pytorchvideo,
    imagenet_state_dict,
    inflate_2d_state_dict,
    load_caffe2_blobs,
)
from videonl.models.conversions.common import CheckpointError, describe, load_weights_only
from videonl.models.conversions.pytorchvideo import is_pytorchvideo_checkpoint
from videonl.models.conversions.torchvision_resnet import is_torchvision_resnet
from videonl.models.loading import load_complete_state_dict

WEIGHT_FILES = (".pth", ".pt", ".pyth", ".pkl")
FILE_FORMATS = (("videonl", is_videonl_checkpoint), ("torchvision", is_torchvision_resnet),
                ("pytorchvideo", is_pytorchvideo_checkpoint))
# The input each foreign format's weights were trained on (see `input_spec`); ours record their own.
FORMAT_INPUTS = {"imagenet": IMAGENET_INPUT, "torchvision": IMAGENET_INPUT, "caffe2": CAFFE2_INPUT,
                 "pytorchvideo": PYTORCHVIDEO_INPUT}


def check_weights_source(source: str) -> str:
    """The extension of a weights file MODEL.INIT may name; fails clearly on anything else."""
    extension = os.path.splitext(source)[1]
    if extension not in WEIGHT_FILES or not os.path.isfile(source):
        raise ValueError(f"MODEL.INIT must be '', 'imagenet' or an existing .pth, .pt, .pyth or .pkl file; "
                         f"got '{source}'")
    return extension


class WeightsMetadata(NamedTuple):
    """What a weights source says beside its weights: the input they expect, the class names by index and the
    task they were trained for (`task_spec.recorded_task`; None where it does not say)."""

    input: Optional[InputSpec]
    classes: Optional[List[str]]
    task: Optional[Dict[str, Any]] = None


@dataclasses.dataclass(frozen=True)
class Weights:
    """A weights source, opened: its format and the torch file's content (None for "imagenet" and a Caffe2 `.pkl`,
    which are read where they are converted, once). Metadata and state both come from this one read."""

    source: str
    format: str
    content: Any = None

    @property
    def metadata(self) -> WeightsMetadata:
        """Ours record both; the other releases' input is known from their training code (`FORMAT_INPUTS`)."""
        if self.format == "videonl":
            record = self.content.get("input")
            return WeightsMetadata(InputSpec.from_record(record) if record else None, self.content.get("classes"),
                                   recorded_task(self.content["cfg"]))
        return WeightsMetadata(FORMAT_INPUTS[self.format], None)

    def state_for(self, model: nn.Module) -> Tuple[Dict[str, torch.Tensor], List[str]]:
        """The weights in `model`'s names: (state, source keys not used)."""
        if self.format == "imagenet":
            return inflate_2d_state_dict(imagenet_state_dict(model), model)
        if self.format == "caffe2":
            return convert_caffe2(load_caffe2_blobs(self.source), model)
        if self.format == "torchvision":
            return inflate_2d_state_dict(self.content, model)
        if self.format == "pytorchvideo":
            return convert_pytorchvideo(self.content["model_state"], model)
        return self.content["model"], []

    def load_into(self, model: nn.Module) -> None:
        """Load every weight of `model` for evaluation or analysis: nothing may be missing, left over or
        re-initialised, so weights of another model or class count fail, naming the keys."""
        state, _ = self.state_for(model)
        load_complete_state_dict(model, state, self.source)

    def checkpoint(self) -> dict:
        """The whole content of our checkpoint (a training checkpoint's optimiser, scaler, RNG states too)."""
        return checked_checkpoint(self.content, self.source)


def open_weights(source: str) -> Weights:
    """`source` opened once, its format recognised; a torch file of no known format fails here, naming what it
    holds."""
    if source == "imagenet":
        return Weights(source, "imagenet")
    if check_weights_source(source) == ".pkl":
        return Weights(source, "caffe2")
    content = load_weights_only(source)
    file_format = next((name for name, matches in FILE_FORMATS if matches(content)), None)
    if file_format is None:
        raise CheckpointError(f"{source} is neither a videonl checkpoint, a torchvision 2D ResNet nor a "
                              f"PyTorchVideo checkpoint: found {describe(content)}")
    return Weights(source, file_format, content)


def cfg_for_weights(cfg, weights: Optional[Weights]):
    """`cfg` feeding the input `weights` expect, in the keys the user did not set (`adopt_input`): where every
    command decides its input."""
    return cfg if weights is None else adopt_input(cfg, weights.metadata.input, weights.source)


def cfg_for_trained(cfg, weights: Weights):
    """`cfg_for_weights`, and the task the weights were trained for where the user set no TASK.NAME
    (`task_spec.adopt_task`): what testing, prediction, export and analysis run trained weights with."""
    return adopt_task(cfg_for_weights(cfg, weights), weights.metadata.task, weights.source)
