"""python -m videonl.export: ONNX and TorchScript files whose logits equal the PyTorch model's, every block type."""

import json

import onnx
import onnxruntime
import pytest
import torch

from block_checks import randomise
from videonl import export as export_module
from videonl.config import load_cfg
from videonl.models import build_model
from videonl.engine.input_spec import InputSpec
from videonl.engine.checkpoint_format import save_checkpoint
from videonl.tasks.single_label import SingleLabel

# One residual block per stage, a context block in res3 and res4, 64-pixel views: small, every block on its path.
SMALL = ["RESNET.BLOCKS", "[1, 1, 1, 1]", "MODEL.NUM_CLASSES", "5", "DATA.TEST_CROP_SIZE", "64", "CONTEXT.RES2", "[]",
         "CONTEXT.RES3", "[0]", "CONTEXT.RES4", "[0]", "CONTEXT.RES5", "[]", "SGE.GROUPS", "4"]
# config -> extra overrides. Width 2 puts res3's non-local block on the fused path (scaled_dot_product_attention:
# the attention matrix dwarfs its inputs there) and res4's on the plain one; HEAD_POOL 1 averages 4 windows.
MODELS = {
    "nl_i3d_r50_8x8": ["RESNET.WIDTH", "2", "MODEL.HEAD_POOL", "1"],
    "gc_slow_r50_8x8_1gc": ["RESNET.WIDTH", "8"],
    "gc_slow_r50_8x8_1snl": ["RESNET.WIDTH", "8"],
    "se_slow_r50_8x8_all": ["RESNET.WIDTH", "8"],
    "cgnl_i3d_r50_32x2_1block": ["RESNET.WIDTH", "8"],
    "sge_slow_r50_8x8_all": ["RESNET.WIDTH", "8"],
    "cot_slow_r50_8x8_res45": ["RESNET.WIDTH", "8"],
}


def trained_like(cfg, path):
    """A checkpoint with every weight random (zero-initialised ones too), so that every block changes the logits."""
    model = randomise(build_model(cfg), torch.Generator().manual_seed(0))
    save_checkpoint(str(path), model, cfg)
    return model.eval()


def clip(cfg, views, seed=5):
    return export_module.example_clip(cfg, views, seed=seed)


@pytest.mark.parametrize("fmt", export_module.FORMATS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_logits_equal_pytorch_for_any_batch(name, fmt, tmp_path, capsys):
    cfg_file, opts = f"configs/kinetics400/{name}.yaml", SMALL + MODELS[name]
    cfg = load_cfg(cfg_file, opts)
    model = trained_like(cfg, tmp_path / "weights.pth")
    output = tmp_path / f"model.{fmt}"
    assert export_module.main(["--cfg", cfg_file, "--checkpoint", str(tmp_path / "weights.pth"), "--format", fmt,
                               "--output", str(output), *opts]) == 0
    assert f"wrote {output}" in capsys.readouterr().out and not (tmp_path / f"model.{fmt}.unverified").exists()
    for views in (1, 4):  # traced with 2 views
        with torch.no_grad():
            # the test's output, as before the outputs were named: the log of the windows' averaged softmax
            expected = SingleLabel(5).view_output(model.test_logits(clip(cfg, views)))
        actual = export_module.run_exported(str(output), fmt, clip(cfg, views), "logits")
        torch.testing.assert_close(actual, expected, **export_module.PARITY)
        assert actual.shape == (views, 5)
    assert recorded_facts(output, fmt) == export_module.input_facts(cfg)
    if name.startswith("nl_"):  # res3's block went out on its fused path, res4's on the plain one
        assert fused_attention_nodes(output, fmt) == 1


def fused_attention_nodes(path, fmt):
    if fmt == "onnx":
        return sum(node.op_type == "Attention" for node in onnx.load(str(path)).graph.node)
    return str(torch.jit.load(str(path)).inlined_graph).count("aten::scaled_dot_product_attention(")


def recorded_facts(path, fmt):
    """What the file says about its input: ONNX metadata, or the TorchScript extra file."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["clip"]
        return {key: json.loads(value) for key, value in session.get_modelmeta().custom_metadata_map.items()}
    files = {"videonl.json": ""}
    torch.jit.load(str(path), _extra_files=files)
    return json.loads(files["videonl.json"])


def test_input_facts_follow_the_config():
    cfg = load_cfg("configs/kinetics400/nl_i3d_r50_32x2.yaml", ["DATA.MEAN", "[0.45, 0.45, 0.45]"])
    facts = export_module.input_facts(cfg)
    assert facts["mean"] == [0.45, 0.45, 0.45] and facts["std"] == [0.229, 0.224, 0.225]
    assert "[B, 3, 32, 256, 256]" in facts["input"] and "[B, 400]" in facts["output"]
    assert facts["test_views"] == "TEST.NUM_CLIPS 10 x TEST.CROP 3crop"


def test_the_file_states_the_input_its_weights_were_trained_on(tmp_path):
    """Weights recorded with PyTorchVideo's normalisation export with that normalisation, not the defaults."""
    cfg_file, opts = "configs/kinetics400/gc_slow_r50_8x8_1gc.yaml", SMALL + ["RESNET.WIDTH", "8"]
    cfg = load_cfg(cfg_file, opts)
    save_checkpoint(str(tmp_path / "weights.pth"), build_model(cfg), cfg,
                    input_spec=InputSpec((0.45,) * 3, (0.225,) * 3, 1.0, "BGR"))
    output = tmp_path / "model.pt"
    export_module.main(["--cfg", cfg_file, "--checkpoint", str(tmp_path / "weights.pth"), "--format",
                        "torchscript", "--output", str(output), *opts])
    facts = recorded_facts(output, "torchscript")
    assert facts["mean"] == [0.45] * 3 and facts["std"] == [0.225] * 3 and facts["normalisation"].startswith("BGR")


def test_a_file_that_disagrees_with_pytorch_fails_the_parity_check(tmp_path):
    cfg = load_cfg("configs/kinetics400/se_slow_r50_8x8_all.yaml", SMALL + ["RESNET.WIDTH", "8"])
    exported = trained_like(cfg, tmp_path / "weights.pth")
    export_module.export(cfg, str(tmp_path / "weights.pth"), "torchscript", str(tmp_path / "m.pt"))
    other = build_model(cfg).eval()  # same architecture, other weights
    task = SingleLabel(5)
    with pytest.raises(export_module.ParityError, match="logits differ from PyTorch's by up to"):
        export_module.check_parity(export_module.ViewOutput(other, task), str(tmp_path / "m.pt"), "torchscript",
                                   clip(cfg, 2))
    assert export_module.check_parity(export_module.ViewOutput(exported, task), str(tmp_path / "m.pt"), "torchscript",
                                      clip(cfg, 2)) == 0


def test_bad_arguments_are_one_line_errors(tmp_path):
    cfg_file = "configs/kinetics400/se_slow_r50_8x8_all.yaml"
    trained_like(load_cfg(cfg_file, SMALL + ["RESNET.WIDTH", "8"]), tmp_path / "weights.pth")
    common = ["--cfg", cfg_file, "--checkpoint", str(tmp_path / "weights.pth"), "--format", "onnx",
              "--output", str(tmp_path / "m.onnx"), *SMALL]
    with pytest.raises(SystemExit, match="does not fit the config's model"):
        export_module.main([*common, "RESNET.WIDTH", "4"])
    with pytest.raises(SystemExit, match="at least 2 views"):
        export_module.main([*common, "RESNET.WIDTH", "8", "--views", "1"])
    with pytest.raises(SystemExit, match="MODEL.NOPE"):
        export_module.main([*common, "MODEL.NOPE", "1"])
    assert not list(tmp_path.glob("m.onnx*"))


def test_help(capsys):
    with pytest.raises(SystemExit):
        export_module.main(["--help"])
    assert "onnxruntime" in capsys.readouterr().out
