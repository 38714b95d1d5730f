"""The non-local block (Wang et al., CVPR 2018): y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j), z = W_z y + x.

Four pairwise functions f with their normalisers C(x) (paper, Section 3.2):
  gaussian            exp(x_i . x_j)             softmax over j
  embedded_gaussian   exp(theta(x_i) . phi(x_j)) softmax over j (the default; the official code scales the
                                                 logits by 1/sqrt(d))
  dot_product         theta(x_i) . phi(x_j)      1/N, N the number of positions j
  concatenation       ReLU(w . [theta(x_i), phi(x_j)])  1/N

As in the official code and PyTorchVideo, phi and g see the input max-pooled by `pool` (1x2x2 by default).
Positions attend within windows: the whole clip (spacetime), one frame (space), one pixel's track through
time (time), or a group of frames (the 128-frame models' res3). A window only regroups positions into
the attention's batch, so every mode runs the same code.
"""

from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from videonl.config import ConfigError, NodeSpec
from videonl.models.context.attention import AttentionKind
from videonl.models.context.windows import Window, from_windows, to_windows
from videonl.models.norm import learns
from videonl.models.registry import STAGES, Site, register_context_block

INSTANTIATIONS = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
SOFTMAX_INSTANTIATIONS = ("gaussian", "embedded_gaussian")  # whose maps sum to 1 over the keys
MODES = ("spacetime", "space", "time")
INIT_STD = 0.01  # Gaussian init of the block's convs, as the official code


FAST_PATH_MIN_RATIO = 4  # fast paths where the [L, M] matrix is 4x the [L + M, d] inputs (BENCHMARKS.md)


def attention_matrix_dominates(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether the [L, M] attention matrix dwarfs the inputs, so that not holding it pays off.

    On the 2-core CPU the fused kernel was 1.4x faster than the plain products at the 128-frame res3 shape
    (ratio 9.8) and up to 7% slower at ratios 1.2-2.5, where the matrix is small anyway.
    """
    return q.shape[1] * k.shape[1] > FAST_PATH_MIN_RATIO * (q.shape[1] + k.shape[1]) * q.shape[2]


def attend_without_matrix(q, k, v, instantiation: str, scale: float) -> torch.Tensor:
    """The attention's output, never holding the [L, M] matrix in memory (softmax and dot product only).

    Softmax: the fused kernel. The CPU's fused kernel takes only inputs whose channels are contiguous; given
    strided windows (a whole clip is a transposed view) it falls back silently to the plain computation,
    hence the copies. Dot product: q (k^T v) / M reassociates (q k^T / M) v, the same numbers in
    (L + M) d^2 multiply-adds instead of 2 L M d. The softmax inputs go in as one head, [windows, 1, positions,
    channels]: the ONNX exporter translates only 4-D attention.
    """
    if instantiation == "dot_product":
        return q @ (k.transpose(1, 2) @ v) / k.shape[1]
    q, k, v = (t.contiguous().unsqueeze(1) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, scale=scale).squeeze(1)


SETTINGS = NodeSpec(
    "NONLOCAL",
    INSTANTIATION=("embedded_gaussian", "gaussian | embedded_gaussian | dot_product | concatenation"),
    MODE=("spacetime", "spacetime | space (within each frame) | time (across frames, per position)"),
    FRAMES_PER_GROUP=([0, 0, 0, 0], "per stage res2..res5: attend within n-frame groups (0: the whole clip)"),
    INNER_RATIO=(0.5, "theta, phi, g channels as a fraction of the block's (paper: 1/2)"),
    POOL=([1, 2, 2], "max-pool (t, h, w) of the input of phi and g (official code: 1x2x2)"),
    USE_SCALE=(True, "scale softmax logits by 1/sqrt(d), as the official code does"),
    FAST=(True, "fused / reassociated attention where it applies; False: plain matmuls"),
)


@register_context_block("nonlocal", SETTINGS)
class NonLocal(nn.Module):
    """A residual non-local block on `[B, C, T, H, W]`.

    Args:
        dim: input and output channels.
        dim_inner: channels of theta, phi and g (the paper: dim / 2).
        instantiation: one of INSTANTIATIONS.
        mode: "spacetime", "space" (within each frame) or "time" (across frames at each position).
        frames_per_group: in spacetime mode, attend within groups of this many frames (0: the whole clip).
        pool: max-pool (t, h, w) applied to the input of phi and g.
        use_scale: scale softmax logits by 1/sqrt(d).
        norm: `norm(dim)` after W_z, its gamma starting at 0; None (frozen-BN models, whose norms cannot
            learn) leaves it out and starts W_z at 0. Either way the block starts as the identity.
        fast: use the fused or reassociated attention where it applies (not concatenation).
    """

    def __init__(
        self,
        dim: int,
        dim_inner: int,
        instantiation: str = "embedded_gaussian",
        mode: str = "spacetime",
        frames_per_group: int = 0,
        pool: Sequence[int] = (1, 2, 2),
        use_scale: bool = True,
        norm: Optional[Callable[[int], nn.Module]] = nn.BatchNorm3d,
        fast: bool = True,
    ):
        super().__init__()
        if instantiation not in INSTANTIATIONS:
            raise ConfigError(f"NONLOCAL.INSTANTIATION '{instantiation}' must be one of {', '.join(INSTANTIATIONS)}")
        if mode not in MODES:
            raise ConfigError(f"NONLOCAL.MODE '{mode}' must be one of {', '.join(MODES)}")
        if frames_per_group and mode != "spacetime":
            raise ConfigError(f"NONLOCAL.FRAMES_PER_GROUP groups frames in spacetime mode only, not in '{mode}'")
        self.instantiation, self.mode, self.frames_per_group = instantiation, mode, frames_per_group
        self.use_scale, self.fast = use_scale, fast
        self.pool = nn.MaxPool3d(tuple(pool), tuple(pool)) if any(p > 1 for p in pool) else None
        embedded = instantiation != "gaussian"
        self.conv_theta = nn.Conv3d(dim, dim_inner, 1) if embedded else None
        self.conv_phi = nn.Conv3d(dim, dim_inner, 1) if embedded else None
        self.conv_g = nn.Conv3d(dim, dim_inner, 1)
        self.conv_out = nn.Conv3d(dim_inner, dim, 1)
        self.concat_project = nn.Conv1d(2 * dim_inner, 1, 1) if instantiation == "concatenation" else None
        self.bn = norm(dim) if norm is not None else None
        self._init_weights()

    @classmethod
    def from_config(cls, nl, site: Site) -> "NonLocal":
        return cls(
            site.dim,
            int(site.dim * nl.INNER_RATIO),
            instantiation=nl.INSTANTIATION,
            mode=nl.MODE,
            frames_per_group=nl.FRAMES_PER_GROUP[STAGES.index(site.stage)],
            pool=nl.POOL,
            use_scale=nl.USE_SCALE,
            norm=site.norm if learns(site.norm) else None,
            fast=nl.FAST,
        )

    def _init_weights(self) -> None:
        for conv in (self.conv_theta, self.conv_phi, self.conv_g, self.conv_out, self.concat_project):
            if conv is not None:
                nn.init.normal_(conv.weight, std=INIT_STD)
                nn.init.zeros_(conv.bias)
        if self.bn is not None:
            nn.init.zeros_(self.bn.weight)
            nn.init.zeros_(self.bn.bias)
        else:
            nn.init.zeros_(self.conv_out.weight)

    def windows(self, shape: Sequence[int]) -> Tuple[Window, Window]:
        """Query and key windows (t, h, w) for a map of `shape` [B, C, T, H, W]."""
        _, _, t, h, w = shape
        group = self.frames_per_group or t
        query = {"spacetime": (group, h, w), "space": (1, h, w), "time": (t, 1, 1)}[self.mode]
        if t % query[0]:
            raise ConfigError(f"NONLOCAL.FRAMES_PER_GROUP {self.frames_per_group} does not divide {t} frames")
        pool = self.pool.kernel_size if self.pool is not None else (1, 1, 1)
        key = []
        for size, full, stride in zip(query, (t, h, w), pool):
            if size == full:
                key.append(full // stride)
            elif size % stride == 0:
                key.append(size // stride)
            else:
                raise ConfigError(f"NONLOCAL.POOL {tuple(pool)} does not tile '{self.mode}' windows of {query}")
        return query, tuple(key)

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """theta(x), phi(x), g(x) as [windows, positions, channels]: queries of `windows(x.shape)[0]`, keys and
        values of its key window (window order as `to_windows`, batch-major)."""
        pooled = self.pool(x) if self.pool is not None else x
        theta = self.conv_theta(x) if self.conv_theta is not None else x
        phi = self.conv_phi(pooled) if self.conv_phi is not None else pooled
        g = self.conv_g(pooled)
        query_window, key_window = self.windows(x.shape)
        return to_windows(theta, query_window), to_windows(phi, key_window), to_windows(g, key_window)

    def softmax_scale(self, q: torch.Tensor) -> float:
        return q.shape[-1] ** -0.5 if self.use_scale else 1.0

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """f(q_i, k_j) / C(x) as [windows, L, M]; each row sums to 1 for the softmax instantiations."""
        if self.instantiation in SOFTMAX_INSTANTIATIONS:
            return torch.softmax(q @ k.transpose(1, 2) * self.softmax_scale(q), dim=-1)
        if self.instantiation == "dot_product":
            return q @ k.transpose(1, 2) / k.shape[1]
        # w . [q_i, k_j] = w_q . q_i + w_k . k_j: two projections, then a broadcast sum to [n, L, M].
        weight_q, weight_k = self.concat_project.weight[0].split(q.shape[-1])  # [d, 1] each
        return F.relu(q @ weight_q + (k @ weight_k).transpose(1, 2) + self.concat_project.bias) / k.shape[1]

    @property
    def attention_kind(self) -> AttentionKind:
        group = f" (groups of {self.frames_per_group} frames)" if self.frames_per_group else ""
        return AttentionKind(f"{self.instantiation} {self.mode}{group}", self.instantiation in SOFTMAX_INSTANTIATIONS)

    def attention_windows(self, shape: Sequence[int]) -> Tuple[Window, Window, Window]:
        query, key = self.windows(shape)
        pool = self.pool.kernel_size if self.pool is not None else (1, 1, 1)
        return query, key, tuple(n // p for n, p in zip(shape[2:], pool))

    def attention_maps(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The attention of query `rows` (positions within a window) of every window of `x`:
        [B * windows, rows, keys] (see `embed`). For analysis: the forward pass does not hold this matrix
        where the fast path applies."""
        q, k, _ = self.embed(x)
        return self.attention_weights(q[:, rows], k)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """y_i = 1/C(x) sum_j f(q_i, k_j) v_j on [windows, positions, channels].

        The fast path is taken where the attention matrix is the bulk of the work; on small maps the plain
        products are as quick.
        """
        if self.fast and self.instantiation != "concatenation" and attention_matrix_dominates(q, k):
            return attend_without_matrix(q, k, v, self.instantiation, self.softmax_scale(q))
        return self.attention_weights(q, k) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.embed(x)
        query_window, _ = self.windows(x.shape)
        y = from_windows(self.attend(q, k, v), (x.shape[0], v.shape[-1]) + tuple(x.shape[2:]), query_window)
        z = self.conv_out(y)
        return x + (self.bn(z) if self.bn is not None else z)
