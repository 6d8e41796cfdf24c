"""Checks run before and during an evaluation: the model's outputs, AutoAttack's own checks, perturbation bounds."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from ..errors import ModelOutputError

AA_LOGGER = "auto-attack"


def validate_outputs(model: nn.Module, x: torch.Tensor, num_classes: int, dataset: str) -> torch.Tensor:
    """Logits of ``x`` or a ``ModelOutputError`` saying what is wrong with them."""
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelOutputError(f"the model fails on {dataset} inputs of shape {tuple(x.shape[1:])} (N×C×H×W pixels "
                               f"in [0, 1]): {first}") from e
    if not torch.is_tensor(out):
        raise ModelOutputError(f"the model must return a tensor of logits, got {type(out).__name__}")
    if out.dim() != 2 or out.shape[0] != x.shape[0]:
        raise ModelOutputError(f"the model must return logits of shape (N, {num_classes}); for N={x.shape[0]} it "
                               f"returned {tuple(out.shape)}")
    if out.shape[1] != num_classes:
        raise ModelOutputError(f"the model returns {out.shape[1]} logits per image but {dataset} has {num_classes} "
                               "classes")
    if out.dtype != torch.float32:
        raise ModelOutputError(f"evaluation runs in float32; the model returned {out.dtype} logits "
                               "(call model.float() and disable autocast)")
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).any(1).sum())
        raise ModelOutputError(f"the model returns NaN or infinite logits for {bad} of {len(out)} images")
    if (out.min() >= 0) and (out.max() <= 1) and bool(((out.sum(1) - 1).abs() < 1e-5).all()):
        raise ModelOutputError("the model seems to return probabilities (every row in [0, 1] summing to 1); "
                               "attacks need logits: remove the final softmax")
    with torch.no_grad():
        again = model(x)
    if not torch.allclose(out, again, rtol=1e-5, atol=1e-5):
        diff = (out - again).abs().max().item()
        raise ModelOutputError(f"the model is randomised: two forward passes on the same images (eval mode) differ "
                               f"by up to {diff:.3g}. Standard AutoAttack and the per-sample results assume a "
                               "deterministic model; a randomised defence needs an EOT evaluation (AutoAttack's "
                               "'rand' version), which this benchmark does not run")
    return out


def check_images(x: torch.Tensor, what: str = "images") -> None:
    """Images must be finite float pixels in [0, 1] (N×C×H×W): a ``ConfigError`` naming the problem otherwise."""
    from ..errors import ConfigError

    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ConfigError(f"{what} must be a float tensor of pixels in [0, 1], got "
                          f"{type(x).__name__ if not torch.is_tensor(x) else x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        n = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise ConfigError(f"{what}: {n} image(s) contain NaN or infinite pixels")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ConfigError(f"{what} must be pixels in [0, 1] (the models normalise inside); got values in "
                          f"[{float(x.min()):.4g}, {float(x.max()):.4g}] — undo any normalisation or /255 scaling")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.messages[msg] = self.messages.get(msg, 0) + 1


@contextlib.contextmanager
def capture_autoattack_warnings() -> Iterator[_Capture]:
    """Collect the warnings pyautoattack's checks log to ``logging.getLogger('auto-attack')``."""
    logger = logging.getLogger(AA_LOGGER)
    handler = _Capture()
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def autoattack_precheck(model: nn.Module, x: torch.Tensor, y: torch.Tensor, atoms: tuple[str, ...],
                        n_target_classes: int) -> int:
    """pyautoattack's checks as ``AutoAttack.run_standard_evaluation`` runs them (randomness, softmax outputs,
    dynamic defense, class count); findings go to the 'auto-attack' logger."""
    from pyautoattack import checks

    logger = logging.getLogger(AA_LOGGER)
    checks.check_randomized(model, x, y, bs=len(x), logger=logger)
    n_cls = checks.check_range_output(model, x, logger=logger)
    # upstream's counters are module globals never reset (one dynamic model would flag every later one), and
    # it ends with sys.settrace(None), which would switch off a debugger's or coverage's tracer
    for k in checks.funcs:
        checks.funcs[k] = 0
    tracer = sys.gettrace()
    try:
        checks.check_dynamic(model, x, False, logger=logger)
    finally:
        sys.settrace(tracer)
    checks.check_n_classes(n_cls, list(atoms), n_target_classes, n_target_classes, logger=logger)
    return n_cls


def square_check(cumulative_pct: dict[str, float]) -> None:
    from pyautoattack import checks

    checks.check_square_sr({k: v / 100.0 for k, v in cumulative_pct.items()}, logger=logging.getLogger(AA_LOGGER))


def batch_invariance(model: nn.Module, x: torch.Tensor, k: int = 4) -> dict[str, Any]:
    """Logits of the first ``k`` points computed one at a time vs within the batch ``x``: whether the model's
    numbers depend on the batch size (kernel choice), which bounds the per-sample determinism claim."""
    with torch.no_grad():
        full = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(min(k, len(x)))])
    diff = (single - full[: len(single)]).abs().max().item() if len(single) else 0.0
    return {"batch_size": len(x), "points": len(single), "max_abs_logit_diff": diff, "bitwise": diff == 0.0}


def perturbation_stats(x: torch.Tensor, x_adv: torch.Tensor, norm: str, eps: float, tol: float = 1e-6) -> dict:
    """Largest perturbation and how many points leave the eps-ball (+tol), the [0, 1] box or are not finite."""
    d = (x_adv - x).flatten(1)
    finite = torch.isfinite(x_adv.flatten(1)).all(1)
    size = d.abs().amax(1) if norm == "Linf" else d.norm(p=2, dim=1)
    size = torch.where(finite, size, torch.full_like(size, math.inf))
    box = (x_adv.flatten(1) < 0).any(1) | (x_adv.flatten(1) > 1).any(1)
    return {"max_norm": float(size[finite].max()) if bool(finite.any()) else 0.0,
            "n_outside_ball": int((finite & (size > eps + tol)).sum()),
            "n_outside_box": int((finite & box).sum()), "n_nonfinite": int((~finite).sum())}
