"""Choosing the encoder's numeric precision: the ``dtype`` rule and the hardware probe it
reads.

The rule for ``dtype="auto"`` (measured reasons in ``bench/README.md``):

- CPU with native bf16 (AVX512-BF16 or AMX-BF16): ``bfloat16``. Its matrix multiplies run
  several times faster than fp32 there, at dense cosine >= 0.9998 to fp32.
- CUDA: ``bfloat16`` where the device supports it (compute capability >= 8.0), else
  ``float16``.
- anything else (a CPU without native bf16, where bf16 is emulated and slower than fp32;
  MPS): ``float32``.

``float32`` is the reference-equal path (FlagEmbedding's outputs to about 1e-5). ``int8`` is
opt-in: the backbone's Linear layers with int8 weights (one scale per output row) and int8
activations (one scale per token), CPU only (``encoder/int8.py``: the int8 kernel is chosen by
timing each one on the model's shapes at load, and the encoder stays float32 with a warning
when none beats float32); everything else fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from m3vdb.errors import InputError

DType = Literal["auto", "float32", "float16", "bfloat16", "int8"]
FLOAT_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Hardware:
    """What the dtype rule needs to know about the machine, probed once.

    Attributes:
        cpu_bf16: the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16).
        cuda_bf16: the CUDA device supports bf16 (compute capability >= 8.0); False without
            CUDA.
    """

    cpu_bf16: bool
    cuda_bf16: bool


HardwareProbe = Callable[[torch.device], Hardware]


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags listed in ``/proc/cpuinfo`` (empty where there is no such file,
    as on macOS and Windows)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU computes bf16 natively: AVX512-BF16 or AMX-BF16.

    Args:
        flags: the CPU's feature flags; default: torch's own CPU probe (cpuinfo, every OS),
            then ``/proc/cpuinfo``.
    """
    if flags is not None:
        return bool(CPU_BF16_FLAGS & flags)
    # torch's own probes (cpuinfo: every OS); private, so looked up defensively
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        probe = getattr(torch.cpu, name, None)
        if callable(probe) and probe():
            return True
    return bool(CPU_BF16_FLAGS & cpu_flags())


def probe_hardware(device: torch.device) -> Hardware:
    """The default probe: the CPU's flags, and for a CUDA device its bf16 support."""
    cuda_bf16 = False
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        cuda_bf16 = torch.cuda.get_device_capability(index) >= (8, 0)
    return Hardware(cpu_bf16=cpu_has_native_bf16(), cuda_bf16=cuda_bf16)


@dataclass(frozen=True)
class Precision:
    """The resolved precision of an encoder.

    Attributes:
        name: "float32", "float16", "bfloat16" or "int8".
        compute_dtype: the torch dtype weights are loaded in and activations flow in (float32
            for int8: only the Linear layers' matrix multiplies run in int8).
    """

    name: str
    compute_dtype: torch.dtype

    @property
    def quantized(self) -> bool:
        """True for the int8 path."""
        return self.name == "int8"


def select_precision(
    dtype: str, device: torch.device, *, probe: HardwareProbe | None = None
) -> Precision:
    """Resolves the ``dtype`` argument of ``M3Encoder`` on ``device``.

    Args:
        dtype: "auto", "float32", "float16", "bfloat16" or "int8".
        device: the device the encoder runs on.
        probe: tells what the hardware supports (injectable for tests); default
            :func:`probe_hardware`, called only for ``"auto"``.

    Raises:
        InputError: an unknown dtype, or int8 on a device other than the CPU.
    """
    if dtype == "auto":
        hardware = (probe or probe_hardware)(device)
        if device.type == "cuda":
            name = "bfloat16" if hardware.cuda_bf16 else "float16"
        elif device.type == "cpu" and hardware.cpu_bf16:
            name = "bfloat16"
        else:
            name = "float32"
        return Precision(name, FLOAT_DTYPES[name])
    if dtype == "int8":
        if device.type != "cpu":
            raise InputError(
                f"dtype='int8' runs on the CPU only (oneDNN's int8 kernels), got device "
                f"{str(device)!r}; use dtype='auto' (bfloat16 or float16) on {device.type}"
            )
        return Precision("int8", torch.float32)
    if dtype in FLOAT_DTYPES:
        return Precision(dtype, FLOAT_DTYPES[dtype])
    raise InputError(f"dtype must be one of auto, {', '.join(FLOAT_DTYPES)}, int8; got {dtype!r}")
