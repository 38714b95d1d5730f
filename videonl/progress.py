"""Progress bars that stay readable in a log: a tqdm bar on a terminal, occasional whole lines elsewhere.

A redrawn bar writes carriage returns, which a file or a pipe keeps as one endless line of redraws; when the
bar's stream is not a terminal (`make demo > log.txt 2>&1`, CI, nohup) `progress` prints a plain line
instead, each time the count reaches a further tenth of the total or at least every `interval` seconds, and
one at the end.
"""

import sys
import time
from typing import Iterable, Optional, TextIO, Union

from tqdm import tqdm

LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
OPEN_ENDED_FORMAT = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"  # no total: no share, no time left


class LineProgress:
    """The part of tqdm's interface the package uses (iterate, update, set_postfix, close, `with`), printing
    plain lines as the module's docstring says."""

    def __init__(self, iterable: Optional[Iterable] = None, total: Optional[int] = None, initial: int = 0,
                 desc: str = "", unit: str = "it", disable: bool = False, file: Optional[TextIO] = None,
                 interval: float = 60.0):
        self.iterable, self.desc, self.unit, self.disable = iterable, desc, unit, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.initial = total, initial, initial
        self.file = file if file is not None else sys.stderr
        self.interval = interval
        self.postfix = ""
        self.start = self.last_time = time.monotonic()
        self.printed_n = None  # the count the last line showed
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        now = time.monotonic()
        if self._tenth(self.n) > self._tenth(before) or now - self.last_time >= self.interval:
            self._print(now)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        if not self.closed and self.n != self.printed_n:
            self._print(time.monotonic())
        self.closed = True

    def _tenth(self, count: int) -> int:
        return 10 * count // self.total if self.total else 0

    def _print(self, now: float) -> None:
        self.last_time, self.printed_n = now, self.n
        if self.disable:
            return
        line = tqdm.format_meter(self.n, self.total, now - self.start, prefix=self.desc, unit=self.unit,
                                 initial=self.initial, postfix=self.postfix or None,
                                 bar_format=LINE_FORMAT if self.total else OPEN_ENDED_FORMAT)
        print(line, file=self.file, flush=True)


Progress = Union[tqdm, LineProgress]


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, initial: int = 0, desc: str = "",
             unit: str = "it", disable: bool = False, file: Optional[TextIO] = None) -> Progress:
    """A progress bar over `iterable` or counted by `update`: tqdm when `file` (default stderr) is a
    terminal, else a `LineProgress`."""
    file = file if file is not None else sys.stderr
    if file.isatty():
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=file,
                    dynamic_ncols=True)
    return LineProgress(iterable, total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=file)
