"""FLOP counting with fvcore, one multiply-add = one FLOP.

Only multiply-accumulate work is counted (convolutions, linear layers, matrix products, addcmul, and fused
attention, which fvcore does not know), as the papers and the PyTorchVideo model zoo do; element-wise
normalisation, softmax, pooling and resizing are left out.
"""

import math
import warnings
from collections import Counter

import torch

# fvcore's import scripts a function with torch.jit, which current torch warns about on every run.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
from fvcore.nn import FlopCountAnalysis  # noqa: E402
from fvcore.nn.jit_handles import get_shape  # noqa: E402
from torch import nn

# fvcore counts these by default; they are not multiply-adds.
_IGNORED_OPS = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)


def _not_counted(inputs, outputs) -> Counter:
    # A handle of None only marks an op as ignored while fvcore's own handle stays in use; this replaces it.
    return Counter()


def _attention_flops(inputs, outputs) -> Counter:
    """softmax(q k^T) v: L x S x E multiply-adds for the scores and L x S x Ev for the weighted sum."""
    q, k, v = (get_shape(value) for value in inputs[:3])
    batch = math.prod(q[:-2])
    return Counter({"attention": batch * q[-2] * k[-2] * (q[-1] + v[-1])})


def _multiply_add(inputs, outputs) -> int:
    """addcmul(a, b, c) = a + b * c: one multiply-add per output element (CoT's local aggregation)."""
    return math.prod(get_shape(outputs[0]))


def flop_analysis(model: nn.Module, inputs: torch.Tensor) -> FlopCountAnalysis:
    """An fvcore analysis of `model(inputs)`; `.total()` and `.by_module()` give the counts."""
    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**{op: _not_counted for op in _IGNORED_OPS})
    analysis.set_op_handle(**{"aten::addcmul": _multiply_add, "aten::scaled_dot_product_attention": _attention_flops})
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis
