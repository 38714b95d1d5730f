"""What the attention tools share: a trained model, a clip as the model sees it, and the blocks' attention.

A *probe* gives one view of every attention block: where its queries sit (positions grouped into the
windows the block attends within), and the attention map of chosen query rows, computed by the block's own
code. Non-local blocks attend within windows (whole clip, a frame, a pixel track, a group of frames); GC and
SNL blocks pool the whole clip with one softmax map that every position shares.
"""

import abc
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..data.datasets import VideoDataset, VideoRecord
from ..data.decode import DecodeError
from ..data.loader import model_input
from ..engine.runtime import memory_format
from ..models.context.global_context import GlobalContext
from ..models.context.non_local import NonLocal, to_windows
from ..models.registry import context_block_class, context_block_names


Window = Tuple[int, int, int]
SOFTMAX_INSTANTIATIONS = ("gaussian", "embedded_gaussian")


# ------------------------------------------------------------------------------------ model and clip


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def centred_clip(cfg, path: str, device: torch.device) -> torch.Tensor:
    """The validation view of a video, normalised: [1, C, T, crop, crop], the centred clip, short side
    DATA.TRAIN_JITTER_SCALES[0], centre crop DATA.TRAIN_CROP_SIZE. Raises DecodeError for a bad video."""
    item = VideoDataset([VideoRecord(str(path), -1)], "val", cfg)[0]
    if item["views"] is None:
        raise DecodeError(str(path), item["error"])
    return model_input(item["views"].cut(), cfg, device, memory_format(cfg))


def denormalised_frames(clip: torch.Tensor, cfg) -> torch.Tensor:
    """[1, C, T, H, W] model input -> [T, H, W, C] RGB in [0, 1], the frames as the model saw them."""
    mean = torch.tensor(cfg.DATA.MEAN).view(-1, 1, 1, 1)
    std = torch.tensor(cfg.DATA.STD).view(-1, 1, 1, 1)
    frames = (clip[0].float().cpu() * std + mean).clamp(0, 1)
    return (frames.flip(0) if cfg.DATA.CHANNEL_ORDER == "BGR" else frames).permute(1, 2, 3, 0)


# ------------------------------------------------------------------------------------------- probes


def grid_indices(grid: Sequence[int], window: Window) -> torch.Tensor:
    """[windows, positions]: the flat index in a T x H x W `grid` of each position of each window,
    in the order `to_windows` groups them."""
    flat = torch.arange(int(torch.tensor(grid).prod())).view(1, 1, *grid)
    return to_windows(flat, window)[..., 0]


class Probe(abc.ABC):
    """One attention block's queries and attention maps on its input `x` [B, C, T, H, W]."""

    shared_map = False  # one map for all queries (attention pooling), so attention distances are 0

    def __init__(self, name: str, block: nn.Module):
        self.name, self.block = name, block

    @property
    def stage(self) -> str:
        return self.name.split(".")[0]

    @abc.abstractmethod
    def windows(self, shape: Sequence[int]) -> Tuple[Window, Window]:
        """(query window, key window) in positions of the input grid and of the key grid."""

    @abc.abstractmethod
    def key_grid(self, shape: Sequence[int]) -> Window:
        """T x H x W of the map the keys are taken from."""

    @abc.abstractmethod
    def attention(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """[windows, len(rows), keys]: the attention of query `rows` (positions within a window) of every window."""

    @property
    @abc.abstractmethod
    def kind(self) -> str:
        """What the block computes, for the table (the instantiation and how positions are grouped)."""

    @property
    @abc.abstractmethod
    def distributions(self) -> bool:
        """Whether each attention map sums to 1 over its keys, so that distances between distributions apply."""

    def queries(self, v: torch.Tensor) -> torch.Tensor:
        """A map of the input's shape as [windows, positions, channels], grouped as the block's queries."""
        return to_windows(v, self.windows(v.shape)[0])


class NonLocalProbe(Probe):
    def windows(self, shape):
        return self.block.windows(shape)

    def key_grid(self, shape):
        pool = self.block.pool.kernel_size if self.block.pool is not None else (1, 1, 1)
        return tuple(n // p for n, p in zip(shape[2:], pool))

    def attention(self, x, rows):
        q, k, _ = self.block.embed(x)
        return self.block.attention_weights(q[:, rows], k)

    @property
    def kind(self):
        block = self.block
        group = f" (groups of {block.frames_per_group} frames)" if block.frames_per_group else ""
        return f"nonlocal {block.instantiation} {block.mode}{group}"

    @property
    def distributions(self):
        return self.block.instantiation in SOFTMAX_INSTANTIATIONS


class AttentionPoolingProbe(Probe):
    """GC / SNL: every position is a query of one whole-clip window, all with the pooling's one map."""

    shared_map = True

    def windows(self, shape):
        return tuple(shape[2:]), tuple(shape[2:])

    def key_grid(self, shape):
        return tuple(shape[2:])

    def attention(self, x, rows):
        shared = self.block.attention(x)  # [B, 1, T*H*W]
        return shared.expand(-1, len(rows), -1)

    @property
    def kind(self):
        return f"{registered_name(self.block)} attention pooling"

    @property
    def distributions(self):
        return True


def registered_name(block: nn.Module) -> str:
    """The CONTEXT.BLOCK name of a block's class (its class name when it is not registered)."""
    names = [name for name in context_block_names() if context_block_class(name) is type(block)]
    return names[0] if names else type(block).__name__


def attention_probes(model: nn.Module) -> List[Probe]:
    """A probe for every non-local block and every GC / SNL block (attention pooling), in forward order."""
    probes = []
    for name, module in model.named_modules():
        if isinstance(module, NonLocal):
            probes.append(NonLocalProbe(name, module))
        elif isinstance(module, GlobalContext) and module.mask is not None:
            probes.append(AttentionPoolingProbe(name, module))
    if not probes:
        raise ValueError("the model has no non-local blocks and no GC / SNL blocks (attention pooling) to analyse")
    return probes


def select_probes(probes: List[Probe], block: Optional[str]) -> List[Probe]:
    """The probe named `block` (all when None); an unknown name fails listing the names there are."""
    if block is None:
        return probes
    chosen = [probe for probe in probes if probe.name == block]
    if not chosen:
        raise ValueError(f"no attention block named '{block}'; the model has: {', '.join(p.name for p in probes)}")
    return chosen


@dataclass
class BlockIO:
    input: torch.Tensor
    output: torch.Tensor


@torch.no_grad()
def capture_block_io(model: nn.Module, probes: List[Probe], clips: torch.Tensor) -> Dict[str, BlockIO]:
    """Run `clips` through the model (in eval mode: batch statistics would mix the clips) and keep each
    probed block's input and output."""
    if model.training:
        raise ValueError("the model must be in eval mode (model.eval()) for attention analysis")
    captured = {}

    def keep(name):
        return lambda module, inputs, output: captured.__setitem__(name, BlockIO(inputs[0], output))

    hooks = [probe.block.register_forward_hook(keep(probe.name)) for probe in probes]
    try:
        model.features(clips)  # the blocks' inputs and outputs are all it needs: no classifier output
    finally:
        for hook in hooks:
            hook.remove()
    return captured
