"""`python -m videonl.export`: a trained model as an ONNX or TorchScript file, checked against PyTorch.

    python -m videonl.export --cfg configs/kinetics400/nl_i3d_r50_32x2.yaml --checkpoint W.pth \\
        --format onnx --output nl_i3d_r50_32x2.onnx [--views N] [KEY VALUE ...]

The graph takes `clip`, float32 [B, 3, T, H, W]: T = DATA.NUM_FRAMES, H = W = DATA.TEST_CROP_SIZE, RGB in
[0, 1] normalised with DATA.MEAN / DATA.STD, one test view per batch row (B is free). It returns each view's
output as the config's task (TASK.NAME) defines it (`Task.view_output`), [B, MODEL.NUM_CLASSES]:
  single_label  `logits`: with the fully-convolutional head, the log of the windows' averaged softmax; average
                their softmax over a video's views yourself
  multi_label   `probabilities`: each class's sigmoid averaged over the windows; combine a video's views by
                their max (or mean, MULTI_LABEL.VIEW_COMBINE) yourself
The file records these facts (ONNX metadata, TorchScript extra file `videonl.json`).

Before the file gets its name, the exported model runs (onnxruntime on the CPU, or the TorchScript
interpreter) on a random batch of --views + 1 views, a batch size it was not traced with, and its outputs
must equal PyTorch's within 1e-4 + 1e-4 x |output| (PARITY); otherwise it is kept as FILE.unverified and
the command fails.
"""

import argparse
import json
import os
import sys
import warnings
from typing import Dict, NamedTuple

import torch
from torch import nn

from videonl.command import add_overrides, parse_args, run
from videonl.config import ConfigError, load_cfg
from videonl.engine.runtime import load_trained
from videonl.models.conversions import CheckpointError
from videonl.tasks import Task, build_task

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 23  # the first with an Attention op: the non-local block's fused path stays one node
PARITY = {"atol": 1e-4, "rtol": 1e-4}  # exported outputs against PyTorch's, float32 on the CPU


class ParityError(RuntimeError):
    """The exported model's outputs differ from the PyTorch model's."""


class ViewOutput(nn.Module):
    """A model whose forward is the task's output of each view (`Task.view_output` of its `test_logits`): the
    graph an export holds."""

    def __init__(self, model: nn.Module, task: Task):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.task.view_output(self.model.test_logits(clips))


def input_facts(cfg) -> Dict[str, object]:
    """What the graph expects and returns, stored in the exported file."""
    frames, crop = cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE
    return {
        "input": f"clip: float32 [B, {cfg.DATA.INPUT_CHANNELS}, {frames}, {crop}, {crop}], one view per row",
        "normalisation": f"{cfg.DATA.CHANNEL_ORDER} in [0, 1], then (x - mean) / std per channel",
        "mean": list(cfg.DATA.MEAN),
        "std": list(cfg.DATA.STD),
        "output": build_task(cfg).output_contract(),
        "test_views": f"TEST.NUM_CLIPS {cfg.TEST.NUM_CLIPS} x TEST.CROP {cfg.TEST.CROP}",
    }


def example_clip(cfg, views: int, seed: int = 0) -> torch.Tensor:
    """A random normalised batch of `views` test views."""
    crop = cfg.DATA.TEST_CROP_SIZE
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(views, cfg.DATA.INPUT_CHANNELS, cfg.DATA.NUM_FRAMES, crop, crop, generator=generator)


def export_onnx(model: ViewOutput, clip: torch.Tensor, path: str, facts: Dict[str, object]) -> None:
    """The dynamo exporter (torch.export), with the batch dimension left free."""
    import onnx

    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, (clip,), dynamo=True, opset_version=ONNX_OPSET, input_names=["clip"],
                                output_names=[model.task.output_name], dynamic_shapes=({0: batch},), verbose=False)
    graph = program.model_proto
    for key, value in facts.items():
        graph.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(graph, path)


def export_torchscript(model: ViewOutput, clip: torch.Tensor, path: str, facts: Dict[str, object]) -> None:
    """A trace: Python branches on shapes (the non-local block's choice of attention path, the head's window)
    are fixed at this clip size, which is the one the graph is for; the batch stays free."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, clip, check_trace=False)  # the parity check below does the checking
    torch.jit.save(traced, path, _extra_files={"videonl.json": json.dumps(facts)})


def run_exported(path: str, fmt: str, clip: torch.Tensor, output_name: str) -> torch.Tensor:
    """The exported file's output `output_name` on `clip`: onnxruntime on the CPU, or the TorchScript
    interpreter."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run([output_name], {"clip": clip.numpy()})[0])
    with torch.no_grad():
        return torch.jit.load(path, map_location="cpu")(clip)


def check_parity(model: ViewOutput, path: str, fmt: str, clip: torch.Tensor) -> float:
    """The largest absolute difference from PyTorch's output of `model`; ParityError beyond PARITY."""
    with torch.no_grad():
        expected = model(clip)
    actual = run_exported(path, fmt, clip, model.task.output_name)
    if actual.shape != expected.shape:
        raise ParityError(f"the exported model returns {tuple(actual.shape)}, PyTorch {tuple(expected.shape)}")
    difference = (actual - expected).abs().max().item()
    if not torch.allclose(actual, expected, **PARITY):
        raise ParityError(f"exported {model.task.output_name} differ from PyTorch's by up to {difference:.3g} "
                          f"(allowed: {PARITY['atol']} + {PARITY['rtol']} x |value|)")
    return difference


class Exported(NamedTuple):
    """What `export` wrote: the largest difference from PyTorch, the facts the file records and its output's
    name."""

    difference: float
    facts: Dict[str, object]
    output_name: str


def export(cfg, checkpoint: str, fmt: str, output: str, views: int = 2) -> Exported:
    """Write the model of `cfg` with `checkpoint`'s weights to `output` and check it. The facts the file records
    are of the input the weights were trained on and the task they were trained for, unless the config sets its
    own."""
    if fmt not in FORMATS:
        raise ValueError(f"format '{fmt}' is not one of {', '.join(FORMATS)}")
    if views < 2:
        raise ValueError(f"--views {views}: trace with at least 2 views, so that the batch size stays free")
    cfg, model, _ = load_trained(cfg, checkpoint, device=torch.device("cpu"))
    facts, pending, graph = input_facts(cfg), output + ".unverified", ViewOutput(model, build_task(cfg)).eval()
    (export_onnx if fmt == "onnx" else export_torchscript)(graph, example_clip(cfg, views), pending, facts)
    difference = check_parity(graph, pending, fmt, example_clip(cfg, views + 1, seed=1))
    os.replace(pending, output)
    return Exported(difference, facts, graph.task.output_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videonl export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, action="append",
                        help="the model's config YAML file; repeat to compose (a model, then a recipe)")
    parser.add_argument("--checkpoint", required=True, help="weights: ours, a converted or a foreign checkpoint")
    parser.add_argument("--format", required=True, choices=FORMATS, help="file format")
    parser.add_argument("--output", required=True, help="file to write (.onnx, .pt)")
    parser.add_argument("--views", type=int, default=2,
                        help="views (batch rows) of the clip that traces the graph (default 2; any batch runs)")
    add_overrides(parser)
    return parser


def main(argv=None) -> int:
    args = parse_args(build_parser(), argv)
    try:
        cfg = load_cfg(args.cfg, args.opts)
        difference, facts, output_name = export(cfg, args.checkpoint, args.format, args.output, args.views)
    except (ConfigError, CheckpointError, ParityError, ValueError) as error:
        raise SystemExit(f"error: {error}")
    print(f"wrote {args.output} ({args.format}{f', opset {ONNX_OPSET}' if args.format == 'onnx' else ''})\n"
          f"  input:  {facts['input']}; {facts['normalisation']}, mean {facts['mean']}, std {facts['std']}\n"
          f"  output: {facts['output']}\n"
          f"  parity: {output_name} equal PyTorch's on {args.views + 1} random views (max difference {difference:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
