"""Configs that cannot work fail before the first iteration, each problem naming the keys to change."""

import json
import os
from typing import List

import torch

from videonl.config import ConfigError
from videonl.data.datasets import label_range_problem, read_video_list
from videonl.data.loader import list_file
from videonl.engine.optim import POLICIES
from videonl.engine.runtime import PRECISIONS
from videonl.models.build import build_model
from videonl.tasks import Task, build_task


# The model interface's outputs for B clips (`models.interface.VideoModel`), as the checks name them.
OUTPUT_SHAPES = {"forward": ["B", "MODEL.NUM_CLASSES"], "test_logits": ["B", "windows", "MODEL.NUM_CLASSES"]}


def check_config(cfg, training: bool, testing: bool) -> None:
    """Raise ConfigError listing every problem found; reads the list files but decodes no video."""
    problems = _solver_problems(cfg) if training else []
    if training:
        problems += _crop_problems(cfg)
    problems += _model_problems(cfg, training, testing)
    try:
        task = build_task(cfg)
    except (KeyError, ValueError) as err:
        task = None
        problems.append(f"the task cannot be built: {err.args[0] if isinstance(err, KeyError) else err}")
    if not problems:  # label checks need readable lists, which a broken data dir would report anyway
        problems += _label_problems(cfg, task, ["train", "val"] * training + ["test"] * testing)
    if problems:
        raise ConfigError("the config cannot work:\n  - " + "\n  - ".join(problems))


def _solver_problems(cfg) -> List[str]:
    solver, problems = cfg.SOLVER, []
    if solver.LR_POLICY not in POLICIES:
        problems.append(f"SOLVER.LR_POLICY '{solver.LR_POLICY}' is not one of {', '.join(POLICIES)}")
    if list(solver.STEPS) != sorted(solver.STEPS) or any(not 0 < s < solver.MAX_ITER for s in solver.STEPS):
        problems.append(f"SOLVER.STEPS {list(solver.STEPS)} must increase and lie in (0, SOLVER.MAX_ITER "
                        f"{solver.MAX_ITER})")
    if solver.MAX_ITER <= 0 or solver.REFERENCE_BATCH_SIZE <= 0:
        problems.append("SOLVER.MAX_ITER and SOLVER.REFERENCE_BATCH_SIZE must be positive")
    if cfg.RUNTIME.PRECISION not in PRECISIONS:
        problems.append(f"RUNTIME.PRECISION '{cfg.RUNTIME.PRECISION}' is not one of {', '.join(PRECISIONS)}")
    if cfg.TRAIN.REQUIRE_INIT and not cfg.MODEL.INIT:
        problems.append("MODEL.INIT is empty, but this recipe fine-tunes pretrained weights (TRAIN.REQUIRE_INIT): "
                        "add MODEL.INIT path/to/checkpoint.pth (e.g. the model's Kinetics-400 checkpoint)")
    return problems


def _crop_problems(cfg) -> List[str]:
    scales = list(cfg.DATA.TRAIN_JITTER_SCALES)
    if len(scales) != 2 or scales[0] > scales[1]:
        return [f"DATA.TRAIN_JITTER_SCALES {scales} must be [min, max] short sides"]
    if cfg.DATA.TRAIN_CROP_SIZE > scales[0]:
        return [f"DATA.TRAIN_CROP_SIZE {cfg.DATA.TRAIN_CROP_SIZE} is larger than the smallest resized short side, "
                f"DATA.TRAIN_JITTER_SCALES[0] {scales[0]}"]
    return []


def _model_problems(cfg, training: bool, testing: bool) -> List[str]:
    """Run the model on a meta-device clip of every input size the run will feed it (no memory, no compute)."""
    frames = cfg.DATA.NUM_FRAMES
    sizes = {"DATA.TRAIN_CROP_SIZE": cfg.DATA.TRAIN_CROP_SIZE} if training else {}
    if testing:
        sizes["DATA.TEST_CROP_SIZE"] = cfg.DATA.TEST_CROP_SIZE
    problems = []
    with torch.device("meta"):
        try:
            model = build_model(cfg)
        except (ValueError, KeyError) as err:
            return [f"the model cannot be built: {err}"]
        for key, size in sizes.items():
            clip = torch.empty(1, cfg.DATA.INPUT_CHANNELS, frames, size, size)
            for mode, method, output in (("train", "forward", model), ("eval", "test_logits", model.test_logits)):
                try:
                    model.train(mode == "train")
                    shape = list(output(clip).shape)
                except (RuntimeError, ValueError) as err:
                    problems.append(f"DATA.NUM_FRAMES {frames} x {key} {size}: the model cannot run in {mode} mode on "
                                    f"such a clip (temporal/spatial pooling or block grouping): {err}")
                    break
                if len(shape) != len(OUTPUT_SHAPES[method]) or shape[0] != 1 or shape[-1] != cfg.MODEL.NUM_CLASSES:
                    problems.append(f"MODEL.BACKBONE {cfg.MODEL.BACKBONE}: its {method} gives {shape} for one clip, "
                                    f"not {OUTPUT_SHAPES[method]} (the model interface, videonl.models.VideoModel)")
                    break
    return problems


def _label_problems(cfg, task: Task, splits: List[str]) -> List[str]:
    """classes.json against MODEL.NUM_CLASSES, and every list's label fields as the task reads them."""
    problems, classes = [], cfg.MODEL.NUM_CLASSES
    names_file = os.path.join(cfg.DATA.PATH_TO_DATA_DIR, "classes.json")
    if os.path.isfile(names_file):
        with open(names_file, encoding="utf-8") as f:
            named = len(json.load(f))
        if named != classes:
            problems.append(f"MODEL.NUM_CLASSES {classes} does not match the {named} classes of {names_file}")
    for split in dict.fromkeys(splits):
        path = list_file(cfg, split)
        if not os.path.isfile(path):
            problems.append(f"list file {path} not found (DATA.PATH_TO_DATA_DIR, DATA.TRAIN_SPLIT / VAL_SPLIT, "
                            "TEST.SPLIT)")
            continue
        try:
            records = read_video_list(path, cfg.DATA.LIST_SEPARATOR, cfg.DATA.PATH_PREFIX, task.parse_label)
        except ValueError as err:
            problems.append(f"{err} (TASK.NAME {cfg.TASK.NAME})")
            continue
        if not records:
            problems.append(f"list file {path} holds no videos")
        elif label_problem := label_range_problem(records, task, path):
            problems.append(label_problem)
    return problems
