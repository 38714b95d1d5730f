"""Anything MODEL.INIT or TEST.CHECKPOINT may name, read in a model's parameter names, with what it says of itself.

"imagenet" (torchvision's weights, inflated), a `.pth`/`.pt`/`.pyth` file (ours, a torchvision 2D ResNet, a
PyTorchVideo model-zoo file) or a Caffe2 `.pkl`. Each format is recognised once (`_open`); reading it is the
conversion package's job, or ours for our own checkpoints.
"""

import os
from typing import List, NamedTuple, Optional, Tuple

from torch import nn

from videonl.engine.checkpoint_format import is_videonl_checkpoint
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
from videonl.models.input_spec import CAFFE2_INPUT, IMAGENET_INPUT, PYTORCHVIDEO_INPUT, InputSpec, adopt_input
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


def _open(source: str) -> Tuple[Optional[str], object]:
    """(format of `source`, or None when unknown; the torch file's content, None where the format reads itself)."""
    if source == "imagenet":
        return "imagenet", None
    if check_weights_source(source) == ".pkl":
        return "caffe2", None
    content = load_weights_only(source)
    return next((name for name, matches in FILE_FORMATS if matches(content)), None), content


def read_weights(model: nn.Module, source: str):
    """The weights of `source` in `model`'s names: (state, source keys not used)."""
    file_format, content = _open(source)
    if file_format == "imagenet":
        return inflate_2d_state_dict(imagenet_state_dict(model), model)
    if file_format == "caffe2":
        return convert_caffe2(load_caffe2_blobs(source), model)
    if file_format == "videonl":
        return content["model"], []
    if file_format == "torchvision":
        return inflate_2d_state_dict(content, model)
    if file_format == "pytorchvideo":
        return convert_pytorchvideo(content["model_state"], model)
    raise CheckpointError(
        f"{source} is neither a videonl checkpoint, a torchvision 2D ResNet nor a PyTorchVideo checkpoint: "
        f"found {describe(content)}"
    )


def load_weights(model: nn.Module, source: str) -> None:
    """Load every weight of `model` from `source` for evaluation or analysis: nothing may be missing, left over
    or re-initialised, so weights of another model or class count fail, naming the keys."""
    state, _ = read_weights(model, source)
    load_complete_state_dict(model, state, source)


class WeightsMetadata(NamedTuple):
    """What a weights source says beside its weights: the input they expect and the class names by index
    (None where it does not say)."""

    input: Optional[InputSpec]
    classes: Optional[List[str]]


def read_weights_metadata(source: str) -> WeightsMetadata:
    """The metadata of anything MODEL.INIT may name. Ours record both; the other releases' input is known
    from their training code (`FORMAT_INPUTS`)."""
    if not source:
        return WeightsMetadata(None, None)
    file_format, content = _open(source)
    if file_format == "videonl":
        record = content.get("input")
        return WeightsMetadata(InputSpec.from_record(record) if record else None, content.get("classes"))
    return WeightsMetadata(FORMAT_INPUTS.get(file_format), None)


def cfg_for_weights(cfg, source: str):
    """`cfg` feeding the input the weights of `source` expect, unless the config sets its own (see `adopt_input`)."""
    return adopt_input(cfg, read_weights_metadata(source).input, source)
