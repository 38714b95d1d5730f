"""Context blocks by name, and the placement spec that says which residual blocks get one.

A context block is an `nn.Module` on `[B, C, T, H, W]` that keeps the shape. It is registered with
`@register_context_block("name")` and built by its `from_config(cfg, dim, stage)` classmethod, so a new
block is one registered class plus a YAML file that names it.

At position `conv_b` the block takes the place of a bottleneck's 3x3 conv and its BN: such a block sets
`replaces_conv_b = True` and is built by `from_config(cfg, dim_inner, stage, stride)`, mapping
`[B, dim_inner, T, H, W]` to `[B, dim_inner, T, H/stride, W/stride]`.
"""

from typing import Callable, Dict, Optional, Tuple

from torch import nn

STAGES = ("res2", "res3", "res4", "res5")
POSITIONS = ("after_block", "after_conv_c", "after_add", "conv_b")

_CONTEXT_BLOCKS: Dict[str, type] = {}


def register_context_block(name: str) -> Callable[[type], type]:
    """Class decorator: make a context block available as `CONTEXT.BLOCK name`."""

    def register(cls: type) -> type:
        if name in _CONTEXT_BLOCKS:
            raise ValueError(f"context block '{name}' is already registered by {_CONTEXT_BLOCKS[name].__name__}")
        if not hasattr(cls, "from_config"):
            raise TypeError(f"context block {cls.__name__} needs a from_config(cfg, dim, stage) classmethod")
        _CONTEXT_BLOCKS[name] = cls
        return cls

    return register


def context_block_names() -> Tuple[str, ...]:
    return tuple(sorted(_CONTEXT_BLOCKS))


def context_block_class(name: str) -> type:
    if name not in _CONTEXT_BLOCKS:
        known = ", ".join(context_block_names()) or "none registered"
        raise KeyError(f"CONTEXT.BLOCK '{name}' is not a registered context block (known: {known})")
    return _CONTEXT_BLOCKS[name]


def placement(cfg, blocks_per_stage) -> Dict[Tuple[str, int], None]:
    """The (stage, block index) pairs that get a context block, checked against the backbone's depth."""
    spec = {stage: list(cfg.CONTEXT[stage.upper()]) for stage in STAGES}
    if cfg.CONTEXT.POSITION not in POSITIONS:
        raise ValueError(f"CONTEXT.POSITION '{cfg.CONTEXT.POSITION}' must be one of {', '.join(POSITIONS)}")
    if not cfg.CONTEXT.BLOCK:
        if any(spec.values()):
            raise ValueError(f"CONTEXT.RES2..RES5 place blocks {spec} but CONTEXT.BLOCK names none")
        return {}
    if not any(spec.values()):
        raise ValueError(f"CONTEXT.BLOCK '{cfg.CONTEXT.BLOCK}' is set but CONTEXT.RES2..RES5 are all empty")
    places = {}
    for stage, depth in zip(STAGES, blocks_per_stage):
        for index in spec[stage]:
            if not 0 <= index < depth:
                raise ValueError(f"CONTEXT.{stage.upper()} index {index} is outside {stage}'s {depth} blocks")
            places[(stage, index)] = None
    return places


def context_factory(cfg, blocks_per_stage) -> Callable[[str, int, int, int, int], Optional[nn.Module]]:
    """`make(stage, index, dim_inner, dim_out, stride)` returns the block for that residual block, or None."""
    places = placement(cfg, blocks_per_stage)
    block_class = context_block_class(cfg.CONTEXT.BLOCK) if places else None
    replaces_conv_b = cfg.CONTEXT.POSITION == "conv_b"
    if places and replaces_conv_b != getattr(block_class, "replaces_conv_b", False):
        raise ValueError(f"CONTEXT.BLOCK '{cfg.CONTEXT.BLOCK}' cannot go at CONTEXT.POSITION '{cfg.CONTEXT.POSITION}': "
                         "conv_b takes exactly the blocks that replace the 3x3 conv (replaces_conv_b)")

    def make(stage: str, index: int, dim_inner: int, dim_out: int, stride: int) -> Optional[nn.Module]:
        if (stage, index) not in places:
            return None
        if replaces_conv_b:
            return block_class.from_config(cfg, dim_inner, stage, stride)
        return block_class.from_config(cfg, dim_out, stage)

    return make
