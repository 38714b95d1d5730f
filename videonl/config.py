"""Every configuration key with its default, and loading with clear errors.

A config is `get_cfg()` merged with one or more YAML files in order (each may inherit from others through
`_BASE_`, a path or a list of paths relative to the file) and then with `KEY VALUE` pairs from the command line.
`load_cfg` remembers which keys the files and overrides set (`explicit_keys`), so that a choice of the user's is
told apart from a default without comparing values.
A config file is named by its path or by its place among the configs shipped in the package
(`kinetics400/nl_i3d_r50_32x2.yaml`, the repository's `configs/` folder).

A plug-in (a task, a context block, a backbone) declares its own node beside its code as a `NodeSpec` and adds
it with `add_node`; `get_cfg()` holds every added node, after importing the package's own plug-ins (`PLUGINS`)
and the user's (the modules named in the environment variable VIDEONL_PLUGINS, e.g. `VIDEONL_PLUGINS=my_blocks
videonl train ...`).
"""

import copy
import importlib
import logging
import os
from importlib import resources
from typing import Any, Dict, FrozenSet, Iterable, Optional, Sequence, Set, Tuple, Union

import yaml
from fvcore.common.config import CfgNode

BASE_KEY = "_BASE_"
# Keys renamed in this release: old key -> (new key, old values that changed -> new). The old names still load,
# in files and overrides, with a logged warning, until the next release.
RENAMED_KEYS = {
    "TRAIN.MIXED_PRECISION": ("RUNTIME.PRECISION", {"none": "fp32"}),
    "TRAIN.CHANNELS_LAST": ("RUNTIME.CHANNELS_LAST", {}),
    "TRAIN.COMPILE": ("RUNTIME.COMPILE", {}),
}
logger = logging.getLogger(__name__)
# The repository's top-level configs/, shipped inside the package (a link in a checkout, files in a wheel).
PACKAGED_CONFIGS = resources.files("videonl") / "configs"
# Where `load_cfg` keeps the keys it was told, in the root node's attributes (not a key: it is not dumped, and it
# survives clone() and pickling).
EXPLICIT_KEYS = "__explicit_keys__"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the file."""


def get_cfg() -> CfgNode:
    """Return a fresh config holding every key with its default value."""
    _C = CfgNode()

    # What a video's label is (videonl/tasks/): targets, loss, view combination, metrics, what predict prints.
    _C.TASK = CfgNode()
    _C.TASK.NAME = "single_label"  # registered task: single_label (one class a video) | multi_label (MULTI_LABEL)

    _C.MODEL = CfgNode()
    _C.MODEL.BACKBONE = "resnet3d"  # registered backbone (models/backbones.py); resnet3d reads the RESNET node
    _C.MODEL.NUM_CLASSES = 400  # classifier outputs
    _C.MODEL.DROPOUT = 0.5  # dropout before the classifier (non-local paper: 0.5)
    _C.MODEL.FULLY_CONV_TEST = True  # eval: classify every HEAD_POOL window, combined as the task says (paper's test)
    _C.MODEL.HEAD_POOL = 7  # spatial window of the fully-convolutional test head (7 = res5 at 224 pixels)
    _C.MODEL.INIT = ""  # "" random; "imagenet" inflated; .pth/.pt/.pyth: ours, torchvision, PyTorchVideo; .pkl: Caffe2

    _C.BN = CfgNode()
    _C.BN.EPS = 1e-5  # BatchNorm epsilon
    _C.BN.MOMENTUM = 0.1  # BatchNorm running-average momentum (PyTorch convention; Caffe2's 0.9)
    _C.BN.FROZEN = False  # "affine" models: statistics and parameters fixed (128-frame fine-tuning)

    # Context blocks (non-local, GC, ...): which registered block, and after which residual blocks.
    _C.CONTEXT = CfgNode()
    _C.CONTEXT.BLOCK = ""  # registered block name; "" = plain backbone
    # conv_b: the block takes the place of the bottleneck's 3x3 conv and its BN (CoT).
    _C.CONTEXT.POSITION = "after_block"  # after_block | after_conv_c (before the add) | after_add | conv_b
    _C.CONTEXT.RES2 = []  # residual-block indices in res2 that get a block (0-based)
    _C.CONTEXT.RES3 = []  # ... in res3 (non-local 5-block: [1, 3])
    _C.CONTEXT.RES4 = []  # ... in res4 (non-local 5-block: [1, 3, 5]; 1-block: [4])
    _C.CONTEXT.RES5 = []  # ... in res5

    # Training (train_net.py). The defaults are the non-local paper's 32-frame recipe (NL-paper sec. 4.1 and the
    # official 8-GPU config): batch 64, SGD, LR 0.01 divided by 10 at 150k and 300k, 400k iterations.
    _C.TRAIN = CfgNode()
    _C.TRAIN.ENABLE = True  # train (then test when TEST.ENABLE)
    _C.TRAIN.REQUIRE_INIT = False  # fail before training when MODEL.INIT is empty (fine-tuning recipes)
    _C.TRAIN.AUTO_RESUME = True  # continue from the newest checkpoint in OUTPUT_DIR/checkpoints when there is one
    _C.TRAIN.CHECKPOINT_PERIOD = 5000  # iterations between checkpoints (one is always written at the end)
    _C.TRAIN.CHECKPOINT_KEEP = 3  # newest periodic checkpoints kept; older ones are deleted (0 = keep all)
    _C.TRAIN.EVAL_PERIOD = 20000  # iterations between validations on DATA.VAL_SPLIT (0 = only at the end)
    _C.TRAIN.LOG_PERIOD = 20  # iterations between logged lines (metrics.jsonl, TensorBoard, the bar)
    _C.TRAIN.CLIP_GRAD_NORM = 0.0  # clip the global gradient norm to this value (0 = off)
    _C.TRAIN.PRECISE_BN_BATCHES = 200  # recompute BN statistics over this many batches before evaluating (0 = off)
    _C.TRAIN.SYNC_BN = False  # synchronise BN statistics across processes (small per-GPU batches)
    _C.TRAIN.SEED = 0  # seeds Python, numpy and torch (offset by rank); data order follows it
    _C.TRAIN.DETERMINISTIC = False  # deterministic kernels, DATA.DECODER auto fixed (reproducible runs, slower)

    # How the model runs in training, testing, prediction and benchmarks alike (applied by the engine; the data
    # layer's model inputs take the memory format too).
    _C.RUNTIME = CfgNode()
    _C.RUNTIME.PRECISION = "fp32"  # fp32 | bf16 | fp16 autocast (fp16 with a grad scaler); never bf16/fp16 on CPUs
    _C.RUNTIME.CHANNELS_LAST = False  # channels-last-3d memory format for the model and its inputs
    _C.RUNTIME.COMPILE = False  # torch.compile the model

    # The optimiser and learning-rate schedule, in iterations.
    _C.SOLVER = CfgNode()
    _C.SOLVER.BASE_LR = 0.01  # learning rate at SOLVER.REFERENCE_BATCH_SIZE
    _C.SOLVER.REFERENCE_BATCH_SIZE = 64  # global batch BASE_LR is meant for; other batches scale the LR linearly
    _C.SOLVER.LR_POLICY = "steps"  # steps (x GAMMA at each of STEPS) | cosine (to COSINE_END_FACTOR x LR)
    _C.SOLVER.STEPS = [150000, 300000]  # iterations where the step policy multiplies the LR by GAMMA
    _C.SOLVER.GAMMA = 0.1  # step policy factor
    _C.SOLVER.COSINE_END_FACTOR = 0.0  # cosine policy: final LR as a fraction of the base LR
    _C.SOLVER.MAX_ITER = 400000  # training iterations
    _C.SOLVER.WARMUP_ITERS = 0  # linear warm-up from WARMUP_START_FACTOR x LR (official non-local code: none)
    _C.SOLVER.WARMUP_START_FACTOR = 0.1  # LR factor at iteration 0 of the warm-up
    _C.SOLVER.MOMENTUM = 0.9  # SGD momentum
    _C.SOLVER.NESTEROV = True  # Nesterov momentum (official non-local code: yes)
    _C.SOLVER.WEIGHT_DECAY = 1e-4  # L2 weight decay
    _C.SOLVER.NO_DECAY_NORM_AND_BIAS = True  # no weight decay on BN / LayerNorm parameters and biases (official)

    _C.DATA = CfgNode()
    _C.DATA.NUM_FRAMES = 8  # frames per clip fed to the model
    _C.DATA.SAMPLING_RATE = 8  # take every n-th frame (32x2: 32 frames out of 64)
    _C.DATA.TRAIN_CROP_SIZE = 224  # square training crop; FLOPs are reported at this size
    _C.DATA.TEST_CROP_SIZE = 256  # short side / crop of test views
    _C.DATA.INPUT_CHANNELS = 3  # RGB
    _C.DATA.PATH_TO_DATA_DIR = "data/kinetics400"  # folder holding the prepared lists (train.csv, val.csv)
    _C.DATA.PATH_PREFIX = ""  # prepended to every relative path of a list file ("" = the list file's folder)
    _C.DATA.LIST_SEPARATOR = " "  # between path and label; split at the last one, so paths may hold spaces
    _C.DATA.TRAIN_SPLIT = "train"  # list file {PATH_TO_DATA_DIR}/{TRAIN_SPLIT}.csv used for training
    _C.DATA.VAL_SPLIT = "val"  # list used for the single-clip validation during training
    _C.DATA.DECODER = "auto"  # decord | pyav | torchcodec | auto (fastest, timed once) | torchcodec_cuda (GPU, NVDEC)
    _C.DATA.DECODER_FALLBACK = True  # try the other usable backends before a video counts as failed
    _C.DATA.TARGET_FPS = 0.0  # SAMPLING_RATE counts frames at this rate (e.g. 30); 0 = the video's own rate
    _C.DATA.TRAIN_JITTER_SCALES = [256, 320]  # training short side, drawn uniformly from [min, max]
    _C.DATA.RANDOM_FLIP = True  # random horizontal flip in training
    # Input normalisation; tested, predicted and fine-tuned weights bring their own (kept when set here).
    _C.DATA.MEAN = [0.485, 0.456, 0.406]  # per-channel mean of [0, 1] values, in CHANNEL_ORDER (ImageNet)
    _C.DATA.STD = [0.229, 0.224, 0.225]  # per-channel standard deviation (ImageNet)
    _C.DATA.CHANNEL_ORDER = "RGB"  # RGB | BGR: channel order the model reads (decoders give RGB; BGR reverses)
    _C.DATA.NORMALIZE_ON_DEVICE = True  # loaders give uint8; loader.model_input normalises on the GPU
    _C.DATA.MAX_RETRIES = 10  # training: other videos tried in place of one that fails, before giving up

    # Multi-view testing: every video of TEST.SPLIT, NUM_CLIPS clips x the crops of CROP.
    _C.TEST = CfgNode()
    _C.TEST.ENABLE = True  # multi-view testing (after training when TRAIN.ENABLE)
    _C.TEST.CHECKPOINT = ""  # weights to test; "" = the training run's newest checkpoint, else MODEL.INIT
    _C.TEST.SPLIT = "val"  # list file tested ({PATH_TO_DATA_DIR}/{SPLIT}.csv; Kinetics tests on val)
    _C.TEST.NUM_CLIPS = 10  # temporal clips per video
    _C.TEST.CLIP_STARTS = "official"  # official: clip k starts at floor(k*N/NUM_CLIPS); fit: all inside
    _C.TEST.CROP = "3crop"  # 3crop: 3 squares along the long side (30 views); full: whole frame; center
    _C.TEST.EXCLUDE_FAILED = False  # undecodable videos: False = scored wrong (official); True = left out
    _C.TEST.VIEWS_PER_FORWARD = 10  # views through the model at once (memory bound for 128-frame clips)

    _C.DATALOADER = CfgNode()
    _C.DATALOADER.NUM_WORKERS = 4  # decoding processes per training process
    _C.DATALOADER.PIN_MEMORY = True  # page-locked batches for faster copies to the GPU
    _C.DATALOADER.TRAIN_BATCH_SIZE = 8  # clips per batch per process in training
    _C.DATALOADER.TEST_BATCH_SIZE = 1  # videos (each with all its views) per batch per process in testing

    _C.DEVICE = "auto"  # cuda (this process's local GPU under torchrun) when available, else cpu; or cpu / cuda
    _C.OUTPUT_DIR = "output"  # where logs, checkpoints and reports go
    _add_plugin_nodes(_C)  # each task's, backbone's and context block's own settings (RESNET, NONLOCAL, GC, ...)
    return _C


# Imported by get_cfg(): the package's own tasks, blocks and backbone, which add their nodes.
PLUGINS = ("videonl.tasks", "videonl.models.context", "videonl.models.resnet3d")
PLUGINS_ENV = "VIDEONL_PLUGINS"  # comma-separated modules of the user's tasks, blocks and backbones, after PLUGINS
_PLUGIN_NODES: Dict[str, "NodeSpec"] = {}


class NodeSpec:
    """A config node declared beside the code that reads it: its name, and each key as `KEY=(default, comment)`.

    `renamed` maps a key to the dotted key older configs set in its place; `read` takes the old key's value,
    with a logged warning, while the new key keeps its default.
    """

    def __init__(self, name: str, renamed: Optional[Dict[str, str]] = None, **keys: Tuple[Any, str]):
        for key, spec in keys.items():
            if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str) and spec[1].strip()):
                raise ValueError(f"{name}.{key} must be declared as (default, one-line comment), got {spec!r}")
        unknown = set(renamed or ()) - set(keys)
        if unknown:
            raise ValueError(f"{name}: renamed keys {sorted(unknown)} are not keys of the node")
        self.name, self.keys, self.renamed = name, keys, dict(renamed or {})

    def defaults(self) -> CfgNode:
        return CfgNode({key: copy.deepcopy(default) for key, (default, _) in self.keys.items()})

    def comment(self, key: str) -> str:
        return self.keys[key][1]

    def read(self, cfg: CfgNode) -> CfgNode:
        """The node's values in `cfg`, with values that older configs set under a former key moved over."""
        node = cfg[self.name].clone()
        defaults = get_cfg() if self.renamed else None  # built only for a node with a former key (every block reads)
        for key, old in self.renamed.items():
            old_value, old_default = value_at(cfg, old), value_at(defaults, old)
            if node[key] == self.keys[key][0] and old_value != old_default:
                logger.warning("%s %s is read as %s.%s; the key was renamed: set %s.%s instead",
                               old, old_value, self.name, key, self.name, key)
                node[key] = old_value
        return node


def value_at(cfg: CfgNode, key: str) -> Any:
    """The value of a dotted key, e.g. value_at(cfg, "DATA.MEAN")."""
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _leaf_keys(node: dict, prefix: str = "") -> Set[str]:
    """The dotted keys of every value under `node` (a config, or a file's content)."""
    keys = set()
    for name, value in node.items():
        keys |= _leaf_keys(value, f"{prefix}{name}.") if isinstance(value, dict) else {prefix + name}
    return keys


def add_node(spec: NodeSpec) -> None:
    """Make `spec`'s node part of every config `get_cfg()` builds from now on (blocks may share one node)."""
    known = _PLUGIN_NODES.get(spec.name)
    if known is not None and known is not spec:
        raise ValueError(f"config node {spec.name} is already declared elsewhere")
    _PLUGIN_NODES[spec.name] = spec


def plugin_nodes() -> Tuple[NodeSpec, ...]:
    """The nodes plug-ins have added, in the order they were added."""
    return tuple(_PLUGIN_NODES.values())


def _import_plugins() -> None:
    user = [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]
    for module in PLUGINS + tuple(user):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is None or not (module == err.name or module.startswith(err.name + ".")):
                raise  # the plug-in was found; something it imports was not
            raise ConfigError(f"{PLUGINS_ENV}: plug-in module '{module}' not found (is its folder on PYTHONPATH?)") \
                from err


def _add_plugin_nodes(cfg: CfgNode) -> None:
    _import_plugins()
    for name, spec in _PLUGIN_NODES.items():
        if name in cfg:
            raise ValueError(f"plug-in config node {name} clashes with a node of get_cfg()")
        cfg[name] = spec.defaults()


def _load_with_bases(cfg_file: str, seen: tuple = ()) -> dict:
    """A file's keys merged over those of its `_BASE_` files (in order, each with its own chain; paths relative to
    the file). Each file's retired keys are renamed before the merge, so a file may set a key by its old name
    over a base that sets the new one; a missing or circular base is named with the file that asks for it."""
    if cfg_file in seen:
        raise ConfigError(f"{cfg_file}: _BASE_ chain is circular ({' -> '.join(seen + (cfg_file,))})")
    try:
        with open(cfg_file) as f:
            content = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{cfg_file}: {err}") from err
    if not isinstance(content, dict):
        raise ConfigError(f"{cfg_file}: a config file must be a mapping of keys, got {type(content).__name__}")
    bases = content.pop(BASE_KEY, [])
    _rename_in_file(content, cfg_file)
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        path = os.path.join(os.path.dirname(cfg_file), os.path.expanduser(base))
        if not os.path.isfile(path):
            raise ConfigError(f"{cfg_file}: _BASE_ file '{base}' not found (looked for {os.path.abspath(path)})")
        _merge_into(merged, _load_with_bases(path, seen + (cfg_file,)), cfg_file)
    _merge_into(merged, content, cfg_file)
    return merged


def _merge_into(merged: dict, content: dict, cfg_file: str) -> None:
    """`content` over `merged`, in place: nodes merge key by key, any other value replaces."""
    for key, value in content.items():
        if isinstance(value, dict) and key in merged:
            if not isinstance(merged[key], dict):
                raise ConfigError(f"{cfg_file}: {key} is a node here but a value in its _BASE_ chain")
            _merge_into(merged[key], value, cfg_file)
        else:
            merged[key] = value


def _explain(err: Exception) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def load_cfg(cfg_files: Union[str, Sequence[str], None] = None, opts: Iterable[str] = ()) -> CfgNode:
    """Defaults, merged with each of `cfg_files` in order (each with its `_BASE_` chain), then with `KEY VALUE`
    overrides; frozen. Several files compose: a model file, then a dataset recipe holding only what differs.

    The keys the files and overrides set are kept with the config (`explicit_keys`). A file that sets every key
    is a saved config (`cfg.dump()`, a run's config.yaml): it states values, not choices, so it counts as
    setting none, and the keys set before it no longer hold a choice either.
    """
    cfg = get_cfg()
    every_key, chosen = _leaf_keys(cfg), set()
    for cfg_file in [cfg_files] if isinstance(cfg_files, str) else list(cfg_files or ()):
        keys = _leaf_keys(_merge_file(cfg, cfg_file))
        chosen = set() if keys >= every_key else chosen | keys
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd number: {opts}")
    for index in range(0, len(opts), 2):
        opts[index:index + 2] = _renamed(opts[index], opts[index + 1], "command-line override")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as err:
        raise ConfigError(f"command-line override: {_explain(err)}") from err
    cfg.__dict__[EXPLICIT_KEYS] = frozenset(chosen | set(opts[0::2]))
    cfg.freeze()
    return cfg


def explicit_keys(cfg: CfgNode) -> FrozenSet[str]:
    """The dotted keys `load_cfg` was told by a config file (with its _BASE_ chain) or an override, a saved
    config's excepted; empty for a config built otherwise. Copies of the config (clone()) keep them."""
    return cfg.__dict__.get(EXPLICIT_KEYS, frozenset())


def with_values(cfg: CfgNode, opts: Sequence) -> CfgNode:
    """A frozen copy of `cfg` with the `KEY VALUE` pairs of `opts` merged in; `cfg` itself is not changed, and the
    copy keeps its `explicit_keys` (values adopted from weights are not the user's choices)."""
    result = cfg.clone()
    result.defrost()
    result.merge_from_list(list(opts))
    result.freeze()
    return result


def resolve_config(name: str) -> str:
    """The file `--cfg name` means: a path when one exists, else a packaged config, written with or without the
    repository's `configs/` prefix, so the README's commands also work from any folder of an installed package."""
    if os.path.isfile(name):
        return name
    packaged = PACKAGED_CONFIGS.joinpath(*name.removeprefix("configs/").split("/"))
    if packaged.is_file():
        return str(packaged)
    raise ConfigError(f"config file not found: {name} (neither a file nor a packaged config under "
                      f"{PACKAGED_CONFIGS}, e.g. kinetics400/nl_i3d_r50_32x2.yaml)")


def _merge_file(cfg: CfgNode, name: str) -> dict:
    """Merge the file `name` means into `cfg`; returns the file's content (its keys over its _BASE_ chain's)."""
    cfg_file = resolve_config(name)
    content = _load_with_bases(cfg_file)
    try:
        cfg.merge_from_other_cfg(CfgNode(content))
    except (KeyError, ValueError, AssertionError) as err:
        raise ConfigError(f"{cfg_file}: {_explain(err)}") from err
    return content


def _renamed(key: str, value, where: str) -> list:
    """[key, value] under the names of this release; an old key is logged with its new name."""
    if key not in RENAMED_KEYS:
        return [key, value]
    new_key, new_values = RENAMED_KEYS[key]
    logger.warning("%s: %s is renamed %s; the old name is read until the next release", where, key, new_key)
    return [new_key, new_values.get(value, value) if isinstance(value, str) else value]


def _rename_in_file(content: dict, cfg_file: str) -> None:
    """Move the old keys of one file's own content (not its _BASE_ chain's) to their new names, in place."""
    for old_key in RENAMED_KEYS:
        section, name = old_key.split(".")
        if name not in (content.get(section) or {}):
            continue
        new_key, value = _renamed(old_key, content[section].pop(name), cfg_file)
        new_section, new_name = new_key.split(".")
        if new_name in (content.get(new_section) or {}):
            raise ConfigError(f"{cfg_file}: both {old_key} and its new name {new_key} are set; keep {new_key}")
        content.setdefault(new_section, {})[new_name] = value
