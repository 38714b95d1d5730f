"""train_net.py end to end on a tiny model and generated videos: outputs, resume after SIGKILL, two processes,
bad states and configs that cannot work."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import train_net
from helpers import (DEMO_CFG, ROOT, assert_png_drawn, assert_same_weights, final_weights, randomize_batch_norms,
                     shard_size_for, tiny)
from videonl.config import ConfigError, get_cfg, load_cfg
from videonl.engine import distributed
from videonl.engine import train as engine_train
from videonl.engine.checkpoint import CheckpointManager
from videonl.engine.optim import build_optimizer
from videonl.engine.runtime import grad_scaler
from videonl.engine.train import NonFiniteError, TrainingLoop, stream_resume_problem, training_model
from videonl.models.build import build_model
from videonl.engine.input_spec import CAFFE2_INPUT, InputSpec
from videonl.engine.checkpoint_format import load_checkpoint, save_checkpoint
from videonl.prep import shards as prep_shards

CPU = torch.device("cpu")


def training_loop(data_dir, output_dir, *overrides) -> TrainingLoop:
    """The loop train_net would run on the tiny config, for driving single steps."""
    cfg = load_cfg(DEMO_CFG, tiny(data_dir, output_dir, *overrides)[2:])
    model = training_model(cfg, CPU, init=None)  # the tiny config has no MODEL.INIT
    return TrainingLoop(cfg, CPU, model, build_optimizer(model, cfg), grad_scaler(cfg, CPU),
                        CheckpointManager(str(output_dir)), cfg.DATALOADER.TRAIN_BATCH_SIZE)


def test_training_then_testing_writes_every_output(data_dir, tmp_path):
    results = train_net.main(tiny(data_dir, tmp_path))

    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    assert checkpoints == ["iter_0000004.pth", "iter_0000006.pth"]  # CHECKPOINT_KEEP 2 of 2, 4, 6
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["split"], r["iter"]) for r in records] == [("train", 2), ("val", 3), ("train", 4), ("train", 6),
                                                         ("val", 6)]
    assert {"loss", "lr", "clips_per_s", "data_time", "compute_time"} <= records[0].keys()
    for name in ("config.yaml", "log.txt"):
        assert (tmp_path / name).stat().st_size > 0, name
    test_dir = tmp_path / "test" / "iter_0000006"
    for name in ("predictions.csv", "per_class.csv", "summary.json"):
        assert (test_dir / name).stat().st_size > 0, name
    for picture in (tmp_path / "training_curves.png", test_dir / "per_class_accuracy.png",
                    test_dir / "confusion_matrix.png"):
        assert_png_drawn(picture)
    assert results["videos"] == 4 and results["views_per_video"] == 2
    assert json.loads((test_dir / "summary.json").read_text())["top1"] == results["top1"]
    # The documented evaluation command reproduces the test from the checkpoint alone.
    again = train_net.main(tiny(data_dir, tmp_path / "eval_only", "TRAIN.ENABLE", "False",
                                "TEST.CHECKPOINT", str(tmp_path / "checkpoints" / "iter_0000006.pth")))
    assert again["top1"] == results["top1"] and again["top5"] == results["top5"]


@pytest.mark.parametrize("source", ["files", "shards"])
def test_run_killed_mid_epoch_resumes_from_its_checkpoint_to_the_uninterrupted_weights(data_dir, tmp_path, source):
    """With shards, the resumed epoch draws the same shard order and within-shard shuffle and skips what the
    batches before the checkpoint took (data/stream_samplers.py): the same clips, so the same weights."""
    batches_per_epoch = 12 // 2  # 12 training videos, batches of 2
    steps = ["SOLVER.MAX_ITER", "8", "TRAIN.CHECKPOINT_PERIOD", "2", "TRAIN.CHECKPOINT_KEEP", "0",
             "TRAIN.EVAL_PERIOD", "4", "TEST.ENABLE", "False", "DATALOADER.NUM_WORKERS", "2"]
    if source == "shards":  # 3 shards of 5, 5 and 2 videos, read by 2 workers
        prep_shards.main(["--data-dir", str(data_dir), "--split", "train", "val", "--out-dir", str(tmp_path / "shards"),
                          "--shard-size", shard_size_for(5, data_dir)])
        steps += ["DATA.SHARDS", str(tmp_path / "shards"), "DATA.SHARD_SHUFFLE", "3"]
    train_net.main(tiny(data_dir, tmp_path / "uninterrupted", *steps))

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(ROOT / "train_net.py"), *tiny(data_dir, killed, *steps)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed / "checkpoints" / "iter_0000002.pth"
    while not first.exists() and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert "iter_0000008.pth" not in os.listdir(killed / "checkpoints"), "the run ended before it was killed"

    train_net.main(tiny(data_dir, killed, *steps))
    resumed = re.findall(r"resumed from (\S+) at iteration (\d+)", (killed / "log.txt").read_text())
    assert len(resumed) == 1, "the second start did not resume"
    path, iteration = resumed[0][0], int(resumed[0][1])
    assert path == str(killed / "checkpoints" / f"iter_{iteration:07d}.pth")
    assert iteration % batches_per_epoch != 0, f"resumed at iteration {iteration}, an epoch boundary"
    assert_same_weights(final_weights(killed, 8), final_weights(tmp_path / "uninterrupted", 8), rtol=0, atol=0)


def test_a_shard_run_resumed_with_another_number_of_loader_workers_says_its_epoch_differs():
    saved = get_cfg()
    saved.DATALOADER.NUM_WORKERS = 2
    resumed = saved.clone()
    resumed.DATA.SHARDS = "shards/demo"
    assert stream_resume_problem(saved.dump(), resumed) == ""  # the same workers: the same ranges
    resumed.DATALOADER.NUM_WORKERS = 3
    assert stream_resume_problem(saved.dump(), resumed).startswith(
        "written by a run with DATALOADER.NUM_WORKERS 2, this one has 3: until the interrupted epoch ends")
    resumed.DATA.SHARDS = ""
    assert stream_resume_problem(saved.dump(), resumed) == ""  # files: one order whatever the workers
    saved.DATALOADER.NUM_WORKERS, resumed.DATA.SHARDS, resumed.DATALOADER.NUM_WORKERS = 0, "shards/demo", 1
    assert stream_resume_problem(saved.dump(), resumed) == ""  # no workers lays the epoch out as one


# Imported at start-up by every Python process that has its folder on PYTHONPATH: records, per torchrun rank,
# each path under WRITES_WATCHED that the process opens for writing, creates, renames onto or removes.
WRITE_AUDIT = """
import os, sys

_watched, _log, _rank = os.environ["WRITES_WATCHED"] + os.sep, os.environ["WRITES_LOG"], os.environ.get("RANK")


def _record(event, args):
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    elif event in ("os.rename", "os.mkdir", "os.remove"):
        path, writing = args[1] if event == "os.rename" else args[0], True
    else:
        return
    if writing and isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(_watched):
        with open(f"{_log}.rank{_rank}", "a") as f:
            f.write(os.path.relpath(path, _watched) + "\\n")


if _rank is not None:
    sys.addaudithook(_record)
"""


def test_two_processes_end_with_the_weights_of_one_process_with_the_same_global_batch_and_only_rank_0_writes(
        data_dir, tmp_path):
    same_function = ["SOLVER.MAX_ITER", "4", "TRAIN.EVAL_PERIOD", "0", "TEST.ENABLE", "False",
                     "BN.FROZEN", "True", "MODEL.DROPOUT", "0.0"]
    train_net.main(tiny(data_dir, tmp_path / "one", *same_function, "DATALOADER.TRAIN_BATCH_SIZE", "4"))
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "sitecustomize.py").write_text(WRITE_AUDIT)
    audited = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "audit"), os.environ.get("PYTHONPATH", "")]),
               "WRITES_WATCHED": str(tmp_path / "two"), "WRITES_LOG": str(tmp_path / "writes")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(29500 + os.getpid() % 1000), str(ROOT / "train_net.py"),
               *tiny(data_dir, tmp_path / "two", *same_function, "DATALOADER.TRAIN_BATCH_SIZE", "2")]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1", **audited})
    # Same clips, same augmentation; only the order of float additions differs (DDP averages two means).
    assert_same_weights(final_weights(tmp_path / "two", 4), final_weights(tmp_path / "one", 4), rtol=1e-4, atol=1e-6)
    assert not (tmp_path / "writes.rank1").exists(), (tmp_path / "writes.rank1").read_text()
    written_by_rank_0 = set((tmp_path / "writes.rank0").read_text().split())
    assert {"config.yaml", "log.txt", "metrics.jsonl", "checkpoints/iter_0000004.pth"} <= written_by_rank_0


@pytest.mark.parametrize("precision, dtype", [
    ("bf16", torch.bfloat16),
    pytest.param("fp16", torch.float16, marks=pytest.mark.skipif(
        not torch.cpu._is_amx_fp16_supported(), reason="this CPU has no native fp16 (AMX-FP16)")),
])
def test_mixed_precision_step_computes_in_half_precision_and_updates_float32_weights(data_dir, tmp_path, precision,
                                                                                    dtype):
    loop = training_loop(data_dir, tmp_path, "RUNTIME.PRECISION", precision)
    conv_outputs = []
    loop.model.res3[0].conv_b.register_forward_hook(lambda module, inputs, output: conv_outputs.append(output.dtype))
    before = {name: p.detach().clone() for name, p in loop.model.named_parameters()}
    loss = loop.step(0, next(iter(loop.loader)))
    assert conv_outputs == [dtype] and math.isfinite(loss)
    after = dict(loop.model.named_parameters())
    assert all(p.dtype == torch.float32 for p in after.values())
    assert not torch.equal(after["res3.0.conv_b.weight"], before["res3.0.conv_b.weight"])


def test_gradient_clipping_steps_with_the_gradient_scaled_to_the_configured_norm(data_dir, tmp_path):
    limit = 1e-3
    first_steps = {}
    for clip in (0.0, limit):
        torch.manual_seed(0)  # the same initial weights and dropout masks
        loop = training_loop(data_dir, tmp_path / str(clip), "TRAIN.CLIP_GRAD_NORM", str(clip),
                             "SOLVER.WEIGHT_DECAY", "0.0")
        loop.step(0, next(iter(loop.loader)))
        # SGD's momentum buffer after a first step without weight decay is the gradient it stepped with.
        first_steps[clip] = [loop.optimizer.state[p]["momentum_buffer"] for p in loop.model.parameters()]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in first_steps[0.0]]))
    assert norm > 10 * limit, "the limit would not bind"
    for clipped, free in zip(first_steps[limit], first_steps[0.0]):
        torch.testing.assert_close(clipped, free * (limit / norm), rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("sync", [False, True])
def test_sync_bn_converts_every_batch_norm_of_a_multi_process_run(monkeypatch, sync):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # conversion needs no process group
    cfg = load_cfg(DEMO_CFG, ["RESNET.WIDTH", "4", "TRAIN.SYNC_BN", str(sync)])
    norms = [type(m) for m in training_model(cfg, CPU, init=None).modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert set(norms) == {torch.nn.SyncBatchNorm if sync else torch.nn.BatchNorm3d}


def test_non_finite_loss_stops_naming_iteration_lr_and_videos_and_keeps_the_last_checkpoint(data_dir, tmp_path):
    args = tiny(data_dir, tmp_path, "SOLVER.BASE_LR", "1e30", "SOLVER.REFERENCE_BATCH_SIZE", "2",
                "SOLVER.LR_POLICY", "steps", "SOLVER.WARMUP_ITERS", "0", "TRAIN.CHECKPOINT_PERIOD", "1",
                "SOLVER.MAX_ITER", "20")
    with pytest.raises(NonFiniteError) as error:
        train_net.main(args)
    message = str(error.value)
    iteration = int(re.search(r"at iteration (\d+)", message).group(1))
    videos = re.search(r"Videos of this process's batch: (.*)\. Newest", message).group(1).split(", ")
    assert "(LR 1e+30)" in message and len(videos) == 2 and all(v.startswith(str(data_dir)) for v in videos)
    newest = CheckpointManager(str(tmp_path)).latest()
    assert iteration >= 1 and newest.endswith(f"iter_{iteration:07d}.pth")  # every finished step was saved
    assert f"Newest good checkpoint: {newest}" in message
    assert all(torch.isfinite(value).all() for value in load_checkpoint(newest)["model"].values())


def test_fine_tuning_from_a_checkpoint_with_other_classes_reinitialises_the_classifier(data_dir, tmp_path):
    source_cfg = load_cfg(DEMO_CFG, ["RESNET.WIDTH", "4"])  # the demo's 8 classes
    source = build_model(source_cfg)
    save_checkpoint(str(tmp_path / "eight_classes.pth"), source, source_cfg, input_spec=CAFFE2_INPUT)
    train_net.main(tiny(data_dir, tmp_path / "run", "MODEL.INIT", str(tmp_path / "eight_classes.pth"),
                        "SOLVER.MAX_ITER", "2", "TRAIN.EVAL_PERIOD", "0", "TEST.ENABLE", "False",
                        "SOLVER.BASE_LR", "0.0"))
    checkpoint = load_checkpoint(str(tmp_path / "run" / "checkpoints" / "iter_0000002.pth"))
    # fine-tuned on the input the initial weights expect, and on this data's classes
    assert InputSpec.from_record(checkpoint["input"]).config_values() == CAFFE2_INPUT.config_values()
    assert checkpoint["classes"] == ["right", "left"]
    trained = checkpoint["model"]
    assert trained["head.fc.weight"].shape == (2, source.head.fc.in_features)
    torch.testing.assert_close(trained["res5.0.conv_b.weight"], source.res5[0].conv_b.weight)


@pytest.mark.parametrize("overrides, named", [
    (["DATA.TRAIN_CROP_SIZE", "40"], r"DATA.TRAIN_CROP_SIZE 40 is larger than .*DATA.TRAIN_JITTER_SCALES\[0\] 32"),
    (["MODEL.NUM_CLASSES", "3"], r"MODEL.NUM_CLASSES 3 does not match the 2 classes of .*classes.json"),
    (["NONLOCAL.FRAMES_PER_GROUP", "[0, 4, 0, 0]"], r"DATA.NUM_FRAMES 4 x DATA.TRAIN_CROP_SIZE 32: .*does not divide"),
    (["SOLVER.STEPS", "[4, 2]"], r"SOLVER.STEPS \[4, 2\] must increase"),
])
def test_configs_that_cannot_work_fail_before_training_naming_the_keys(data_dir, tmp_path, overrides, named):
    with pytest.raises(ConfigError, match=named):
        train_net.main(tiny(data_dir, tmp_path, *overrides))
    assert not (tmp_path / "checkpoints").exists()


def test_the_python_entry_sets_the_run_up_as_the_command_does(data_dir, tmp_path):
    """engine.train.train called from Python checks the config, fixes the decoder and seeds every RNG."""
    short = ["SOLVER.MAX_ITER", "2", "TRAIN.EVAL_PERIOD", "0", "TRAIN.PRECISE_BN_BATCHES", "0", "TEST.ENABLE", "False"]
    trained = []
    for caller_seed in (1, 2):  # the caller's RNG state must not reach the initial weights or dropout
        torch.manual_seed(caller_seed)
        cfg = load_cfg(DEMO_CFG, tiny(data_dir, tmp_path / str(caller_seed), *short)[2:])
        trained.append(engine_train.train(cfg).state_dict())
    assert_same_weights(*trained)
    saved = load_cfg(str(tmp_path / "1" / "config.yaml"))
    assert saved.DATA.DECODER != "auto" and saved.SOLVER.MAX_ITER == 2
    with pytest.raises(ConfigError, match=r"SOLVER.STEPS \[4, 2\] must increase"):
        engine_train.train(load_cfg(DEMO_CFG, tiny(data_dir, tmp_path / "bad", *short, "SOLVER.STEPS", "[4, 2]")[2:]))
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_the_ucf101_recipe_without_pretrained_weights_fails_before_training(data_dir, tmp_path):
    recipe = str(ROOT / "configs" / "ucf101" / "finetune.yaml")
    args = ["--cfg", DEMO_CFG, "--cfg", recipe, *tiny(data_dir, tmp_path, "SOLVER.STEPS", "[]")[2:]]
    with pytest.raises(ConfigError, match=r"MODEL.INIT is empty.*TRAIN.REQUIRE_INIT"):
        train_net.main(args)
    assert not (tmp_path / "checkpoints").exists()


def test_labels_outside_the_class_count_are_named_with_their_list(data_dir, tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("train.csv", "val.csv"):
        lines = (data_dir / name).read_text().replace(" 1\n", " 7\n")
        (tmp_path / "data" / name).write_text("".join(f"{data_dir}/{line}" for line in lines.splitlines(True)))
    with pytest.raises(ConfigError, match=r"train.csv: label 7 of .* is outside 0\.\.1 \(MODEL.NUM_CLASSES 2\), and \d+ "
                                          r"more videos with labels outside: \[7\]"):
        train_net.main(tiny(tmp_path / "data", tmp_path / "run"))


def test_help_points_at_the_config_reference(capsys):
    with pytest.raises(SystemExit):
        train_net.main(["--help"])
    out = capsys.readouterr().out
    assert "TRAIN.ENABLE" in out and "videonl/config.py" in out and "torchrun" in out


def test_evaluation_command_reads_a_caffe2_pkl_as_it_reads_our_checkpoint(data_dir, tmp_path):
    """The .pkl is evaluated on the release's input (mean 114.75, std 57.375 on [0, 255]): as our checkpoint of
    the same weights recording that input, and unlike one recording the config's (ImageNet) input."""
    from test_convert import caffe2_blobs, write_pickle  # the Caffe2 naming, written by the converter's tests

    plain = ["CONTEXT.BLOCK", "", "CONTEXT.RES3", "[]", "CONTEXT.RES4", "[]"]
    cfg = load_cfg(DEMO_CFG, [*tiny(data_dir, tmp_path)[2:], *plain])
    model = randomize_batch_norms(build_model(cfg))  # no zero residual branch: every blob counts
    torch.nn.init.normal_(model.head.fc.weight)  # scores far enough apart for the printed digits to differ
    save_checkpoint(str(tmp_path / "ours.pth"), model, cfg, input_spec=CAFFE2_INPUT)
    save_checkpoint(str(tmp_path / "imagenet.pth"), model, cfg)
    pkl = write_pickle(tmp_path / "caffe2.pkl", {"blobs": caffe2_blobs(model)})
    runs = {"ours": str(tmp_path / "ours.pth"), "c2": pkl, "imagenet": str(tmp_path / "imagenet.pth")}
    results = {name: train_net.main(tiny(data_dir, tmp_path / name, *plain, "TRAIN.ENABLE", "False",
                                         "TEST.CHECKPOINT", weights)) for name, weights in runs.items()}
    assert {k: results["ours"][k] for k in ("top1", "top5", "clip_top1")} == \
        {k: results["c2"][k] for k in ("top1", "top5", "clip_top1")}
    predictions = {name: (tmp_path / name / "test" / stem / "predictions.csv").read_text()
                   for name, stem in (("ours", "ours"), ("c2", "caffe2"), ("imagenet", "imagenet"))}
    assert predictions["ours"] == predictions["c2"] != predictions["imagenet"]
