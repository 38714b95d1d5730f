"""What every data_prep script shares: resumable atomic outputs, PyAV encoding, parallel jobs, reports."""

import argparse
import contextlib
import json
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import av
import numpy as np
from videonl.data.decode import DecodeError, read_frames
from videonl.progress import progress

# At most this many frames from one keyframe to the next, so a reader seeking to a random window decodes at most
# GOP - 1 frames before it (x264 alone allows 250, with more keyframes at scene cuts). BENCHMARKS.md has the
# measurement behind the choice: decoding time of training windows against file size.
DEFAULT_GOP = 32
# x264's fastdecode tuning (CAVLC instead of CABAC, no deblocking filter, no weighted prediction) by default: a
# training window decodes in about 0.6x the time for files 7-11 % larger; BENCHMARKS.md has the measurement.
DEFAULT_FAST_DECODE = True


STATUSES = ("done", "skipped", "failed")
# A list entry's label field: a class index, or a multi-label field (`none`, `92:11.9:21.2;147:0:12.6`: see
# prep/charades.py) written as text.
Label = Union[int, str]


@dataclass
class Outcome:
    """What one job did: `done` (written now), `skipped` (already there) or `failed` with a reason."""
    key: str
    status: str
    reason: str = ""
    path: str = ""
    label: Optional[Label] = None


@contextlib.contextmanager
def atomic_path(final: Path, tag: str = "") -> Iterator[Path]:
    """A temporary name beside `final`, renamed to it only when the block succeeds; removed otherwise.

    The name is `.part-{tag}{unique}-{final name}`: unique, since processes on several machines may write the
    same file (every part of a job array writes classes.json); `tag` says whose it is (see `remove_leftovers`).
    The extension is kept so that writers choosing a format by name pick the right one.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".part-{tag}{uuid.uuid4().hex[:12]}-{final.name}")
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def even_size(width: int, height: int, short_side: int) -> tuple:
    """(width, height) scaled so the shorter side is `short_side`, aspect kept, both even (H.264 needs it)."""
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def encode_h264(path: Path, frames: Iterable[np.ndarray], fps: Fraction, pts: Optional[Sequence[int]] = None,
                codec_options: Optional[dict] = None, movflags: Optional[str] = None) -> int:
    """Write RGB uint8 [H, W, 3] frames as H.264 mp4 (no audio); the number of frames written.

    Timestamps count 1 / (100 * fps) s, so frame i is at i * 100 unless `pts` says otherwise (tests write
    variable-frame-rate files that way); `movflags` goes to the mp4 muxer ("faststart" puts the index first).
    Raises ValueError when there are no frames. Callers that must not leave a half-written file write to
    `atomic_path`.
    """
    count = 0
    with av.open(str(path), "w", options={"movflags": movflags} if movflags else {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1) / (Fraction(fps) * 100)
        stream.codec_context.options = {"preset": "veryfast", "crf": "20", **(codec_options or {})}
        for frame_array in frames:
            if count == 0:
                stream.height, stream.width = frame_array.shape[:2]
            frame = av.VideoFrame.from_ndarray(frame_array, format="rgb24")
            frame.pts = pts[count] if pts is not None else count * 100
            frame.time_base = stream.codec_context.time_base
            container.mux(stream.encode(frame))
            count += 1
        if count == 0:
            raise ValueError("no frames to write")
        container.mux(stream.encode())
    return count


def transcode(source: Path, target: Path, short_side: int, start: Optional[float] = None,
              end: Optional[float] = None, codec_options: Optional[dict] = None) -> int:
    """Re-encode the frames of `source` shown in [start, end) s as H.264 mp4, short side `short_side` (even
    dimensions, aspect kept), frame rate kept, audio dropped; frames written. `codec_options` go to
    `encode_h264`."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = stream.average_rate or stream.guessed_rate or Fraction(30)
        if start:
            container.seek(int(start / stream.time_base), stream=stream)  # the keyframe at or before start

        def frames_in_window():
            for frame in container.decode(stream):
                if frame.time is None or (start is not None and frame.time < start):
                    continue
                if end is not None and frame.time >= end:
                    return
                width, height = even_size(frame.width, frame.height, short_side)
                yield frame.to_ndarray(width=width, height=height, format="rgb24")

        return encode_h264(target, frames_in_window(), fps, codec_options=codec_options)


def join_videos(paths: Sequence[Path], target: Path, **encoding) -> List[Tuple[float, float]]:
    """Write the videos one after another as one H.264 mp4 (`encode_h264`, with `encoding`'s options), at the
    first one's size and frame rate (other sizes are resized to it); (start, end) seconds of each part in it.
    A long video of known parts: what `videonl predict --timeline` should find again."""
    with av.open(str(paths[0])) as container:
        stream = container.streams.video[0]
        fps, width, height = stream.average_rate or stream.guessed_rate, stream.width, stream.height
    parts: List[Tuple[float, float]] = []

    def frames() -> Iterator[np.ndarray]:
        count = 0
        for path in paths:
            first = count
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    yield frame.to_ndarray(width=width, height=height, format="rgb24")
                    count += 1
            parts.append((float(first / fps), float(count / fps)))

    encode_h264(Path(target), frames(), Fraction(fps), **encoding)
    return parts


def decode_failure(path: Path, backend: str = "auto", fallback: bool = True) -> str:
    """'' when every frame of the video decodes, else the reason."""
    try:
        read_frames(str(path), lambda info: np.arange(info.num_frames), backend, fallback)
        return ""
    except DecodeError as error:
        return error.reason


def remove_leftovers(folder: Path, tag: str = "") -> int:
    """Delete temporary files a killed run left under `folder`, those whose `atomic_path` tag starts with `tag`
    (all for ''); how many there were. A part of a job array passes its own tag, so that it never deletes the
    file another part is writing beside it."""
    leftovers = list(Path(folder).rglob(f".part-{tag}*")) if Path(folder).is_dir() else []
    for leftover in leftovers:
        leftover.unlink()
    return len(leftovers)


def run_jobs(function: Callable, jobs: Sequence, workers: int, description: str) -> List:
    """`function(job)` for every job, in `workers` processes (inline for 1), with a progress bar."""
    if workers <= 1:
        return [function(job) for job in progress(jobs, desc=description, unit="video")]
    with ProcessPoolExecutor(workers) as pool:
        return list(progress(pool.map(function, jobs, chunksize=4), total=len(jobs), desc=description, unit="video"))


def report(outcomes: Sequence[Outcome], failures_file: Path) -> dict:
    """Print the counts, write one `key<TAB>reason` line per failure; return the counts."""
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    write_text(failures_file, "".join(f"{o.key}\t{o.reason}\n" for o in outcomes if o.status == "failed"))
    print_counts(counts, failures_file)
    return counts


def print_counts(counts: dict, failures_file: Path) -> None:
    print(f"{sum(counts.values())} videos: {counts['done']} written, {counts['skipped']} already done, "
          f"{counts['failed']} failed (reasons in {failures_file})")


def write_list(path: Path, entries: Iterable[tuple]) -> None:
    """A list file of `relative/path label` lines, the format VideoDataset reads."""
    write_text(path, "".join(f"{file} {label}\n" for file, label in entries))


def add_common_arguments(parser) -> None:
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="parallel processes (default: half the CPUs)")


def add_encoding_arguments(parser) -> None:
    parser.add_argument("--gop", type=int, default=DEFAULT_GOP,
                        help="most frames from one keyframe to the next (default: %(default)s; 0: x264's own, up to "
                        "250): shorter makes random clips cheaper to decode and files larger")
    parser.add_argument("--fast-decode", action=argparse.BooleanOptionalAction, default=DEFAULT_FAST_DECODE,
                        help="x264's fastdecode tuning: no CABAC, no deblocking, so decoding takes about 0.6x "
                        "the time, for files about 10 %% larger (default: on; --no-fast-decode for the smallest "
                        "files)")


def encoding_options(gop: int = DEFAULT_GOP, fast_decode: bool = DEFAULT_FAST_DECODE) -> dict:
    """x264 options for a GOP of at most `gop` frames (x264's default for 0), tuned for fast decoding or not."""
    if gop < 0:
        raise ValueError(f"a GOP cannot be {gop} frames")
    return {**({"g": str(gop)} if gop else {}), **({"tune": "fastdecode"} if fast_decode else {})}


@dataclass
class ClipJob:
    """One output video: `source` trimmed to [start, end) s (whole video when None), re-encoded to `target`."""
    key: str
    source: Optional[Path]
    target: Path
    label: Label
    short_side: int
    start: Optional[float] = None
    end: Optional[float] = None
    missing_reason: str = "source video not found"
    codec_options: dict = field(default_factory=encoding_options)  # for x264: see `encoding_options`
    temporary_tag: str = ""  # the `atomic_path` tag of the target's temporary file: the job array part's


def convert_clip(job: ClipJob) -> Outcome:
    """Run one ClipJob: skip a finished target; write through a temporary name and keep it only if it decodes."""
    outcome = Outcome(job.key, "skipped", path=str(job.target), label=job.label)
    if job.target.exists():
        return outcome
    if job.source is None or not Path(job.source).is_file():
        return Outcome(job.key, "failed", job.missing_reason)
    try:
        with atomic_path(job.target, job.temporary_tag) as temporary:
            transcode(job.source, temporary, job.short_side, job.start, job.end, job.codec_options)
            reason = decode_failure(temporary)
            if reason:
                raise ValueError(f"re-encoded file does not decode: {reason}")
    except (av.FFmpegError, OSError, IndexError) as error:  # before ValueError: some FFmpeg errors are both
        return Outcome(job.key, "failed", f"undecodable source: {type(error).__name__}: {error}")
    except ValueError as error:
        reason = str(error)
        if reason == "no frames to write":
            reason = f"too short: no frames in [{job.start}, {job.end}) s" if job.start is not None else "no frames"
        return Outcome(job.key, "failed", reason)
    outcome.status = "done"
    return outcome
