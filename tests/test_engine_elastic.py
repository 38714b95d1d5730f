"""Runs that survive a lost process: torchrun's elastic agents restart the group, which resumes from the newest
checkpoint that every process agrees on; a checkpoint is complete or absent whenever its writer dies."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from helpers import DEMO_CFG, ROOT, assert_same_weights, final_weights, tiny
from videonl.config import load_cfg
from videonl.engine import distributed
from videonl.engine.checkpoint import CheckpointManager
from videonl.engine.checkpoint_format import save_checkpoint, unfinished_writes
from videonl.models.build import build_model

# 12 iterations, a checkpoint every 2: a rank killed once the second one is written leaves 8 to redo or continue.
STEPS = ["SOLVER.MAX_ITER", "12", "TRAIN.CHECKPOINT_PERIOD", "2", "TRAIN.CHECKPOINT_KEEP", "0", "TRAIN.EVAL_PERIOD",
         "0", "TRAIN.PRECISE_BN_BATCHES", "1", "TEST.ENABLE", "False"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_nodes(data_dir, output_dir: Path) -> List[subprocess.Popen]:
    """Two torchrun agents on 127.0.0.1 standing for two machines (`--nnodes 2`, one training process each), with
    the c10d rendezvous, as docs/many_machines.md starts a multi-node run; their output goes to files.

    One restart each (--max-restarts 1): one lost process must cost one restart, not the several a group
    re-formed from a dead round's addresses would (`distributed.restart_hazard`)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--max-restarts", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
               "--rdzv-id", output_dir.name, str(ROOT / "train_net.py"), *tiny(data_dir, output_dir, *STEPS)]
    output_dir.mkdir()
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    return [subprocess.Popen(command, cwd=ROOT, env=environment, stdout=open(output_dir / f"agent{node}.out", "w"),
                             stderr=subprocess.STDOUT) for node in range(2)]


def finish(agents: List[subprocess.Popen], output_dir: Path) -> None:
    for node, agent in enumerate(agents):
        assert agent.wait(timeout=300) == 0, (output_dir / f"agent{node}.out").read_text()[-3000:]


def process_of_rank(agents: List[subprocess.Popen], rank: int) -> int:
    """The pid of the training process an agent started with RANK `rank`."""
    for agent in agents:
        for pid in Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split():
            if f"RANK={rank}" in Path(f"/proc/{pid}/environ").read_text().split("\0"):
                return int(pid)
    raise AssertionError(f"no process of rank {rank}")


def test_a_rank_killed_after_the_second_checkpoint_restarts_the_group_which_ends_with_the_uninterrupted_weights(
        data_dir, tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    finish(two_nodes(data_dir, uninterrupted), uninterrupted)

    killed = tmp_path / "killed"
    agents = two_nodes(data_dir, killed)
    second = killed / "checkpoints" / "iter_0000004.pth"
    while not second.exists() and all(agent.poll() is None for agent in agents):
        time.sleep(0.005)
    os.kill(process_of_rank(agents, 1), signal.SIGKILL)
    assert not (killed / "checkpoints" / "iter_0000012.pth").exists(), "the run ended before a rank was killed"
    finish(agents, killed)  # no person started anything again

    log = (killed / "log.txt").read_text()
    resumed = [int(n) for n in re.findall(rf"resumed from {killed}/checkpoints/iter_\d+\.pth at iteration (\d+)", log)]
    assert len(resumed) == 1 and 4 <= resumed[0] < 12, log
    assert_same_weights(final_weights(killed, 12), final_weights(uninterrupted, 12), rtol=0, atol=0)


# Imported by the child process of the next test: a checkpoint write stopped after the data, before the rename.
STUCK_WRITER = """
import os, sys, time
sys.path.insert(0, sys.argv[3])
from videonl.config import load_cfg
from videonl.engine import checkpoint_format
from videonl.models.build import build_model


def stuck(fd):
    open(sys.argv[2], "w").close()
    time.sleep(600)


checkpoint_format.os.fsync = stuck
cfg = load_cfg(sys.argv[4], ["RESNET.WIDTH", "4"])
checkpoint_format.save_checkpoint(sys.argv[1], build_model(cfg), cfg)
"""


def test_a_checkpoint_whose_writer_is_killed_is_absent_and_its_temporary_file_is_removed_on_resuming(tmp_path):
    checkpoints = CheckpointManager(str(tmp_path))
    cfg = load_cfg(DEMO_CFG, ["RESNET.WIDTH", "4"])
    save_checkpoint(checkpoints.path(2), build_model(cfg), cfg, iteration=2)
    writing = tmp_path / "writing"
    writer = subprocess.Popen([sys.executable, "-c", STUCK_WRITER, checkpoints.path(4), str(writing), str(ROOT),
                               DEMO_CFG])
    while not writing.exists() and writer.poll() is None:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    leftovers = unfinished_writes(checkpoints.folder)
    assert len(leftovers) == 1 and os.path.getsize(leftovers[0]) > 0  # killed with its data written, not renamed
    assert checkpoints.existing() == [checkpoints.path(2)]
    assert checkpoints.resume_point() == checkpoints.path(2)
    assert unfinished_writes(checkpoints.folder) == []


def test_every_process_resumes_from_the_checkpoint_rank_0_chose(tmp_path, monkeypatch):
    """On another machine a shared folder may show other files (a newer one late, or none): rank 0's choice holds."""
    checkpoints = CheckpointManager(str(tmp_path))
    cfg = load_cfg(DEMO_CFG, ["RESNET.WIDTH", "4"])
    for iteration in (2, 4):
        save_checkpoint(checkpoints.path(iteration), build_model(cfg), cfg, iteration=iteration)
    leftover = Path(checkpoints.folder) / ".iter_0000006.pth.x.tmp"
    leftover.write_bytes(b"\0")
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "broadcast_object", lambda value: checkpoints.path(2))
    assert checkpoints.resume_point() == checkpoints.path(2)
    assert leftover.exists()  # only rank 0 deletes in OUTPUT_DIR

    monkeypatch.setattr(distributed, "broadcast_object", lambda value: str(tmp_path / "elsewhere" / "iter_0000008.pth"))
    with pytest.raises(FileNotFoundError, match="OUTPUT_DIR must be a folder every machine of the run shares"):
        checkpoints.resume_point()


@pytest.mark.parametrize("shared, restarts, hazard", [("True", "3", True), ("False", "3", False),
                                                       ("True", "0", False)])
def test_restarts_over_a_store_shared_across_them_are_named_as_a_hazard(monkeypatch, shared, restarts, hazard):
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", shared)
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", restarts)
    assert ("TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in distributed.restart_hazard()) == hazard
