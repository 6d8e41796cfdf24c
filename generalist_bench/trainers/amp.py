"""One AMP switch (timm style): bf16 autocast on CPU or CUDA, fp16 (with GradScaler) on CUDA only."""

from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError


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
