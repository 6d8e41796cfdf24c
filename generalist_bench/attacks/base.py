"""What every attack shares: mode handling, projections, per-sample seeded random starts."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch
import torch.nn as nn


@contextlib.contextmanager
def model_mode(model: nn.Module, train: bool) -> Iterator[nn.Module]:
    """Put every submodule in train or eval mode and restore each one's previous mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield model
    finally:
        for m, was in modes:
            m.training = was


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project perturbations onto the eps-ball of ``norm`` (per sample)."""
    if norm == "Linf":
        return delta.clamp(-eps, eps)
    if norm == "L2":
        n = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12).view(-1, *([1] * (delta.dim() - 1)))
        return delta * torch.clamp(eps / n, max=1.0)
    raise ValueError(f"unknown norm {norm!r}")


def sample_seed(seed: int, index: int, tag: str = "") -> int:
    """A 63-bit seed derived from (seed, sample index, tag): independent of batch composition."""
    h = hashlib.blake2b(f"{seed}/{index}/{tag}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def per_sample_rand(shape: tuple[int, ...], indices, seed: int, tag: str = "", kind: str = "uniform",
                    dtype=torch.float32) -> torch.Tensor:
    """Noise of ``shape = (n, *rest)``; row i drawn from a generator seeded by (seed, indices[i], tag)."""
    rows = []
    g = torch.Generator()
    for idx in (indices.tolist() if torch.is_tensor(indices) else indices):
        g.manual_seed(sample_seed(seed, int(idx), tag))
        rows.append(torch.rand(shape[1:], generator=g, dtype=dtype) if kind == "uniform"
                    else torch.randn(shape[1:], generator=g, dtype=dtype))
    return torch.stack(rows) if rows else torch.empty(shape, dtype=dtype)


def random_start(x: torch.Tensor, norm: str, eps: float, *, generator: torch.Generator | None = None,
                 indices=None, seed: int = 0, tag: str = "start") -> torch.Tensor:
    """A uniform start in the Linf ball, or a uniform-radius random direction in the L2 ball (as torchattacks).

    With ``indices`` each sample's noise comes from its own generator seeded by (seed, index, tag), so it
    does not depend on the batch; otherwise from ``generator`` (or the global RNG).
    """
    if norm == "Linf":
        if indices is not None:
            u = per_sample_rand(x.shape, indices, seed, tag).to(x.device)
        else:
            u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
        delta = (2 * u - 1) * eps
    elif norm == "L2":
        if indices is not None:
            d = per_sample_rand(x.shape, indices, seed, tag, "normal").to(x.device)
            r = per_sample_rand((x.shape[0], 1), indices, seed, tag + "/r").to(x.device).view(-1)
        else:
            d = torch.randn(x.shape, generator=generator).to(x.device)
            r = torch.rand(x.shape[0], generator=generator).to(x.device)
        d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        delta = d * (r * eps).view(-1, *([1] * (x.dim() - 1)))
    else:
        raise ValueError(f"unknown norm {norm!r}")
    return (x + delta).clamp(0, 1)


@torch.no_grad()
def ascent_step(x: torch.Tensor, x_adv: torch.Tensor, grad: torch.Tensor, norm: str, eps: float,
                step_size: float) -> torch.Tensor:
    """One projected steepest-ascent step (PGD's): signed gradient for Linf, L2-normalised gradient for L2, then
    back into the eps-ball around ``x`` and into [0, 1]."""
    if norm == "Linf":
        x_adv = x_adv + step_size * grad.sign()
    else:
        g = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        x_adv = x_adv + step_size * g
    return (x + project(x_adv - x, norm, eps)).clamp(0, 1)
