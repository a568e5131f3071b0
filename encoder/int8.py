"""int8 Linear layers for ``dtype="int8"``: int8 weights with one scale per output row, int8
activations with one scale per token (row), int32 accumulation.

Why per-token activation scales and not torch's dynamic quantisation (one scale per call):
with one scale for a whole batch, every token is quantised on the range of the batch's
largest value, and over BGE-M3's 24 layers that cost dense cosine 0.998 and sparse top-10
overlap 0.85-0.88 against float32 on the full architecture; per token, 0.999 and 0.95
(``bench/README.md``).

The kernels (:data:`KERNELS`), and why the choice is measured, never made by name:

- ``onednn-u8``: oneDNN's ``qlinear_pointwise`` on UNSIGNED activations with a zero point of
  128 (each token still has its own scale). u8 x s8 is what AVX512-VNNI's ``vpdpbusd``
  multiplies natively: on an Intel Xeon with VNNI and no AMX one 512x768x768 Linear took
  0.6 ms against 40 ms in float32 (``bench/README.md``). Without VNNI (AVX2 only, as on an
  AMD EPYC host here) oneDNN multiplies u8 x s8 pairs into int16 with saturation
  (``vpmaddubsw``): 255 x 127 x 2 does not fit, and one extreme token came out 126x too
  small. :func:`u8_activation_max` tests the CPU once with exactly that product and, where it
  saturates, activations use 7 bits (zero point 64, at most 127 x 127 x 2: exact), as
  PyTorch's own x86 quantisation does with ``reduce_range``.
- ``onednn-s8``: the same kernel on SIGNED activations. Fast on AMX-INT8, but on VNNI CPUs
  without AMX (measured on that Xeon and on an AMD EPYC) oneDNN falls back to a reference
  path: 6-22 SECONDS for that Linear, ~350x slower than float32.
- ``int_mm``: ``torch._int_mm`` (s8 x s8 -> s32), at about float32's speed on those CPUs.

So :func:`choose_int8_kernel` times each kernel on the model's own Linear shapes for a few
milliseconds at load and keeps the fastest; a kernel that is hopeless on a tiny slice first
(the reference paths) is dropped before it is timed at full size, so a load never hangs.
When no kernel beats float32 the encoder warns once and stays in float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import cast

import torch

from m3vdb.errors import InputError

_QMAX = 127.0
_U8_ZERO_POINT = 128
KERNELS = ("onednn-u8", "onednn-s8", "int_mm")
# A kernel is hopeless, and not timed at full size, when one call on the probe slice (8 tokens,
# 128 outputs) takes more than this many times float32's AND more than _HOPELESS_S: the
# reference paths are 100-1000x slower; a fast int8 kernel's fixed cost (quantising the input,
# ~0.2 ms) can be many times a tiny float32 call but stays under the floor.
_HOPELESS = 20.0
_HOPELESS_S = 0.001

# times one candidate's call: (candidate name: "float32", a kernel, or "probe:" + either, the
# callable) -> seconds
Timer = Callable[[str, Callable[[], object]], float]


def _has_onednn() -> bool:
    ops = getattr(torch.ops, "onednn", None)
    return (
        torch.backends.mkldnn.is_available()
        and ops is not None
        and hasattr(ops, "qlinear_pointwise")
        and hasattr(ops, "qlinear_prepack")
    )


def _exact_on_this_cpu(activation: int, zero_point: int, dtype: torch.dtype) -> bool:
    """Whether oneDNN's int8 Linear computes ``activation`` x 127 summed over 64 inputs exactly
    here: CPUs without VNNI multiply u8 x s8 pairs into int16 with saturation (``vpmaddubsw``;
    signed activations are shifted by 128 to u8 first), so a large product comes out wrong."""
    k, n = 64, 8
    packed = torch.ops.onednn.qlinear_prepack(torch.full((n, k), 127, dtype=torch.int8), None)
    probe = torch.full((1, k), activation, dtype=dtype)
    out = torch.ops.onednn.qlinear_pointwise(
        probe, 1.0, zero_point, packed, torch.ones(n), torch.zeros(n, dtype=torch.int64),
        None, 1.0, 0, torch.float32, "none", [], "",
    )  # fmt: skip
    return bool(torch.all(out == float((activation - zero_point) * 127 * k)))


@cache
def u8_activation_max() -> int:
    """The largest |activation| level the ``onednn-u8`` kernel uses on this CPU: 127, or 63
    where 8-bit products saturate (measured once per process; 7 bits are exact there)."""
    if not _has_onednn() or _exact_on_this_cpu(255, _U8_ZERO_POINT, torch.uint8):
        return int(_QMAX)
    return 63


@cache
def _s8_exact() -> bool:
    """Whether ``onednn-s8`` is exact on this CPU (measured once per process). Where it is not,
    no activation range fixes it (the 128 shift alone fills int16), so the kernel is not
    offered."""
    return _has_onednn() and _exact_on_this_cpu(127, 0, torch.int8)


def available_kernels() -> tuple[str, ...]:
    """The int8 kernels this torch build has and this CPU computes exactly, in :data:`KERNELS`
    order."""
    return tuple(
        k for k in KERNELS if k == "int_mm" or (_has_onednn() and (k != "onednn-s8" or _s8_exact()))
    )


def _check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise InputError(f"int8 kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    if kernel not in available_kernels():
        reason = (
            "saturates on this CPU (no VNNI: its u8 x s8 products overflow int16)"
            if _has_onednn()
            else "needs oneDNN's int8 ops, which this torch build lacks"
        )
        raise InputError(
            f"int8 kernel {kernel!r} {reason}; use 'int_mm' or let the encoder measure "
            "(the default)"
        )
    return kernel


class Int8Linear(torch.nn.Module):
    """A ``torch.nn.Linear`` (CPU, float32 in and out) computed in int8.

    Args:
        linear: the float layer; its weight is quantised once, and not kept.
        kernel: one of :data:`KERNELS` (see the module docstring).
    """

    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: torch.nn.Linear, *, kernel: str) -> None:
        super().__init__()
        kernel = _check_kernel(kernel)
        weight = linear.weight.detach().float()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.kernel = kernel
        scale = (weight.abs().amax(dim=1) / _QMAX).clamp_min(torch.finfo(torch.float32).tiny)
        quantised = torch.round(weight / scale[:, None]).to(torch.int8)
        self.register_buffer("weight_scale", scale)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        # activations' largest level: 7 bits where this CPU's u8 path saturates
        self._act_max = float(u8_activation_max()) if kernel == "onednn-u8" else _QMAX
        if kernel.startswith("onednn"):
            self._packed = torch.ops.onednn.qlinear_prepack(quantised, None)
            self._zero_points = torch.zeros(self.out_features, dtype=torch.int64)
        else:
            self._packed = quantised.t().contiguous()  # (in, out): _int_mm's layout

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, kernel={self.kernel}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features).float()
        scale = rows.abs().amax(dim=1, keepdim=True) / self._act_max
        scale.clamp_(min=torch.finfo(torch.float32).tiny)  # an all-zero row stays zero
        quantised = torch.div(rows, scale).round_()
        if self.kernel == "onednn-u8":
            # round(x / s) + zero point in [1, 255] (or [1, 127] on 7 bits): the kernel
            # subtracts the zero point back
            zero_point = int(self._act_max) + 1
            quantised = quantised.add_(zero_point).to(torch.uint8)
        else:
            quantised = quantised.to(torch.int8)
            zero_point = 0
        if self.kernel.startswith("onednn"):
            # oneDNN applies the weight scales; the token scales and the bias follow in place
            out = torch.ops.onednn.qlinear_pointwise(
                quantised, 1.0, zero_point, self._packed, self.weight_scale, self._zero_points,
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


def best_time(
    fn: Callable[[], object], *, budget_s: float = 0.01, min_calls: int = 2, max_calls: int = 20
) -> float:
    """The fastest of repeated calls of ``fn`` (seconds), after one untimed warm-up call, for
    about ``budget_s`` seconds (at least ``min_calls`` calls, at most ``max_calls``)."""
    fn()
    best = float("inf")
    spent = 0.0
    calls = 0
    while calls < min_calls or (spent < budget_s and calls < max_calls):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        calls += 1
    return best


def _default_timer(name: str, fn: Callable[[], object]) -> float:
    if name.startswith("probe:"):  # one timed call: a hopeless kernel costs tens of ms a call
        return best_time(fn, budget_s=0.0, min_calls=1)
    return best_time(fn)


@dataclass(frozen=True)
class Int8Choice:
    """What :func:`choose_int8_kernel` measured and chose.

    Attributes:
        kernel: the fastest kernel, or None when none beat float32.
        seconds: per candidate ("float32" and each kernel timed at full size), the summed
            best time of one forward of every distinct Linear shape.
        dropped: kernels found hopeless on the tiny slice (not timed at full size).
    """

    kernel: str | None
    seconds: dict[str, float] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs: the choice and its measured speed-up over float32."""
        if self.kernel is None:
            return f"float32 (no int8 kernel beat float32 here: {self.timings()})"
        ratio = self.seconds["float32"] / self.seconds[self.kernel]
        return f"{self.kernel} ({ratio:.1f}x float32; {self.timings()})"

    def timings(self) -> str:
        """What was measured, as "name 1.23 ms, ..." (dropped kernels named as such)."""
        parts = [f"{name} {1000 * s:.2f} ms" for name, s in self.seconds.items()]
        parts += [f"{name} dropped" for name in self.dropped]
        return ", ".join(parts)


def _linear_shapes(module: torch.nn.Module, names: Sequence[str]) -> list[torch.nn.Linear]:
    """One Linear layer per distinct (in, out) shape among ``names``, in order."""
    seen: dict[tuple[int, int], torch.nn.Linear] = {}
    for name in names:
        layer = cast(torch.nn.Linear, module.get_submodule(name))
        seen.setdefault((layer.in_features, layer.out_features), layer)
    return list(seen.values())


def _time_layers(
    timer: Timer, name: str, layers: Sequence[torch.nn.Module], inputs: Sequence[torch.Tensor]
) -> float:
    """The summed time of one call of each layer on its input."""
    total = 0.0
    for layer, x in zip(layers, inputs):
        total += timer(name, partial(layer, x))
    return total


def choose_int8_kernel(
    layers: Sequence[torch.nn.Linear],
    *,
    rows: int,
    kernels: Sequence[str] | None = None,
    timer: Timer | None = None,
) -> Int8Choice:
    """Times every int8 kernel against float32 on ``layers`` (the model's own Linear shapes,
    one of each) at ``rows`` tokens, and picks the fastest that beats float32.

    First each kernel runs once on a probe slice (8 tokens, the first 128 outputs of the first
    layer); one :data:`_HOPELESS` times slower than float32 there (and slower than
    :data:`_HOPELESS_S`) is dropped, so a reference-path kernel (seconds per call at full
    size) never runs at full size.

    Args:
        layers: float32 CPU Linear layers, one per shape to time (left unchanged).
        rows: tokens per timed call (the encoder's batch size in tokens).
        kernels: the candidates; default: :func:`available_kernels`.
        timer: times one candidate's callable, in seconds (injectable for tests); default
            :func:`best_time`.
    """
    timer = timer or _default_timer
    candidates = list(kernels if kernels is not None else available_kernels())
    generator = torch.Generator().manual_seed(0)  # the caller's random state is left alone
    with torch.inference_mode():
        first = layers[0]
        outputs = min(128, first.out_features)
        piece = torch.nn.Linear(first.in_features, outputs, bias=False, device="meta")
        piece = piece.to_empty(device="cpu")
        piece.weight.copy_(first.weight[:outputs])
        probe = torch.randn(8, first.in_features, generator=generator)
        float_probe = timer("probe:float32", partial(piece, probe))
        dropped = []
        for kernel in list(candidates):
            probe_time = timer(f"probe:{kernel}", partial(Int8Linear(piece, kernel=kernel), probe))
            if probe_time > max(_HOPELESS * float_probe, _HOPELESS_S):
                dropped.append(kernel)
                candidates.remove(kernel)

        inputs = [torch.randn(rows, layer.in_features, generator=generator) for layer in layers]
        seconds = {"float32": _time_layers(timer, "float32", layers, inputs)}
        for kernel in candidates:
            int8_layers = [Int8Linear(layer, kernel=kernel) for layer in layers]
            seconds[kernel] = _time_layers(timer, kernel, int8_layers, inputs)
    faster = [k for k in candidates if seconds[k] < seconds["float32"]]
    best = min(faster, key=seconds.__getitem__) if faster else None
    return Int8Choice(best, seconds, tuple(dropped))


def quantize_linear_int8(
    module: torch.nn.Module,
    *,
    kernel: str,
    keep_float: Callable[[str], bool] | None = None,
) -> None:
    """Replaces every ``torch.nn.Linear`` in ``module`` (in place) by an :class:`Int8Linear`.
    Each float weight is freed as its layer is converted, so peak memory stays that of the
    float model.

    Args:
        module: the module to convert (eval mode, float32, CPU).
        kernel: one of :data:`KERNELS` (:func:`choose_int8_kernel` measures which).
        keep_float: takes a Linear layer's qualified name, True to leave it in float.
    """
    kernel = _check_kernel(kernel)
    for name in linear_names(module, keep_float):  # names: each float layer is freed once replaced
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, Int8Linear(getattr(parent, child), kernel=kernel))


def linear_names(
    module: torch.nn.Module, keep_float: Callable[[str], bool] | None = None
) -> list[str]:
    """The qualified names of ``module``'s Linear layers, less those ``keep_float`` keeps."""
    return [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear) and not (keep_float and keep_float(name))
    ]


def quantize_fastest(
    module: torch.nn.Module,
    *,
    rows: int,
    kernel: str | None = None,
    keep_float: Callable[[str], bool] | None = None,
    timer: Timer | None = None,
) -> Int8Choice:
    """Measures (:func:`choose_int8_kernel` on ``module``'s own Linear shapes), then quantises
    ``module`` with the fastest kernel; leaves it in float32 when none beats float32.

    Args:
        module: the module to convert (eval mode, float32, CPU).
        rows: tokens per timed call.
        kernel: skip the measurement and use this kernel (one of :data:`KERNELS`).
        keep_float: takes a Linear layer's qualified name, True to leave it in float.
        timer: see :func:`choose_int8_kernel`.
    """
    if kernel is not None:
        quantize_linear_int8(module, kernel=kernel, keep_float=keep_float)
        return Int8Choice(kernel)
    names = linear_names(module, keep_float)
    if not names:
        return Int8Choice(None)
    choice = choose_int8_kernel(_linear_shapes(module, names), rows=rows, timer=timer)
    if choice.kernel is not None:
        quantize_linear_int8(module, kernel=choice.kernel, keep_float=keep_float)
    return choice
