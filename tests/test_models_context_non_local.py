import itertools

import pytest
import torch
from pytorchvideo.layers.nonlocal_net import create_nonlocal

from videonl.config import load_cfg
from videonl.flops import flop_analysis
from videonl.info import model_report
from videonl.models import build_model
from videonl.models.context import non_local
from videonl.models.context.non_local import INSTANTIATIONS, NonLocal, attention_matrix_dominates

from helpers import pretrained_pair

# (mode, frames per group, pool): every way positions are grouped, with the subsampling each allows.
LAYOUTS = [("spacetime", 0, (1, 2, 2)), ("space", 0, (1, 2, 2)), ("time", 0, (1, 1, 1)), ("spacetime", 2, (1, 2, 2)),
           ("spacetime", 0, (2, 2, 2))]


def random_block(instantiation, mode="spacetime", group=0, pool=(1, 2, 2), dim=12, inner=6, dtype=torch.float32):
    """A block with every weight and BN statistic random, in eval mode: nothing in it is the identity."""
    torch.manual_seed(0)
    block = NonLocal(dim, inner, instantiation, mode, group, pool).to(dtype).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.5)
        block.bn.running_mean.normal_(0, 0.1)
        block.bn.running_var.uniform_(0.5, 1.5)
    return block


def outputs_and_grads(block, x):
    x = x.clone().requires_grad_(True)
    y = block(x)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    grads = torch.autograd.grad((y * weights).sum(), [x, *block.parameters()])
    return y.detach(), grads


@pytest.mark.parametrize("instantiation, layout", itertools.product(INSTANTIATIONS, LAYOUTS))
def test_fast_path_equals_plain_path(instantiation, layout, monkeypatch):
    monkeypatch.setattr(non_local, "attention_matrix_dominates", lambda q, k: True)  # small windows too
    block = random_block(instantiation, *layout)
    x = torch.randn(2, 12, 4, 6, 6)
    block.fast = True
    fast = outputs_and_grads(block, x)
    block.fast = False
    plain = outputs_and_grads(block, x)
    # float32 sums in another order: equal to 1e-5 of the output's and of the gradients' magnitude (the
    # gradient of phi's bias is zero in exact arithmetic, as softmax ignores a shift shared by all keys).
    torch.testing.assert_close(fast[0], plain[0], rtol=1e-5, atol=1e-5 * plain[0].abs().max().item())
    scale = max(g.abs().max().item() for g in plain[1])
    for a, b in zip(fast[1], plain[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale)


def test_fast_paths_are_taken_where_the_attention_matrix_dwarfs_the_inputs():
    def windows(queries, keys, dim):
        return torch.empty(1, queries, dim), torch.empty(1, keys, dim)

    assert attention_matrix_dominates(*windows(16 * 28 * 28, 16 * 14 * 14, 256))  # 128-frame res3
    assert not attention_matrix_dominates(*windows(4 * 14 * 14, 4 * 7 * 7, 512))  # 32-frame res4


def test_dot_product_fast_path_reassociates_on_long_clips():
    block = random_block("dot_product", dim=8, inner=4)
    x = torch.randn(1, 8, 8, 8, 8)  # 512 queries, 128 keys, 4 channels: q (k^T v) is far cheaper
    flops = {}
    for block.fast in (True, False):
        flops[block.fast] = flop_analysis(block, x).by_operator()["matmul"]
    assert flops[True] == (512 + 128) * 4 * 4
    assert flops[False] == 2 * 512 * 128 * 4


def _same_window(mode, group, query_pos, key_pos, pool):
    """Whether a query at (t, y, x) and a key at pooled (t', y', x') share a window."""
    (t, y, x), (tk, yk, xk) = query_pos, key_pos
    if mode == "space":
        return t // pool[0] == tk
    if mode == "time":
        return (y, x) == (yk, xk)
    return group == 0 or t // group == tk // (group // pool[0])


def naive_nonlocal(block, x):
    """The paper's equations (1)-(6), position by position, in float64, with the block's weights."""
    b, c, t, h, w = x.shape
    conv = lambda layer, inp: torch.einsum("oc,bcthw->bothw", layer.weight[:, :, 0, 0, 0], inp) + layer.bias.view(1, -1, 1, 1, 1)
    pooled = torch.nn.functional.max_pool3d(x, block.pool.kernel_size) if block.pool is not None else x
    theta = conv(block.conv_theta, x) if block.conv_theta is not None else x
    phi = conv(block.conv_phi, pooled) if block.conv_phi is not None else pooled
    g = conv(block.conv_g, pooled)
    pool = block.pool.kernel_size if block.pool is not None else (1, 1, 1)
    queries = list(itertools.product(range(t), range(h), range(w)))
    keys = list(itertools.product(*(range(n) for n in pooled.shape[2:])))
    y = torch.zeros(b, g.shape[1], t, h, w, dtype=x.dtype)
    for n in range(b):
        for i in queries:
            window = [j for j in keys if _same_window(block.mode, block.frames_per_group, i, j, pool)]
            q = theta[n, :, i[0], i[1], i[2]]
            ks = [phi[n, :, j[0], j[1], j[2]] for j in window]
            if block.instantiation in ("gaussian", "embedded_gaussian"):
                scale = q.numel() ** -0.5 if block.use_scale else 1.0
                f = torch.stack([torch.exp(q @ k * scale) for k in ks])
                f = f / f.sum()  # C(x) = sum_j f(x_i, x_j)
            elif block.instantiation == "dot_product":
                f = torch.stack([q @ k for k in ks]) / len(ks)  # C(x) = N
            else:
                w_f = block.concat_project.weight[0, :, 0]
                f = torch.stack([torch.relu(w_f @ torch.cat([q, k]) + block.concat_project.bias[0]) for k in ks]) / len(ks)
            y[n, :, i[0], i[1], i[2]] = sum(f[m] * g[n, :, j[0], j[1], j[2]] for m, j in enumerate(window))
    z = conv(block.conv_out, y)
    bn = block.bn
    z = (z - bn.running_mean.view(1, -1, 1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1, 1) + bn.eps)
    return x + z * bn.weight.view(1, -1, 1, 1, 1) + bn.bias.view(1, -1, 1, 1, 1)


@pytest.mark.parametrize("instantiation, layout", itertools.product(INSTANTIATIONS, LAYOUTS[:4]))
def test_block_equals_the_papers_formula(instantiation, layout):
    block = random_block(instantiation, *layout, dim=6, inner=4, dtype=torch.float64)
    for p in block.parameters():
        p.data.mul_(0.5)
    x = torch.randn(1, 6, 4, 4, 4, dtype=torch.float64)
    ours = outputs_and_grads(block, x)
    x_ref = x.clone().requires_grad_(True)
    reference = naive_nonlocal(block, x_ref)
    weights = torch.linspace(-1, 1, reference.numel(), dtype=reference.dtype).view_as(reference)
    reference_grads = torch.autograd.grad((reference * weights).sum(), [x_ref, *block.parameters()])
    for a, b in zip((ours[0], *ours[1]), (reference.detach(), *reference_grads)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("instantiation, theirs", [("embedded_gaussian", "softmax"), ("dot_product", "dot_product")])
@pytest.mark.parametrize("pool", [(1, 1, 1), (1, 2, 2)])
def test_equals_pytorchvideo_nonlocal(instantiation, theirs, pool):
    ours = random_block(instantiation, pool=pool, dim=16, inner=8)
    reference = create_nonlocal(dim_in=16, dim_inner=8, pool_size=pool, instantiation=theirs).eval()
    pairs = {"conv_theta": "conv_theta", "conv_phi": "conv_phi", "conv_g": "conv_g", "conv_out": "conv_out", "bn": "norm"}
    reference.load_state_dict({f"{pairs[k.split('.')[0]]}.{k.split('.', 1)[1]}": v for k, v in ours.state_dict().items()})
    x = torch.randn(2, 16, 4, 6, 6)
    for ours.fast in (True, False):
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_fast_and_plain_paths_count_the_same_flops():
    cfg = load_cfg("configs/kinetics400/nl_c2d_r50_32x2_5block.yaml", ["RESNET.WIDTH", "8", "DATA.TRAIN_CROP_SIZE", "64"])
    fast = model_report(cfg)
    plain = model_report(load_cfg("configs/kinetics400/nl_c2d_r50_32x2_5block.yaml",
                                  ["RESNET.WIDTH", "8", "DATA.TRAIN_CROP_SIZE", "64", "NONLOCAL.FAST", "False"]))
    assert fast["gflops"] == plain["gflops"]
    res3 = fast["context_blocks"][0]
    # res3 at 64 pixels: 4 x 8 x 8 queries, 4 x 4 x 4 keys, 64 inner channels; 1x1 convs over 256 -> 128 -> 256.
    n, m, c, d = 4 * 8 * 8, 4 * 4 * 4, 64, 32
    attention = n * m * 2 * d
    convs = n * c * d + 2 * m * c * d + n * d * c  # theta, phi and g, W_z
    assert res3["gflops"] * 1e9 == pytest.approx(attention + convs)


def _pretrained_pair(cfg_file, *opts):
    small = ["RESNET.WIDTH", "8", "RESNET.BLOCKS", "[1, 4, 6, 1]", "MODEL.NUM_CLASSES", "7", *opts]
    return pretrained_pair(load_cfg("configs/kinetics400/i3d_r50_32x2.yaml", small), load_cfg(cfg_file, small))


@pytest.mark.parametrize("cfg_file, opts", [("configs/kinetics400/nl_i3d_r50_32x2.yaml", []),
                                            ("configs/kinetics400/nl_i3d_r50_32x2.yaml", ["NONLOCAL.INSTANTIATION", "dot_product"]),
                                            ("configs/kinetics400/nl_i3d_r50_128x1.yaml", [])])
def test_inserted_blocks_leave_a_pretrained_backbone_unchanged(cfg_file, opts):
    plain, with_blocks = _pretrained_pair(cfg_file, *opts)
    frames = 32
    clip = torch.randn(2, 3, frames, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(with_blocks(clip), plain(clip), rtol=0, atol=1e-6)


def test_frozen_bn_models_get_blocks_without_bn_and_zero_output_conv():
    model = build_model(load_cfg("configs/kinetics400/nl_i3d_r50_128x1.yaml", ["RESNET.WIDTH", "8"]))
    blocks = [m for m in model.modules() if isinstance(m, NonLocal)]
    assert len(blocks) == 5 and all(b.bn is None and not b.conv_out.weight.any() for b in blocks)
    assert [b.frames_per_group for b in blocks] == [4, 4, 0, 0, 0]


def test_blocks_normalise_as_the_backbone_does():
    model = build_model(load_cfg("configs/kinetics400/nl_i3d_r50_32x2.yaml",
                                 ["RESNET.WIDTH", "8", "BN.EPS", "0.001", "BN.MOMENTUM", "0.01"]))
    blocks = [m for m in model.modules() if isinstance(m, NonLocal)]
    assert len(blocks) == 5 and all((b.bn.eps, b.bn.momentum) == (0.001, 0.01) for b in blocks)


@pytest.mark.parametrize(
    "name, places",
    [
        ("nl_c2d_r50_32x2_1block", {"res4.4"}),
        ("nl_c2d_r50_32x2_5block", {"res3.1", "res3.3", "res4.1", "res4.3", "res4.5"}),
        ("nl_c2d_r50_32x2_10block", {f"res3.{i}" for i in range(4)} | {f"res4.{i}" for i in range(6)}),
        ("nl_c2d_r101_32x2_5block", {"res3.1", "res3.3", "res4.6", "res4.13", "res4.20"}),
    ],
)
def test_paper_placements(name, places):
    model = build_model(load_cfg(f"configs/kinetics400/{name}.yaml", ["RESNET.WIDTH", "4"]))
    assert {n[: -len(".context")] for n, m in model.named_modules() if isinstance(m, NonLocal)} == places


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="space", frames_per_group=2), "FRAMES_PER_GROUP groups frames in spacetime mode only"),
        (dict(mode="time", pool=(1, 2, 2)), "does not tile 'time' windows"),
        (dict(frames_per_group=3), "FRAMES_PER_GROUP 3 does not divide 4 frames"),
        (dict(instantiation="cosine"), "NONLOCAL.INSTANTIATION 'cosine'"),
        (dict(mode="spacetime_only"), "NONLOCAL.MODE"),
    ],
)
def test_impossible_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NonLocal(8, 4, **kwargs)(torch.randn(1, 8, 4, 4, 4))


def test_paper_figures():
    """NL C2D R101 5-block: 1.2x the parameters and FLOPs of C2D R101 (Table 2e); NL I3D R50: 35.4 M (MMAction2)."""
    c2d = model_report(load_cfg("configs/kinetics400/c2d_r101_32x2.yaml"))
    nl_c2d = model_report(load_cfg("configs/kinetics400/nl_c2d_r101_32x2_5block.yaml"))
    assert abs(nl_c2d["params_m"] / c2d["params_m"] - 1.2) <= 0.1
    assert abs(nl_c2d["gflops"] / c2d["gflops"] - 1.2) <= 0.1
    nl_i3d = model_report(load_cfg("configs/kinetics400/nl_i3d_r50_32x2.yaml"), crop=32)
    assert abs(nl_i3d["params_m"] - 35.4) <= 0.2
