"""The upstream (git) ``autoattack`` API, over pyautoattack 0.2.0 (the same official code, repackaged).

robustbench 1.1.1 imports ``autoattack`` and ``autoattack.state`` (not on PyPI) and calls
``AutoAttack(model, norm=, eps=, version=, device=, log_path=)`` and
``run_standard_evaluation(x, y, bs=, state_path=)`` expecting ``x_adv`` back; pyautoattack is keyword-only
(``attacks=``, ``batch_size=``) and returns ``(x_adv, y_adv)``. This module bridges the two without changing
any attack: every number comes from pyautoattack's code. ``robustbench_compat`` installs it as
``sys.modules["autoattack"]`` only when no real ``autoattack`` package is importable.

Differences from upstream, on purpose:
- ``state_path`` pointing to an existing file raises: pyautoattack 0.2.0 cannot resume (it serialises the
  attack set as a string, so a reloaded state never matches). A fresh ``state_path`` works.
- ``autoattack.state.EvaluationState.from_disk`` parses that string back into a set and returns
  ``robust_flags`` as a float 0/1 tensor, so robustbench's ``robust_flags.mean()`` (which fails on a bool
  tensor) is the robust accuracy.
- ``is_tf_model=True`` is not supported.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pyautoattack
import torch
from pyautoattack.state import EvaluationState as _PyEvaluationState

from ..errors import ConfigError

_LOGGER = "auto-attack"


class AutoAttack(pyautoattack.AutoAttack):
    """``autoattack.AutoAttack`` with the upstream signature (positional ``norm, eps, seed, verbose`` too)."""

    def __init__(self, model, norm: str = "Linf", eps: float = 0.3, seed: int | None = None, verbose: bool = True,
                 attacks_to_run: Sequence[str] = (), version: str = "standard", is_tf_model: bool = False,
                 device=None, log_path: str | None = None):
        if is_tf_model:
            raise NotImplementedError("pyautoattack (behind this autoattack shim) supports PyTorch models only")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        super().__init__(model, attacks=list(attacks_to_run) or None, device=device, eps=eps, norm=norm, seed=seed,
                         version=version)
        self.verbose = verbose
        self.log_path = log_path

    def set_version(self, version: str = "standard") -> None:
        self._set_version(version)

    @contextlib.contextmanager
    def _log_like_upstream(self) -> Iterator[None]:
        """Upstream prints progress when verbose and also appends it to ``log_path``; pyautoattack logs to
        ``logging.getLogger('auto-attack')``. Route that logger accordingly for the duration of a call."""
        logger = logging.getLogger(_LOGGER)
        handlers: list[logging.Handler] = []
        if self.verbose:
            handlers.append(logging.StreamHandler(sys.stdout))
            if self.log_path:
                handlers.append(logging.FileHandler(self.log_path))
        if not handlers:
            yield
            return
        old_level, old_propagate = logger.level, logger.propagate
        for h in handlers:
            h.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(h)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            yield
        finally:
            for h in handlers:
                logger.removeHandler(h)
                h.close()
            logger.setLevel(old_level)
            logger.propagate = old_propagate

    def run_standard_evaluation(self, x_orig, y_orig, bs: int = 250, return_labels: bool = False,
                                state_path=None, *, batch_size: int | None = None):
        """Upstream semantics: returns ``x_adv`` (``(x_adv, y_adv)`` with ``return_labels=True``)."""
        if batch_size is not None:
            bs = batch_size
        if state_path is not None:
            state_path = Path(state_path)
            if state_path.exists():
                raise ConfigError(f"AutoAttack state {state_path} exists, but pyautoattack 0.2.0 cannot resume from a "
                                  "state file (the attack set is stored as a string); delete it to re-run")
        with self._log_like_upstream():
            x_adv, y_adv = super().run_standard_evaluation(x_orig, y_orig, batch_size=bs, state_path=state_path)
        return (x_adv, y_adv) if return_labels else x_adv

    def run_standard_evaluation_individual(self, x_orig, y_orig, bs: int = 250, return_labels: bool = False):
        attacks = list(self.attacks_to_run)
        adv = {}
        try:
            for attack in attacks:
                self.attacks_to_run = [attack]
                x_adv, y_adv = self.run_standard_evaluation(x_orig, y_orig, bs=bs, return_labels=True)
                adv[attack] = (x_adv, y_adv) if return_labels else x_adv
        finally:
            self.attacks_to_run = attacks
        return adv


class EvaluationState(_PyEvaluationState):
    """``autoattack.state.EvaluationState`` whose ``from_disk`` reads pyautoattack's files correctly."""

    @classmethod
    def from_disk(cls, path) -> EvaluationState:
        path = Path(path)
        d = json.loads(path.read_text())
        attacks = d.get("_attacks_to_run") or []
        if isinstance(attacks, str):  # pyautoattack json.dump(default=str) writes the set as "{'apgd-ce', ...}"
            attacks = [] if attacks == "set()" else ast.literal_eval(attacks)
        d["_attacks_to_run"] = set(attacks)
        d["_run_attacks"] = set(d.get("_run_attacks") or [])
        flags = d.get("_robust_flags")
        # float 0/1 rather than bool: robustbench computes robust_flags.mean(), which bool tensors lack
        d["_robust_flags"] = None if flags is None else torch.tensor(flags, dtype=torch.float32)
        d["path"] = Path(d["path"]) if d.get("path") not in (None, "None") else None
        d["_last_saved"] = datetime.fromisoformat(d["_last_saved"])
        return cls(**d)


__version__ = f"pyautoattack-{pyautoattack.__version__}-shim"
__all__ = ["AutoAttack", "EvaluationState"]
