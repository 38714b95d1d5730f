"""GCNet's attention statistics (Cao et al., Sec. 3.2, Table 1): does a block attend the same way from
every query position?

Per block, averaged over pairs of query positions (i, j), i != j, within one attention window:
- cosine distance (1 - cos(v_i, v_j)) / 2 for v = the block's input x_i, its residual contribution
  z_i - x_i (output before fusion), and the attention map of query i;
- Jensen-Shannon divergence (nats, at most ln 2) between the attention maps of i and j, for blocks whose
  maps are distributions (softmax instantiations, GC / SNL pooling).
A map shared by all queries (GC / SNL) gives attention distances 0 by construction, and with add fusion
the same residual at every position, so output distance 0 too; the input distance says how different
the positions it pools are.

Windows with more than Q positions contribute a uniform sample of Q of them (the same positions in every
video); all sums are in float64.
"""

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from videonl.analyze.common import Probe, attention_probes, capture_block_io, centred_clip, model_device
from videonl.data.decode import DecodeError

logger = logging.getLogger(__name__)

MEASURES = ("input", "output", "attention", "jsd")


# --------------------------------------------------------------------------------------------- measures


@dataclass
class PairMean:
    """A mean over pairs, kept as its sum and count so that clips and videos add up exactly."""

    total: float = 0.0
    pairs: int = 0

    def __add__(self, other: "PairMean") -> "PairMean":
        return PairMean(self.total + other.total, self.pairs + other.pairs)

    @property
    def mean(self) -> float:
        """NaN without pairs; rounding below zero (identical vectors) reads as 0."""
        return max(self.total / self.pairs, 0.0) if self.pairs else math.nan


def cosine_distance(vectors: torch.Tensor) -> PairMean:
    """(1 - cos) / 2 over pairs of rows within each window of [windows, rows, dim].

    Uses sum_{i != j} u_i . u_j = |sum_i u_i|^2 - n for unit rows u, so it costs O(rows) not O(rows^2).
    A zero row (e.g. the residual of an untrained block) has no direction; its pairs are left out.
    """
    vectors = vectors.double()
    norms = vectors.norm(dim=-1, keepdim=True)
    nonzero = norms > 0
    units = torch.where(nonzero, vectors / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    n = nonzero.sum(dim=(1, 2)).double()
    cosine_sum = (units.sum(dim=1).square().sum(dim=-1) - n) / 2  # over unordered pairs
    pairs = n * (n - 1) / 2
    return PairMean(((pairs - cosine_sum) / 2).sum().item(), int(pairs.sum().item()))


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(dim=-1)


def jensen_shannon(maps: torch.Tensor) -> PairMean:
    """JSD(p_i, p_j) = H((p_i + p_j) / 2) - (H(p_i) + H(p_j)) / 2 over pairs of rows within each window of
    [windows, rows, keys] distributions, in nats."""
    maps = maps.double()
    rows = maps.shape[1]
    own = entropy(maps)
    total = sum(
        (entropy((maps[:, i:i + 1] + maps[:, i + 1:]) / 2) - (own[:, i:i + 1] + own[:, i + 1:]) / 2).sum().item()
        for i in range(rows - 1)
    )
    return PairMean(total, maps.shape[0] * rows * (rows - 1) // 2)


# ------------------------------------------------------------------------------------------- per block


def sample_queries(positions: int, queries: int, seed: int) -> torch.Tensor:
    """Sorted indices of `queries` positions of `positions`, uniform without replacement (all when fewer)."""
    if positions <= queries:
        return torch.arange(positions)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(positions, generator=generator)[:queries].sort().values


@dataclass
class BlockStatistics:
    """One block's pair means, and the layout they were taken on (the same for every clip of a config)."""

    grid: tuple
    windows: int
    positions: int
    queries: int
    means: Dict[str, PairMean] = field(default_factory=dict)
    clips: int = 1

    def __add__(self, other: "BlockStatistics") -> "BlockStatistics":
        means = {key: self.means[key] + other.means[key] for key in self.means}
        return BlockStatistics(self.grid, self.windows, self.positions, self.queries, means, self.clips + other.clips)


@torch.no_grad()
def block_statistics(probe: Probe, x: torch.Tensor, output: torch.Tensor, queries: int, seed: int) -> BlockStatistics:
    """The pair means of one clip ([1, C, T, H, W] block input and output) on sampled query positions."""
    inputs = probe.queries(x)
    rows = sample_queries(inputs.shape[1], queries, seed)
    attention = probe.attention(x, rows)
    means = {
        "input": cosine_distance(inputs[:, rows]),
        "output": cosine_distance(probe.queries(output.double() - x.double())[:, rows]),
        "attention": cosine_distance(attention),
    }
    if probe.distributions:
        means["jsd"] = jensen_shannon(attention)
    return BlockStatistics(tuple(x.shape[2:]), inputs.shape[0], inputs.shape[1], len(rows), means)


def clip_statistics(model: nn.Module, clips: torch.Tensor, queries: int = 256,
                    seed: int = 0) -> List[Dict[str, BlockStatistics]]:
    """Per clip of the batch [B, C, T, H, W]: each attention block's statistics, as if the clip ran alone."""
    probes = attention_probes(model)
    captured = capture_block_io(model, probes, clips)
    return [
        {probe.name: block_statistics(probe, captured[probe.name].input[b:b + 1], captured[probe.name].output[b:b + 1],
                                      queries, seed) for probe in probes}
        for b in range(clips.shape[0])
    ]


# ------------------------------------------------------------------------------------------ per model


def attention_statistics(model: nn.Module, cfg, video_paths: Sequence[str], queries: int = 256,
                         seed: int = 0) -> List[dict]:
    """One row per attention block over the centred clip of each video; videos that fail to decode are
    logged and left out (each row counts the videos it averages)."""
    totals: Dict[str, BlockStatistics] = {}
    for path in video_paths:
        try:
            clip = centred_clip(cfg, path, model_device(model))
        except DecodeError as error:
            logger.warning("left out of the statistics: %s", error.path)
            continue
        for name, stats in clip_statistics(model, clip, queries, seed)[0].items():
            totals[name] = totals[name] + stats if name in totals else stats
    if not totals:
        raise RuntimeError(f"none of the {len(video_paths)} videos could be decoded")
    kinds = {probe.name: probe for probe in attention_probes(model)}
    return [statistics_row(kinds[name], stats) for name, stats in totals.items()]


def statistics_row(probe: Probe, stats: BlockStatistics) -> dict:
    """A block's table row: None where a measure does not apply (JSD of maps that are not distributions)."""
    means = {key: stats.means[key].mean if key in stats.means else None for key in MEASURES}
    note = "one map shared by all queries: attention distances 0 by construction" if probe.shared_map else ""
    return {
        "block": probe.name,
        "stage": probe.stage,
        "type": probe.kind,
        "grid": "x".join(map(str, stats.grid)),
        "windows": stats.windows,
        "positions": stats.positions,
        "queries": stats.queries,
        "videos": stats.clips,
        "input_cos_dist": means["input"],
        "output_cos_dist": means["output"],
        "att_cos_dist": means["attention"],
        "att_jsd": means["jsd"],
        "note": note,
    }


def sampling_statement(videos: int, queries: int, seed: int, cfg) -> str:
    return (
        f"{videos} videos, one centred clip each (validation view: {cfg.DATA.NUM_FRAMES} frames every "
        f"{cfg.DATA.SAMPLING_RATE}, short side {cfg.DATA.TRAIN_JITTER_SCALES[0]}, centre crop "
        f"{cfg.DATA.TRAIN_CROP_SIZE}). Per block and attention window, up to {queries} query positions drawn "
        f"uniformly without replacement (seed {seed}, the same positions in every video); means over all "
        "pairs i != j of them within a window, in float64. Cosine distance (1 - cos) / 2 in [0, 1]; JSD in nats "
        "(at most ln 2 = 0.693)."
    )


# ---------------------------------------------------------------------------------------------- output

COLUMNS = (  # (header, row key)
    ("block", "block"), ("stage", "stage"), ("type", "type"), ("grid TxHxW", "grid"), ("windows", "windows"),
    ("queries", "queries"), ("videos", "videos"), ("input", "input_cos_dist"), ("output", "output_cos_dist"),
    ("att", "att_cos_dist"), ("att JSD", "att_jsd"),
)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def format_table(rows: List[dict]) -> str:
    """GCNet Table 1's layout: one line per block; input / output / att are average cosine distances."""
    cells = [[header for header, _ in COLUMNS]] + [[_cell(row[key]) for _, key in COLUMNS] for row in rows]
    widths = [max(len(line[k]) for line in cells) for k in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    notes = sorted({row["note"] for row in rows if row["note"]})
    return "\n".join(lines + [f"note: {note}" for note in notes])


def write_statistics(rows: List[dict], out_dir: str, about: Optional[dict] = None) -> List[str]:
    """attention_statistics.csv (the rows) and .json (`about`, e.g. the sampling statement, and the rows)."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "attention_statistics.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    json_path = os.path.join(out_dir, "attention_statistics.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({**(about or {}), "rows": [_json_safe(row) for row in rows]}, f, indent=2)
    return [csv_path, json_path]


def _json_safe(row: dict) -> dict:
    """NaN (no pairs) as null: JSON has no NaN."""
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
