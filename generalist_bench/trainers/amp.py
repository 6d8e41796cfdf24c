"""One AMP switch (timm style): bf16 autocast on CPU or CUDA, fp16 (with GradScaler) on CUDA only.

On a CPU without bfloat16 instructions (no AVX512-BF16, no AMX) PyTorch runs bfloat16 convolutions and matrix products
on slow fallback kernels (oneDNN takes bfloat16 only from AVX-512 up; benchmarks/bf16/BF16.md). There the trainer runs
them as float32 kernels on the same bfloat16 operands, results rounded to bfloat16 (``Float32Kernels``): the recipe
stays bf16 autocast, only the kernels change. ``GENERALIST_BENCH_BF16_KERNELS`` = ``auto`` (default) | ``native`` |
``float32`` forces one choice.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map_only

from ..errors import ConfigError
from ..utils.env import bf16_native, cpu_capability

BF16_KERNELS_ENV = "GENERALIST_BENCH_BF16_KERNELS"
BF16_KERNELS = ("auto", "native", "float32")

_aten = torch.ops.aten
# the products CPU autocast runs in bfloat16, forward and backward (linear and matmul reach these); every other op
# passes through unchanged
PRODUCTS = frozenset({
    _aten.convolution.default, _aten.convolution_backward.default, _aten.mm.default, _aten.addmm.default,
    _aten.bmm.default, _aten.baddbmm.default, _aten.addbmm.default, _aten.mv.default, _aten.addmv.default,
    _aten.dot.default,
})


class Float32Kernels(TorchDispatchMode):
    """While active, every CPU product in ``PRODUCTS`` whose floating operands are bfloat16 runs as the float32 kernel
    on those operands (converted exactly) with each floating result rounded to bfloat16. A product of two bfloat16
    numbers is exact in float32, so each result is the exact product rounded once, up to float32 summation order (as
    bfloat16 kernels that accumulate in float32 compute it); this holds for the forward and for the backward
    (``convolution_backward``, the ``mm`` of a linear layer's backward), wherever autograd runs them while the mode is
    active. Everything else passes through unchanged: float32 products, and the other ops CPU autocast lowers to
    bfloat16 (attention, ``prelu``, ``conv_tbc``, RNN layers), which stay on PyTorch's own kernels. Our own: PyTorch
    has no switch for this."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in PRODUCTS:
            floats = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor) and a.is_floating_point()]
            if floats and all(a.dtype == torch.bfloat16 and a.device.type == "cpu" for a in floats):
                args, kwargs = tree_map_only(torch.Tensor, lambda a: a.float() if a.is_floating_point() else a,
                                             (args, kwargs))
                return tree_map_only(torch.Tensor, lambda a: a.to(torch.bfloat16) if a.is_floating_point() else a,
                                     func(*args, **kwargs))
        return func(*args, **kwargs)


def bf16_kernels(mode: str, device: torch.device) -> str | None:
    """Which kernels compute bf16 autocast's matrix products on ``device``: None (no bf16 autocast on a CPU),
    ``"native"`` (PyTorch's bfloat16 kernels) or ``"float32"`` (``Float32Kernels``). ``auto``: native where the CPU
    has bfloat16 instructions, float32 elsewhere; ``GENERALIST_BENCH_BF16_KERNELS`` forces one."""
    if mode != "bf16" or device.type != "cpu":
        return None
    choice = os.environ.get(BF16_KERNELS_ENV, "").strip().lower() or "auto"
    if choice not in BF16_KERNELS:
        raise ConfigError(f"{BF16_KERNELS_ENV}={os.environ[BF16_KERNELS_ENV]!r}; valid: {', '.join(BF16_KERNELS)}")
    if choice == "auto":
        return "native" if bf16_native() else "float32"
    return choice


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


def emulated_bf16(mode: str, device: torch.device) -> bool:
    """bf16 autocast on a CPU without bfloat16 instructions (where PyTorch's bfloat16 kernels are slow fallbacks)."""
    return mode == "bf16" and device.type == "cpu" and not bf16_native()


def bf16_note(mode: str, device: torch.device, kernels: str | None) -> tuple[bool, str] | None:
    """What training says once about bf16 autocast on a CPU without bfloat16 instructions, run on ``kernels``
    (``bf16_kernels``), as (is_warning, text); None where there is nothing to say. Float32 kernels: a note. PyTorch's
    own kernels forced there: a warning, they are slow (benchmarks/bf16/BF16.md)."""
    if not emulated_bf16(mode, device):
        return None
    where = f"a CPU without bfloat16 instructions (no AVX512-BF16 or AMX; widest: {cpu_capability()})"
    if kernels == "float32":
        return False, (f"train.amp=bf16 on {where}: convolutions and matrix products run as float32 kernels on "
                       f"bfloat16 operands, results rounded to bfloat16 (bf16 autocast's values up to summation "
                       f"order; {BF16_KERNELS_ENV}=native for PyTorch's bfloat16 fallback kernels)")
    return True, (f"train.amp=bf16 on {where} with {BF16_KERNELS_ENV}=native: PyTorch's bfloat16 fallback kernels are "
                  f"many times slower than float32 (benchmarks/bf16/BF16.md); unset it to run the products as float32 "
                  f"kernels")
