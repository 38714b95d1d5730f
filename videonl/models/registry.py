"""Context blocks by name, and the placement spec that says which residual blocks get one.

A context block is an `nn.Module` on `[B, C, T, H, W]` that keeps the shape. Its module declares it with
`@register_context_block("name", settings=NodeSpec("NODE", KEY=(default, "comment"), ...))`: the node becomes
part of every config (`get_cfg()`), and `CONTEXT.BLOCK name` builds the block with its classmethod
`from_config(settings, site)`, which turns the node's values into constructor arguments. The backbone says
where the block goes and what it must fit (`Site`: stage, channels, stride, the backbone's norm), so a block
reads nothing else of the config. A new block is therefore one module (in `context/`, or anywhere on the path
and named in VIDEONL_PLUGINS, see `config.PLUGINS_ENV`) and a YAML file that names it.

At position `conv_b` the block takes the place of a bottleneck's 3x3 conv and its BN: such a block sets
`replaces_conv_b = True` and its site has the bottleneck's inner width and the conv's spatial stride.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from fvcore.common.config import CfgNode
from torch import nn

from videonl.config import NodeSpec
from videonl.class_registry import ClassRegistry

STAGES = ("res2", "res3", "res4", "res5")
POSITIONS = ("after_block", "after_conv_c", "after_add", "conv_b")

Norm = Callable[[int], nn.Module]


@dataclass(frozen=True)
class Site:
    """Where the backbone puts a block: it maps `[B, dim, T, H, W]` to `[B, dim, T, H/stride, W/stride]` in
    `stage` (stride > 1 only for a block that replaces a strided 3x3 conv) and normalises with `norm`."""

    stage: str
    dim: int
    stride: int = 1
    norm: Norm = nn.BatchNorm3d


CONTEXT_BLOCKS = ClassRegistry("context block", "CONTEXT.BLOCK", "from_config(settings, site)")


def register_context_block(name: str, settings: Optional[NodeSpec] = None) -> Callable[[type], type]:
    """Class decorator: make a context block available as `CONTEXT.BLOCK name`, its `settings` node in the config.

    Blocks may share one node (the GCNet presets share GC).
    """
    return CONTEXT_BLOCKS.register(name, settings)


def context_block_names() -> Tuple[str, ...]:
    return CONTEXT_BLOCKS.names()


def context_block_class(name: str) -> type:
    return CONTEXT_BLOCKS.entry(name).cls


def registered_name(block: nn.Module) -> str:
    """The CONTEXT.BLOCK name of a block's class (its class name when it is not registered)."""
    return CONTEXT_BLOCKS.name_of(block)


def is_context_block(module: nn.Module) -> bool:
    """Whether `module` is a block of a registered class: how the tools find the blocks a backbone placed."""
    return CONTEXT_BLOCKS.holds(module)


def block_settings(cfg: CfgNode, name: str) -> Optional[CfgNode]:
    """The values of block `name`'s own node in `cfg` (None for a block without settings)."""
    return CONTEXT_BLOCKS.settings(cfg, name)


def site_for(name: str, stage: str, dim_inner: int, dim_out: int, stride: int, norm: Norm) -> Site:
    """The site of block `name` in a bottleneck of `stage`: its 3x3 conv's (`conv_b` blocks) or its output's."""
    if getattr(context_block_class(name), "replaces_conv_b", False):
        return Site(stage, dim_inner, stride, norm)
    return Site(stage, dim_out, 1, norm)


def build_context_block(cfg: CfgNode, name: str, site: Site) -> nn.Module:
    """Block `name` at `site`, with its settings from `cfg`."""
    return context_block_class(name).from_config(block_settings(cfg, name), site)


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


def context_factory(cfg, blocks_per_stage) -> Callable[..., Optional[nn.Module]]:
    """`make(stage, index, dim_inner, dim_out, stride, norm)` returns the block for that residual block, or None."""
    places = placement(cfg, blocks_per_stage)
    if not places:
        return lambda *where: None
    name = cfg.CONTEXT.BLOCK
    block_class, settings = context_block_class(name), block_settings(cfg, name)
    if (cfg.CONTEXT.POSITION == "conv_b") != getattr(block_class, "replaces_conv_b", False):
        raise ValueError(f"CONTEXT.BLOCK '{name}' cannot go at CONTEXT.POSITION '{cfg.CONTEXT.POSITION}': "
                         "conv_b takes exactly the blocks that replace the 3x3 conv (replaces_conv_b)")

    def make(stage: str, index: int, dim_inner: int, dim_out: int, stride: int, norm: Norm) -> Optional[nn.Module]:
        if (stage, index) not in places:
            return None
        return block_class.from_config(settings, site_for(name, stage, dim_inner, dim_out, stride, norm))

    return make
