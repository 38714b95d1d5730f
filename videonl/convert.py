"""Convert a PyTorchVideo model-zoo or Caffe2 (video-nonlocal-net) checkpoint into a videonl checkpoint.

    videonl convert pytorchvideo --cfg kinetics400/i3d_r50_8x8.yaml --in I3D_8x8_R50.pyth
    videonl convert caffe2 --cfg kinetics400/i3d_r50_32x2.yaml --in i3d_32x2.pkl

Every weight of the configured model must come from the checkpoint and every converted weight must find a
place in it, so a checkpoint for another architecture fails with the keys that do not match (--verbose logs
every key of another shape).

The converted checkpoint records the input its source was trained on, which testing, prediction and MODEL.INIT
then feed it: PyTorchVideo, [0, 1] RGB with mean 0.45 and std 0.225; the Caffe2 release, [0, 255] RGB with
mean 114.75 and std 57.375 (its MODEL.USE_BGR False; for a model trained with USE_BGR True, pass --channel-order
BGR, or --bgr-to-rgb to reverse its stem so that it reads RGB). --classes records the class names.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence

from videonl.command import add_overrides, parse_args, run
from videonl.config import load_cfg
from videonl.data.datasets import read_class_names
from videonl.data.transforms import CHANNEL_ORDERS
from videonl.engine.checkpoint_format import save_checkpoint
from videonl.models import build_model
from videonl.models.conversions import (
    CheckpointError,
    convert_caffe2,
    convert_pytorchvideo,
    load_caffe2_blobs,
    load_pytorchvideo_checkpoint,
)
from videonl.engine.input_spec import CAFFE2_INPUT, PYTORCHVIDEO_INPUT, InputSpec
from videonl.models.loading import load_complete_state_dict


SOURCES = {
    "pytorchvideo": "PyTorchVideo model zoo (c2d_r50, i3d_r50, slow_r50): {'model_state': state_dict, ...}",
    "caffe2": "Caffe2 .pkl of the original non-local release: {'blobs': {name: array}}",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videonl convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cfg", required=True, action="append",
                        help="config (file or packaged name) of the model the checkpoint holds; repeat to compose, "
                        "later files win")
    common.add_argument("--in", dest="input", required=True, metavar="FILE", help="checkpoint to convert")
    common.add_argument("--out", metavar="FILE", help="checkpoint to write (default: OUTPUT_DIR/<input name>.pth)")
    common.add_argument("--classes", metavar="FILE",
                        help="class names to record, a JSON object {name: index} (e.g. kinetics_classnames.json)")
    common.add_argument("--verbose", action="store_true", help="log the details of loading, e.g. every key whose "
                        "shape differs from the model's")
    add_overrides(common)
    sources = parser.add_subparsers(dest="source", required=True, metavar="{pytorchvideo,caffe2}")
    source_parsers = {
        name: sources.add_parser(name, parents=[common], help=text, description=text) for name, text in SOURCES.items()
    }
    order = source_parsers["caffe2"].add_mutually_exclusive_group()
    order.add_argument("--channel-order", choices=CHANNEL_ORDERS, default="RGB",
                       help="channel order the model was trained on (the release's MODEL.USE_BGR False: RGB)")
    order.add_argument("--bgr-to-rgb", action="store_true",
                       help="a model trained on BGR frames: reverse its stem's input channels so that it reads RGB")
    return parser


def convert_source(args: argparse.Namespace, model):
    """(state in our names, unused source keys) of the checkpoint `args` names."""
    if args.source == "pytorchvideo":
        return convert_pytorchvideo(load_pytorchvideo_checkpoint(args.input), model)
    return convert_caffe2(load_caffe2_blobs(args.input), model, bgr_to_rgb=args.bgr_to_rgb)


def source_input(args: argparse.Namespace) -> InputSpec:
    """The input the source's weights expect, as the converted weights will read it."""
    if args.source == "pytorchvideo":
        return PYTORCHVIDEO_INPUT
    order = "RGB" if args.bgr_to_rgb else args.channel_order
    return InputSpec(CAFFE2_INPUT.mean, CAFFE2_INPUT.std, CAFFE2_INPUT.value_range, order)


def recorded_classes(args: argparse.Namespace, num_classes: int, model_name: str) -> Optional[List[str]]:
    if not args.classes:
        return None
    names = read_class_names(args.classes)
    if len(names) != num_classes:
        raise CheckpointError(f"{args.classes} names {len(names)} classes, {model_name} has {num_classes}")
    return names


def default_output(cfg, input_path: str) -> str:
    return os.path.join(cfg.OUTPUT_DIR, os.path.splitext(os.path.basename(input_path))[0] + ".pth")


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Convert, check and save; returns the path written."""
    args = parse_args(build_parser(), argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg, model_name = load_cfg(args.cfg, args.opts), f"the model of {' + '.join(args.cfg)}"
    classes = recorded_classes(args, cfg.MODEL.NUM_CLASSES, model_name)
    model = build_model(cfg)
    state, unused = convert_source(args, model)
    load_complete_state_dict(model, state, args.input, model_name)
    output = args.out or default_output(cfg, args.input)
    save_checkpoint(output, model, cfg, input_spec=source_input(args),
                    classes=classes,
                    converted_from=os.path.abspath(args.input), source_format=args.source)
    print(f"converted {len(state)} tensors from {args.input} ({args.source})")
    if unused:
        print(f"skipped {len(unused)} source keys: {', '.join(unused)}")
    print(f"recorded input: {source_input(args)}")
    print(f"saved {output}")
    return output


if __name__ == "__main__":
    sys.exit(run(main))
