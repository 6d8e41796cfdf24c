"""The evaluation's model runner: the eager model's numbers, computed faster on a CPU.

Two things cost time on a CPU beyond the arithmetic of an attack:

- **Batch size.** oneDNN's convolutions cost more per image once a batch's activations no longer fit in the
  cache (SmallCNN on 28×28 inputs: see the "model's passes by batch size" table of ``benchmarks/RESULTS.md``).
  Every model call is therefore split into chunks of at most ``chunk_rows`` rows (CPU only). A model in eval
  mode computes each row on its own, so a row's logits and input gradient are the eager model's at the
  chunk's batch size; kernels may round differently at different batch sizes (pyautoattack's own batches
  shrink as points are fooled, too), which ``sanity.batch_invariance`` records.
- **Layout conversions.** An eager ``Conv2d`` converts its input, its weights and its output between
  PyTorch's layout and oneDNN's blocked layout at every call. For passes that need no gradient (clean
  predictions, Square's 5,000 queries, FAB's predictions) the runs of ``Conv2d``/``ReLU``/``MaxPool2d``
  layers inside plain ``nn.Sequential`` containers run as one oneDNN block on weights reordered once
  ("prepacked"), the activations staying in the blocked layout from the block's first layer to its last;
  every other layer runs eagerly.

The ``fast`` engine adds a **search model**: a channels_last copy run under bfloat16 autocast (where the CPU
computes bfloat16 natively; float32 channels_last otherwise). The compacting APGD and FAB loops
(``evaluation.autoattack.compact``) opt into it with ``search(model)`` for their iterations only, and every verdict they
take from it that settles a point — "this point is misclassified" — is confirmed by the exact float32 model
before it counts (``confirm_fooled``); a rejected candidate stays in the attack, and its row runs on the exact
model from then on (``escalated``), as does a row whose search margin comes within ``NEAR_BOUNDARY`` of the
logit scale of the boundary (``near_boundary``). Square and everything outside
those loops (the clean pass, which points an attack gets, target orders, the final check of every adversarial
example) run on the exact float32 model. So a point is reported fooled only when the float32 model
misclassifies a point inside the ball; what bfloat16 can change is which points the search finds, measured by
``generalist_bench.bench`` against the exact engines.

Whether that gives the eager model's bits is checked, not assumed: the prepacked path is used for an input
shape only after its logits have equalled the eager model's bit for bit on the evaluation's own images of
that shape (on the SmallCNN a single row is computed differently, so batch size 1 stays eager), and a sample
of later calls (every ``VERIFY_EVERY``-th prepacked call) is computed both ways again. A shape that differs
stays eager; a difference after use is counted and reported (``sanity.model_runner``, a run violation;
``strict`` makes it an error). Inputs are checked finite before an evaluation starts.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.model_call import ModelCall
from ..utils.env import bf16_native

VERIFY_EVERY = 256
# A searching row whose margin is below this fraction of its largest |logit| runs on the exact model from then on
# (``near_boundary``); why 0.1: docs/PROTOCOL.md, "Engines".
NEAR_BOUNDARY = 0.1
DEFAULT_CHUNK_ROWS = 128
DEFAULT_GRAD_CHUNK_ROWS = None  # passes with an input gradient: None = chunk_rows
_BLOCK_LAYERS = (nn.Conv2d, nn.ReLU, nn.MaxPool2d)


class _PrepackedConv2d(nn.Module):
    """``nn.Conv2d`` on oneDNN-layout inputs with its weights reordered once."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("only zero padding given as numbers")
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        w = conv.weight.detach().float().contiguous()
        self.weight = torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), *self.args)
        self.bias = None if conv.bias is None else conv.bias.detach().float().contiguous().to_mkldnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mkldnn_convolution(x, self.weight, self.bias, *self.args)


class _MaxPool(nn.Module):
    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        if pool.return_indices:
            raise ValueError("max pooling with indices")
        self.args = (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, *self.args)


class _OneDNNBlock(nn.Module):
    """A run of Conv2d/ReLU/MaxPool2d layers computed in oneDNN's layout: dense in, dense out."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        ops: list[nn.Module] = []
        for m in layers:
            if isinstance(m, nn.Conv2d):
                ops.append(_PrepackedConv2d(m))
            elif isinstance(m, nn.MaxPool2d):
                ops.append(_MaxPool(m))
            else:
                ops.append(m)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 4:
            raise TypeError("the oneDNN block takes float32 CPU images")
        h = x.contiguous().to_mkldnn()  # a copy: the in-place ReLUs below never touch the caller's tensor
        for op in self.ops:  # in place: the same numbers, one allocation fewer (benchmarks/prepacked_relu.py)
            h = torch.relu_(h) if isinstance(op, nn.ReLU) else op(h)
        return h.to_dense()


def _hooked(m: nn.Module) -> bool:
    """Hooks or parametrizations would be lost in a block: such layers stay eager."""
    return bool(m._forward_hooks or m._forward_pre_hooks or getattr(m, "parametrizations", None))


def _convert(module: nn.Module) -> int:
    """Replace, in place, every run of Conv2d/ReLU/MaxPool2d children (without hooks) of plain ``nn.Sequential``
    containers, from its first Conv2d on, by a ``_OneDNNBlock``. Returns the number of convolutions converted."""
    n = 0
    for child in module.children():
        n += _convert(child)
    if type(module) is not nn.Sequential:  # a subclass may define its own forward
        return n
    items = list(module._modules.items())
    new: list[tuple[str, nn.Module]] = []
    run: list[tuple[str, nn.Module]] = []

    def flush():
        nonlocal n
        first = next((i for i, (_, m) in enumerate(run) if type(m) is nn.Conv2d), None)
        if first is None:
            new.extend(run)
        else:  # layers before the first convolution stay eager; the block starts at it
            new.extend(run[:first])
            new.append((run[first][0], _OneDNNBlock([m for _, m in run[first:]])))
            n += sum(type(m) is nn.Conv2d for _, m in run[first:])
        run.clear()

    for name, m in items:
        if type(m) in _BLOCK_LAYERS and not _hooked(m):
            run.append((name, m))
        else:
            flush()
            new.append((name, m))
    flush()
    module._modules.clear()
    for name, m in new:
        module._modules[name] = m
    return n


def prepacked_copy(model: nn.Module) -> tuple[nn.Module | None, str]:
    """A copy of ``model`` for no-grad passes with its Conv2d runs as oneDNN blocks, or ``(None, reason)``."""
    if not torch.backends.mkldnn.is_available():
        return None, "oneDNN is not available in this PyTorch build"
    try:
        if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
            return None, "the model is not a float32 CPU model"
        fast = copy.deepcopy(model).eval().requires_grad_(False)
        n = _convert(fast)
    except Exception as e:  # noqa: BLE001  (an unusual model: run it eagerly)
        return None, f"conversion failed ({type(e).__name__}: {e})"
    if n == 0:
        return None, "no Conv2d inside an nn.Sequential to prepack"
    return fast, f"{n} Conv2d layer(s) prepacked in oneDNN blocks"


class SearchModel(nn.Module):
    """The ``fast`` engine's search model: a frozen channels_last copy of ``model``, run under bfloat16 autocast
    when the CPU computes bfloat16 natively (``dtype="bfloat16"``), else in float32; float32 logits out, input
    gradients flow back in float32."""

    def __init__(self, model: nn.Module, dtype: str | None = None):
        super().__init__()
        self.dtype = dtype or ("bfloat16" if bf16_native() else "float32")
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"search dtype {self.dtype!r}: bfloat16 or float32")
        self.model = copy.deepcopy(model).to(memory_format=torch.channels_last).requires_grad_(False)
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == "bfloat16"):
            out = self.model(x)
        return out.float()


class ModelRunner(ModelCall):
    """The ``compact`` and ``fast`` engines' model call: calls ``model`` on chunks of at most ``chunk_rows`` rows;
    no-grad calls go through the prepacked copy once it has matched the eager model bit for bit. With a
    ``search_model`` (the ``fast`` engine) it has a search precision: calls made inside ``precision("search")``
    go to the search model (CPU inputs only), except the rows of ``exact_rows`` (set by ``escalated``), which
    stay on the exact model."""

    def __init__(self, model: nn.Module, *, chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
                 grad_chunk_rows: int | None = DEFAULT_GRAD_CHUNK_ROWS, prepack: bool = True,
                 search_model: SearchModel | None = None):
        super().__init__(model)
        self.search_model = search_model
        self.chunk_rows = chunk_rows
        self.grad_chunk_rows = chunk_rows if grad_chunk_rows is None else grad_chunk_rows
        self.fast, self.reason = prepacked_copy(model) if prepack else (None, "disabled")
        self.calls = 0
        self.sizes: dict[tuple[int, ...], bool] = {}  # input shape -> prepacked logits equal the eager ones
        self.report: dict[str, Any] = {"chunk_rows": chunk_rows, "grad_chunk_rows": self.grad_chunk_rows,
                                       "prepacked": self.reason, "verified_calls": 0,
                                       "mismatches": 0, "used": False, "eager_batch_sizes": []}
        self.exact_rows: torch.Tensor | None = None  # rows of the next calls kept on the exact model (escalated)
        if search_model is not None:
            self.report.update({"search_dtype": search_model.dtype, "search_images": 0, "confirmed": 0,
                                "rejected": 0, "escalated_rows": 0, "escalated_images": 0})

    @property
    def can_search(self) -> bool:
        return self.search_model is not None

    def _chunks(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = x.shape[0]
        rows = self.grad_chunk_rows if torch.is_grad_enabled() and x.requires_grad else self.chunk_rows
        if not rows or n <= rows or x.device.type != "cpu":  # accelerators: whole batches
            return [x]
        return list(torch.tensor_split(x, -(-n // rows)))

    def _run(self, fn, x: torch.Tensor) -> torch.Tensor:
        outs = [fn(p) for p in self._chunks(x)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.searching and self.search_model is not None and x.device.type == "cpu" and not self.model.training:
            m = self.exact_rows
            if m is None or not bool(m.any()):
                self.report["search_images"] += int(x.shape[0])
                return self._run(self.search_model, x)
            if m.shape != x.shape[:1]:
                raise RuntimeError(f"escalated rows: a mask of {tuple(m.shape)} rows for a batch of {x.shape[0]}")
            self.report["escalated_images"] += int(m.sum())
            if bool(m.all()):
                return self._exact(x)
            ie, i_s = m.nonzero().flatten(), (~m).nonzero().flatten()
            self.report["search_images"] += len(i_s)
            oe, os_ = self._exact(x[ie]), self._run(self.search_model, x[i_s])
            out = torch.zeros((x.shape[0], *oe.shape[1:]), dtype=oe.dtype, device=oe.device)
            return out.index_copy(0, ie, oe).index_copy(0, i_s, os_.to(oe.dtype))
        return self._exact(x)

    def _exact(self, x: torch.Tensor) -> torch.Tensor:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(
            p.requires_grad for p in self.model.parameters()))
        if needs_grad or self.fast is None or self.model.training or x.device.type != "cpu":
            return self._run(self.model, x)
        return self._run(self._fast_chunk, x)

    def _fast_chunk(self, x: torch.Tensor) -> torch.Tensor:
        """Prepacked logits for an input shape that has matched the eager model bit for bit; a new shape (and
        every ``VERIFY_EVERY``-th prepacked call) is computed both ways and compared, and gets the eager logits.
        Inputs that are not contiguous (e.g. channels_last: eager picks other kernels for them) stay eager."""
        if not x.is_contiguous() or self.fast is None:  # (switched off by an earlier chunk of this call)
            return self.model(x)
        n = tuple(x.shape)
        self.calls += 1
        ok = self.sizes.get(n)
        if ok is None or (ok and self.calls % VERIFY_EVERY == 0):
            eager = self.model(x)
            try:
                same = torch.equal(self.fast(x), eager)
            except Exception:  # noqa: BLE001  (an op the oneDNN path cannot run: stay eager)
                self.fast, self.reason = None, "switched off: the oneDNN path failed"
                self.report["prepacked"] = self.reason
                return eager
            self.report["verified_calls"] += 1
            if ok and not same:  # used for this batch size before, now different: report it
                self.report["mismatches"] += 1
            self.sizes[n] = same
            if not same:
                self.report["eager_batch_sizes"] = sorted(k[0] for k, v in self.sizes.items() if not v)
            return eager
        if ok:
            self.report["used"] = True
            return self.fast(x)
        return self.model(x)


# ------------------------------------------------------------------------------------------ search / verdicts
def _searcher(model: nn.Module) -> ModelRunner | None:
    """``model`` if it is a model call with a search precision (the ``fast`` engine's), else None."""
    return model if isinstance(model, ModelRunner) and model.search_model is not None else None


def search(model: nn.Module, on: bool = True) -> contextlib.AbstractContextManager[None]:
    """Inside: calls of ``model`` use its search precision (``on``) or the exact model (``on=False``). A no-op for
    a model call without a search precision (every engine but ``fast``) and for a plain module."""
    if isinstance(model, ModelCall):
        return model.precision("search" if on else "exact")
    return contextlib.nullcontext()


def exact(model: nn.Module):
    """Inside: calls of ``model`` go to the exact float32 model (see ``search``)."""
    return search(model, False)


@contextlib.contextmanager
def escalated(model: nn.Module, rows: torch.Tensor | None) -> Iterator[None]:
    """Inside a search: the rows of ``rows`` (bool mask over the batch of every call made inside) run on the exact
    model instead of the search model, the others still search. The compacting loops escalate a row once the
    exact model has rejected one of its search verdicts, or its search logits put it near the decision boundary
    (``near_boundary``) and the exact model did not find it misclassified there: only the exact model can tell
    which side of the boundary such a row is on. A no-op without a search model."""
    r = _searcher(model)
    if r is None or rows is None:
        yield
        return
    old, r.exact_rows = r.exact_rows, rows
    try:
        yield
    finally:
        r.exact_rows = old


def escalate(model: nn.Module, esc: torch.Tensor, rows: torch.Tensor) -> None:
    """Mark ``rows`` (bool mask) as escalated in ``esc`` (in place), counting the new ones."""
    new = rows & ~esc
    if bool(new.any()):
        r = _searcher(model)
        if r is not None:
            r.report["escalated_rows"] += int(new.sum())
        esc |= new


def near_boundary(model: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Inside a search: the rows whose search logits put them within ``NEAR_BOUNDARY`` of the logit scale from the
    decision boundary (margin = own logit − best other logit), where the search model's rounding can decide the
    outcome; all False otherwise."""
    if not is_searching(model):
        return torch.zeros(len(y), dtype=torch.bool, device=y.device)
    z = logits.detach().float()
    margin = z.gather(1, y[:, None])[:, 0] - z.scatter(1, y[:, None], -float("inf")).max(1)[0]
    return margin < NEAR_BOUNDARY * z.abs().max(1)[0]


def is_searching(model: nn.Module) -> bool:
    return isinstance(model, ModelCall) and model.searching


def confirm_fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The ``candidates`` rows (bool mask) that the exact model misclassifies. Candidates come from the search
    model's logits (its "fooled" verdicts, and rows near the boundary); outside a search they are the exact model's
    verdicts already and are returned as they are. ``confirmed`` / ``rejected`` in the runner's report count the
    rows found misclassified / not misclassified (escalated rows, exact already, are not rechecked)."""
    r = _searcher(model)
    if r is None or not r.searching or not bool(candidates.any()):
        return candidates
    todo = candidates if r.exact_rows is None else candidates & ~r.exact_rows  # escalated rows: exact already
    if not bool(todo.any()):
        return candidates
    with exact(model), torch.no_grad():
        wrong = model(x[todo].detach()).max(1)[1] != y[todo]
    out = candidates.clone()
    out[todo] = wrong
    r.report["confirmed"] += int(wrong.sum())  # sanity.model_runner
    r.report["rejected"] += int((~wrong).sum())
    return out
