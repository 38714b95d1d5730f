"""Foreign weights in our names: key renaming, ImageNet inflation, Caffe2 pickles read safely."""

import collections
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision

from videonl.config import load_cfg
from videonl.models import build_model
from videonl.models.conversions import CheckpointError, inflate_2d_state_dict, load_caffe2_blobs, rename_keys
from videonl.models.loading import load_state_dict_checked

from helpers import CONFIGS, RunsCommand

I3D = str(CONFIGS / "i3d_r50_8x8.yaml")


def test_rename_keys_uses_the_first_matching_rule_and_returns_unmatched_keys():
    rules = ((r"layer(\d)\.w", r"res\1.weight"), (r"layer1\.w", "never.reached"), (r"head", "fc"))
    renamed, unmatched = rename_keys({"layer1.w": 1, "layer2.w": 2, "head": 3, "head.extra": 4, "xlayer1.w": 5}, rules)
    assert renamed == {"res1.weight": 1, "res2.weight": 2, "fc": 3}
    assert unmatched == ["head.extra", "xlayer1.w"]


def test_rename_keys_refuses_to_give_two_keys_one_name():
    with pytest.raises(ValueError, match="'a1' and 'b1' are both renamed to 'x'"):
        rename_keys({"a1": 1, "b1": 2}, ((r"[ab]1", "x"),))


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
