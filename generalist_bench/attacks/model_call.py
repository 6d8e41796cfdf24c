"""``ModelCall``: the one object an attack calls the model through.

The evaluation wraps the model in a ``ModelCall`` (or a subclass) and passes it to every attack as its ``model``
argument; an attack never needs to know what is behind it. The contract:

- ``model_call(x)`` returns logits of pixels ``x`` in [0, 1]. Whether it records a graph to ``x`` follows
  autograd's own rule (grad mode on and ``x.requires_grad``): call it under ``torch.enable_grad()`` with an ``x``
  that requires grad for an input gradient, under ``torch.no_grad()`` for a prediction.
- **Precision.** Calls are *exact* (the float32 eager model's logits). A subclass may also offer a cheaper
  *search* precision (``can_search``); calls made inside ``with model_call.precision("search"):`` use it, calls
  inside ``precision("exact")`` do not. Without a search precision both are no-ops, so an attack can always ask.
- It counts forward passes (calls, images) and backward passes through its outputs, and forwards made while the
  wrapped model is in train mode (an evaluation must run in eval mode: the evaluation reports them).

It is an ``nn.Module`` so that code written for modules (torchattacks, third-party attacks) can take it: its mode
is the wrapped model's at construction, and ``.train()``/``.eval()`` reach the wrapped model like any child's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn as nn

Precision = Literal["exact", "search"]
COUNTS = ("forward_calls", "forward_images", "backward_calls", "backward_images", "train_mode_forwards")


class ModelCall(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.counts = dict.fromkeys(COUNTS, 0)
        self.searching = False  # inside precision("search") on a model call that can search
        self.train(model.training)

    @property
    def can_search(self) -> bool:
        """Whether this model call has a search precision (the base class has none)."""
        return False

    @contextlib.contextmanager
    def precision(self, mode: Precision) -> Iterator[None]:
        """Inside: calls use ``mode`` ("search" only where ``can_search``; "exact" always); restored afterwards."""
        if mode not in ("exact", "search"):
            raise ValueError(f"precision {mode!r}: 'exact' or 'search'")
        old, self.searching = self.searching, mode == "search" and self.can_search
        try:
            yield
        finally:
            self.searching = old

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits(x)
        n = int(x.shape[0])
        if self.model.training:  # tripwire: every evaluation forward must run in eval mode
            self.counts["train_mode_forwards"] += 1
        self.counts["forward_calls"] += 1
        self.counts["forward_images"] += n
        if torch.is_tensor(out) and out.requires_grad:
            def _hook(grad, n=n):
                self.counts["backward_calls"] += 1
                self.counts["backward_images"] += n
            out.register_hook(_hook)
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits at the current precision; subclasses change how they are computed, not what."""
        return self.model(x)

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
