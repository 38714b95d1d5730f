"""Our checkpoint files: a round trip through MODEL.INIT, atomic saving, clear errors on other files."""

import os

import pytest
import torch

from videonl.config import load_cfg
from videonl.engine.checkpoint_format import load_checkpoint, save_checkpoint
from videonl.engine.initialization import initialize
from videonl.engine.weight_sources import open_weights
from videonl.models import build_model
from videonl.models.conversions import CheckpointError

from helpers import C2D, SMALL_C2D, RunsCommand, randomize_batch_norms, small_c2d


@pytest.mark.parametrize("read", [load_checkpoint, open_weights])  # our reader, and every command's
def test_a_torch_file_holding_code_is_refused_without_running_it(tmp_path, read):
    marker, path = tmp_path / "pwned", tmp_path / "model.pth"
    torch.save({"model": {}, "cfg": "", "hook": RunsCommand(marker)}, path)

    with pytest.raises(CheckpointError, match="cannot be read as a weights-only torch file"):
        read(str(path))
    assert not marker.exists()


def test_checkpoint_round_trip_through_model_init(tmp_path):
    cfg = load_cfg(C2D, SMALL_C2D)
    source = randomize_batch_norms(build_model(cfg))
    path = tmp_path / "run" / "model.pth"

    save_checkpoint(str(path), source, cfg, epoch=3)

    assert os.listdir(path.parent) == ["model.pth"]  # no temporary file left behind
    checkpoint = load_checkpoint(str(path))
    assert checkpoint["cfg"] == cfg.dump() and checkpoint["epoch"] == 3
    loaded = build_model(cfg)
    initialize(loaded, open_weights(str(path)))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    cfg, model, path = load_cfg(C2D, SMALL_C2D), small_c2d(), tmp_path / "model.pth"
    save_checkpoint(str(path), model, cfg, epoch=1)

    def disk_full(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(str(path), model, cfg, epoch=2)
    monkeypatch.undo()

    assert load_checkpoint(str(path))["epoch"] == 1
    assert os.listdir(tmp_path) == ["model.pth"]


def test_a_file_that_is_not_ours_gives_a_clear_error(tmp_path):
    torch.save(small_c2d().state_dict(), tmp_path / "state_dict.pth")
    (tmp_path / "notes.pth").write_text("not a torch file")

    with pytest.raises(CheckpointError, match=r"state_dict\.pth is not a videonl checkpoint: expected a dict"):
        load_checkpoint(str(tmp_path / "state_dict.pth"))
    with pytest.raises(CheckpointError, match=r"notes\.pth cannot be read as a weights-only torch file"):
        load_checkpoint(str(tmp_path / "notes.pth"))
