"""Where a run's numbers go: TensorBoard, when the optional `tensorboard` extra is installed."""

import pytest

from videonl.engine.logging import MetricsWriter


def test_metrics_reach_tensorboard_when_it_is_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install .[tensorboard])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = MetricsWriter(str(tmp_path))
    writer.write(2, "train", {"loss": 0.5, "lr": 0.01, "backend": "pyav"})
    writer.write(4, "train", {"loss": 0.25, "lr": 0.01})
    writer.write(4, "val", {"top1": 75.0})
    writer.close()
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert sorted(events.Tags()["scalars"]) == ["train/loss", "train/lr", "val/top1"]  # text values are left out
    assert [(event.step, event.value) for event in events.Scalars("train/loss")] == [(2, 0.5), (4, 0.25)]
