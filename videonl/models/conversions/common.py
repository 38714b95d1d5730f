"""What every foreign format shares: renaming keys by rules, reading a torch file safely, naming what was found.

A foreign checkpoint reaches our parameter names through a table of (regex, replacement) rules applied by
`rename_keys`, so supporting new blobs is adding rows. Every format holds a ResNet, and the rules write the
`resnet3d` backbone's names, so a model of another backbone is refused by name (`require_resnet3d`).
"""

import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

import torch
from torch import nn

from videonl.models.backbones import BACKBONES
from videonl.models.resnet3d import VideoResNet

Rules = Sequence[Tuple[str, str]]  # (pattern matching a whole source key, replacement as in re.sub)
Value = TypeVar("Value")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file or the keys and says why."""


def require_resnet3d(model: nn.Module, source_format: str) -> None:
    """CheckpointError unless `model` is a resnet3d model, the only backbone the foreign formats convert to."""
    if not isinstance(model, VideoResNet):
        raise CheckpointError(f"{source_format} weights convert to the resnet3d backbone's parameters only, not to "
                              f"MODEL.BACKBONE '{BACKBONES.name_of(model)}'")


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


def load_weights_only(path: str):
    """`torch.load` that runs no code from the file; a refused or unreadable file names itself.

    torch.load fails in many ways (UnpicklingError for a refused object, KeyError or RuntimeError for a
    file of another kind), so every failure becomes the same CheckpointError, the cause chained.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} cannot be read as a weights-only torch file: {err!r}") from err


def describe(content) -> str:
    """A short description of what a file held, for error messages."""
    if isinstance(content, dict):
        keys = list(content)
        return f"a dict with keys {keys[:8]}{' ...' if len(keys) > 8 else ''}"
    return f"a {type(content).__name__}"
