"""Shared checks for the context-block tests: random weights, and a module against a float64 reference."""

import torch
from torch import nn

from videonl.config import load_cfg

SMALL = ["RESNET.WIDTH", "8", "MODEL.NUM_CLASSES", "5"]


def small_cfg(name, *opts):
    """A narrow version of `configs/kinetics400/{name}.yaml` (width 8 instead of 64, 5 classes), same depth."""
    return load_cfg(f"configs/kinetics400/{name}.yaml", SMALL + list(opts))


def randomise(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Every parameter random (zero-initialised ones included); BN statistics random and positive."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return module


def assert_matches_reference(module: nn.Module, reference, x: torch.Tensor, seed: int = 0) -> None:
    """`module(x)` equals `reference(x, params)` in value and in the gradients w.r.t. x and every parameter.

    The module runs in float64 with random weights; `params` maps the module's parameter and buffer names to
    its tensors, so both sides differentiate into the same leaves.
    """
    generator = torch.Generator().manual_seed(seed)
    module = randomise(module.double(), generator).eval()
    x = x.double().requires_grad_(True)
    params = dict(module.named_parameters())
    tensors = {**dict(module.named_buffers()), **params}
    leaves = [x, *params.values()]

    out = module(x)
    expected = reference(x, tensors)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-10)

    upstream = torch.randn(out.shape, generator=generator, dtype=out.dtype)
    grads = torch.autograd.grad((out * upstream).sum(), leaves, allow_unused=True)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), leaves, allow_unused=True)
    for name, got, want in zip(["input", *params], grads, expected_grads):
        assert got is not None and want is not None, f"no gradient for {name}"
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10, msg=lambda m: f"gradient of {name}: {m}")


def batch_norm(v, tensors, prefix, eps=1e-5):
    """Inference BatchNorm over dim 1, written out."""
    shape = (1, -1) + (1,) * (v.dim() - 2)
    mean, var = tensors[f"{prefix}.running_mean"].view(shape), tensors[f"{prefix}.running_var"].view(shape)
    return (v - mean) / torch.sqrt(var + eps) * tensors[f"{prefix}.weight"].view(shape) + tensors[f"{prefix}.bias"].view(shape)


def group_norm(v, groups, weight, bias, eps=1e-5):
    """GroupNorm over `[B, C, ...]`: each group of C/groups channels normalised over its channels and positions."""
    b, c = v.shape[:2]
    grouped = v.reshape(b, groups, -1)
    mean = grouped.mean(-1, keepdim=True)
    var = ((grouped - mean) ** 2).mean(-1, keepdim=True)
    normalised = ((grouped - mean) / torch.sqrt(var + eps)).view_as(v)
    shape = (1, -1) + (1,) * (v.dim() - 2)
    return normalised * weight.view(shape) + bias.view(shape)


def conv1x1(v, weight, bias=None):
    """A 1x1x1 convolution as a sum over input channels."""
    out = torch.einsum("oc,bcthw->bothw", weight.flatten(1), v)
    return out if bias is None else out + bias.view(1, -1, 1, 1, 1)
