"""`videonl benchmark model --cfg FILE`: our model against PyTorchVideo's, in one run.

For our model built from the config, and for PyTorchVideo's model of the same backbone:
  train step   forward, the task's loss (TASK.NAME; single-label: cross-entropy), backward and an SGD step
               (SOLVER's momentum and weight decay) in train mode: the median of --steps steps after
               --warmup, the models taking turns step by step
  inference    a forward in eval mode under `torch.inference_mode`, timed the same way: both models' logits
               of the globally pooled clip (ours: `model(clip)`, not `test_logits`), so the heads match
  peak MiB     the peak memory of each, above the model and its input (one warm-up and one call): on the
               CPU the growth of the peak resident size of a fresh process, on CUDA max_memory_allocated
  GFLOP/s      the train step's FLOPs over its time, and that as a share of an fp32 matmul's rate
               (--peak-size square matrices) timed in turn with the steps

FLOPs: fvcore's multiply-adds of one forward (`videonl.flops`) times the batch; a train step counts as 3
forwards (the backward as two); FLOP/s count 2 FLOPs per multiply-add, as a matmul's peak does.

The counterpart is the PyTorchVideo hub builder (c2d_r50, i3d_r50, slow_r50) whose backbone equals the
config's: our plain backbone built from the config has the layers (kernels, strides, norms, input
channels) of the one built from our config of it (packaged kinetics400/{name}_8x8.yaml), widths aside; the
counterpart takes its width from the config (stem_dim_out), so reduced-width configs compare alike. Its head
pools globally (adaptive average pool, the hub's fixed 4x7x7 pool at 8x224x224), so any --frames and --size
fit. Context blocks have no counterpart: PyTorchVideo's plain backbone is shown and the
difference named. A backbone that matches none (32-frame layouts, R101, 3x3x3 I3D, custom blocks) is
measured alone.
"""

import argparse
import functools
import sys
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from videonl.benchmark.matmul import matmul
from videonl.benchmark.timing import interleaved, isolated, measure
from videonl.command import add_overrides
from videonl.config import load_cfg
from videonl.data.loader import model_input
from videonl.engine.optim import build_optimizer
from videonl.engine.runtime import PRECISIONS, autocast, compiled, grad_scaler, place_model
from videonl.flops import flop_analysis
from videonl.models import build_model
from videonl.models.registry import STAGES, placement
from videonl.models.resnet3d import stage_blocks
from videonl.tasks import build_task

OURS = "videonl"
COUNTERPARTS = ("c2d_r50", "i3d_r50", "slow_r50")
COUNTERPART_CONFIG = "kinetics400/{name}_8x8.yaml"  # packaged config of each counterpart's backbone
PEAK = "fp32 matmul"


def backbone(cfg) -> tuple:
    """What makes two backbones the same network up to their width, read from the built plain backbone (on the
    meta device, so nothing is allocated): its input channels (DATA.INPUT_CHANNELS, as every model reads) and
    every layer of its `stage_modules` by name, type, kernel and stride. Whatever key shapes the network is
    thereby compared, with no list of keys to keep."""
    plain = cfg.clone()
    plain.defrost()
    plain.CONTEXT.BLOCK = ""
    for stage in STAGES:
        plain.CONTEXT[stage.upper()] = []
    with torch.device("meta"):
        model = build_model(plain)
    layers = tuple((name, type(module).__name__, getattr(module, "kernel_size", None), getattr(module, "stride", None))
                   for part_name, part in model.stage_modules() for name, module in part.named_modules(prefix=part_name))
    return cfg.DATA.INPUT_CHANNELS, layers


@functools.lru_cache(maxsize=None)
def counterpart_backbone(name: str) -> tuple:
    return backbone(load_cfg(COUNTERPART_CONFIG.format(name=name)))


def pytorchvideo_counterpart(cfg) -> Optional[str]:
    """The hub builder whose backbone is the config's (see the module doc), or None."""
    ours = backbone(cfg)
    return next((name for name in COUNTERPARTS if counterpart_backbone(name) == ours), None)


def comparison_note(cfg, counterpart: Optional[str]) -> str:
    if counterpart is None:
        return "none: the backbone matches none of " + ", ".join(COUNTERPARTS) + "; ours is measured alone"
    context_blocks = len(placement(cfg, stage_blocks(cfg)))
    if context_blocks:
        return (f"pytorchvideo {counterpart}, the plain backbone: ours adds {context_blocks} "
                f"'{cfg.CONTEXT.BLOCK}' context blocks")
    return f"pytorchvideo {counterpart}, the same backbone"


def job_cfg(job: dict):
    """The config with the user's overrides, then the command's options (`job_from_args`)."""
    return load_cfg(job["cfg"], job["opts"] + job["settings"])


def build(job: dict, name: str) -> nn.Module:
    """Our model (`name` OURS) or the counterpart, on the CPU, with fresh weights."""
    cfg = job_cfg(job)
    if name == OURS:
        return build_model(cfg)
    from pytorchvideo.models import hub

    return getattr(hub, job["counterpart"])(
        pretrained=False, input_channel=cfg.DATA.INPUT_CHANNELS, stem_dim_out=cfg.RESNET.WIDTH,
        model_num_class=cfg.MODEL.NUM_CLASSES, dropout_rate=cfg.MODEL.DROPOUT,
        head_pool=nn.AdaptiveAvgPool3d, head_output_size=(1, 1, 1))


def clip_and_labels(job: dict) -> tuple:
    """A random batch of clips and the task's targets for it."""
    cfg = job_cfg(job)
    shape = (job["batch"], cfg.DATA.INPUT_CHANNELS, job["frames"], job["size"], job["size"])
    clip = model_input(torch.randn(shape), cfg, torch.device(job["device"]))
    return clip, build_task(cfg).example_targets(job["batch"]).to(job["device"])


def train_step(model: nn.Module, clip: torch.Tensor, labels: torch.Tensor, cfg) -> Callable[[], None]:
    optimizer = build_optimizer(model, cfg)
    scaler = grad_scaler(cfg, clip.device)
    task = build_task(cfg)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(cfg, clip.device):
            loss = task.loss(model(clip), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def inference(model: nn.Module, clip: torch.Tensor, cfg) -> Callable[[], None]:
    def forward():
        with torch.inference_mode(), autocast(cfg, clip.device):
            model(clip)

    return forward


def workload(job: dict, name: str, mode: str, clip: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """The callable that `mode` ("train" or "inference") times for model `name`."""
    cfg = job_cfg(job)
    model = compiled(place_model(build(job, name), cfg, torch.device(job["device"])), cfg).train(mode == "train")
    return train_step(model, clip, labels, cfg) if mode == "train" else inference(model, clip, cfg)


def peak_memory(job: dict, name: str, mode: str) -> float:
    """Peak MiB of one model and mode; a module-level function for `isolated`."""
    clip, labels = clip_and_labels(job)
    run = workload(job, name, mode, clip, labels)
    return measure(run, torch.device(job["device"]), warmup=1, repeat=1)["peak_mib"]


def timings(job: dict) -> Dict[str, dict]:
    """Per model: multiply-adds of a forward, train-step and inference seconds; and the matmul's GFLOP/s."""
    device = torch.device(job["device"])
    clip, labels = clip_and_labels(job)
    one_clip = torch.zeros(1, *clip.shape[1:])
    # Counted on fresh CPU models: the timed ones may be compiled, channels-last or on the GPU.
    macs = {name: flop_analysis(build(job, name).eval(), one_clip).total() * job["batch"] for name in job["models"]}
    train = interleaved({**{name: workload(job, name, "train", clip, labels) for name in job["models"]},
                         PEAK: matmul(job["peak_size"], job["device"])}, device, job["warmup"], job["steps"])
    infer = interleaved({name: workload(job, name, "inference", clip, labels) for name in job["models"]},
                        device, job["warmup"], job["steps"])
    rows = {name: {"macs": macs[name], "train_s": train[name], "inference_s": infer[name]} for name in job["models"]}
    return {"rows": rows, "peak_gflops": 2 * job["peak_size"] ** 3 / train[PEAK] / 1e9}


def memory(job: dict) -> Dict[str, Dict[str, float]]:
    """Per model, the peak MiB of each mode: on the CPU each in a fresh process (a resident peak never falls)."""
    measure_peak = functools.partial(isolated, peak_memory) if job["device"] == "cpu" else peak_memory
    return {name: {mode: measure_peak(job, name, mode) for mode in ("train", "inference")} for name in job["models"]}


def format_table(rows: Dict[str, dict], peak_gflops: float, peaks: Optional[Dict[str, dict]]) -> List[str]:
    header = f"{'model':24s}{'GMACs fwd':>10s}{'train s':>10s}{'GFLOP/s':>9s}{'of peak':>9s}{'infer s':>10s}"
    header += f"{'train MiB':>11s}{'infer MiB':>11s}" if peaks else ""
    lines = [header]
    for name, row in rows.items():
        gflops = 2 * 3 * row["macs"] / row["train_s"] / 1e9
        line = (f"{name:24s}{row['macs'] / 1e9:10.2f}{row['train_s']:10.3f}{gflops:9.1f}{gflops / peak_gflops:9.1%}"
                f"{row['inference_s']:10.3f}")
        line += f"{peaks[name]['train']:11.0f}{peaks[name]['inference']:11.0f}" if peaks else ""
        lines.append(line)
    if len(rows) == 2:
        ours, theirs = rows.values()
        lines.append(f"time, theirs / ours: train step {theirs['train_s'] / ours['train_s']:.2f}x, "
                     f"inference {theirs['inference_s'] / ours['inference_s']:.2f}x (above 1: ours is faster)")
    return lines


def describe(job: dict, cfg, note: str) -> List[str]:
    layout = "channels-last-3d" if cfg.RUNTIME.CHANNELS_LAST else "contiguous"
    return [f"config       {job['cfg']} {' '.join(job['opts'])}".rstrip(),
            f"input        {job['batch']} x {cfg.DATA.INPUT_CHANNELS} x {job['frames']} x {job['size']} x "
            f"{job['size']}; {job['device']}, {torch.get_num_threads()} threads, {job['precision']}, {layout}, "
            f"{'compiled' if cfg.RUNTIME.COMPILE else 'eager'}",
            f"counterpart  {note}",
            f"medians of {job['steps']} calls after {job['warmup']} warm-up, taken in turn; a train step counts "
            "3 forwards, FLOPs = 2 x multiply-adds"]


def precision_warning(precision: str, device: str) -> Optional[str]:
    if device != "cpu" or precision == "fp32":
        return None
    return (f"warning: {precision} autocast on the CPU ran 25-100x slower than fp32 on the development machine "
            "(see videonl/engine/runtime.py); expect a long run")


def job_from_args(args: argparse.Namespace) -> dict:
    """Plain data for the measuring processes: the options become config overrides."""
    settings = ["RUNTIME.PRECISION", args.precision, "RUNTIME.CHANNELS_LAST", str(args.channels_last),
                "RUNTIME.COMPILE", str(args.compile)]
    cfg = load_cfg(args.cfg, list(args.opts) + settings)
    counterpart = pytorchvideo_counterpart(cfg)
    return {"cfg": args.cfg, "opts": list(args.opts), "settings": settings, "counterpart": counterpart,
            "models": [OURS] + ([f"pytorchvideo {counterpart}"] if counterpart else []),
            "batch": args.batch, "frames": args.frames or cfg.DATA.NUM_FRAMES, "size": args.size or
            cfg.DATA.TRAIN_CROP_SIZE, "device": args.device, "precision": args.precision, "steps": args.steps,
            "warmup": args.warmup, "peak_size": args.peak_size}


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    warning = precision_warning(args.precision, args.device)
    if warning:
        print(warning, file=sys.stderr)
    job = job_from_args(args)
    cfg = job_cfg(job)
    print("\n".join(describe(job, cfg, comparison_note(cfg, job["counterpart"]))), flush=True)
    measured = timings(job)
    print(f"fp32 peak    {measured['peak_gflops']:.1f} GFLOP/s ({args.peak_size} x {args.peak_size} matmul)")
    peaks = memory(job) if args.memory else None
    print("\n".join(format_table(measured["rows"], measured["peak_gflops"], peaks)))
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("model", help="train step and inference: our model against PyTorchVideo's",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="config file or packaged name of our model")
    parser.add_argument("--batch", type=int, default=1, help="clips per step")
    parser.add_argument("--frames", type=int, help="frames per clip (default: DATA.NUM_FRAMES)")
    parser.add_argument("--size", type=int, help="clip height and width (default: DATA.TRAIN_CROP_SIZE)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS),
                        help="autocast dtype (sets RUNTIME.PRECISION; fp16 adds a grad scaler)")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels-last-3d model and input (sets RUNTIME.CHANNELS_LAST)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (sets RUNTIME.COMPILE)")
    parser.add_argument("--steps", type=int, default=5, help="timed calls per figure (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square matmul timed for the peak")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="measure peak memory (on the CPU: 4 fresh processes of one warm-up and one call each)")
    add_overrides(parser)
    parser.set_defaults(run=run)
