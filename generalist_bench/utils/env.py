"""Provenance: library versions, git commit, hardware — recorded in every result and card."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import torch

LIBRARIES = ("generalist-bench", "torch", "torchvision", "torchattacks", "pyautoattack", "robustbench", "numpy")


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout this package runs from, with ``-dirty`` if it has local changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def resolve_device(name: str) -> torch.device:
    """The device a config names (``train.device``): ``"auto"`` is CUDA where available, else the CPU."""
    return torch.device(name if name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))


def cpu_capability() -> str:
    """The widest vector instruction set PyTorch's CPU kernels use here ("AVX2", "AVX512", "DEFAULT", ...)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def bf16_native() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX) for oneDNN to use. Elsewhere
    bfloat16 products run on slow emulation or fallback kernels (oneDNN's own check also accepts plain AVX-512;
    benchmarks/bf16/BF16.md)."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and (cpu._is_avx512_bf16_supported()
                                                              or cpu._is_amx_tile_supported()))
    except (AttributeError, RuntimeError):
        return False


def hardware() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, object] = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                               "cpu_capability": cpu_capability(), "bf16_native": bf16_native(),
                               "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
