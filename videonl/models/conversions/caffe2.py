"""The Caffe2 release of the non-local paper (video-nonlocal-net `.pkl` blobs) in our names, unpickled safely."""

import codecs
import collections
import pickle
from typing import Dict, Mapping

import numpy as np
import torch
from torch import nn

try:
    from numpy._core import multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray

from videonl.models.norm import FrozenBatchNorm3d

from videonl.models.conversions.common import CheckpointError, Rules, describe, rename_keys, require_resnet3d

CAFFE2_BN_FIELDS = (("s", "weight"), ("b", "bias"), ("rm", "running_mean"), ("riv", "running_var"))


def caffe2_bn_rules(blob_prefix: str, module: str) -> Rules:
    """SpatialBN blobs `<prefix>_bn_{s,b,rm,riv}` (scale, bias, running mean, running variance) -> BN fields."""
    return tuple((rf"{blob_prefix}_bn_{field}", rf"{module}.{name}") for field, name in CAFFE2_BN_FIELDS)


# The non-local release's blob names; `_momentum` and bookkeeping blobs (lr, iter, ...) match no rule.
CAFFE2_RULES = (
    (r"conv1_w", "stem.conv.weight"),
    *caffe2_bn_rules("res_conv1", "stem.bn"),
    (r"res(\d)_(\d+)_branch2([abc])_w", r"res\1.\2.conv_\3.weight"),
    *caffe2_bn_rules(r"res(\d)_(\d+)_branch2([abc])", r"res\1.\2.bn_\3"),
    (r"res(\d)_(\d+)_branch1_w", r"res\1.\2.proj_conv.weight"),
    *caffe2_bn_rules(r"res(\d)_(\d+)_branch1", r"res\1.\2.proj_bn"),
    # non-local blocks: nonlocal_conv3_1 follows residual block res3_1
    (r"nonlocal_conv(\d)_(\d+)_(theta|phi|g|out)_w", r"res\1.\2.context.conv_\3.weight"),
    (r"nonlocal_conv(\d)_(\d+)_(theta|phi|g|out)_b", r"res\1.\2.context.conv_\3.bias"),
    *caffe2_bn_rules(r"nonlocal_conv(\d)_(\d+)", r"res\1.\2.context.bn"),
    (r"pred_w", "head.fc.weight"),
    (r"pred_b", "head.fc.bias"),
)


SAFE_PICKLE_GLOBALS = {
    **{  # numpy 2 renamed numpy.core to numpy._core: old pickles name the one, new pickles the other
        (module, name): getattr(multiarray, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "ndarray", "dtype", "scalar")
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 stores bytes in a protocol-2 pickle
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts of numpy arrays and nothing else.

    A pickle can call any function it names, so a downloaded `.pkl` may only name the few globals that
    numpy arrays are rebuilt from; anything else is refused before it is even imported.
    """

    def find_class(self, module: str, name: str):
        try:
            return SAFE_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only numpy arrays may be unpickled"
            ) from None


def load_caffe2_blobs(path: str) -> Dict[str, np.ndarray]:
    """The blobs of a Caffe2 `.pkl`: `{"blobs": {name: array}}` as the non-local release saves it, or flat.

    The files were pickled by Python 2, hence latin1 for its byte strings.
    """
    with open(path, "rb") as f:
        try:
            content = NumpyOnlyUnpickler(f, encoding="latin1").load()
        except pickle.UnpicklingError as err:
            raise CheckpointError(f"{path}: {err}") from err
    blobs = content.get("blobs", content) if isinstance(content, dict) else content
    if not isinstance(blobs, dict):
        raise CheckpointError(f"{path}: expected a dict of Caffe2 blobs, found {describe(content)}")
    return blobs


def convert_caffe2(blobs: Mapping[str, np.ndarray], model: nn.Module, bgr_to_rgb: bool = False):
    """Caffe2 blobs in `model`'s names; returns (state, unused blob names).

    The classifier may be stored conv-shaped ([K, C, 1, 1, 1]); it is the same matrix. With `bgr_to_rgb`
    the stem's input channels are reversed, for a model trained on BGR frames that will now read RGB.
    """
    require_resnet3d(model, "Caffe2")
    renamed, unused = rename_keys(blobs, CAFFE2_RULES)
    state = {key: torch.tensor(np.asarray(value)) for key, value in renamed.items()}
    if "head.fc.weight" in state:
        state["head.fc.weight"] = state["head.fc.weight"].flatten(1)
    if bgr_to_rgb and "stem.conv.weight" in state:
        state["stem.conv.weight"] = state["stem.conv.weight"].flip(1)
    state.update(batch_norm_completions(state, model))
    return state, unused


def batch_norm_completions(state: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Entries Caffe2 does not keep for the BNs whose scale `state` holds.

    "Affine" (frozen-BN) models store only scale s and bias b: mean 0 and variance 1 - eps (the model's eps)
    make the BN compute exactly x * s + b. Caffe2 counts no BN steps; 0 is what a fresh BN holds.
    """
    completions = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.BatchNorm3d, FrozenBatchNorm3d)) or f"{name}.weight" not in state:
            continue
        scale = state[f"{name}.weight"]
        if f"{name}.running_mean" not in state and f"{name}.running_var" not in state:
            completions[f"{name}.running_mean"] = torch.zeros_like(scale)
            completions[f"{name}.running_var"] = torch.full_like(scale, 1 - module.eps)
        if getattr(module, "num_batches_tracked", None) is not None and f"{name}.num_batches_tracked" not in state:
            completions[f"{name}.num_batches_tracked"] = torch.zeros_like(module.num_batches_tracked)
    return completions
