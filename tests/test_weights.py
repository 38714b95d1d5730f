"""Weights: key renaming, ImageNet inflation, MODEL.INIT, checked loading, safe loading, our checkpoints."""

import collections
import logging
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from videonl.config import load_cfg
from videonl.models import build_model
from videonl.engine.checkpoint_format import load_checkpoint, save_checkpoint
from videonl.engine.initialization import initialize
from videonl.engine.weight_sources import open_weights
from videonl.models.conversions import CheckpointError, inflate_2d_state_dict, load_caffe2_blobs, rename_keys
from videonl.models.loading import LoadReport, load_complete_state_dict, load_state_dict_checked

from helpers import CONFIGS, assert_close_to, randomize_batch_norms

C2D = str(CONFIGS / "c2d_r50_8x8.yaml")
I3D = str(CONFIGS / "i3d_r50_8x8.yaml")
SMALL = ["RESNET.BLOCKS", "[1,1,1,1]", "RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5"]


def small_model(*opts: str) -> nn.Module:
    return build_model(load_cfg(C2D, [*SMALL, *opts]))


class RunsCommand:
    """Unpickling this runs `touch marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ----------------------------------------------------------------------------------------------- renaming


def test_rename_keys_uses_the_first_matching_rule_and_returns_unmatched_keys():
    rules = ((r"layer(\d)\.w", r"res\1.weight"), (r"layer1\.w", "never.reached"), (r"head", "fc"))
    renamed, unmatched = rename_keys({"layer1.w": 1, "layer2.w": 2, "head": 3, "head.extra": 4, "xlayer1.w": 5}, rules)
    assert renamed == {"res1.weight": 1, "res2.weight": 2, "fc": 3}
    assert unmatched == ["head.extra", "xlayer1.w"]


def test_rename_keys_refuses_to_give_two_keys_one_name():
    with pytest.raises(ValueError, match="'a1' and 'b1' are both renamed to 'x'"):
        rename_keys({"a1": 1, "b1": 2}, ((r"[ab]1", "x"),))


# --------------------------------------------------------------------------------------------- inflation


def test_inflated_c2d_sees_every_frame_as_the_2d_resnet_does(tmp_path):
    torch.manual_seed(0)
    resnet = randomize_batch_norms(torchvision.models.resnet50(weights=None)).eval()
    path = tmp_path / "resnet50_2d.pth"
    torch.save(resnet.state_dict(), path)
    model = build_model(load_cfg(C2D)).eval()

    report = initialize(model, open_weights(str(path)))

    assert report == LoadReport(missing=["head.fc.weight", "head.fc.bias"], unexpected=[], mismatched=[])
    image = torch.randn(2, 3, 64, 64)
    clip = image.unsqueeze(2).expand(-1, -1, 4, -1, -1).contiguous()
    with torch.no_grad():
        expected = nn.Sequential(*list(resnet.children())[:-2])(image)  # before avgpool and fc
        features = model.features(clip)
    assert features.shape[2] == 2  # pool2 halves the 4 frames
    for t in range(features.shape[2]):
        assert_close_to(features[:, :, t], expected)


def test_i3d_inflation_spreads_each_2d_kernel_evenly_over_time():
    kernels_2d = torchvision.models.resnet50(weights=None).state_dict()
    model = build_model(load_cfg(I3D))

    state, unused = inflate_2d_state_dict(kernels_2d, model)

    assert unused == ["fc.weight", "fc.bias"]
    inflated = [  # (torchvision key, our key, temporal kernel in the I3D config)
        ("conv1.weight", "stem.conv.weight", 5),
        ("layer1.0.conv1.weight", "res2.0.conv_a.weight", 3),
        ("layer3.4.conv1.weight", "res4.4.conv_a.weight", 3),
        ("layer4.1.conv1.weight", "res5.1.conv_a.weight", 3),
        ("layer4.0.conv1.weight", "res5.0.conv_a.weight", 1),
        ("layer2.1.conv2.weight", "res3.1.conv_b.weight", 1),
    ]
    for source, target, frames in inflated:
        kernel = kernels_2d[source]
        assert state[target].shape == (*kernel.shape[:2], frames, *kernel.shape[2:]), target
        for t in range(frames):
            torch.testing.assert_close(state[target][:, :, t], kernel / frames)
    assert load_state_dict_checked(model, state).missing == ["head.fc.weight", "head.fc.bias"]


@pytest.mark.parametrize("blocks, depth", [([1, 1, 1, 1], 50), ([1, 1, 7, 1], 101)])
def test_imagenet_init_inflates_the_shallowest_torchvision_resnet_holding_the_models_blocks(monkeypatch, blocks,
                                                                                            depth):
    resnet_2d = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, blocks)
    requests = []

    def pretrained_model(name, weights):
        requests.append((name, weights))
        return resnet_2d

    monkeypatch.setattr(torchvision.models, "get_model", pretrained_model)
    model = build_model(load_cfg(C2D, ["RESNET.BLOCKS", str(blocks)]))
    initialize(model, open_weights("imagenet"))

    assert requests == [(f"resnet{depth}", "IMAGENET1K_V1")]
    torch.testing.assert_close(model.res4[-1].conv_b.weight[:, :, 0], resnet_2d.layer3[-1].conv2.weight)


def test_initialize_rejects_what_it_cannot_load(tmp_path):
    model = small_model()
    (tmp_path / "weights.txt").write_text("not weights")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pth")

    with pytest.raises(ValueError, match="MODEL.INIT must be '', 'imagenet' or an existing"):
        initialize(model, open_weights("imagenet21k"))
    with pytest.raises(ValueError, match="MODEL.INIT must be"):
        initialize(model, open_weights(str(tmp_path / "weights.txt")))
    with pytest.raises(ValueError, match=r"none with the model's \[4, 1, 1, 1\]"):
        initialize(small_model("RESNET.BLOCKS", "[4,1,1,1]"), open_weights("imagenet"))
    with pytest.raises(CheckpointError, match=r"neither a videonl checkpoint, a torchvision .*\['state_dict'\]"):
        initialize(model, open_weights(str(tmp_path / "wrapped.pth")))


def test_init_from_a_checkpoint_for_other_classes_reinitialises_only_the_classifier(tmp_path, caplog):
    source = small_model("MODEL.NUM_CLASSES", "7")
    save_checkpoint(str(tmp_path / "kinetics.pth"), source, load_cfg(C2D))
    model = small_model()
    fresh_fc = model.head.fc.weight.detach().clone()

    with caplog.at_level(logging.INFO, logger="videonl.engine.initialization"):
        report = initialize(model, open_weights(str(tmp_path / "kinetics.pth")))

    assert report.missing == ["head.fc.weight", "head.fc.bias"] and "7 classes, the model 5" in caplog.text
    torch.testing.assert_close(model.head.fc.weight, fresh_fc)
    torch.testing.assert_close(model.res5[0].conv_b.weight, source.res5[0].conv_b.weight)


# ------------------------------------------------------------------------------------------ checked load


def test_load_names_missing_and_unexpected_keys_and_loads_the_rest(caplog):
    model, state = small_model(), small_model().state_dict()
    del state["res3.0.conv_b.weight"]
    state["res9.0.conv_a.weight"] = torch.zeros(1)

    with caplog.at_level(logging.WARNING, logger="videonl.models.loading"):
        report = load_state_dict_checked(model, state)

    assert report == LoadReport(missing=["res3.0.conv_b.weight"], unexpected=["res9.0.conv_a.weight"], mismatched=[])
    assert "res3.0.conv_b.weight" in caplog.text and "res9.0.conv_a.weight" in caplog.text
    torch.testing.assert_close(model.res4[0].conv_a.weight, state["res4.0.conv_a.weight"])


def test_shape_mismatch_fails_naming_the_key_and_both_shapes():
    model, state = small_model(), small_model("MODEL.NUM_CLASSES", "7").state_dict()
    with pytest.raises(CheckpointError, match=r"head\.fc\.weight: checkpoint \(7, 256\) vs model \(5, 256\)"):
        load_state_dict_checked(model, state)


def test_shape_mismatch_can_be_skipped_and_is_reported():
    model, source = small_model(), randomize_batch_norms(small_model("MODEL.NUM_CLASSES", "7"))
    classifier = model.head.fc.weight.detach().clone()

    report = load_state_dict_checked(model, source.state_dict(), skip_mismatched=True)

    assert report == LoadReport(missing=[], unexpected=[], mismatched=["head.fc.weight", "head.fc.bias"])
    torch.testing.assert_close(model.head.fc.weight, classifier)
    torch.testing.assert_close(model.res5[0].bn_b.running_var, source.res5[0].bn_b.running_var)


def test_a_complete_load_names_what_does_not_fit_and_counts_the_rest():
    model, state = small_model(), small_model().state_dict()
    missing = [name for name, _ in model.named_parameters()][:7]
    for key in missing:
        del state[key]
    state["res9.0.conv_a.weight"] = torch.zeros(1)

    with pytest.raises(CheckpointError) as error:
        load_complete_state_dict(model, state, "other.pth", "the model of c2d")

    assert str(error.value) == (f"other.pth does not fit the model of c2d:\n"
                                f"  model weights the checkpoint does not provide: {', '.join(missing[:5])} and 2 more\n"
                                f"  weights the model has no place for: res9.0.conv_a.weight")


# ------------------------------------------------------------------------------------------ safe loading


def test_a_pickle_naming_any_other_global_is_refused_without_running_it(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": RunsCommand(marker)}}, protocol=2))

    with pytest.raises(CheckpointError, match=r"refusing to load global '(posix|nt|os)\.system'"):
        load_caffe2_blobs(str(path))
    assert not marker.exists()


def python2_pickle(blobs: dict) -> bytes:
    """`pickle.dump({"blobs": blobs}, f, 2)` as Python 2 with numpy 1.x wrote it, for float32 arrays.

    Python 2 strings are byte strings (BINSTRING), hence `encoding="latin1"` on loading, and numpy's functions
    lived in `numpy.core`. Written opcode by opcode: no Python 2 with numpy is at hand.
    """

    def text(data: bytes) -> bytes:
        return pickle.BINSTRING + struct.pack("<i", len(data)) + data

    def small(n: int) -> bytes:
        return pickle.BININT1 + bytes([n])

    def items(*parts: bytes) -> bytes:
        return pickle.MARK + b"".join(parts) + pickle.TUPLE

    def call(function: bytes, *args: bytes) -> bytes:
        return pickle.GLOBAL + function + items(*args) + pickle.REDUCE

    def build(obj: bytes, *state: bytes) -> bytes:
        return obj + items(*state) + pickle.BUILD

    def array(value: np.ndarray) -> bytes:
        minus_one = pickle.BININT + struct.pack("<i", -1)
        dtype = call(b"numpy\ndtype\n", text(b"f4"), small(0), small(1))
        dtype = build(dtype, small(3), text(b"<"), pickle.NONE * 3, minus_one, minus_one, small(0))
        ndarray = pickle.GLOBAL + b"numpy\nndarray\n"
        empty = call(b"numpy.core.multiarray\n_reconstruct\n", ndarray, items(small(0)), text(b"b"))
        shape = items(*map(small, value.shape))
        return build(empty, small(1), shape, dtype, pickle.NEWFALSE, text(value.astype("<f4").tobytes()))

    entries = b"".join(text(name.encode()) + array(value) + pickle.SETITEM for name, value in blobs.items())
    content = pickle.EMPTY_DICT + text(b"blobs") + pickle.EMPTY_DICT + entries + pickle.SETITEM
    return pickle.PROTO + b"\x02" + content + pickle.STOP


def test_caffe2_blobs_load_from_python2_and_python3_pickles_wrapped_or_flat(tmp_path):
    blobs = collections.OrderedDict(conv1_w=np.random.randn(4, 3, 1, 7, 7).astype(np.float32), pred_b=np.ones(5, "f4"))
    files = {
        "python2.pkl": python2_pickle(blobs),
        "python3.pkl": pickle.dumps({"blobs": blobs}, protocol=2),
        "flat.pkl": pickle.dumps(blobs, protocol=2),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        loaded = load_caffe2_blobs(str(tmp_path / name))
        assert list(loaded) == ["conv1_w", "pred_b"], name
        for blob, value in blobs.items():
            np.testing.assert_array_equal(loaded[blob], value, err_msg=f"{name}: {blob}")


def test_a_torch_file_holding_code_is_refused_without_running_it(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "model.pth"
    torch.save({"model": {}, "cfg": "", "hook": RunsCommand(marker)}, path)

    with pytest.raises(CheckpointError, match="cannot be read as a weights-only torch file"):
        load_checkpoint(str(path))
    assert not marker.exists()


# ----------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_through_model_init(tmp_path):
    cfg = load_cfg(C2D, SMALL)
    source = randomize_batch_norms(build_model(cfg))
    path = tmp_path / "run" / "model.pth"

    save_checkpoint(str(path), source, cfg, epoch=3)

    assert os.listdir(path.parent) == ["model.pth"]  # no temporary file left behind
    checkpoint = load_checkpoint(str(path))
    assert checkpoint["cfg"] == cfg.dump() and checkpoint["epoch"] == 3
    loaded = build_model(cfg)
    initialize(loaded, open_weights(str(path)))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    cfg, model, path = load_cfg(C2D, SMALL), small_model(), tmp_path / "model.pth"
    save_checkpoint(str(path), model, cfg, epoch=1)

    def disk_full(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(str(path), model, cfg, epoch=2)
    monkeypatch.undo()

    assert load_checkpoint(str(path))["epoch"] == 1
    assert os.listdir(tmp_path) == ["model.pth"]


def test_a_file_that_is_not_ours_gives_a_clear_error(tmp_path):
    torch.save(small_model().state_dict(), tmp_path / "state_dict.pth")
    (tmp_path / "notes.pth").write_text("not a torch file")

    with pytest.raises(CheckpointError, match=r"state_dict\.pth is not a videonl checkpoint: expected a dict"):
        load_checkpoint(str(tmp_path / "state_dict.pth"))
    with pytest.raises(CheckpointError, match=r"notes\.pth cannot be read as a weights-only torch file"):
        load_checkpoint(str(tmp_path / "notes.pth"))
