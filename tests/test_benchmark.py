import subprocess
from pathlib import Path

from videonl.benchmark.__main__ import main


def test_nonlocal_benchmark_reports_each_implementation(capsys):
    main(["nonlocal", "--shapes", "32f-res4", "--batches", "1", "--repeat", "1", "--implementations", "plain", "fast"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["shape", "batch", "implementation"]
    plain, fast = (line.split() for line in lines[1:3])
    assert plain[:3] == ["32f-res4", "1", "plain"] and fast[:3] == ["32f-res4", "1", "fast"]
    assert all(float(value) > 0 for value in plain[3:5] + fast[3:5])
    assert "vs plain:" in lines[2]


def test_nonlocal_rows_state_the_fast_paths_gain_over_each_other_implementation(capsys):
    from videonl.benchmark.nonlocal_block import print_row

    def row(implementation, train_s, peak_mib):
        return {"shape": "32f-res4", "batch": 2, "implementation": implementation, "forward_s": 0.25,
                "train_s": train_s, "peak_mib": peak_mib}

    rows = [row("pytorchvideo", 1.5, 900.0), row("plain", 1.0, 600.0), row("fast", 0.5, 200.0)]
    for count in range(1, 4):
        print_row(rows[count - 1], rows[:count])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["32f-res4", "2", "pytorchvideo", "0.250", "1.500", "900"]
    assert lines[3].split("   vs ")[1:] == ["pytorchvideo: 3.00x faster, 4.5x less memory",
                                          "plain: 2.00x faster, 3.0x less memory"]



# ------------------------------------------------------------------------------------------ model

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import CONFIGS  # noqa: E402
from videonl.benchmark.model import OURS, build, comparison_note, pytorchvideo_counterpart  # noqa: E402
from videonl.config import load_cfg  # noqa: E402

TINY = ["RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5"]
QUICK = ["--frames", "4", "--size", "32", "--steps", "1", "--peak-size", "64"]


def table_rows(output: str) -> dict:
    """Model name -> its numbers, from the table's lines (the name may hold one space)."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    rows = {}
    for line in lines[header + 1:]:
        name = next((n for n in (OURS, "pytorchvideo c2d_r50", "pytorchvideo i3d_r50", "pytorchvideo slow_r50")
                     if line.startswith(n + " ")), None)
        if name:
            rows[name] = [float(value.rstrip("%")) for value in line[len(name):].split()]
    return rows


def test_model_benchmark_prints_ours_and_pytorchvideos_rows_with_memory(capsys):
    main(["model", "--cfg", str(CONFIGS / "i3d_r50_8x8.yaml"), *QUICK, *TINY])
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert set(rows) == {OURS, "pytorchvideo i3d_r50"}
    # GMACs, train s, GFLOP/s, of peak, infer s, train MiB, infer MiB (the tiny model's GFLOP/s may round to 0)
    assert all(len(values) == 7 and values[1] > 0 and values[4] > 0 for values in rows.values())
    assert rows[OURS][0] == rows["pytorchvideo i3d_r50"][0]  # the same backbone: the same multiply-adds
    assert "GFLOP/s (64 x 64 matmul)" in output and "theirs / ours: train step" in output


def test_a_multi_label_models_train_step_takes_the_tasks_loss(monkeypatch):
    from videonl.benchmark import model as benchmark_model

    job = {"cfg": str(CONFIGS / "c2d_r50_8x8.yaml"), "opts": TINY + ["TASK.NAME", "multi_label"], "settings": [],
           "batch": 2, "frames": 4, "size": 32, "device": "cpu"}
    clip, targets = benchmark_model.clip_and_labels(job)
    assert targets.shape == (2, 5) and targets.dtype == torch.float32
    binary_cross_entropy, targets_seen = torch.nn.functional.binary_cross_entropy_with_logits, []

    def counted(logits, targets):
        targets_seen.append(targets)
        return binary_cross_entropy(logits, targets)

    monkeypatch.setattr(torch.nn.functional, "binary_cross_entropy_with_logits", counted)
    benchmark_model.train_step(build(job, OURS).train(), clip, targets, benchmark_model.job_cfg(job))()
    assert len(targets_seen) == 1 and targets_seen[0] is targets


@pytest.mark.parametrize("name", ["c2d_r50", "i3d_r50", "slow_r50"])
def test_the_counterpart_is_pytorchvideos_model_of_the_same_backbone(name):
    cfg_file = str(CONFIGS / f"{name}_8x8.yaml")
    assert pytorchvideo_counterpart(load_cfg(cfg_file, TINY)) == name
    job = {"cfg": cfg_file, "opts": TINY, "settings": [], "counterpart": name}
    ours, theirs = build(job, OURS), build(job, f"pytorchvideo {name}")
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in theirs.parameters())


@pytest.mark.parametrize("config", ["i3d_r50_32x2.yaml", "i3d333_r50_32x2.yaml", "c2d_r50_32x2.yaml",
                                    "i3d_r101_32x2.yaml"])
def test_backbones_pytorchvideo_lacks_have_no_counterpart(config):
    assert pytorchvideo_counterpart(load_cfg(str(CONFIGS / config))) is None


def test_context_blocks_are_compared_with_the_plain_backbone_and_named():
    cfg = load_cfg(str(CONFIGS / "nl_i3d_r50_8x8.yaml"))
    assert pytorchvideo_counterpart(cfg) == "i3d_r50"
    assert "plain backbone: ours adds 5 'nonlocal' context blocks" in comparison_note(cfg, "i3d_r50")


def test_a_model_without_counterpart_is_measured_alone(capsys):
    main(["model", "--cfg", str(CONFIGS / "i3d_r50_32x2.yaml"), *QUICK, "--frames", "8", "--size", "64", "--no-memory", *TINY])
    output = capsys.readouterr().out
    assert "counterpart  none" in output and list(table_rows(output)) == [OURS]


def test_model_table_states_the_train_steps_rate_and_its_share_of_the_matmul_peak():
    from videonl.benchmark.model import format_table

    rows = {OURS: {"macs": 2e9, "train_s": 0.5, "inference_s": 0.25},
            "pytorchvideo i3d_r50": {"macs": 2e9, "train_s": 0.75, "inference_s": 0.2}}
    peaks = {OURS: {"train": 300.0, "inference": 100.0}, "pytorchvideo i3d_r50": {"train": 450.0, "inference": 90.0}}
    lines = format_table(rows, peak_gflops=48.0, peaks=peaks)
    # a train step is 3 forwards of 2e9 multiply-adds, 2 FLOPs each: 12 GFLOP in 0.5 s, a quarter of 48 GFLOP/s
    assert table_rows("\n".join(lines)) == {OURS: [2.0, 0.5, 24.0, 50.0, 0.25, 300.0, 100.0],
                                             "pytorchvideo i3d_r50": [2.0, 0.75, 16.0, 33.3, 0.2, 450.0, 90.0]}
    assert lines[-1] == "time, theirs / ours: train step 1.50x, inference 0.80x (above 1: ours is faster)"


def test_interleaved_takes_turns_and_reverses_the_order_every_other_round():
    from videonl.benchmark.timing import interleaved

    calls = []
    medians = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, torch.device("cpu"),
                          warmup=1, repeat=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"] and set(medians) == {"a", "b"}


# ------------------------------------------------------------------------------------------ transforms

def test_transforms_benchmark_times_each_row_against_a_revision(capsys):
    if subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    threads = torch.get_num_threads()
    main(["transforms", "--size", "288x256", "--video-frames", "40", "--repeat", "1", "--against", "HEAD"])
    assert torch.get_num_threads() == threads  # one thread leaks into later tests: other convolution kernels
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["row", "ours", "HEAD", "ours", "/", "theirs"]
    rows = {line[:8].strip(): [float(value) for value in line[8:].split()] for line in lines[2:]}
    assert set(rows) == {"train", "test 10", "test 30"} and all(len(v) == 3 and v[1] > 0 for v in rows.values())
    with pytest.raises(SystemExit, match="--against needs a git checkout holding no-such-revision"):
        main(["transforms", "--against", "no-such-revision"])


def test_transforms_rows_are_each_sides_milliseconds_and_their_ratio(monkeypatch, capsys):
    from videonl.benchmark import transforms as transforms_benchmark

    timed = []

    def fixed_seconds(fns, device, warmup, repeat, clock):
        timed.append(sorted(fns))
        return {"ours": 0.003, "theirs": 0.012}

    monkeypatch.setattr(transforms_benchmark, "interleaved", fixed_seconds)
    monkeypatch.setattr(transforms_benchmark, "revision_module", lambda revision: transforms_benchmark.transforms)
    main(["transforms", "--size", "64x48", "--video-frames", "8", "--repeat", "1", "--against", "v0"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == [f"{row:<8} {3.0:>8.1f} {12.0:>10.1f} {0.25:>14.2f}" for row in ("train", "test 10", "test 30")]
    assert timed == [["ours", "theirs"]] * 3


# ------------------------------------------------------------------------------------------ matmul

from videonl.benchmark import matmul as matmul_module  # noqa: E402
from videonl.benchmark import timing  # noqa: E402


def test_matmul_rate_counts_two_flops_per_multiply_add(monkeypatch, capsys):
    timed = []

    def half_a_second(fn, device, warmup, repeat):
        timed.append(repeat)
        return {"seconds": 0.5, "peak_mib": 0.0}

    monkeypatch.setattr(matmul_module, "measure", half_a_second)
    main(["matmul", "--size", "1000", "--repeat", "3"])
    # 1000^3 multiply-adds, 2 FLOPs each, in 0.5 s: 4 GFLOP/s
    assert capsys.readouterr().out.startswith("fp32 matmul: 4.0 GFLOP/s (1000 x 1000, cpu")
    assert matmul_module.matmul_gflops(1000, repeat=3) == pytest.approx(4.0)
    assert timed == [3, 3]


def test_matmul_rate_of_this_machine_is_two_flops_per_multiply_add_over_the_measured_time(monkeypatch):
    measured, products = [], []

    def recorded_measure(fn, device, warmup, repeat):
        products.append(fn().shape)  # the function timed is the product itself
        measured.append(timing.measure(fn, device, warmup=warmup, repeat=repeat))
        return measured[-1]

    monkeypatch.setattr(matmul_module, "measure", recorded_measure)
    rate = matmul_module.matmul_gflops(64, repeat=2)
    assert products == [(64, 64)] and rate == 2 * 64 ** 3 / measured[0]["seconds"] / 1e9
