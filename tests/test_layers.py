"""The package's layers, read from every module's imports: no module imports one from a higher layer.

From low to high: foundations (config, progress, ranks, class_registry) -> tasks -> data -> models -> engine ->
commands -> the `videonl` console command. A module may import its own layer and the ones below; `import` inside
functions counts too, since a lazy import is still a dependency. A new module needs a place in LAYERS, so its
layer is a decision.
"""

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "videonl"
LAYERS = (  # module name prefixes, lowest layer first
    ("videonl.config", "videonl.progress", "videonl.ranks", "videonl.class_registry"),
    ("videonl.tasks",),
    ("videonl.data",),
    ("videonl.models", "videonl.flops"),
    ("videonl.engine",),
    ("videonl.command", "videonl.analyze", "videonl.benchmark", "videonl.compare", "videonl.convert",
     "videonl.export", "videonl.info", "videonl.predict", "videonl.prep", "videonl.train"),
    ("videonl.cli", "videonl.__main__", "videonl.__init__"),
)


def module_name(path: Path) -> str:
    return ".".join(("videonl", *path.relative_to(PACKAGE).with_suffix("").parts))


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> Optional[int]:
    """The layer of `module` by its longest matching prefix; None when LAYERS does not place it."""
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` reads from (relative imports resolved against `importer`)."""
    if not node.level:
        return node.module or ""
    package = importer.split(".") if MODULES[importer].name == "__init__.py" else importer.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def imported_modules(importer: str, source: str) -> Iterator[Tuple[str, int]]:
    """(package module imported, line) for every import of `source`, a package `__init__` counted as the package."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(importer, node)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            if name == "videonl" or name.startswith("videonl."):
                yield (name if name in MODULES else f"{name}.__init__"), node.lineno


def upward_imports(modules: Dict[str, str]) -> List[str]:
    """'importer:line imports module (layer a -> b)' for each import of a higher layer's module."""
    found = []
    for importer, source in modules.items():
        for imported, line in imported_modules(importer, source):
            if imported in MODULES and layer(imported) > layer(importer):
                found.append(f"{importer}:{line} imports {imported} (layer {layer(importer)} -> {layer(imported)})")
    return found


def test_every_module_has_a_layer():
    assert [module for module in MODULES if layer(module) is None] == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports({name: path.read_text() for name, path in MODULES.items()}) == []


@pytest.mark.parametrize("source", ["from videonl.engine.checkpoint import CheckpointManager",
                                    "from ..engine import checkpoint", "import videonl.engine.train",
                                    "def lazy():\n    from videonl.engine import train"])
def test_an_import_from_a_higher_layer_is_found_in_every_spelling(source):
    assert upward_imports({"videonl.data.loader": source}) == [
        f"videonl.data.loader:{source.count(chr(10)) + 1} imports "
        f"videonl.engine.{'checkpoint' if 'checkpoint' in source else 'train'} (layer 2 -> 4)"]
