import re
from pathlib import Path

import pytest

from helpers import structure_of
import videonl.config as config_module
from videonl.config import ConfigError, get_cfg, load_cfg
from videonl.models.registry import context_block_names

ROOT = Path(__file__).resolve().parents[1]
MODEL_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "_base_" not in p.parts)


def _leaf_keys(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_every_default_has_a_comment():
    lines = Path(config_module.__file__).read_text().splitlines()
    for key in _leaf_keys(get_cfg()):
        pattern = re.compile(rf"^\s*_C\.{re.escape(key)} = ")
        index = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
        assert index is not None, f"{key} is not assigned in config.py"
        commented = "#" in lines[index] or lines[index - 1].strip().startswith("#")
        assert commented, f"{key} has no comment"


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_base_list_merges_in_order_and_child_wins(tmp_path):
    _write(tmp_path / "a.yaml", "MODEL:\n  NUM_CLASSES: 10\n  DROPOUT: 0.1\n")
    _write(tmp_path / "b.yaml", "MODEL:\n  NUM_CLASSES: 20\n")
    child = _write(tmp_path / "c.yaml", "_BASE_: [a.yaml, b.yaml]\nRESNET:\n  DEPTH: 101\n")
    cfg = load_cfg(child, ["MODEL.DROPOUT", "0.3"])
    assert (cfg.MODEL.NUM_CLASSES, cfg.MODEL.DROPOUT, cfg.RESNET.DEPTH) == (20, 0.3, 101)
    assert cfg.is_frozen()


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path / "bad.yaml", "MODEL:\n  NUM_CLASES: 10\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*MODEL\.NUM_CLASES"):
        load_cfg(path)


def test_wrong_type_names_key_and_file(tmp_path):
    path = _write(tmp_path / "bad.yaml", "RESNET:\n  DEPTH: fifty\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*RESNET\.DEPTH"):
        load_cfg(path)


def test_missing_base_names_the_file_that_asks_for_it(tmp_path):
    _write(tmp_path / "mid.yaml", "_BASE_: nowhere.yaml\n")
    path = _write(tmp_path / "top.yaml", "_BASE_: mid.yaml\n")
    with pytest.raises(ConfigError, match=r"mid\.yaml: _BASE_ file 'nowhere\.yaml' not found"):
        load_cfg(path)


def test_circular_base_is_reported(tmp_path):
    path = _write(tmp_path / "a.yaml", "_BASE_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_cfg(path)


def test_bad_overrides():
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        load_cfg(None, ["MODEL.DROPOUT"])
    with pytest.raises(ConfigError, match="command-line override.*MODEL.NOPE"):
        load_cfg(None, ["MODEL.NOPE", "1"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_cfg("no/such.yaml")


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_loads_and_builds(path):
    cfg = load_cfg(str(path))
    assert not cfg.CONTEXT.BLOCK or cfg.CONTEXT.BLOCK in context_block_names(), \
        f"{path.name} names an unregistered block {cfg.CONTEXT.BLOCK}"
    model = structure_of(cfg)
    assert model.head.fc.out_features == cfg.MODEL.NUM_CLASSES


BACKBONES = ["c2d_r50_8x8", "i3d_r50_8x8", "slow_r50_8x8", "c2d_r50_32x2", "i3d_r50_32x2", "i3d333_r50_32x2",
             "c2d_r101_32x2", "i3d_r101_32x2"]


@pytest.mark.parametrize("dataset, classes", [("mini_kinetics200", 200), ("ucf101", 101)])
def test_dataset_variants_change_only_data_and_classes(dataset, classes):
    variants = sorted((ROOT / "configs" / dataset).glob("*.yaml"))
    assert set(BACKBONES) <= {v.stem for v in variants}
    for variant in variants:
        ours, theirs = load_cfg(str(variant)), load_cfg(str(ROOT / "configs" / "kinetics400" / variant.name))
        assert ours.MODEL.NUM_CLASSES == classes
        different = {k for k in _leaf_keys(ours) if _get(ours, k) != _get(theirs, k)}
        assert different == {"MODEL.NUM_CLASSES", "DATA.PATH_TO_DATA_DIR"}, variant


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg
