"""Progress bars: redrawn on a terminal, whole lines in a file or a pipe."""

import io

from tqdm import tqdm

from videonl import progress as progress_module
from videonl.progress import LineProgress, progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_tqdm():
    assert isinstance(progress(total=3, file=Terminal()), tqdm)


def test_a_file_gets_a_line_per_tenth_and_no_carriage_returns():
    out = io.StringIO()
    bar = progress(total=200, initial=0, desc="train", unit="it", file=out)
    for step in range(200):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (step + 1):.3f}")
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("train:  10% 20/200") and lines[-1].startswith("train: 100% 200/200")
    assert lines[-1].endswith("loss=0.005]")


def test_a_slow_loop_prints_after_the_interval(monkeypatch):
    clock = iter([0.0, 10.0, 70.0, 80.0, 80.0])  # start, then one reading per update / close
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = LineProgress(total=1000, desc="evaluating test", unit="video", file=out, interval=60.0)
    bar.update(1)  # 10 s: no tenth reached, interval not over
    bar.update(1)  # 70 s: a minute since the start
    bar.update(1)  # 80 s: too soon again
    bar.close()  # the final count
    assert [line.split(" [")[0] for line in out.getvalue().splitlines()] == [
        "evaluating test:   0% 2/1000", "evaluating test:   0% 3/1000"]


def test_iterating_counts_every_item_and_a_disabled_bar_prints_nothing():
    out = io.StringIO()
    assert list(progress(iter("abc"), desc="open ended", file=out)) == ["a", "b", "c"]
    lines = out.getvalue().splitlines()  # no total, no tenths: one line at the end of a quick loop
    assert len(lines) == 1 and lines[0].startswith("open ended: 3 [")
    silent = io.StringIO()
    for _ in progress(range(50), desc="quiet", file=silent, disable=True):
        pass
    assert silent.getvalue() == ""
