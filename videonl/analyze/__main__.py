"""Attention analysis of a trained model (GCNet Sec. 3.2): statistics over a video list, pictures of one video.

    videonl analyze attention --cfg FILE --checkpoint FILE [--list FILE] [--videos N] [--queries Q]
    videonl analyze attention-maps --cfg FILE --checkpoint FILE --video PATH [--queries T,Y,X ...]
        [--block NAME]

Config overrides (KEY VALUE ...) may stand anywhere on the line; after `--queries T,Y,X ...`, write `--` first.
"""

import argparse
import os
import sys
from typing import List

from videonl.analyze.maps import parse_query, render_attention_maps
from videonl.analyze.statistics import attention_statistics, format_table, sampling_statement, write_statistics
from videonl.command import add_overrides, parse_args, run
from videonl.config import load_cfg
from videonl.data.datasets import VideoRecord, read_video_list
from videonl.data.loader import list_file
from videonl.engine.runtime import load_trained
from videonl.models.conversions import CheckpointError

DEFAULT_VIDEOS = 32


def evenly_spaced(records: List[VideoRecord], count: int) -> List[VideoRecord]:
    """`count` records spread over the whole list: lists are often sorted by class, so the first N are not."""
    if count >= len(records):
        return records
    return [records[k * len(records) // count] for k in range(count)]


def run_attention(args, cfg) -> None:
    list_path = args.list or list_file(cfg, "test")
    records = evenly_spaced(read_video_list(list_path, cfg.DATA.LIST_SEPARATOR, cfg.DATA.PATH_PREFIX), args.videos)
    cfg, model, _ = load_trained(cfg, args.checkpoint)
    rows = attention_statistics(model, cfg, [record.path for record in records], args.queries, args.seed)
    statement = sampling_statement(rows[0]["videos"], args.queries, args.seed, cfg)
    print(statement, "", format_table(rows), sep="\n")
    about = {"cfg": args.cfg, "checkpoint": args.checkpoint, "list": list_path, "sampling": statement,
             "queries": args.queries, "seed": args.seed, "videos": [record.path for record in records]}
    for path in write_statistics(rows, args.out or default_out(cfg), about):
        print(f"wrote {path}")


def run_maps(args, cfg) -> None:
    queries = [parse_query(text) for text in args.queries] if args.queries else None
    cfg, model, _ = load_trained(cfg, args.checkpoint)
    out = args.out or os.path.join(default_out(cfg), "attention_maps")
    for path in render_attention_maps(model, cfg, args.video, out, queries, args.block, args.random, args.seed):
        print(f"wrote {path}")


def default_out(cfg) -> str:
    return os.path.join(cfg.OUTPUT_DIR, "analysis")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cfg", required=True, help="config (file or packaged name) the checkpoint was trained on")
    parser.add_argument("--checkpoint", required=True, help="a videonl checkpoint ({'model': state dict, 'cfg': ...})")
    parser.add_argument("--out", help="output folder (default: OUTPUT_DIR/analysis)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled or random query positions")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videonl analyze", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stats = commands.add_parser(
        "attention", help="GCNet Table 1: how much attention depends on the query, per block",
        description="Per non-local / GC / SNL block, average cosine distances between query positions of the "
        "block's input, its residual output and its attention maps, and the JSD between attention maps, "
        "over the centred validation clip of each video. Prints a table; writes CSV and JSON.")
    add_common(stats)
    stats.add_argument("--list", help="video list 'path label' (default: {DATA.PATH_TO_DATA_DIR}/{TEST.SPLIT}.csv)")
    stats.add_argument("--videos", type=int, default=DEFAULT_VIDEOS,
                       help=f"videos to analyse, evenly spaced through the list (default {DEFAULT_VIDEOS})")
    stats.add_argument("--queries", type=int, default=256, help="query positions sampled per attention window")
    stats.set_defaults(run=run_attention)
    maps = commands.add_parser(
        "attention-maps", help="PNG grids of each block's attention from query points over the clip's frames",
        description="One PNG per block: rows are queries, columns the clip's frames (centred validation clip), "
        "the attention laid over the de-normalised frames. Queries are input pixels t,y,x: clip frame, row, "
        "column of the crop.")
    add_common(maps)
    maps.add_argument("--video", required=True, help="the video to render")
    maps.add_argument("--queries", nargs="+", metavar="T,Y,X", help="query points in clip frames and crop pixels")
    maps.add_argument("--random", type=int, default=3, help="random query points when --queries is not given")
    maps.add_argument("--block", help="only this block, e.g. res4.3.context")
    maps.set_defaults(run=run_maps)
    for sub in (stats, maps):
        add_overrides(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    cfg = load_cfg(args.cfg, args.opts)
    try:
        args.run(args, cfg)
    except CheckpointError:
        raise  # a file's problem, reported as every command reports it
    except ValueError as error:  # queries, a block name or a model that the analysis cannot take
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
