"""The package as a user installs it: a wheel in a fresh environment, and dependencies that match the imports."""

import ast
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
import venv
from importlib.metadata import packages_distributions
from pathlib import Path

from videos import write_h264

ROOT = Path(__file__).resolve().parents[1]
# Files a wheel is built from; the link videonl/configs -> ../configs is copied as a link.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "videonl", "configs")
# Submodules of one distribution that need another one installed.
SUBMODULE_DISTRIBUTIONS = {"torch.utils.tensorboard": "tensorboard"}


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so nothing is written into the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True)
    return next((tmp_path / "dist").glob("videonl-*.whl"))


def fresh_environment(tmp_path: Path, wheel: Path) -> Path:
    """A virtual environment holding only the wheel; third-party libraries come from this test environment's
    site-packages through a .pth path line, which does not run that folder's editable-install hook. pip may see
    the editable videonl of this environment: --ignore-installed installs beside it and touches nothing there."""
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "test_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--ignore-installed", str(wheel)], check=True)
    return env / "bin"


def tiny_dataset(root: Path) -> None:
    """Two classes of four short videos each (bright rows for class 0, dark for class 1), listed for training
    and validation."""
    root.mkdir()
    for label in (0, 1):
        for number in range(4):
            write_h264(root / f"{label}_{number}.mp4", 12, height=40, width=48)
    lines = "".join(f"{label}_{number}.mp4 {label}\n" for label in (0, 1) for number in range(4))
    (root / "train.csv").write_text(lines)
    (root / "val.csv").write_text(lines)
    (root / "classes.json").write_text(json.dumps({"first": 0, "second": 1}))


TINY_RUN = """\
MODEL: {NUM_CLASSES: 2}
RESNET: {WIDTH: 4}
DATA: {PATH_TO_DATA_DIR: data, NUM_FRAMES: 4, SAMPLING_RATE: 2, TRAIN_JITTER_SCALES: [32, 36],
       TRAIN_CROP_SIZE: 32, TEST_CROP_SIZE: 32}
SOLVER: {MAX_ITER: 2, WARMUP_ITERS: 0}
TRAIN: {CHECKPOINT_PERIOD: 2, EVAL_PERIOD: 0, LOG_PERIOD: 1, PRECISE_BN_BATCHES: 0}
TEST: {NUM_CLIPS: 1}
DATALOADER: {NUM_WORKERS: 0, TRAIN_BATCH_SIZE: 2}
DEVICE: cpu
OUTPUT_DIR: run
"""


def test_the_wheel_in_a_fresh_environment_trains_and_reports_from_any_folder(tmp_path):
    bin_dir = fresh_environment(tmp_path, build_wheel(tmp_path))
    work = tmp_path / "work"  # no checkout in sight: only the installed package
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    def videonl(*args):
        result = subprocess.run([bin_dir / "videonl", *args], cwd=work, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    where = subprocess.run([bin_dir / "python", "-c", "import videonl; print(videonl.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stderr

    tiny_dataset(work / "data")
    (work / "tiny.yaml").write_text(TINY_RUN)
    videonl("train", "--cfg", "demo/nl_i3d.yaml", "--cfg", "tiny.yaml")
    assert (work / "run" / "checkpoints" / "iter_0000002.pth").is_file()
    summary = json.loads((work / "run" / "test" / "iter_0000002" / "summary.json").read_text())
    assert summary["videos"] == 8 and summary["failed"] == 0
    videonl("predict", "--cfg", "demo/nl_i3d.yaml", "--cfg", "tiny.yaml", "--checkpoint",
            "run/checkpoints/iter_0000002.pth", "--top-k", "2", "--output", "predictions.json", "data/0_0.mp4")
    predicted = json.loads((work / "predictions.json").read_text())
    assert {top["class"] for top in predicted[0]["top"]} == {"first", "second"}  # names recorded by training

    report = json.loads(videonl("info", "--cfg", "kinetics400/nl_i3d_r50_32x2.yaml", "--json", "--crop", "64",
                                "RESNET.WIDTH", "4"))
    assert [block["type"] for block in report["context_blocks"]] == ["NonLocal"] * 5


# --------------------------------------------------------------------------------------- dependencies


def imports(path: Path):
    """(module, inside a function) for every absolute import of a source file."""
    tree = ast.parse(path.read_text(), str(path))
    in_function = {id(node) for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef,
                   ast.AsyncFunctionDef)) for node in ast.walk(function) if node is not function}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, id(node) in in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, id(node) in in_function


def requirement_names(requirements) -> set:
    return {canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group()) for requirement in requirements}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution(module: str, installed: dict) -> str:
    """The distribution a module comes from; a module not installed here is taken to share its name."""
    for prefix, name in SUBMODULE_DISTRIBUTIONS.items():
        if module == prefix or module.startswith(prefix + "."):
            return canonical(name)
    top = module.split(".")[0]
    return canonical(installed.get(top, [top])[0])


def test_every_imported_distribution_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = requirement_names(project["dependencies"])
    optional = set().union(*map(requirement_names, project["optional-dependencies"].values()))
    installed = packages_distributions()
    undeclared = set()
    for path in sorted((ROOT / "videonl").rglob("*.py")):
        for module, lazy in imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "videonl":
                continue
            name = distribution(module, installed)
            if name not in (required | optional if lazy else required):
                undeclared.add(f"{path.relative_to(ROOT)}: {module} ({name}, "
                               f"{'an extra at least' if lazy else 'a dependency: imported at module level'})")
    assert not undeclared, "imports without a declared distribution:\n" + "\n".join(sorted(undeclared))
