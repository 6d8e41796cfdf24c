"""One AMP switch (timm style): bf16 autocast on CPU or CUDA, fp16 (with GradScaler) on CUDA only."""

from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError
from ..utils.env import bf16_native, cpu_capability


def amp_context(mode: str, device: torch.device):
    if mode == "off":
        return contextlib.nullcontext()
    if mode == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA device; use bf16 on the CPU")
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    raise ConfigError(f"unknown amp mode {mode!r}; valid: off, bf16, fp16")


def grad_scaler(mode: str, device: torch.device):
    return torch.amp.GradScaler("cuda") if mode == "fp16" and device.type == "cuda" else None


def emulated_bf16(mode: str, device: torch.device) -> str | None:
    """The warning for bf16 autocast on a CPU that has no bfloat16 instructions (None where there is nothing to say):
    the autocast still runs, emulated, and on an AVX2 CPU trained 12-15x slower than float32
    (benchmarks/bf16/BF16.md). Turning it off is a change of recipe, so it is the user's call, not ours."""
    if mode != "bf16" or device.type != "cpu" or bf16_native():
        return None
    return (f"train.amp=bf16 on a CPU without bfloat16 instructions (no AVX512-BF16 or AMX; widest: "
            f"{cpu_capability()}): autocast emulates bfloat16, 12-15x slower than float32 on an AVX2 CPU "
            "(benchmarks/bf16/BF16.md). --set train.amp=off trains in float32, which is another recipe than the "
            "preset's")
