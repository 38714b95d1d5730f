"""Attention-map pictures: where a block attends from chosen query points, over the clip's frames.

Queries are points of the clip as the model saw it, in input pixels: (t, y, x) is frame t of the clip's
DATA.NUM_FRAMES frames, row y and column x of the DATA.TRAIN_CROP_SIZE crop. Each block takes the cell of
its own feature grid that covers the point, so one query reads the same across blocks of any resolution.

One PNG per block: a row per query, a column per time step of the block's key grid (at most MAX_COLUMNS,
evenly spaced), the attention over that step's keys laid over the clip frame in the middle of the step.
Keys outside the query's window (another frame in space mode, another pixel track in time mode) show 0.
GC / SNL blocks get one row: their pooling map, which every position shares.
"""

import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from matplotlib.figure import Figure

from videonl.analyze.common import (
    Probe, attention_probes, capture_block_io, centred_clip, denormalised_frames, grid_indices, model_device,
    select_probes
)

MAX_COLUMNS = 8
PANEL_INCHES = 2.2
HEAT_ALPHA = 0.5


class Query(NamedTuple):
    t: int
    y: int
    x: int

    def __str__(self) -> str:
        return f"t={self.t} y={self.y} x={self.x}"


def parse_query(text: str) -> Query:
    """'t,y,x' (clip frame, pixel row, pixel column) -> Query."""
    parts = text.split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"query '{text}' must be three non-negative integers t,y,x (clip frame, pixel row, column)")
    return Query(*map(int, parts))


def clip_shape(cfg) -> Tuple[int, int, int]:
    """Frames, height and width of the clip the model sees (the validation view)."""
    return cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE


def check_query(query: Query, shape: Sequence[int]) -> Query:
    frames, height, width = shape
    if not (query.t < frames and query.y < height and query.x < width):
        raise ValueError(f"query ({query}) is outside the clip: t < {frames} frames, y < {height}, x < {width} pixels")
    return query


def random_queries(shape: Sequence[int], count: int, seed: int) -> List[Query]:
    generator = torch.Generator().manual_seed(seed)
    return [Query(*(int(torch.randint(n, (), generator=generator)) for n in shape)) for _ in range(count)]


def feature_cell(query: Query, shape: Sequence[int], grid: Sequence[int]) -> Tuple[int, int, int]:
    """The cell of a T x H x W feature `grid` that covers a query point of a clip of `shape`."""
    return tuple(value * cells // size for value, cells, size in zip(query, grid, shape))


def query_map(probe: Probe, x: torch.Tensor, cell: Sequence[int]) -> torch.Tensor:
    """[T', H', W'] on the block's key grid: the attention of the query at `cell` of x's grid ([1, C, T, H, W]),
    0 at keys outside its window."""
    query_window, key_window, key_grid = probe.windows(x.shape)
    _, _, height, width = x.shape[1:]
    flat = (cell[0] * height + cell[1]) * width + cell[2]
    window, row = (grid_indices(x.shape[2:], query_window) == flat).nonzero()[0].tolist()
    weights = probe.attention(x, torch.tensor([row]))[window, 0]
    full = torch.zeros(int(torch.tensor(key_grid).prod()), dtype=weights.dtype)
    full[grid_indices(key_grid, key_window)[window]] = weights.cpu()
    return full.view(key_grid)


class Row(NamedTuple):
    label: str
    attention: torch.Tensor  # [T', H', W']
    query: Optional[Query]


def block_rows(probe: Probe, x: torch.Tensor, queries: List[Query], shape: Sequence[int]) -> List[Row]:
    """One row per query; a single row of the shared map for GC / SNL pooling."""
    if probe.shared_map:
        return [Row("pooling map (all positions)", query_map(probe, x, (0, 0, 0)), None)]
    return [Row(f"query {query}", query_map(probe, x, feature_cell(query, shape, x.shape[2:])), query)
            for query in queries]


def shown_steps(steps: int) -> List[int]:
    """All time steps, or MAX_COLUMNS of them evenly spaced from the first to the last."""
    count = min(steps, MAX_COLUMNS)
    return sorted({round(k * (steps - 1) / max(count - 1, 1)) for k in range(count)})


def draw_block(frames: torch.Tensor, rows: List[Row], title: str) -> Figure:
    """A grid of frames ([T, H, W, 3] in [0, 1]) with each row's attention laid over them, one colour bar a row."""
    num_frames, height, width = frames.shape[:3]
    steps = rows[0].attention.shape[0]
    columns = shown_steps(steps)
    figure = Figure(figsize=(PANEL_INCHES * len(columns) + 1.2, PANEL_INCHES * len(rows) + 0.6), layout="constrained")
    axes = figure.subplots(len(rows), len(columns), squeeze=False)
    for row, panels in zip(rows, axes):
        low, high = min(0.0, row.attention.min().item()), row.attention.max().item()
        for step, ax in zip(columns, panels):
            frame = min(num_frames - 1, int((step + 0.5) * num_frames / steps))
            ax.imshow(frames[frame])
            heat = ax.imshow(row.attention[step], cmap="jet", alpha=HEAT_ALPHA, extent=(0, width, height, 0),
                             vmin=low, vmax=max(high, low + 1e-12), interpolation="nearest")
            marked = row.query is not None and row.query.t * steps // num_frames == step
            if marked:
                ax.plot(row.query.x, row.query.y, marker="o", markersize=9, markerfacecolor="none",
                        markeredgecolor="white", markeredgewidth=2.5)
                ax.plot(row.query.x, row.query.y, marker="+", markersize=9, color="black")
            where = " (the query's step)" if marked else ""
            ax.set_title(f"{row.label}\nframe {frame}{where}", fontsize=8)
            ax.set_axis_off()
        figure.colorbar(heat, ax=list(panels), shrink=0.85, label="attention weight")
    figure.suptitle(title, fontsize=10)
    return figure


@torch.no_grad()
def render_attention_maps(model, cfg, video_path: str, out_dir: str, queries: Optional[Sequence[Query]] = None,
                          block: Optional[str] = None, num_random: int = 3, seed: int = 0) -> List[str]:
    """One PNG per attention block (or only `block`) of the video's centred clip; returns their paths.

    Without `queries`, `num_random` points drawn with `seed`. Bad queries and block names fail before any
    video is decoded.
    """
    probes = select_probes(attention_probes(model), block)
    shape = clip_shape(cfg)
    queries = [check_query(query, shape) for query in queries] if queries else random_queries(shape, num_random, seed)
    clip = centred_clip(cfg, video_path, model_device(model))
    frames = denormalised_frames(clip, cfg)
    captured = capture_block_io(model, probes, clip)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for probe in probes:
        x = captured[probe.name].input
        grid = "x".join(map(str, x.shape[2:]))
        title = f"{probe.name} ({probe.kind}, grid {grid}): attention over the clip of {os.path.basename(video_path)}"
        figure = draw_block(frames, block_rows(probe, x, queries, shape), title)
        paths.append(os.path.join(out_dir, f"{probe.name}.png"))
        figure.savefig(paths[-1], dpi=80)
    return paths
