"""Frames out of a video file: `read_frames(path, choose)` -> (distinct frames, positions into them, info).
A video held in memory (a member of a WebDataset shard) is read the same way from its encoded bytes
(`read_frames(name, choose, data=...)`): every backend opens bytes as it opens a file, frame for frame alike.

`read_frames` is the main call: it decodes each distinct frame once and lets the sampler choose indices from
the video's own frame count, so all the views of a test video come from one read. `decode(path, indices)`
-> uint8 [T, H, W, C] in the order asked for is the shorthand for a fixed list of indices.

Three backends read the same files: decord, PyAV and (optionally, it needs the system FFmpeg libraries)
torchcodec. A backend counts as available only when it decodes a two-frame probe clip in this process:
importing is not enough. `auto` times every available backend on the first file a process reads and keeps
the fastest first; whichever backend is first, the others are fallbacks, so a file counts as bad only when
every backend has failed on it. Frame numbers count frames in display order (not timestamps), which is what
all three backends agree on, also for variable-frame-rate files. Indices past the last frame wrap around,
as the official non-local code loops short videos. `torchcodec_cuda` decodes on the GPU (NVDEC) into frames
there, when the config asks for it and the process has a GPU.
"""

import bisect
import importlib.util
import io
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

if TYPE_CHECKING:
    import av

BACKEND_NAMES = ("decord", "pyav", "torchcodec")
logger = logging.getLogger(__name__)


class DecodeError(RuntimeError):
    """A video that no backend could read; `path` and `reason` say which and why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class VideoInfo:
    num_frames: int
    fps: float


Source = Union[str, bytes]  # what a reader opens: a video file's path, or a whole video's encoded bytes
Box = Tuple[int, int, int, int]  # (top, left, height, width) of a region of a frame, in pixels
CropChoice = Callable[[int, int], Box]  # (frame height, frame width) -> the box to read


class _Video:
    """An open video: `info`, `read(sorted unique indices, crop)`; a context manager that releases it on exit.

    A backend implements `_read` (whole frames); one that can convert less than a whole frame overrides `read`.
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release what the reader holds open beyond its own lifetime (nothing, unless it says otherwise)."""

    def read(self, indices: np.ndarray, crop: Optional[CropChoice] = None) -> torch.Tensor:
        """uint8 [U, H, W, C] frames at sorted unique `indices`; with `crop`, only the box it picks for the
        frames' size (a view of the whole frames here)."""
        frames = self._read(indices)
        if crop is None:
            return frames
        top, left, height, width = crop(*frames.shape[1:3])
        return frames[:, top:top + height, left:left + width]

    def _read(self, indices: np.ndarray) -> torch.Tensor:
        raise NotImplementedError


class _DecordVideo(_Video):
    """decord: frame-accurate random access through its own index of the packets."""

    def __init__(self, source: Source):
        import decord

        self._reader = decord.VideoReader(io.BytesIO(source) if isinstance(source, bytes) else source,
                                          ctx=decord.cpu(0))
        self.info = VideoInfo(len(self._reader), float(self._reader.get_avg_fps()))

    def _read(self, indices: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self._reader.get_batch(indices.tolist()).asnumpy())


class _PyAVVideo(_Video):
    """PyAV: seeks to the keyframe at or before the first frame asked for, then decodes up to the last one.

    Frame numbers are display order, as the other backends count them. Opening a file reads its packets
    without decoding them: their timestamps, sorted, are the frames' display times (at any frame rate,
    variable included) and mark the keyframes, so a read maps decoded frames to numbers by timestamp. A file
    whose packets cannot number its frames (a packet without a timestamp, two at the same time, a packet the
    container marks as discarded, or another count than the header's) is read from its first frame, counting
    decoded frames instead; so is any read in which a frame asked for does not turn up by its timestamp.
    Only the frames asked for and the frames they depend on are decoded (the decoder skips non-reference
    frames that are not asked for), and only the frames asked for are converted to RGB, each only inside
    the box a `crop` picks (see `_RGBFrames`); `decoded` counts the frames the decoder has put out, what the reads
    cost. Frames are decoded without FFmpeg's frame threads: a loader's parallelism is its worker processes,
    and frame threads, which must run ahead of the last frame wanted, cost more CPU than they save wall time
    (BENCHMARKS.md, issue 13). The file stays open until `close`: a read
    seeks in the container whose packets were listed (opening again costs as much as decoding a few frames).
    """

    def __init__(self, source: Source):
        self._source = source
        self.decoded = 0
        self._container = _open_container(source)
        try:
            if not self._container.streams.video:
                raise RuntimeError("no video stream")
            stream = self._container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 0
            packets = [(packet.pts, packet.is_keyframe, packet.is_discard)
                       for packet in self._container.demux(stream) if packet.size]
        except Exception:
            self._container.close()
            raise
        num_frames = stream.frames or len(packets)
        self.info = VideoInfo(num_frames, float(rate))
        self._frame_times, self._keyframe_times = _packet_timeline(packets, num_frames)

    def close(self) -> None:
        self._container.close()  # the container and its streams refer to each other: only GC would free them

    def read(self, indices: np.ndarray, crop: Optional[CropChoice] = None) -> torch.Tensor:
        frames = _RGBFrames(len(indices), crop)
        if self._frame_times is None or not self._read_by_timestamp(indices, frames):
            self._read_counting(indices, frames)
        return frames.out

    def _read_by_timestamp(self, indices: np.ndarray, frames: "_RGBFrames") -> bool:
        """Put the frames at sorted `indices` into `frames`, read from the keyframe before the first; False if
        one is missing."""
        wanted = {self._frame_times[i]: n for n, i in enumerate(indices.tolist())}
        keyframe = bisect.bisect_right(self._keyframe_times, self._frame_times[int(indices[0])]) - 1
        found = set()
        stream = self._container.streams.video[0]
        self._container.seek(self._keyframe_times[keyframe], stream=stream)  # also back from the end of the listing
        for packet in self._container.demux(stream):
            stream.codec_context.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            for frame in stream.codec_context.decode(packet):
                self.decoded += 1
                if frame.pts in wanted and frame.pts not in found:
                    frames.put(wanted[frame.pts], frame)
                    found.add(frame.pts)
            if len(found) == len(indices):
                return True
        return False

    def _read_counting(self, indices: np.ndarray, frames: "_RGBFrames") -> None:
        """Decode from the first frame, numbering frames as they come out, up to the last index asked for."""
        wanted = {int(i): n for n, i in enumerate(indices)}
        last = int(indices.max())
        with _open_container(self._source) as container:
            for position, frame in enumerate(container.decode(video=0)):
                self.decoded += 1
                if position in wanted:
                    frames.put(wanted.pop(position), frame)
                if position == last:
                    break
        if wanted:
            raise RuntimeError(f"stream ended before frame {min(wanted)} (header says {self.info.num_frames})")


def _open_container(source: Source) -> "av.container.InputContainer":
    import av

    return av.open(io.BytesIO(source) if isinstance(source, bytes) else source)


_HALVED_CHROMA = ("yuv420p", "yuvj420p")  # 8-bit 4:2:0: one chroma sample per 2 x 2 pixels, from even ones


class _RGBFrames:
    """uint8 RGB frames [count, h, w, 3] (`out`), filled as the decoder puts each out (converted while still in
    the cache, so the decoder can reuse its buffer): whole, or inside the box `crop` picks for their size.

    A 4:2:0 frame (what H.264 nearly always holds) converts only the box, widened to even rows and columns,
    where its chroma samples begin: pixel for pixel what converting the whole frame and cutting the box gives,
    for the work of the box alone. Other formats convert whole frames.
    """

    def __init__(self, count: int, crop: Optional[CropChoice]):
        from av.video.reformatter import VideoReformatter

        self._count, self._crop = count, crop
        # One converter for every frame, on one thread: `frame.to_ndarray(format=...)` sets up swscale anew for
        # each frame, with a pool of threads as many as the cores (0.3-0.4 ms a frame on two cores, more than the
        # conversion); a loader's parallelism is its worker processes, as for decoding.
        self._reformatter = VideoReformatter()
        self.out: Optional[torch.Tensor] = None

    def put(self, slot: int, frame: "av.VideoFrame") -> None:
        if self.out is None:
            self._plan(frame)
        if self._whole:
            row, column = self._top, self._left
        else:
            frame = _cut_420(frame, *self._even_box)
            row, column = self._top - self._even_box[0], self._left - self._even_box[1]
        rgb = self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
        height, width = self.out.shape[1:3]
        self.out[slot].numpy()[...] = rgb[row:row + height, column:column + width]

    def _plan(self, frame: "av.VideoFrame") -> None:
        """The box, from the first frame's size (`crop` is called once), and the output it fills."""
        height, width = frame.height, frame.width
        box = self._crop(height, width) if self._crop else (0, 0, height, width)
        self._top, self._left, box_height, box_width = box
        self._whole = (box_height, box_width) == (height, width) or frame.format.name not in _HALVED_CHROMA
        even_top, even_left = self._top - self._top % 2, self._left - self._left % 2
        bottom, right = self._top + box_height, self._left + box_width
        even_bottom, even_right = min(bottom + bottom % 2, height), min(right + right % 2, width)
        self._even_box = (even_top, even_left, even_bottom - even_top, even_right - even_left)
        self.out = torch.empty((self._count, box_height, box_width, 3), dtype=torch.uint8)


def _cut_420(frame: "av.VideoFrame", top: int, left: int, height: int, width: int) -> "av.VideoFrame":
    """A new 4:2:0 frame of `frame`'s pixels from even `top`, `left`: its planes' rows and columns copied."""
    import av

    box = av.VideoFrame(width, height, frame.format.name)
    for source, target, step in zip(frame.planes, box.planes, (1, 2, 2)):
        rows, columns = -(-height // step), -(-width // step)
        source_rows = np.frombuffer(source, np.uint8).reshape(-1, source.line_size)
        target_rows = np.frombuffer(target, np.uint8).reshape(-1, target.line_size)
        target_rows[:rows, :columns] = source_rows[top // step:top // step + rows, left // step:left // step + columns]
    box.colorspace, box.color_range = frame.colorspace, frame.color_range
    return box


def _packet_timeline(packets: List[Tuple[Optional[int], bool, bool]],
                     num_frames: int) -> Tuple[Optional[List[int]], List[int]]:
    """(display time of each frame, sorted times of the keyframes) from (pts, keyframe, discard) of every
    packet; (None, []) when the packets cannot number the frames."""
    times = [pts for pts, _, _ in packets]
    if (len(packets) != num_frames or None in times or len(set(times)) != len(times)
            or any(discard for _, _, discard in packets)):
        return None, []
    return sorted(times), sorted(pts for pts, keyframe, _ in packets if keyframe)


class _TorchcodecVideo(_Video):
    """torchcodec: exact seek mode scans the file once, then decodes only around the frames asked for."""

    device = "cpu"

    def __init__(self, source: Source):
        from torchcodec.decoders import VideoDecoder

        self._decoder = VideoDecoder(source, dimension_order="NHWC", seek_mode="exact", device=self.device)
        metadata = self._decoder.metadata
        fps = metadata.average_fps_from_header or metadata.average_fps or 0  # header: what the others report
        self.info = VideoInfo(int(metadata.num_frames), float(fps))

    def _read(self, indices: np.ndarray) -> torch.Tensor:
        return self._decoder.get_frames_at(indices=indices.tolist()).data


class _TorchcodecCudaVideo(_TorchcodecVideo):
    """torchcodec on the GPU's video decoder (NVDEC): frames land on this process's CUDA device (each rank's
    own when distributed), converted to RGB there."""

    @property
    def device(self) -> str:
        return f"cuda:{torch.cuda.current_device()}"


_OPENERS: Dict[str, Callable[[Source], _Video]] = {
    "decord": _DecordVideo,
    "pyav": _PyAVVideo,
    "torchcodec": _TorchcodecVideo,
    "torchcodec_cuda": _TorchcodecCudaVideo,
}
_PACKAGES = {"decord": "decord", "pyav": "av", "torchcodec": "torchcodec", "torchcodec_cuda": "torchcodec"}
# What a backend that imports may still lack; said with the reason it cannot decode.
_NEEDS = {"torchcodec": "torchcodec needs FFmpeg's shared libraries (4 to 9) installed on the system",
          "torchcodec_cuda": "torchcodec_cuda needs a CUDA device, torchcodec built for CUDA and FFmpeg's libraries"}
# Backends that decode on a GPU into frames there: used only when asked for (never by auto, never as a fallback),
# and only in a process that has the device; elsewhere `auto` decodes on the CPU instead.
GPU_BACKENDS = {"torchcodec_cuda": "cuda"}


def _write_probe_clip(path: str) -> None:
    """Two black frames of MPEG-4 part 2 in mp4: FFmpeg's own encoder, so every PyAV build can write it."""
    import av

    with av.open(path, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), "rgb24")))
        container.mux(stream.encode())


def _probe(backend: str) -> Tuple[bool, str]:
    """Can `backend` decode a clip here? Importing is not enough: torchcodec imports without FFmpeg's system
    libraries and fails only when it loads its native library to open a file."""
    if importlib.util.find_spec(_PACKAGES[backend]) is None:
        return False, "not installed"
    with tempfile.TemporaryDirectory(prefix="videonl_probe_") as folder:
        clip = os.path.join(folder, "probe.mp4")
        try:
            _write_probe_clip(clip)
        except Exception as err:
            return False, f"no probe clip could be written with PyAV ({_first_line(err)})"
        try:
            _read_with(backend, clip, [0, 1])
            return True, ""
        except Exception as err:
            failure = f"decoding a probe clip failed with {_first_line(err)}"
            return False, f"{_NEEDS[backend]}; {failure}" if backend in _NEEDS else failure


_AVAILABILITY: Dict[str, Tuple[bool, str]] = {}


def backend_status(backend: str) -> Tuple[bool, str]:
    """(usable, why not) for one backend, probed once per process by decoding a two-frame clip."""
    if backend not in _OPENERS:
        raise ValueError(f"unknown decoder backend '{backend}'; choose from auto, "
                         f"{', '.join(BACKEND_NAMES + tuple(GPU_BACKENDS))}")
    if backend not in _AVAILABILITY:
        _AVAILABILITY[backend] = _probe(backend)
    return _AVAILABILITY[backend]


def available_backends() -> List[str]:
    """The backends that decoded the probe clip in this process, in the fixed order of BACKEND_NAMES."""
    return [name for name in BACKEND_NAMES if backend_status(name)[0]]


IndexChoice = Union[Sequence[int], np.ndarray, Callable[[VideoInfo], np.ndarray]]


def _read_with(backend: str, source: Source, choose: IndexChoice,
               crop: Optional[CropChoice] = None) -> Tuple[torch.Tensor, np.ndarray, VideoInfo]:
    with _OPENERS[backend](source) as video:
        info = video.info
        if info.num_frames <= 0:
            raise RuntimeError("no video frames")
        indices = np.asarray(choose(info) if callable(choose) else choose, dtype=np.int64)
        unique, inverse = np.unique(np.mod(indices, info.num_frames), return_inverse=True)
        frames = video.read(unique, crop)
    if frames.shape[0] != len(unique):
        raise RuntimeError(f"asked for {len(unique)} frames, got {frames.shape[0]}")
    return frames, inverse.reshape(indices.shape), info


_AUTO_ORDER: List[str] = []


def _measure_auto_order(source: Source, choose: IndexChoice, crop: Optional[CropChoice]) -> None:
    """Order the available backends fastest first, timed on this file; kept once a backend has read it.

    Each backend reads the file once untimed first, so one-off start-up costs do not decide the order. The
    timing reads run on a forked torch RNG: a `choose` or `crop` that draws a random window or box (training)
    must draw the same one for the real read as it would in a process whose order is already known.
    """
    timings = {}
    for backend in available_backends():
        try:
            with torch.random.fork_rng(devices=[]):
                _read_with(backend, source, choose, crop)
                start = time.perf_counter()
                _read_with(backend, source, choose, crop)
                timings[backend] = time.perf_counter() - start
        except Exception:
            timings[backend] = float("inf")
    if any(t < float("inf") for t in timings.values()):
        _AUTO_ORDER[:] = sorted(timings, key=timings.get)


def backend_order(backend: str, fallback: bool = True) -> List[str]:
    """The backends to try, in order: the one asked for, then (with `fallback`) the other available ones."""
    if backend == "auto":
        return list(_AUTO_ORDER) or available_backends()
    usable, why = backend_status(backend)
    if not usable:
        raise ValueError(f"decoder backend '{backend}' is not usable here: {why}")
    return [backend] + [name for name in available_backends() if name != backend and fallback]


def _on_this_machine(backend: str, fallback: bool) -> str:
    """`backend`, or `auto` for a GPU backend in a process without a GPU (an error without `fallback`): a
    config written for GPU nodes still runs, decoding on the CPU, where there is none."""
    if backend not in GPU_BACKENDS or torch.cuda.is_available():
        return backend
    if not fallback:
        raise ValueError(f"decoder backend '{backend}' is not usable here: this process has no CUDA device")
    if backend not in _CPU_INSTEAD:
        _CPU_INSTEAD.add(backend)
        logger.warning("decoder backend '%s' needs a CUDA device; this process has none, so it decodes on the CPU",
                       backend)
    return "auto"


_CPU_INSTEAD = set()


def read_frames(path: str, choose: IndexChoice, backend: str = "auto", fallback: bool = True,
                crop: Optional[CropChoice] = None,
                data: Optional[bytes] = None) -> Tuple[torch.Tensor, np.ndarray, VideoInfo]:
    """Decode each distinct frame once: (frames [U, H, W, C] uint8, positions into them, video info).

    `choose` is the frame indices, or a function of the video's `VideoInfo` that returns them (any shape;
    the positions come back in that shape), so the sampler sees the frame count of the backend that reads.
    `crop`, a function of the frames' (height, width), picks the one box of every frame that is wanted (a
    training crop, drawn after `choose`): the frames come back as that box, and a backend that can convert
    less than a whole frame to RGB converts only the box.
    With `data`, the video is those encoded bytes (a shard's member) and `path` only names it.
    Raises `DecodeError` naming the file and every backend's reason when no backend can read it; without
    `fallback` only the backend asked for is tried (to check or compare one backend).
    """
    path = os.fspath(path)
    backend = _on_this_machine(backend, fallback)
    order = backend_order(backend, fallback)
    if data is None and not os.path.isfile(path):
        raise DecodeError(path, "file not found")
    if (len(data) if data is not None else os.path.getsize(path)) == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    source = path if data is None else bytes(data)
    if backend == "auto" and not _AUTO_ORDER:
        _measure_auto_order(source, choose, crop)
        order = backend_order(backend)
    reasons = []
    for name in order:
        try:
            frames, positions, info = _read_with(name, source, choose, crop)
        except Exception as err:
            reasons.append(f"{name}: {_first_line(err)}")
            continue
        # frames a CPU fallback read for a GPU backend join the others on the GPU
        return frames.to(GPU_BACKENDS.get(backend, frames.device)), positions, info
    if not reasons:
        raise DecodeError(path, "no decoder backend is usable here")
    raise DecodeError(path, "; ".join(reasons))


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def decode(path: str, indices: Sequence[int], backend: str = "auto", fallback: bool = True) -> torch.Tensor:
    """uint8 frames [T, H, W, C] at `indices` (wrapping past the end), in the order asked for."""
    frames, positions, _ = read_frames(path, indices, backend, fallback)
    return frames[torch.from_numpy(positions.reshape(-1))]
