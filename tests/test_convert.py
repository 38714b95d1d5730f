"""Checkpoint conversion: PyTorchVideo model zoo and Caffe2 non-local release, through `videonl.convert`."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from pytorchvideo.models import hub

from videonl.config import load_cfg
from videonl.convert import main
from videonl.models import build_model
from videonl.engine.checkpoint_format import load_checkpoint
from videonl.engine.initialization import initialize
from videonl.engine.weight_sources import open_weights
from videonl.models.conversions import CheckpointError
from videonl.models.loading import LoadReport, load_state_dict_checked

from helpers import CONFIGS, I3D, ROOT, SMALL_I3D, assert_close_to, caffe2_blobs, randomize_batch_norms, write_pickle

NO_LOSS = LoadReport(missing=[], unexpected=[], mismatched=[])


def test_help_names_both_sources_and_the_caffe2_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "{pytorchvideo,caffe2}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["caffe2", "--help"])
    assert "--bgr-to-rgb" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["pytorchvideo", "--cfg", I3D, "--in", "x.pyth", "--bgr-to-rgb"])
    assert exit_info.value.code == 2


# ------------------------------------------------------------------------------------------ PyTorchVideo


@pytest.mark.parametrize("name", ["c2d_r50", "i3d_r50", "slow_r50"])
def test_pytorchvideo_checkpoint_gives_the_same_logits(name, tmp_path, capsys):
    torch.manual_seed(0)
    reference = randomize_batch_norms(getattr(hub, name)(pretrained=False)).eval()
    source, output = tmp_path / f"{name}.pyth", tmp_path / "converted.pth"
    torch.save({"model_state": reference.state_dict(), "epoch": 196}, source)
    cfg_file = str(CONFIGS / f"{name}_8x8.yaml")

    main(["pytorchvideo", "--cfg", cfg_file, "--in", str(source), "--out", str(output)])

    assert f"converted {len(reference.state_dict())} tensors" in capsys.readouterr().out
    checkpoint = load_checkpoint(str(output))
    cfg = load_cfg(cfg_file)
    assert checkpoint["cfg"] == cfg.dump() and checkpoint["source_format"] == "pytorchvideo"
    model = build_model(cfg).eval()
    assert load_state_dict_checked(model, checkpoint["model"]) == NO_LOSS
    clip = torch.randn(1, 3, 8, 224, 224)
    with torch.no_grad():
        assert_close_to(model(clip), reference(clip))
    initialised = build_model(cfg)
    initialize(initialised, open_weights(str(source)))
    assert all(torch.equal(initialised.state_dict()[key], value) for key, value in model.state_dict().items())


def test_pytorchvideo_checkpoint_converts_into_a_frozen_bn_model(tmp_path):
    """Frozen BNs hold no step counter: the source's `num_batches_tracked` must not count as unplaced."""
    reference = randomize_batch_norms(hub.slow_r50(pretrained=False))
    source, output = tmp_path / "slow.pyth", tmp_path / "frozen.pth"
    torch.save({"model_state": reference.state_dict()}, source)
    cfg_file, opts = str(CONFIGS / "slow_r50_8x8.yaml"), ["BN.FROZEN", "True"]

    main(["pytorchvideo", "--cfg", cfg_file, "--in", str(source), "--out", str(output), *opts])

    model = build_model(load_cfg(cfg_file, opts))
    assert load_state_dict_checked(model, load_checkpoint(str(output))["model"]) == NO_LOSS
    source_bn = reference.blocks[3].res_blocks[2].branch2.norm_b  # slow_r50: blocks 1..4 are res2..res5
    torch.testing.assert_close(model.res4[2].bn_b.running_var, source_bn.running_var)


# ------------------------------------------------------------------------------------------------ Caffe2

BOOKKEEPING = {"lr": np.array(0.01, np.float32), "iter": np.array(400000), "model_iter": np.array(400000)}


def fold_batch_norms(blobs: dict, eps: float) -> dict:
    """What an affine (frozen-BN) model stores: per BN only a scale and a bias that include the statistics."""
    folded = dict(blobs)
    for prefix in [name[: -len("_rm")] for name in blobs if name.endswith("_bn_rm")]:
        scale = blobs[f"{prefix}_s"] / np.sqrt(folded.pop(f"{prefix}_riv") + eps)
        folded[f"{prefix}_b"] = blobs[f"{prefix}_b"] - folded.pop(f"{prefix}_rm") * scale
        folded[f"{prefix}_s"] = scale
    return folded


@pytest.fixture
def reference():
    """A small I3D with non-trivial weights, standing in for a Caffe2-trained model."""
    torch.manual_seed(0)
    return randomize_batch_norms(build_model(load_cfg(I3D, SMALL_I3D))).eval()


def test_caffe2_checkpoint_lands_blob_by_blob(reference, tmp_path, capsys):
    blobs = caffe2_blobs(reference)
    momentum = {f"{name}_momentum": np.zeros_like(value) for name, value in blobs.items() if name.endswith("_w")}
    blobs["pred_w"] = blobs["pred_w"][:, :, None, None, None]  # stored as a 1x1x1 conv
    pkl = write_pickle(tmp_path / "i3d.pkl", {"blobs": {**blobs, **momentum, **BOOKKEEPING}})
    output = tmp_path / "converted.pth"

    main(["caffe2", "--cfg", I3D, "--in", pkl, "--out", str(output), *SMALL_I3D])

    summary = capsys.readouterr().out
    assert f"skipped {len(momentum) + len(BOOKKEEPING)} source keys" in summary
    assert "res3_1_branch2b_w_momentum" in summary and "model_iter" in summary
    model = build_model(load_cfg(I3D, SMALL_I3D)).eval()
    assert load_state_dict_checked(model, load_checkpoint(str(output))["model"]) == NO_LOSS
    landed = [
        ("conv1_w", model.stem.conv.weight),
        ("res_conv1_bn_riv", model.stem.bn.running_var),
        ("res3_1_branch2b_bn_riv", model.res3[1].bn_b.running_var),
        ("res3_1_branch2b_bn_rm", model.res3[1].bn_b.running_mean),
        ("res2_0_branch2a_bn_s", model.res2[0].bn_a.weight),
        ("res5_0_branch2c_bn_b", model.res5[0].bn_c.bias),
        ("res4_0_branch1_w", model.res4[0].proj_conv.weight),
        ("res4_0_branch1_bn_s", model.res4[0].proj_bn.weight),
        ("pred_w", model.head.fc.weight),
        ("pred_b", model.head.fc.bias),
    ]
    for blob, tensor in landed:
        np.testing.assert_array_equal(blobs[blob].reshape(tensor.shape), tensor.detach().numpy(), err_msg=blob)
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), reference(clip))


def test_affine_bgr_caffe2_model_computes_the_same_function(reference, tmp_path):
    """Only BN scales and biases, a BGR stem, blobs not wrapped in {"blobs": ...}, into a frozen-BN model."""
    blobs = fold_batch_norms(caffe2_blobs(reference), eps=reference.stem.bn.eps)
    blobs["conv1_w"] = blobs["conv1_w"][:, ::-1].copy()
    pkl = write_pickle(tmp_path / "affine.pkl", blobs)
    opts = [*SMALL_I3D, "BN.FROZEN", "True", "BN.EPS", "0.001"]  # the completion must use the model's eps
    output = tmp_path / "affine.pth"

    main(["caffe2", "--cfg", I3D, "--in", pkl, "--out", str(output), "--bgr-to-rgb", *opts])

    model = build_model(load_cfg(I3D, opts)).eval()
    assert load_state_dict_checked(model, load_checkpoint(str(output))["model"]) == NO_LOSS
    torch.testing.assert_close(model.res3[1].bn_b.running_mean, torch.zeros(16))
    torch.testing.assert_close(model.res3[1].bn_b.running_var, torch.full((16,), 1 - 0.001))
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        assert_close_to(model(clip), reference(clip), rel=1e-5)


def test_model_init_accepts_a_caffe2_pkl(reference, tmp_path):
    pkl = write_pickle(tmp_path / "i3d.pkl", {"blobs": caffe2_blobs(reference)})
    model = build_model(load_cfg(I3D, SMALL_I3D))
    initialize(model, open_weights(pkl))
    model.eval()
    clip = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), reference(clip))


@pytest.mark.parametrize(
    "drop_blob, opts, named",
    [
        ("res4_0_branch1_w", SMALL_I3D, r"does not provide: res4\.0\.proj_conv\.weight"),
        (None, ["RESNET.BLOCKS", "[1,1,1,1]", *SMALL_I3D[2:]], r"no place for: res3\.1\.conv_a\.weight, res3\.1\."),
    ],
)
def test_a_checkpoint_for_another_model_fails_naming_the_keys(reference, tmp_path, drop_blob, opts, named):
    blobs = caffe2_blobs(reference)
    blobs.pop(drop_blob, None)
    pkl, output = write_pickle(tmp_path / "i3d.pkl", {"blobs": blobs}), tmp_path / "converted.pth"

    with pytest.raises(CheckpointError, match=named):
        main(["caffe2", "--cfg", I3D, "--in", pkl, "--out", str(output), *opts])
    assert not output.exists()


def test_caffe2_nonlocal_blobs_land_in_the_blocks(tmp_path):
    opts = [*SMALL_I3D, "CONTEXT.BLOCK", "nonlocal", "CONTEXT.RES3", "[1]", "CONTEXT.RES4", "[0]"]
    torch.manual_seed(0)
    reference = randomize_batch_norms(build_model(load_cfg(I3D, opts))).eval()
    with torch.no_grad():  # the blocks start as the identity; make them compute something
        for name, p in reference.named_parameters():
            if ".context." in name:
                p.normal_(0, 0.2)
    blobs = caffe2_blobs(reference)
    assert {"nonlocal_conv3_1_theta_w", "nonlocal_conv3_1_g_b", "nonlocal_conv4_0_out_w", "nonlocal_conv4_0_bn_riv"} <= set(blobs)
    output = tmp_path / "nl.pth"

    main(["caffe2", "--cfg", I3D, "--in", write_pickle(tmp_path / "nl.pkl", {"blobs": blobs}), "--out", str(output), *opts])

    model = build_model(load_cfg(I3D, opts)).eval()
    assert load_state_dict_checked(model, load_checkpoint(str(output))["model"]) == NO_LOSS
    np.testing.assert_array_equal(blobs["nonlocal_conv3_1_phi_w"], model.res3[1].context.conv_phi.weight.detach().numpy())
    np.testing.assert_array_equal(blobs["nonlocal_conv4_0_bn_s"], model.res4[0].context.bn.weight.detach().numpy())
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), reference(clip))


def test_configs_compose_as_in_every_command(reference, tmp_path):
    """--cfg repeats: the model file, then a file of the small sizes; the second alone is another model."""
    small = tmp_path / "small.yaml"
    small.write_text("RESNET:\n  BLOCKS: [1, 2, 1, 1]\n  WIDTH: 8\nMODEL:\n  NUM_CLASSES: 5\n")
    pkl, output = write_pickle(tmp_path / "i3d.pkl", {"blobs": caffe2_blobs(reference)}), tmp_path / "converted.pth"

    main(["caffe2", "--cfg", I3D, "--cfg", str(small), "--in", pkl, "--out", str(output)])

    model = build_model(load_cfg(I3D, SMALL_I3D)).eval()
    assert load_state_dict_checked(model, load_checkpoint(str(output))["model"]) == NO_LOSS
    assert load_checkpoint(str(output))["cfg"] == load_cfg([I3D, str(small)]).dump()


def convert_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "videonl", "convert", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_model_of_other_shapes_fails_in_one_line_and_lists_every_key_with_verbose(reference, tmp_path):
    pkl = write_pickle(tmp_path / "i3d.pkl", {"blobs": caffe2_blobs(reference)})
    narrow = [*SMALL_I3D[:2], "RESNET.WIDTH", "4", *SMALL_I3D[4:]]
    model = build_model(load_cfg(I3D, narrow))
    differing = [key for key, value in model.state_dict().items() if value.shape != reference.state_dict()[key].shape]

    with pytest.raises(CheckpointError) as error:
        main(["caffe2", "--cfg", I3D, "--in", pkl, "--out", str(tmp_path / "narrow.pth"), *narrow])
    assert str(error.value) == (
        f"weights do not fit the model (shape mismatch): stem.conv.weight: checkpoint "
        f"{tuple(reference.stem.conv.weight.shape)} vs model {tuple(model.stem.conv.weight.shape)}, and "
        f"{len(differing) - 1} more keys of other shapes (each logged at INFO level)")

    verbose = convert_command("caffe2", "--cfg", I3D, "--in", pkl, "--out", str(tmp_path / "narrow.pth"), *narrow,
                              "--verbose")
    listed = re.findall(r"shape mismatch: (\S+): checkpoint", verbose.stderr)
    assert verbose.returncode == 1 and listed == differing
    assert verbose.stderr.splitlines()[-1] == f"error: {error.value}"
