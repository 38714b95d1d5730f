"""What the attention tools share: a trained model, a clip as the model sees it, and the blocks' attention.

A *probe* gives one view of every attention block: where its queries sit (positions grouped into the
windows the block attends within), and the attention map of chosen query rows, computed by the block's own
code (the `AttentionBlock` contract). Non-local blocks attend within windows (whole clip, a frame, a pixel track,
a group of frames); GC and SNL blocks pool the whole clip with one softmax map that every position shares.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from videonl.data.datasets import VideoDataset, VideoRecord
from videonl.data.decode import DecodeError
from videonl.data.loader import model_input
from videonl.models.context.attention import AttentionBlock
from videonl.models.context.windows import Window, to_windows
from videonl.models.registry import registered_name


# ------------------------------------------------------------------------------------ model and clip


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def centred_clip(cfg, path: str, device: torch.device) -> torch.Tensor:
    """The validation view of a video, normalised: [1, C, T, crop, crop], the centred clip, short side
    DATA.TRAIN_JITTER_SCALES[0], centre crop DATA.TRAIN_CROP_SIZE. Raises DecodeError for a bad video."""
    item = VideoDataset([VideoRecord(str(path), None)], "val", cfg)[0]
    if item["views"] is None:
        raise DecodeError(str(path), item["error"])
    return model_input(item["views"].cut(), cfg, device)


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


class Probe:
    """One attention block's queries and attention maps on its input `x` [B, C, T, H, W], read through the
    block's `AttentionBlock` contract."""

    def __init__(self, name: str, block: AttentionBlock):
        self.name, self.block = name, block

    @property
    def stage(self) -> str:
        return self.name.split(".")[0]

    @property
    def kind(self) -> str:
        """What the block computes, for the table: its registered name and its attention's description."""
        return f"{registered_name(self.block)} {self.block.attention_kind.description}"

    @property
    def distributions(self) -> bool:
        """Whether each attention map sums to 1 over its keys, so that distances between distributions apply."""
        return self.block.attention_kind.distributions

    @property
    def shared_map(self) -> bool:
        """One map for all queries (attention pooling), so attention distances are 0."""
        return self.block.attention_kind.shared

    def windows(self, shape: Sequence[int]) -> Tuple[Window, Window, Window]:
        """(query window, key window, key grid): the windows in positions of the input grid and of the key grid,
        and the T x H x W of the map the keys are taken from."""
        return self.block.attention_windows(shape)

    def attention(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """[windows, len(rows), keys]: the attention of query `rows` (positions within a window) of every window."""
        return self.block.attention_maps(x, rows)

    def queries(self, v: torch.Tensor) -> torch.Tensor:
        """A map of the input's shape as [windows, positions, channels], grouped as the block's queries."""
        return to_windows(v, self.windows(v.shape)[0])


def attention_probes(model: nn.Module) -> List[Probe]:
    """A probe for every block that attends (non-local, GC / SNL attention pooling, ...), in forward order."""
    probes = [Probe(name, module) for name, module in model.named_modules()
              if isinstance(module, AttentionBlock) and module.attention_kind is not None]
    if not probes:
        raise ValueError("the model has no attention blocks to analyse (non-local, GC / SNL attention pooling, ...)")
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
