"""A video as a stream of frames in display order, each with its display time: a reader of a long video that
holds nothing but the frame at hand (`videonl predict --timeline`; `data/read_frames` decodes chosen frames of
a clip at once instead).

`open_stream(path, backend)` opens a `FrameStream`; its `frames()` yields `StreamFrame`s: `time` (seconds from
the first frame, read from the stream's timestamps, so that a variable-frame-rate file maps to real time),
`end` (the next frame's time: how long the frame is shown) and `image()`, which converts the frame to RGB only
when called, so frames that nobody keeps are decoded (later frames depend on them) but never converted.
`skip_to(time)` moves on to the first frame at or after `time`; with `seek=True` it seeks to the keyframe
before it instead of decoding the gap.

Two backends stream: PyAV, which demuxes and decodes as it goes (nothing is read ahead), and decord, which
reads the file's index when it opens (a few bytes per frame) and seeks by frame number. A stream that breaks
raises `StreamBreak` naming the time of its last good frame: a decoding error, or (PyAV) an end well before
the duration the stream's header announces (a truncated file).
"""

import logging
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

from videonl.data.decode import DecodeError, backend_status

logger = logging.getLogger(__name__)

TIME_TOLERANCE = 1e-6  # seconds: times are compared with this slack (k * stride in floats against exact timestamps)
STREAM_BACKENDS = ("pyav", "decord")  # the backends that stream, in the order `auto` tries them
EARLY_END_FRAMES = 2  # a stream that ends more than this many frames before its header's duration was cut short


def format_time(seconds: float) -> str:
    """mm:ss.s (h:mm:ss.s from an hour on): how a time of a video is shown."""
    minutes, rest = divmod(round(max(seconds, 0.0), 1), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes:02d}:{rest:04.1f}"


class StreamBreak(RuntimeError):
    """A stream that stopped before its end; `time` is the end of its last good frame (seconds)."""

    def __init__(self, time: float, reason: str):
        super().__init__(f"decoding stopped at {format_time(time)} ({time:.2f} s): {reason}")
        self.time = time
        self.reason = reason


@dataclass
class StreamFrame:
    time: float  # seconds from the first frame
    end: float  # the next frame's time (the last frame's: its time plus one frame at the average rate)
    image: Callable[[], torch.Tensor]  # uint8 [H, W, C] RGB, converted when called


class FrameStream:
    """An open video read front to back: `fps` (average), `duration` (seconds the header announces, or None),
    `frames()`, `skip_to(time, seek)`, and once `frames()` has ended, `read_to`: the end of the last frame
    read (the video's length, unless it broke); a context manager that closes the file on exit."""

    fps: float
    duration: Optional[float]
    read_to = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file."""

    def frames(self) -> Iterator[StreamFrame]:
        raise NotImplementedError

    def skip_to(self, time: float, seek: bool = False) -> None:
        """Yield no frame before `time` from now on; with `seek`, jump there instead of decoding the gap."""
        raise NotImplementedError

    @property
    def frame_duration(self) -> float:
        """Seconds a frame lasts at the average rate (0 when the stream states no rate)."""
        return 1.0 / self.fps if self.fps > 0 else 0.0


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


class _PyAVStream(FrameStream):
    """PyAV: packets are demuxed and decoded as the frames are wanted. Before a skip's target the decoder drops
    the frames no other frame refers to (as `decode._PyAVVideo` does), and a seek starts at the keyframe before
    the target. A stream whose frames carry no timestamps counts frames at the average rate and never seeks."""

    def __init__(self, path: str):
        import av
        from av.video.reformatter import VideoReformatter

        self._container = av.open(path)
        try:
            if not self._container.streams.video:
                raise RuntimeError("no video stream")
            self._stream = self._container.streams.video[0]
        except Exception:
            self._container.close()
            raise
        stream = self._stream
        self.fps = float(stream.average_rate or stream.guessed_rate or 0)
        self._time_base = stream.time_base
        self.duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        self._origin: Optional[float] = None  # the first frame's time in the stream's own clock
        self._target = 0.0  # no frame before this time (seconds from the first frame) is yielded
        self._seek_pending = False
        self.decoded = 0  # frames the decoder has put out: what reading cost
        self._reformatter = VideoReformatter()  # one converter on one thread for every frame, as `decode._RGBFrames`

    def close(self) -> None:
        self._container.close()

    def skip_to(self, time: float, seek: bool = False) -> None:
        self._target = max(self._target, time)
        self._seek_pending = seek and self._origin is not None and self._time_base is not None

    def frames(self) -> Iterator[StreamFrame]:
        held, last_time, counted, failure = None, None, 0, None
        decoded = self._decoded()
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except Exception as err:  # a demuxing or decoding error: the frames before it stand
                failure = err
                break
            time = self._seconds(frame, counted)
            counted += 1
            if held is not None:
                yield StreamFrame(held[0], time, self._converter(held[1]))
            held = (time, frame) if time >= self._target - TIME_TOLERANCE else None
            last_time = time
        end = 0.0 if last_time is None else last_time + self.frame_duration
        self.read_to = end
        if held is not None:
            yield StreamFrame(held[0], end, self._converter(held[1]))
        if failure is not None:
            raise StreamBreak(end, _first_line(failure)) from failure
        self._check_end(end)

    def _check_end(self, end: float) -> None:
        """A stream cut short (a truncated file, whose index still lists the lost frames) breaks at its end."""
        if self.duration is None or self._origin is None:
            return
        announced = self.duration - (self._origin - float(self._stream.start_time or 0) * float(self._time_base))
        if announced - end > EARLY_END_FRAMES * self.frame_duration:
            raise StreamBreak(end, f"the stream ends there, its header announces {format_time(announced)}")

    def _seconds(self, frame, counted: int) -> float:
        """The frame's time from the first frame's: by the stream's time base (frames drained from the decoder
        after an error carry none of their own), or counted at the average rate without timestamps."""
        if frame.pts is None or self._time_base is None:
            return counted * self.frame_duration
        time = float(frame.pts * self._time_base)
        if self._origin is None:
            self._origin = time
        return time - self._origin

    def _converter(self, frame) -> Callable[[], torch.Tensor]:
        return lambda: torch.from_numpy(self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray())

    def _decoded(self) -> Iterator:
        """Decoded frames in display order, from the start or, after a seek, from the keyframe before its
        target; packets wholly before the target decode only what later frames refer to. After a demuxing or
        decoding error, the frames the decoder still holds are not drained: they may skip frames whose packets
        were lost, and a frame's place in the stream is its count."""
        codec = self._stream.codec_context
        while True:
            if self._seek_pending:
                self._seek_pending = False
                pts = int((self._target + self._origin) / self._time_base)
                self._container.seek(pts, stream=self._stream, backward=True)
            for packet in self._container.demux(self._stream):
                early = (packet.pts is not None and self._origin is not None
                         and float(packet.pts * self._time_base) - self._origin < self._target - TIME_TOLERANCE)
                codec.skip_frame = "NONREF" if early else "DEFAULT"
                for frame in codec.decode(packet):
                    self.decoded += 1
                    yield frame
                if self._seek_pending:
                    break
            else:
                return


class _DecordStream(FrameStream):
    """decord: its index gives every frame's time when the file opens; frames are read by number, and decord
    decodes on from where it is or, for a frame past the next keyframe, seeks. Opening reads the first frame:
    a file decord cannot convert fails there, where another backend can take it, not as a break."""

    def __init__(self, path: str):
        import decord

        self._reader = decord.VideoReader(path, ctx=decord.cpu(0))
        count = len(self._reader)
        if count <= 0:
            raise RuntimeError("no video frames")
        self._reader.get_batch([0])
        self.fps = float(self._reader.get_avg_fps())
        starts = np.asarray(self._reader.get_frame_timestamp(list(range(count))))[:, 0]
        self._times = starts - starts[0]
        self.duration = float(self._times[-1]) + self.frame_duration
        self._next = 0

    def skip_to(self, time: float, seek: bool = False) -> None:
        self._next = max(self._next, int(np.searchsorted(self._times, time - TIME_TOLERANCE)))

    def frames(self) -> Iterator[StreamFrame]:
        count = len(self._times)
        while self._next < count:
            index = self._next
            self._next += 1
            end = float(self._times[index + 1]) if index + 1 < count else self.duration
            yield StreamFrame(float(self._times[index]), end, lambda index=index: self._read(index))
        self.read_to = self.duration

    def _read(self, index: int) -> torch.Tensor:
        try:
            return torch.from_numpy(self._reader.get_batch([index]).asnumpy()[0])
        except Exception as err:
            self.read_to = float(self._times[index])
            raise StreamBreak(self.read_to, _first_line(err)) from err


_STREAM_OPENERS: Dict[str, Callable[[str], FrameStream]] = {"pyav": _PyAVStream, "decord": _DecordStream}


def stream_backends(backend: str, fallback: bool = True) -> List[str]:
    """The usable streaming backends to try, in order: DATA.DECODER's when it streams (then, with `fallback`,
    the others); for `auto` or a backend that does not stream, PyAV first, which reads nothing ahead."""
    usable = [name for name in STREAM_BACKENDS if backend_status(name)[0]]
    if backend not in STREAM_BACKENDS:
        return usable
    if backend not in usable:
        raise ValueError(f"decoder backend '{backend}' is not usable here: {backend_status(backend)[1]}")
    return [backend] + [name for name in usable if name != backend and fallback]


def open_stream(path: str, backends: Sequence[str]) -> FrameStream:
    """The first of `backends` that opens `path`; DecodeError naming each one's reason when none does."""
    reasons = []
    for name in backends:
        try:
            return _STREAM_OPENERS[name](path)
        except Exception as err:
            reasons.append(f"{name}: {_first_line(err)}")
    raise DecodeError(path, "; ".join(reasons) or "no streaming decoder backend is usable here")
