"""Initial and converted weights for video ResNets, and our own checkpoints.

Every foreign checkpoint (torchvision's 2D ResNets, PyTorchVideo's model zoo, the Caffe2 non-local release)
reaches our parameter names through a table of (regex, replacement) rules applied by `rename_keys`, so
supporting new blobs is adding rows. Our checkpoints are `{"model": state_dict, "cfg": yaml, "input": ...,
"classes": [...]}` files, written atomically and read with `weights_only=True`, so loading one never runs code
from the file. Every source also says what input its weights expect (`read_weights_metadata`).
"""

import codecs
import collections
import contextlib
import logging
import os
import pickle
import re
import tempfile
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch
from torch import nn

try:
    from numpy._core import multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray

from .input_spec import CAFFE2_INPUT, IMAGENET_INPUT, PYTORCHVIDEO_INPUT, InputSpec, adopt_input
from .norm import FrozenBatchNorm3d
from .registry import STAGES

logger = logging.getLogger(__name__)

Rules = Sequence[Tuple[str, str]]  # (pattern matching a whole source key, replacement as in re.sub)
Value = TypeVar("Value")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file or the keys and says why."""


# ----------------------------------------------------------------------------------------------- renaming


def rename_keys(state: Mapping[str, Value], rules: Rules) -> Tuple[Dict[str, Value], List[str]]:
    """Rename each key by the first rule whose pattern matches all of it; also return the keys none matched.

    Unmatched keys are returned rather than dropped silently, so that callers report them by name. Two keys
    renamed alike would lose one of them, so that is an error.
    """
    renamed, sources, unmatched = {}, {}, []
    for key, value in state.items():
        new_key = _apply_first_rule(key, rules)
        if new_key is None:
            unmatched.append(key)
        elif new_key in renamed:
            raise ValueError(f"'{sources[new_key]}' and '{key}' are both renamed to '{new_key}'")
        else:
            renamed[new_key], sources[new_key] = value, key
    return renamed, unmatched


def _apply_first_rule(key: str, rules: Rules) -> Optional[str]:
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(replacement)
    return None


def per_stage(stage_prefixes: Mapping[str, str], block_rules: Rules) -> Rules:
    """Residual-block rules written once, repeated for each stage: source prefix + pattern -> stage + replacement."""
    return tuple(
        (re.escape(source) + r"\." + pattern, f"{stage}.{replacement}")
        for source, stage in stage_prefixes.items()
        for pattern, replacement in block_rules
    )


# ----------------------------------------------------------------------------- torchvision 2D ResNets

# layer1..layer4 are res2..res5; conv1/2/3 and bn1/2/3 are a/b/c; downsample is the shortcut projection.
TORCHVISION_BLOCK_RULES = (
    (r"(\d+)\.conv1\.weight", r"\1.conv_a.weight"),
    (r"(\d+)\.conv2\.weight", r"\1.conv_b.weight"),
    (r"(\d+)\.conv3\.weight", r"\1.conv_c.weight"),
    (r"(\d+)\.bn1\.(\w+)", r"\1.bn_a.\2"),
    (r"(\d+)\.bn2\.(\w+)", r"\1.bn_b.\2"),
    (r"(\d+)\.bn3\.(\w+)", r"\1.bn_c.\2"),
    (r"(\d+)\.downsample\.0\.weight", r"\1.proj_conv.weight"),
    (r"(\d+)\.downsample\.1\.(\w+)", r"\1.proj_bn.\2"),
)
# No rule for fc: ImageNet's 1000 classes are not the video classes, so the classifier stays unmatched.
TORCHVISION_RULES = (
    (r"conv1\.weight", "stem.conv.weight"),
    (r"bn1\.(\w+)", r"stem.bn.\1"),
    *per_stage({f"layer{k + 1}": stage for k, stage in enumerate(STAGES)}, TORCHVISION_BLOCK_RULES),
)
IMAGENET_DEPTHS = (50, 101)


def inflate_kernel(weight_2d: torch.Tensor, frames: int) -> torch.Tensor:
    """[O, I, H, W] -> [O, I, frames, H, W]: the 2D kernel repeated over time and divided by `frames`.

    On a clip of one repeated image the inflated conv then gives the 2D conv's response (away from the
    temporal padding), which is what makes ImageNet weights a useful start for a video model (I3D paper).
    """
    return weight_2d.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames


def inflate_2d_state_dict(state_2d: Mapping[str, torch.Tensor], model: nn.Module):
    """A torchvision 2D ResNet state dict in `model`'s names, each kernel inflated to the model's own length.

    Returns (state, unused source keys); the classifier `fc.*` is among the unused keys.
    """
    state, unused = rename_keys(state_2d, TORCHVISION_RULES)
    target_shapes = {key: value.shape for key, value in model.state_dict().items()}
    return {key: _inflated(value, target_shapes.get(key)) for key, value in state.items()}, unused


def _inflated(value: torch.Tensor, target_shape: Optional[torch.Size]) -> torch.Tensor:
    if value.dim() == 4 and target_shape is not None and len(target_shape) == 5:
        return inflate_kernel(value, target_shape[2])
    return value


def imagenet_state_dict(depth: int) -> Dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet-50/101 (IMAGENET1K_V1, the original recipe); downloaded on first use."""
    if depth not in IMAGENET_DEPTHS:
        raise ValueError(f"ImageNet weights exist for ResNet depths {IMAGENET_DEPTHS}, not {depth}")
    import torchvision  # here, not at the top: its import costs every command about a second

    return torchvision.models.get_model(f"resnet{depth}", weights="IMAGENET1K_V1").state_dict()


def _is_torchvision_resnet(content) -> bool:
    conv1 = content.get("conv1.weight") if isinstance(content, dict) else None
    return isinstance(conv1, torch.Tensor) and conv1.dim() == 4


# ------------------------------------------------------------------------------ PyTorchVideo model zoo

# Inside one stage of blocks.N.res_blocks: branch2 is the residual branch, branch1 the projection shortcut.
PYTORCHVIDEO_BLOCK_RULES = (
    (r"(\d+)\.branch2\.conv_([abc])\.weight", r"\1.conv_\2.weight"),
    (r"(\d+)\.branch2\.norm_([abc])\.(\w+)", r"\1.bn_\2.\3"),
    (r"(\d+)\.branch1_conv\.weight", r"\1.proj_conv.weight"),
    (r"(\d+)\.branch1_norm\.(\w+)", r"\1.proj_bn.\2"),
)


def pytorchvideo_rules(state: Mapping[str, torch.Tensor]) -> Rules:
    """The rules for one PyTorchVideo ResNet, whose `blocks` indices depend on the model.

    c2d_r50 and i3d_r50 have a pooling module between res2 and res3 (stages at blocks 1, 3, 4, 5), slow_r50
    has none (blocks 1..4), so the stages are the indices that hold `res_blocks`, in order.
    """
    indices = sorted({int(m[1]) for m in map(re.compile(r"blocks\.(\d+)\.res_blocks\.").match, state) if m})
    if len(indices) != len(STAGES):
        raise CheckpointError(f"expected {len(STAGES)} PyTorchVideo stages holding res_blocks, found blocks {indices}")
    stage_prefixes = {f"blocks.{index}.res_blocks": stage for index, stage in zip(indices, STAGES)}
    return (
        (r"blocks\.0\.conv\.weight", "stem.conv.weight"),
        (r"blocks\.0\.norm\.(\w+)", r"stem.bn.\1"),
        *per_stage(stage_prefixes, PYTORCHVIDEO_BLOCK_RULES),
        (r"blocks\.\d+\.proj\.(weight|bias)", r"head.fc.\1"),
    )


def convert_pytorchvideo(state: Mapping[str, torch.Tensor]):
    """A PyTorchVideo ResNet state dict in our names; returns (state, unused source keys)."""
    return rename_keys(state, pytorchvideo_rules(state))


def _is_pytorchvideo_checkpoint(content) -> bool:
    return isinstance(content, dict) and isinstance(content.get("model_state"), dict)


def load_pytorchvideo_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of a model-zoo file, `{"model_state": state_dict, ...}` as PySlowFast saves it."""
    content = _load_weights_only(path)
    if not _is_pytorchvideo_checkpoint(content):
        raise CheckpointError(
            f"{path}: expected a PyTorchVideo checkpoint {{'model_state': ...}}, found {_describe(content)}"
        )
    return content["model_state"]


CLASSIFIER_KEYS = ("head.fc.weight", "head.fc.bias")


# --------------------------------------------------------------------------- Caffe2 (video-nonlocal-net)

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
        raise CheckpointError(f"{path}: expected a dict of Caffe2 blobs, found {_describe(content)}")
    return blobs


def convert_caffe2(blobs: Mapping[str, np.ndarray], model: nn.Module, bgr_to_rgb: bool = False):
    """Caffe2 blobs in `model`'s names; returns (state, unused blob names).

    The classifier may be stored conv-shaped ([K, C, 1, 1, 1]); it is the same matrix. With `bgr_to_rgb`
    the stem's input channels are reversed, for a model trained on BGR frames that will now read RGB.
    """
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


# ----------------------------------------------------------------------------------- our checkpoints


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
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
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


def is_videonl_checkpoint(content) -> bool:
    return isinstance(content, dict) and isinstance(content.get("model"), dict) and isinstance(content.get("cfg"), str)


def load_checkpoint(path: str) -> dict:
    """One of our checkpoints: `{"model": state_dict, "cfg": yaml, ...}`."""
    content = _load_weights_only(path)
    if not is_videonl_checkpoint(content):
        raise CheckpointError(
            f"{path} is not a videonl checkpoint: expected a dict with 'model' (a state dict) and 'cfg' (YAML), "
            f"found {_describe(content)}"
        )
    return content


def _load_weights_only(path: str):
    """`torch.load` that runs no code from the file; a refused or unreadable file names itself.

    torch.load fails in many ways (UnpicklingError for a refused object, KeyError or RuntimeError for a
    file of another kind), so every failure becomes the same CheckpointError, the cause chained.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} cannot be read as a weights-only torch file: {err!r}") from err


def _describe(content) -> str:
    if isinstance(content, dict):
        keys = list(content)
        return f"a dict with keys {keys[:8]}{' ...' if len(keys) > 8 else ''}"
    return f"a {type(content).__name__}"


# -------------------------------------------------------------------------------------------- loading


class LoadReport(NamedTuple):
    """Keys that did not simply land: the model's without a value, the state's without a place, and the
    ones skipped for a shape mismatch."""

    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]


def load_state_dict_checked(
    model: nn.Module, state: Mapping[str, torch.Tensor], skip_mismatched: bool = False
) -> LoadReport:
    """Load `state` into `model` and name every key that did not land.

    Missing and unexpected keys are normal in some loads (an inflated ImageNet model has no classifier), so
    they are logged and returned. A shape mismatch means another architecture and fails, listing both shapes,
    unless `skip_mismatched` (e.g. a classifier for another number of classes).
    """
    model_shapes = {key: value.shape for key, value in model.state_dict().items()}
    mismatched = {
        key: (tuple(value.shape), tuple(model_shapes[key]))
        for key, value in state.items()
        if key in model_shapes and value.shape != model_shapes[key]
    }
    if mismatched and not skip_mismatched:
        lines = (f"  {key}: checkpoint {source} vs model {target}" for key, (source, target) in mismatched.items())
        raise CheckpointError("weights do not fit the model (shape mismatch):\n" + "\n".join(lines))
    result = model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    report = LoadReport(
        missing=[key for key in result.missing_keys if key not in mismatched],
        unexpected=list(result.unexpected_keys),
        mismatched=list(mismatched),
    )
    _log_report(report)
    return report


def _log_report(report: LoadReport) -> None:
    problems = (
        ("model keys the weights do not provide", report.missing),
        ("weights the model has no place for", report.unexpected),
        ("weights skipped for a shape mismatch", report.mismatched),
    )
    for what, keys in problems:
        if keys:
            logger.warning("%d %s: %s", len(keys), what, ", ".join(keys))


def initialize(model: nn.Module, init: str, depth: int = 50) -> LoadReport:
    """Load MODEL.INIT into `model`: "imagenet", a `.pth`/`.pt`/`.pyth` (ours, a torchvision 2D ResNet, a
    PyTorchVideo model-zoo file) or a Caffe2 `.pkl`.

    A classifier for another number of classes (fine-tuning Kinetics -> UCF101) is left at its fresh
    initialisation and logged; any other shape mismatch fails.
    """
    state, unused = _initial_state(model, init, depth)
    if unused:
        logger.info("MODEL.INIT %s: %d source keys not used: %s", init, len(unused), ", ".join(unused))
    state = _without_other_classifier(model, dict(state), init)
    return load_state_dict_checked(model, state)


def load_weights(model: nn.Module, path: str, depth: int = 50) -> None:
    """Load every weight of `model` from `path` (any format `initialize` reads) for evaluation or analysis:
    nothing may be missing, left over or re-initialised, so weights of another model or class count fail,
    naming the keys."""
    state, _ = _initial_state(model, path, depth)
    report = load_state_dict_checked(model, state)
    if report.missing or report.unexpected:
        raise CheckpointError(f"{path} does not fit the model: {len(report.missing)} weights missing "
                              f"({', '.join(report.missing[:5])}), {len(report.unexpected)} without a place "
                              f"({', '.join(report.unexpected[:5])})")


def _without_other_classifier(model: nn.Module, state: Dict[str, torch.Tensor], init: str):
    target = model.state_dict()
    classifier = [key for key in CLASSIFIER_KEYS
                  if key in state and key in target and state[key].shape != target[key].shape]
    if classifier:
        logger.info("MODEL.INIT %s: its classifier has %d classes, the model %d: head.fc re-initialised", init,
                    state["head.fc.weight"].shape[0], target["head.fc.weight"].shape[0])
    return {key: value for key, value in state.items() if key not in classifier}


WEIGHT_FILES = (".pth", ".pt", ".pyth", ".pkl")


def _check_weights_source(init: str) -> str:
    """The extension of a weights file MODEL.INIT may name; fails clearly on anything else."""
    extension = os.path.splitext(init)[1]
    if extension not in WEIGHT_FILES or not os.path.isfile(init):
        raise ValueError(f"MODEL.INIT must be '', 'imagenet' or an existing .pth, .pt, .pyth or .pkl file; "
                         f"got '{init}'")
    return extension


def _initial_state(model: nn.Module, init: str, depth: int):
    if init == "imagenet":
        return inflate_2d_state_dict(imagenet_state_dict(depth), model)
    if _check_weights_source(init) == ".pkl":
        return convert_caffe2(load_caffe2_blobs(init), model)
    content = _load_weights_only(init)
    if is_videonl_checkpoint(content):
        return content["model"], []
    if _is_torchvision_resnet(content):
        return inflate_2d_state_dict(content, model)
    if _is_pytorchvideo_checkpoint(content):
        return convert_pytorchvideo(content["model_state"])
    raise CheckpointError(
        f"{init} is neither a videonl checkpoint, a torchvision 2D ResNet nor a PyTorchVideo checkpoint: "
        f"found {_describe(content)}"
    )


# ------------------------------------------------------------------------------- what weights expect


class WeightsMetadata(NamedTuple):
    """What a weights source says beside its weights: the input they expect and the class names by index
    (None where it does not say)."""

    input: Optional[InputSpec]
    classes: Optional[List[str]]


def read_weights_metadata(init: str) -> WeightsMetadata:
    """The metadata of anything MODEL.INIT may name. Ours record both; the other releases' input is known
    from their training code (see `input_spec`): a Caffe2 `.pkl` is a non-local release model, a
    `{"model_state": ...}` file a PyTorchVideo one, a 2D ResNet (or "imagenet") torchvision's."""
    if not init:
        return WeightsMetadata(None, None)
    if init == "imagenet":
        return WeightsMetadata(IMAGENET_INPUT, None)
    if _check_weights_source(init) == ".pkl":
        return WeightsMetadata(CAFFE2_INPUT, None)
    content = _load_weights_only(init)
    if is_videonl_checkpoint(content):
        record = content.get("input")
        return WeightsMetadata(InputSpec.from_record(record) if record else None, content.get("classes"))
    if _is_torchvision_resnet(content):
        return WeightsMetadata(IMAGENET_INPUT, None)
    if _is_pytorchvideo_checkpoint(content):
        return WeightsMetadata(PYTORCHVIDEO_INPUT, None)
    return WeightsMetadata(None, None)


def cfg_for_weights(cfg, init: str):
    """`cfg` feeding the input the weights of `init` expect, unless the config sets its own (see `adopt_input`)."""
    return adopt_input(cfg, read_weights_metadata(init).input, init)
