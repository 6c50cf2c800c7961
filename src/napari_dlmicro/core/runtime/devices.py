"""Where the work runs: which device, and in which precision."""
from __future__ import annotations

import contextlib
import functools

import torch

from napari_dlmicro.core.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; ``cuda:1`` names one GPU.

    Asking for a device this machine lacks is a :class:`UserError`.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(
                f"device '{name}' was asked for, but this machine has no CUDA GPU that torch can use",
                "choose 'auto' or 'cpu'",
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(
                f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)",
                "choose cuda:0 or 'auto'",
            )
        return dev
    if name == "mps":
        if not _mps_available():
            raise UserError("device 'mps' was asked for, but Apple's MPS is not available here",
                            "choose 'auto' or 'cpu'")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device '{name}'", "use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def autocast(device: torch.device):
    """bf16 autocast on CUDA (where the GPU supports it); full precision elsewhere.

    CPUs without native bf16 emulate it many times slower, so the CPU stays fp32.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.cache
def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 is faster, not slower.

    oneDNN's own bf16 check also says yes on plain AVX-512 CPUs, which only emulate bf16;
    hence the instruction-set probes (private to torch, so a missing one reads as no).
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    except RuntimeError:
        return False


def training_autocast(device: torch.device, cpu_bf16: bool = False, enabled: bool = True):
    """bf16 autocast for training steps: on CUDA where supported, on a CPU only when asked and native.

    ``enabled`` False gives full precision on every device (a run's last stretch, see restoration_train).
    """
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cpu" and cpu_bf16 and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return autocast(device)
