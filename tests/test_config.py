import functools
import re
from pathlib import Path

import pytest
import yaml

from helpers import structure_of
import videonl.config as config_module
from videonl.config import ConfigError, NodeSpec, add_node, explicit_keys, get_cfg, load_cfg, plugin_nodes
from videonl.models.registry import context_block_names

ROOT = Path(__file__).resolve().parents[1]
KINETICS_MODELS = sorted((ROOT / "configs" / "kinetics400").glob("*.yaml"))
CHARADES_RECIPE = ROOT / "configs" / "charades" / "finetune.yaml"
# A Kinetics model composed with the Charades recipe through _BASE_ (the models the non-local paper fine-tunes)
CHARADES_MODELS = sorted(set((ROOT / "configs" / "charades").glob("*.yaml")) - {CHARADES_RECIPE})
DEMO_CHARADES = ROOT / "configs" / "demo_charades"
MODEL_CONFIGS = (KINETICS_MODELS + sorted((ROOT / "configs" / "demo").glob("*.yaml")) + CHARADES_MODELS
                 + sorted(DEMO_CHARADES.glob("*.yaml")))
# Dataset recipes: given after a model's config, they hold only what the dataset changes.
RECIPES = [p for folder in ("ucf101", "mini_kinetics200") for p in sorted((ROOT / "configs" / folder).glob("*.yaml"))
           ] + [CHARADES_RECIPE]


def _leaf_keys(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_every_default_has_a_comment():
    """config.py's keys carry a comment there; a plug-in's (a block's) carry one in its NodeSpec."""
    lines = Path(config_module.__file__).read_text().splitlines()
    plugins = {spec.name: spec for spec in plugin_nodes()}
    assert {"RESNET", "NONLOCAL", "GC", "SE", "CGNL", "SGE", "COT"} <= set(plugins)
    for key in _leaf_keys(get_cfg()):
        node, _, rest = key.partition(".")
        if node in plugins:
            assert plugins[node].comment(rest).strip(), f"{key} has no comment"
            continue
        pattern = re.compile(rf"^\s*_C\.{re.escape(key)} = ")
        index = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
        assert index is not None, f"{key} is not assigned in config.py"
        commented = "#" in lines[index] or lines[index - 1].strip().startswith("#")
        assert commented, f"{key} has no comment"


def test_a_plugin_node_declares_every_key_with_a_comment_and_a_fresh_default():
    with pytest.raises(ValueError, match="TOYSPEC.SIZE must be declared as"):
        NodeSpec("TOYSPEC", SIZE=3)
    with pytest.raises(ValueError, match="TOYSPEC.SIZE must be declared as"):
        NodeSpec("TOYSPEC", SIZE=(3, " "))
    with pytest.raises(ValueError, match=r"renamed keys \['WIDTH'\]"):
        NodeSpec("TOYSPEC", renamed={"WIDTH": "MODEL.WIDTH"}, SIZE=(3, "size"))
    spec = NodeSpec("TOYSPEC", SIZES=([1, 2], "sizes"))
    first = spec.defaults()
    first.SIZES.append(3)
    assert spec.defaults().SIZES == [1, 2]
    with pytest.raises(ValueError, match="NONLOCAL is already declared"):
        add_node(NodeSpec("NONLOCAL", MODE=("space", "mode")))


def test_a_plugin_module_that_is_not_there_is_named(monkeypatch):
    monkeypatch.setenv("VIDEONL_PLUGINS", "videonl_no_such_blocks")
    with pytest.raises(ConfigError, match="VIDEONL_PLUGINS: plug-in module 'videonl_no_such_blocks' not found"):
        get_cfg()


def test_a_plugin_node_may_not_replace_a_node_of_the_config(monkeypatch):
    monkeypatch.setitem(config_module._PLUGIN_NODES, "MODEL", NodeSpec("MODEL", WIDTH=(1, "width")))
    with pytest.raises(ValueError, match="plug-in config node MODEL clashes"):
        get_cfg()


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


def test_the_loader_records_the_keys_files_and_overrides_set(tmp_path):
    _write(tmp_path / "a.yaml", "MODEL:\n  NUM_CLASSES: 10\n")
    child = _write(tmp_path / "c.yaml", "_BASE_: a.yaml\nDATA:\n  MEAN: [0.485, 0.456, 0.406]\nTRAIN:\n"
                                        "  CHANNELS_LAST: True\n")
    cfg = load_cfg(child, ["MODEL.DROPOUT", "0.3", "TRAIN.COMPILE", "True"])
    chosen = {"MODEL.NUM_CLASSES", "DATA.MEAN", "RUNTIME.CHANNELS_LAST", "MODEL.DROPOUT", "RUNTIME.COMPILE"}
    assert explicit_keys(cfg) == chosen  # the default mean, set on purpose, counts; old names count as new
    assert explicit_keys(cfg.clone()) == chosen and "DATA.STD" not in explicit_keys(cfg)
    assert explicit_keys(get_cfg()) == frozenset()
    assert "__explicit_keys__" not in cfg.dump()


def test_a_saved_config_sets_no_key_on_purpose(tmp_path):
    chosen = _write(tmp_path / "chosen.yaml", "DATA:\n  STD: [0.5, 0.5, 0.5]\n")
    saved = _write(tmp_path / "saved.yaml", load_cfg(chosen).dump())
    assert explicit_keys(load_cfg(saved)) == frozenset()
    assert explicit_keys(load_cfg([chosen, saved], ["DATA.MEAN", "[0.5, 0.5, 0.5]"])) == {"DATA.MEAN"}
    assert explicit_keys(load_cfg([saved, chosen])) == {"DATA.STD"}


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path / "bad.yaml", "MODEL:\n  NUM_CLASES: 10\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*MODEL\.NUM_CLASES"):
        load_cfg(path)


def test_wrong_type_names_key_and_file(tmp_path):
    path = _write(tmp_path / "bad.yaml", "RESNET:\n  DEPTH: fifty\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*RESNET\.DEPTH"):
        load_cfg(path)


def test_old_runtime_keys_load_under_their_new_names_with_a_logged_rename(tmp_path, caplog):
    base = _write(tmp_path / "base.yaml", "TRAIN:\n  MIXED_PRECISION: none\n  COMPILE: True\n")
    child = _write(tmp_path / "child.yaml", "_BASE_: base.yaml\nTRAIN:\n  CHANNELS_LAST: True\n  SEED: 3\n")
    with caplog.at_level("WARNING", logger="videonl.config"):
        cfg = load_cfg(child, ["TRAIN.MIXED_PRECISION", "bf16"])
    assert (cfg.RUNTIME.PRECISION, cfg.RUNTIME.CHANNELS_LAST, cfg.RUNTIME.COMPILE, cfg.TRAIN.SEED) == \
        ("bf16", True, True, 3)
    assert "MIXED_PRECISION" not in cfg.TRAIN
    renamed = [record.getMessage() for record in caplog.records]
    assert any(m.startswith(f"{child}: TRAIN.CHANNELS_LAST is renamed RUNTIME.CHANNELS_LAST") for m in renamed)
    assert any(m.startswith(f"{base}: TRAIN.COMPILE is renamed RUNTIME.COMPILE") for m in renamed)
    assert any(m.startswith("command-line override: TRAIN.MIXED_PRECISION is renamed RUNTIME.PRECISION")
               for m in renamed)
    assert load_cfg(child).RUNTIME.PRECISION == "fp32"  # the old value `none` under its new name
    over_new = _write(tmp_path / "over_new.yaml", "_BASE_: both_new.yaml\nTRAIN:\n  CHANNELS_LAST: False\n")
    _write(tmp_path / "both_new.yaml", "RUNTIME:\n  CHANNELS_LAST: True\n")
    assert load_cfg(over_new).RUNTIME.CHANNELS_LAST is False  # a child's old name over its base's new one
    both = _write(tmp_path / "both.yaml", "TRAIN:\n  COMPILE: True\nRUNTIME:\n  COMPILE: False\n")
    with pytest.raises(ConfigError, match=r"both TRAIN.COMPILE and its new name RUNTIME.COMPILE are set"):
        load_cfg(both)


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


def _yaml_files(root) -> list:
    return sorted(path.relative_to(root).as_posix() for path in Path(root).rglob("*.yaml"))


def test_the_package_ships_the_repository_configs():
    assert _yaml_files(Path(str(config_module.PACKAGED_CONFIGS))) == _yaml_files(ROOT / "configs")


def test_a_packaged_name_loads_from_any_folder_with_its_base_chain(tmp_path, monkeypatch):
    expected = load_cfg(str(ROOT / "configs" / "kinetics400" / "nl_i3d_r50_32x2.yaml"))
    monkeypatch.chdir(tmp_path)
    for name in ("kinetics400/nl_i3d_r50_32x2.yaml", "configs/kinetics400/nl_i3d_r50_32x2.yaml"):
        assert load_cfg(name) == expected
    assert expected.CONTEXT.BLOCK == "nonlocal" and expected.CONTEXT.RES4 == [1, 3, 5]  # from the _BASE_ files


def test_a_file_at_the_given_path_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kinetics400").mkdir()
    _write(tmp_path / "kinetics400" / "nl_i3d_r50_32x2.yaml", "MODEL:\n  NUM_CLASSES: 7\n")
    assert load_cfg("kinetics400/nl_i3d_r50_32x2.yaml").MODEL.NUM_CLASSES == 7
    with pytest.raises(ConfigError, match=r"not found: kinetics400/nl\.yaml \(neither a file nor a packaged config"):
        load_cfg("kinetics400/nl.yaml")


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_loads_and_builds(path):
    cfg = load_cfg(str(path))
    assert not cfg.CONTEXT.BLOCK or cfg.CONTEXT.BLOCK in context_block_names(), \
        f"{path.name} names an unregistered block {cfg.CONTEXT.BLOCK}"
    model = structure_of(cfg)
    assert model.head.fc.out_features == cfg.MODEL.NUM_CLASSES


def _named_keys(path: Path) -> set:
    """The dotted keys a YAML file sets itself or through its `_BASE_` chain."""
    content = yaml.safe_load(path.read_text())
    bases = content.pop("_BASE_", [])
    named = set(_leaf_keys(content))
    for base in [bases] if isinstance(bases, str) else bases:
        named |= _named_keys(path.parent / base)
    return named


def test_every_config_is_a_model_a_recipe_or_a_base():
    configs = {p for p in (ROOT / "configs").rglob("*.yaml") if "_base_" not in p.parts}
    assert configs == set(MODEL_CONFIGS) | set(RECIPES)
    assert {p.parent.name for p in RECIPES} == {"ucf101", "mini_kinetics200", "charades"}


@functools.lru_cache(maxsize=None)
def _model_cfg(path: Path):
    return load_cfg(str(path))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_a_recipe_after_any_model_sets_its_own_keys_and_nothing_else(recipe):
    named, alone = _named_keys(recipe), load_cfg(str(recipe))
    assert "MODEL.NUM_CLASSES" in named
    assert not {key.split(".")[0] for key in named} & {"RESNET", "CONTEXT", *(spec.name for spec in plugin_nodes())}
    for model in KINETICS_MODELS:
        base, composed = _model_cfg(model), load_cfg([str(model), str(recipe)])
        assert {k for k in named if _get(composed, k) != _get(alone, k)} == set(), model
        changed = {k for k in _leaf_keys(composed) if _get(composed, k) != _get(base, k)}
        assert changed <= named and "MODEL.NUM_CLASSES" in changed, model


@pytest.mark.parametrize("recipe, classes, data_dir, init_required", [
    ("ucf101/finetune.yaml", 101, "data/ucf101/split1", True),
    ("ucf101/split2.yaml", 101, "data/ucf101/split2", True),
    ("ucf101/split3.yaml", 101, "data/ucf101/split3", True),
    ("mini_kinetics200/train.yaml", 200, "data/mini_kinetics200", False),
    ("charades/finetune.yaml", 157, "data/charades", True),
])
def test_recipes_name_their_data_and_build_their_classifier(recipe, classes, data_dir, init_required, monkeypatch,
                                                            tmp_path):
    monkeypatch.chdir(tmp_path)  # _BASE_ paths are relative to the file, not to the working folder
    model = str(ROOT / "configs" / "kinetics400" / "nl_i3d_r50_8x8.yaml")
    cfg = load_cfg([model, str(ROOT / "configs" / recipe)], ["RESNET.WIDTH", "4"])
    assert (cfg.DATA.PATH_TO_DATA_DIR, cfg.TRAIN.REQUIRE_INIT) == (data_dir, init_required)
    assert cfg.OUTPUT_DIR != get_cfg().OUTPUT_DIR  # the splits' runs never resume one another's checkpoints
    assert structure_of(cfg).head.fc.out_features == classes


def test_ucf101_splits_share_the_split_1_schedule():
    split1, split3 = (load_cfg(str(ROOT / "configs" / "ucf101" / name)) for name in ("finetune.yaml", "split3.yaml"))
    assert (split3.SOLVER.MAX_ITER, split3.SOLVER.BASE_LR, split3.MODEL.DROPOUT) == (
        split1.SOLVER.MAX_ITER, split1.SOLVER.BASE_LR, split1.MODEL.DROPOUT)


@pytest.mark.parametrize("path", CHARADES_MODELS, ids=lambda p: p.stem)
def test_a_charades_model_is_its_128_frame_kinetics_model_under_the_recipe(path):
    """The non-local paper fine-tunes its 128-frame Kinetics models on Charades (Sec. 5.2)."""
    kinetics = ROOT / "configs" / "kinetics400" / f"{path.stem}_128x1.yaml"
    composed, alone = load_cfg([str(kinetics), str(CHARADES_RECIPE)]), load_cfg(str(path))
    assert alone.OUTPUT_DIR == f"output/charades/{path.stem}"
    assert _differences(alone, composed) == {"OUTPUT_DIR"}
    assert (alone.DATA.NUM_FRAMES, alone.DATA.SAMPLING_RATE, alone.BN.FROZEN) == (128, 1, True)


def test_the_multi_label_demo_is_the_demos_nl_i3d_on_its_data_and_a_c2d_on_the_same_schedule():
    demo, nl_i3d, c2d = (load_cfg(str(path)) for path in (ROOT / "configs" / "demo" / "nl_i3d.yaml",
                                                           DEMO_CHARADES / "nl_i3d.yaml", DEMO_CHARADES / "c2d.yaml"))
    assert _differences(demo, nl_i3d) == {"TASK.NAME", "DATA.PATH_TO_DATA_DIR", "SOLVER.BASE_LR", "OUTPUT_DIR"}
    assert (nl_i3d.TASK.NAME, nl_i3d.DATA.PATH_TO_DATA_DIR) == ("multi_label", "data/demo_charades")
    assert {key.split(".")[0] for key in _differences(nl_i3d, c2d)} == {"RESNET", "CONTEXT", "OUTPUT_DIR"}


def test_the_charades_recipe_is_the_non_local_papers():
    """Sec. 5.2: multi-label (a sigmoid per class); 1 clip per GPU (8 GPUs), 200k iterations from LR 0.00125, / 10
    every 75k; the 224 window of the Kinetics jitter (short side in [256, 320]) rescaled to give 288 x 288; a
    single test scale of 320."""
    cfg = load_cfg(str(CHARADES_RECIPE))
    assert (cfg.TASK.NAME, cfg.MULTI_LABEL.VIEW_COMBINE, cfg.MULTI_LABEL.CLIP_LABELS) == (
        "multi_label", "max", "overlap")
    assert (cfg.DATALOADER.TRAIN_BATCH_SIZE, cfg.SOLVER.REFERENCE_BATCH_SIZE, cfg.SOLVER.BASE_LR) == (1, 8, 0.00125)
    assert (cfg.SOLVER.LR_POLICY, cfg.SOLVER.STEPS, cfg.SOLVER.MAX_ITER, cfg.SOLVER.GAMMA) == (
        "steps", [75000, 150000], 200000, 0.1)
    assert [round(scale * 224 / 288) for scale in cfg.DATA.TRAIN_JITTER_SCALES] == [256, 320]
    assert (cfg.DATA.TRAIN_CROP_SIZE, cfg.MODEL.HEAD_POOL * 32) == (288, 288)
    assert (cfg.DATA.TEST_CROP_SIZE, cfg.TEST.CROP) == (320, "full")


def _differences(first, second):
    return {key for key in _leaf_keys(first) if _get(first, key) != _get(second, key)}


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg
