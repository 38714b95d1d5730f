"""The contract by which a context block shows its attention to the analysis tools (`videonl analyze`).

A block that weighs positions by attention maps implements `AttentionBlock`: what its attention is
(`attention_kind`), how the positions of an input are grouped into queries and keys (`attention_windows`),
and the maps of chosen queries (`attention_maps`), computed by the block's own code. The tools find such
blocks by this contract alone, so a new block with attention is analysed without changing them.
"""

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch

from videonl.models.context.windows import Window


@dataclass(frozen=True)
class AttentionKind:
    """What a block's attention computes, for the analysis tables and measures."""

    description: str  # e.g. "embedded_gaussian spacetime"; the tables put the block's registered name before it
    distributions: bool  # each map sums to 1 over its keys, so distances between distributions apply
    shared: bool = False  # one map for every query (attention pooling): distances between queries' maps are 0


@runtime_checkable
class AttentionBlock(Protocol):
    """A block whose queries are the positions of its input `[B, C, T, H, W]`, grouped into windows that attend
    separately, and whose keys come from a grid of the same or a pooled size."""

    attention_kind: Optional[AttentionKind]  # None: this instance does not attend (SE's average pooling)

    def attention_windows(self, shape: Sequence[int]) -> Tuple[Window, Window, Window]:
        """(query window in the input grid, key window in the key grid, key grid T x H x W) for `shape`."""

    def attention_maps(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """[B * windows, len(rows), keys]: the maps of query `rows` (positions within a window) of every window,
        windows in the order `windows.to_windows` groups them."""
