"""int8 Linear layers for ``dtype="int8"``: int8 weights with one scale per output row, int8
activations with one scale per token (row), int32 accumulation.

Why per-token activation scales and not torch's dynamic quantisation (one scale per call):
with one scale for a whole batch, every token is quantised on the range of the batch's
largest value, and over BGE-M3's 24 layers that cost dense cosine 0.998 and sparse top-10
overlap 0.85-0.88 against float32 on the full architecture; per token, 0.999 and 0.95
(``bench/README.md``). The matrix multiply runs on oneDNN's int8 kernel (VNNI / AMX-INT8)
where torch has it, else on ``torch._int_mm``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from m3vdb.schemas.errors import InputError

_QMAX = 127.0


def _resolve_kernel(kernel: str | None) -> str:
    """``kernel`` checked, or the default: onednn where this torch build has its int8 ops."""
    if kernel is None:
        ops = getattr(torch.ops, "onednn", None)
        has_onednn = (
            torch.backends.mkldnn.is_available()
            and ops is not None
            and hasattr(ops, "qlinear_pointwise")
            and hasattr(ops, "qlinear_prepack")
        )
        return "onednn" if has_onednn else "int_mm"
    if kernel not in ("onednn", "int_mm"):
        raise InputError(f"int8 kernel must be 'onednn' or 'int_mm', got {kernel!r}")
    return kernel


class Int8Linear(torch.nn.Module):
    """A ``torch.nn.Linear`` (CPU, float32 in and out) computed in int8.

    Args:
        linear: the float layer; its weight is quantised once, and not kept.
        kernel: "onednn" (prepacked oneDNN int8 GEMM) or "int_mm" (``torch._int_mm``);
            default: onednn where this torch build has it.
    """

    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: torch.nn.Linear, *, kernel: str | None = None) -> None:
        super().__init__()
        kernel = _resolve_kernel(kernel)
        weight = linear.weight.detach().float()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.kernel = kernel
        scale = (weight.abs().amax(dim=1) / _QMAX).clamp_min(torch.finfo(torch.float32).tiny)
        quantised = torch.round(weight / scale[:, None]).to(torch.int8)
        self.register_buffer("weight_scale", scale)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        if kernel == "onednn":
            self._packed = torch.ops.onednn.qlinear_prepack(quantised, None)
            self._zero_points = torch.zeros(self.out_features, dtype=torch.int64)
        else:
            self._packed = quantised.t().contiguous()  # (in, out): _int_mm's layout

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, kernel={self.kernel}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features).float()
        scale = rows.abs().amax(dim=1, keepdim=True) / _QMAX
        scale.clamp_(min=torch.finfo(torch.float32).tiny)  # an all-zero row stays zero
        quantised = torch.div(rows, scale).round_().to(torch.int8)
        if self.kernel == "onednn":
            # oneDNN applies the weight scales; the token scales and the bias follow in place
            out = torch.ops.onednn.qlinear_pointwise(
                quantised, 1.0, 0, self._packed, self.weight_scale, self._zero_points,
                None, 1.0, 0, torch.float32, "none", [], "",
            )  # fmt: skip
        else:
            out = torch._int_mm(quantised, self._packed).float()
            scale = scale * self.weight_scale
        if self.bias is not None:
            torch.addcmul(self.bias, out, scale, out=out)  # one pass: bias + out * scale
        else:
            out.mul_(scale)
        return out.reshape(*shape[:-1], self.out_features)


def quantize_linear_int8(
    module: torch.nn.Module,
    *,
    kernel: str | None = None,
    keep_float: Callable[[str], bool] | None = None,
) -> str:
    """Replaces every ``torch.nn.Linear`` in ``module`` (in place) by an :class:`Int8Linear`.
    Each float weight is freed as its layer is converted, so peak memory stays that of the
    float model.

    Args:
        module: the module to convert (eval mode, float32, CPU).
        kernel: see :class:`Int8Linear`.
        keep_float: takes a Linear layer's qualified name, True to leave it in float.

    Returns:
        The kernel used.
    """
    kernel = _resolve_kernel(kernel)
    names = [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear) and not (keep_float and keep_float(name))
    ]
    for name in names:  # names, not layers: each float layer is freed once replaced
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, Int8Linear(getattr(parent, child), kernel=kernel))
    return kernel
