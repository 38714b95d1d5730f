"""Converted and foreign weights get the input they were trained on: uint8 frames through our input path give
the logits the source model gives on frames normalised its own way."""

import ast
import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from pytorchvideo.models.resnet import create_resnet

from videonl.config import get_cfg, load_cfg
from videonl.convert import main as convert
from videonl.data.loader import model_input
from videonl.models import build_model
from videonl.engine.input_spec import CAFFE2_INPUT, InputSpec, adopt_input
from videonl.engine.checkpoint_format import load_checkpoint
from videonl.engine.weight_sources import cfg_for_weights, open_weights

from helpers import CONFIGS, I3D, SMALL_I3D, assert_close_to, caffe2_blobs, randomize_batch_norms, write_pickle

SLOW = str(CONFIGS / "slow_r50_8x8.yaml")
SMALL_SLOW = ["RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5", "MODEL.HEAD_POOL", "2", "DATA.NUM_FRAMES", "4"]
CPU = torch.device("cpu")


def uint8_clip(frames: int = 4, size: int = 64) -> torch.Tensor:
    """[1, C, T, H, W] RGB frames as a decoder gives them, in the model's layout."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (1, 3, frames, size, size), dtype=torch.uint8, generator=generator)


def pytorchvideo_normalisation():
    """(mean, std) by default of PyTorchVideo's `create_video_transform`, read from its source: its transforms
    package does not import next to this torchvision (it needs the removed `functional_tensor`)."""
    package = Path(importlib.util.find_spec("pytorchvideo").submodule_search_locations[0])
    tree = ast.parse((package / "transforms" / "transforms_factory.py").read_text())
    function = next(node for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and node.name == "create_video_transform")
    arguments = function.args.args[len(function.args.args) - len(function.args.defaults):]
    defaults = {arg.arg: ast.literal_eval(value) for arg, value in zip(arguments, function.args.defaults)}
    return defaults["video_mean"], defaults["video_std"]


def our_logits(cfg_file: str, opts: list, weights: str, clip: torch.Tensor) -> torch.Tensor:
    """The weights in our model, fed `clip` through our input path with the input they record."""
    opened = open_weights(weights)
    cfg = cfg_for_weights(load_cfg(cfg_file, opts), opened)
    model = build_model(cfg).eval()
    opened.load_into(model)
    with torch.no_grad():
        return model(model_input(clip, cfg, CPU))


def test_pytorchvideo_model_on_its_own_normalisation_gives_our_logits_on_uint8_frames(tmp_path):
    torch.manual_seed(0)
    reference = randomize_batch_norms(create_resnet(
        stem_dim_out=8, model_num_class=5, dropout_rate=0.0, stem_conv_kernel_size=(1, 7, 7),
        head_pool_kernel_size=(4, 2, 2))).eval()
    source, converted = tmp_path / "slow.pyth", tmp_path / "slow.pth"
    torch.save({"model_state": reference.state_dict()}, source)
    convert(["pytorchvideo", "--cfg", SLOW, "--in", str(source), "--out", str(converted), *SMALL_SLOW])
    mean, std = (torch.tensor(values).view(3, 1, 1, 1) for values in pytorchvideo_normalisation())
    clip = uint8_clip()
    with torch.no_grad():  # its transforms: uint8 -> [0, 1] float, then (x - mean) / std per channel
        expected = reference((clip / 255.0 - mean) / std)

    for weights in (converted, source):  # the converted checkpoint, and the .pyth itself as MODEL.INIT reads it
        assert_close_to(our_logits(SLOW, SMALL_SLOW, str(weights), clip), expected)


@pytest.mark.parametrize("channel_order, convert_options", [
    ("RGB", []),  # the release: MODEL.USE_BGR False
    ("BGR", ["--channel-order", "BGR"]),  # a model trained with USE_BGR True, recorded as BGR
    ("BGR", ["--bgr-to-rgb"]),  # the same model with its stem reversed: it reads RGB
])
def test_caffe2_model_on_the_official_normalisation_gives_our_logits_on_uint8_frames(tmp_path, channel_order,
                                                                                     convert_options):
    torch.manual_seed(0)
    reference = randomize_batch_norms(build_model(load_cfg(I3D, SMALL_I3D))).eval()
    pkl = write_pickle(tmp_path / "i3d.pkl", {"blobs": caffe2_blobs(reference)})
    converted = tmp_path / "i3d.pth"
    convert(["caffe2", "--cfg", I3D, "--in", pkl, "--out", str(converted), *convert_options, *SMALL_I3D])
    clip = uint8_clip(frames=8)
    frames = clip.float().flip(1) if channel_order == "BGR" else clip.float()
    with torch.no_grad():  # the official data layer: (x - MODEL.MEAN) / MODEL.STD on [0, 255] values
        expected = reference((frames - 114.75) / 57.375)

    assert_close_to(our_logits(I3D, SMALL_I3D, str(converted), clip), expected)
    if not convert_options:  # MODEL.INIT / TEST.CHECKPOINT read the .pkl itself as the release's RGB model
        assert_close_to(our_logits(I3D, SMALL_I3D, pkl, clip), expected)


def test_converted_checkpoint_records_input_and_class_names(tmp_path):
    model = build_model(load_cfg(I3D, SMALL_I3D))
    pkl = write_pickle(tmp_path / "i3d.pkl", {"blobs": caffe2_blobs(model)})
    classes = tmp_path / "classes.json"
    classes.write_text('{"abseiling": 0, "air drumming": 1, "zumba": 4, "archery": 2, "arm wrestling": 3}')
    convert(["caffe2", "--cfg", I3D, "--in", pkl, "--out", str(tmp_path / "c.pth"), "--classes", str(classes),
             *SMALL_I3D])
    checkpoint = load_checkpoint(str(tmp_path / "c.pth"))
    assert checkpoint["classes"] == ["abseiling", "air drumming", "archery", "arm wrestling", "zumba"]
    assert InputSpec.from_record(checkpoint["input"]) == CAFFE2_INPUT
    classes.write_text('{"abseiling": 0, "air drumming": 1, "archery": 2, "arm wrestling": 3}')
    with pytest.raises(ValueError, match="classes.json names 4 classes, the model of .* has 5"):
        convert(["caffe2", "--cfg", I3D, "--in", pkl, "--out", str(tmp_path / "d.pth"), "--classes", str(classes),
                 *SMALL_I3D])


def test_a_config_that_sets_its_own_normalisation_wins_with_a_warning(caplog):
    spec = InputSpec((0.45,) * 3, (0.225,) * 3, 1.0, "BGR")
    with caplog.at_level(logging.INFO, logger="videonl.engine.input_spec"):
        adopted = adopt_input(load_cfg(I3D), spec, "w.pth")
        kept = adopt_input(load_cfg(I3D, ["DATA.MEAN", "[0.5, 0.5, 0.5]"]), spec, "w.pth")
    assert (adopted.DATA.MEAN, adopted.DATA.STD, adopted.DATA.CHANNEL_ORDER) == ([0.45] * 3, [0.225] * 3, "BGR")
    assert (kept.DATA.MEAN, kept.DATA.STD, kept.DATA.CHANNEL_ORDER) == ([0.5] * 3, [0.225] * 3, "BGR")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["the config sets DATA.MEAN [0.5, 0.5, 0.5], the weights of w.pth were trained on "
                        "[0.45, 0.45, 0.45]: using the config's"]


def test_a_config_file_that_sets_the_default_normalisation_keeps_it(tmp_path):
    """What the user set counts, not whether it differs from the defaults: ImageNet's mean, written on purpose."""
    spec = InputSpec((0.45,) * 3, (0.225,) * 3)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("DATA:\n  MEAN: [0.485, 0.456, 0.406]\n")
    cfg = adopt_input(load_cfg([I3D, str(recipe)]), spec, "w.pth")
    assert (cfg.DATA.MEAN, cfg.DATA.STD) == ([0.485, 0.456, 0.406], [0.225] * 3)


def test_a_saved_config_and_a_config_built_in_python_take_the_weights_input(tmp_path):
    spec = InputSpec((0.45,) * 3, (0.225,) * 3)
    saved = tmp_path / "config.yaml"
    saved.write_text(load_cfg(I3D).dump())  # a run's config.yaml states every key, chooses none
    built = get_cfg()
    built.DATA.MEAN = [0.5, 0.5, 0.5]  # not through load_cfg: nothing recorded as chosen
    for cfg in (load_cfg(str(saved)), built):
        adopted = adopt_input(cfg, spec, "w.pth")
        assert (adopted.DATA.MEAN, adopted.DATA.STD) == ([0.45] * 3, [0.225] * 3)
