"""The documentation as a reader follows it: every relative link and #anchor of README.md, BENCHMARKS.md and
docs/*.md leads somewhere, and the Python snippets run as written.

Anchors are the heading slugs GitHub makes: the heading's text (links and code marks dropped), lower case,
every character but letters, digits, spaces, `-` and `_` removed, spaces made `-`, a repeated slug numbered.
The snippets run in a folder laid out as the pages assume (the configs, checkpoints and videos they name),
where a tiny NL I3D on moving squares stands in for the full-size model, each in a fresh interpreter with
`cfg` (that model's config), `video_paths` and `device` already defined.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from helpers import ROOT, tiny

PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")


def prose_lines(page: Path) -> Iterator[Tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield number, line


def paragraphs(page: Path) -> Iterator[Tuple[int, str]]:
    """(first line number, its lines) of each paragraph outside code, inline code left out: a link may span
    lines."""
    start, lines, previous = None, [], None
    for number, line in [*prose_lines(page), (None, "")]:
        line = re.sub(r"`[^`]*`", "", line)
        if line.strip() and lines and number == previous + 1:
            lines.append(line)
        else:
            if lines:
                yield start, "\n".join(lines)
            start, lines = number, [line] if line.strip() else []
        previous = number


def github_slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link reads as its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set:
    seen, slugs = {}, set()
    for _, line in prose_lines(page):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def links() -> List:
    """One test case per relative link (page, target), named by its page and line."""
    cases = []
    for page in PAGES:
        for first, text in paragraphs(page):
            for link in LINK.finditer(text):
                target, number = link.group(1), first + text.count("\n", 0, link.start())
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                    continue
                where = f"{page.relative_to(ROOT)}:{number}"
                cases.append(pytest.param(page, target, id=f"{where} -> {target}"))
    return cases


@pytest.mark.parametrize("page, target", links())
def test_link_leads_to_a_file_and_heading(page, target):
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    assert destination.exists(), f"{page.name}: {target}: no such file"
    if anchor:
        assert destination.suffix == ".md", f"{page.name}: {target}: an anchor into a file that is not a page"
        assert anchor in anchors(destination), f"{page.name}: {target}: no such heading in {destination.name}"


def test_slugs_are_githubs():
    assert github_slug("Export (`python -m videonl.export`)") == "export-python--m-videonlexport"
    assert github_slug("Datasets: recipes, not copies") == "datasets-recipes-not-copies"
    assert github_slug("See [the data](data.md) **now**") == "see-the-data-now"


def test_the_readme_opens_with_the_two_commands():
    first_block = ROOT.joinpath("README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]


def test_the_architectures_prep_table_is_the_commands():
    from videonl.cli import PREP_COMMANDS

    text = ROOT.joinpath("docs", "ARCHITECTURE.md").read_text()
    rows = re.findall(r"^\| `([\w-]+)` \| `prep/(\w+)\.py` \| (.*) \|$", text, re.MULTILINE)
    assert rows == [(name, module.rsplit(".", 1)[1], text) for name, (module, text) in PREP_COMMANDS.items()]


# ------------------------------------------------------------------------------------------------ snippets


def snippets() -> List:
    cases = []
    for page in PAGES:
        lines, start = page.read_text(encoding="utf-8").splitlines(), None
        for number, line in enumerate(lines, 1):
            if start is None and line.strip() == "```python":
                start = number
            elif start is not None and FENCE.match(line):
                code = "\n".join(lines[start:number - 1]) + "\n"
                cases.append(pytest.param(code, id=f"{page.relative_to(ROOT)}:{start}"))
                start = None
    return cases


@pytest.fixture(scope="module")
def docs_folder(data_dir, tmp_path_factory):
    """A folder holding what the snippets name: the configs they load (a tiny NL I3D on the moving squares in
    place of each), trained-like checkpoints at the documented paths, and moving squares in place of
    `my_video.mp4` and the timeline page's minute of footage."""
    import torch

    from helpers import randomize_batch_norms
    from videonl.config import load_cfg
    from videonl.engine.checkpoint_format import save_checkpoint
    from videonl.models import build_model

    root = tmp_path_factory.mktemp("docs")
    # clips of 128 x 128 pixels: the analysis snippet's query point (100, 120) lies in them
    overrides = tiny(data_dir, root / "output", "SOLVER.MAX_ITER", "2", "TRAIN.EVAL_PERIOD", "0",
                     "TRAIN.PRECISE_BN_BATCHES", "0", "DATA.TRAIN_JITTER_SCALES", "[128, 144]",
                     "DATA.TRAIN_CROP_SIZE", "128")
    cfg = load_cfg(overrides[1], overrides[2:])
    torch.manual_seed(0)
    model = randomize_batch_norms(build_model(cfg))
    for config in ("kinetics400/nl_i3d_r50_32x2.yaml", "configs/demo/nl_i3d.yaml", "output/samples/config.yaml"):
        (root / config).parent.mkdir(parents=True, exist_ok=True)
        (root / config).write_text(cfg.dump())
    for checkpoint in ("output/demo/nl_i3d/checkpoints/iter_0001500.pth", "runs/nl_i3d/checkpoints/iter_0400000.pth",
                       "output/samples/checkpoints/iter_0000300.pth"):
        (root / checkpoint).parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(str(root / checkpoint), model, cfg, classes=["right", "left"], epoch=1)
    (root / "my_video.mp4").write_bytes((data_dir / "0_0.mp4").read_bytes())
    (root / "data").mkdir()
    (root / "data" / "samples_minute.mp4").write_bytes((data_dir / "0_0.mp4").read_bytes())
    return root


PRELUDE = """
import torch
from videonl.config import load_cfg
cfg = load_cfg("kinetics400/nl_i3d_r50_32x2.yaml")
video_paths = {videos!r}
device = torch.device("cpu")
"""


@pytest.mark.parametrize("code", snippets())
def test_snippet_runs(code, docs_folder, data_dir, tmp_path):
    """In a copy of the folder of its own that holds only the checkpoints the snippet names: a training
    snippet starts its run afresh, where another reads that run's final checkpoint."""
    def unnamed_checkpoints(folder, names):
        return [name for name in names if name.endswith(".pth")
                and Path(folder, name).relative_to(docs_folder).as_posix() not in code]

    folder = shutil.copytree(docs_folder, tmp_path / "docs", ignore=unnamed_checkpoints)
    videos = sorted(str(path) for path in data_dir.glob("*.mp4"))[:2]
    result = subprocess.run([sys.executable, "-c", PRELUDE.format(videos=videos) + code], cwd=folder,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
