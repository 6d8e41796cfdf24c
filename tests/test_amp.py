"""bf16 products run as float32 kernels (trainers/amp.py): every product equals its definition (bfloat16 operands,
exact product, result rounded to bfloat16) in value and gradient, agrees with PyTorch's bfloat16 kernels up to
summation order, no bfloat16 product reaches a kernel during a training step, everything else passes through, and
the kernel choice follows the CPU and the environment variable."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from generalist_bench.errors import ConfigError
from generalist_bench.models.small_cnn import SmallCNN
from generalist_bench.trainers import amp
from generalist_bench.utils.env import bf16_native

CPU = torch.device("cpu")


class _Float64Oracle(TorchDispatchMode):
    """The definition, in float64: a bfloat16 product computed exactly (float64 has room for every sum here) and its
    results rounded to bfloat16. Test-only: no summation-order error at bfloat16 resolution."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in amp.PRODUCTS and any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in args):
            up = [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
            out = func(*up, **kwargs)
            if isinstance(out, tuple):
                return tuple(o if o is None else o.to(torch.bfloat16) for o in out)
            return out.to(torch.bfloat16)
        return func(*args, **kwargs)


class _Kernels(TorchDispatchMode):
    """Records the dtypes each product kernel is called with (entered below the mode under test)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in amp.PRODUCTS:
            self.calls.append((str(func), {a.dtype for a in args if isinstance(a, torch.Tensor)}))
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _kernels(kind: str):
    """bf16 autocast's products with ``kind`` kernels: "native" (PyTorch's), "float32" (the mode under test),
    "oracle"; "off" is float32 training (no autocast)."""
    mode = {"float32": amp.Float32Kernels, "oracle": _Float64Oracle}.get(kind, contextlib.nullcontext)
    with mode():
        yield kind != "off"


def _run(kind: str, fn, *inputs):
    """``fn(*inputs)`` under bf16 autocast with ``kind`` kernels; the output (as float32) and the gradients of
    sum(output * probe) w.r.t. every input, the backward run outside autocast with the kernels still active (as the
    trainer runs it)."""
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    with _kernels(kind) as autocast:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = fn(*inputs)
        probe = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
        (out.float() * probe).sum().backward()
    return out.detach().float(), [t.grad for t in inputs]


g = torch.Generator().manual_seed(0)
PRODUCTS = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1),
               (torch.randn(4, 8, 10, 10, generator=g), torch.randn(16, 8, 3, 3, generator=g) * 0.2,
                torch.randn(16, generator=g))),
    "conv2d channels_last": (lambda x, w: F.conv2d(x, w),
                             (torch.randn(4, 8, 10, 10, generator=g).to(memory_format=torch.channels_last),
                              torch.randn(16, 8, 3, 3, generator=g).to(memory_format=torch.channels_last))),
    "linear": (F.linear, (torch.randn(32, 64, generator=g), torch.randn(24, 64, generator=g),
                          torch.randn(24, generator=g))),
    "matmul @": (lambda a, b: a @ b, (torch.randn(3, 16, 40, generator=g), torch.randn(40, 12, generator=g))),
    "addmm": (torch.addmm, (torch.randn(16, 12, generator=g), torch.randn(16, 40, generator=g),
                            torch.randn(40, 12, generator=g))),
    "bmm": (torch.bmm, (torch.randn(3, 16, 40, generator=g), torch.randn(3, 40, 12, generator=g))),
    "baddbmm": (torch.baddbmm, (torch.randn(3, 16, 12, generator=g), torch.randn(3, 16, 40, generator=g),
                                torch.randn(3, 40, 12, generator=g))),
    "addbmm": (torch.addbmm, (torch.randn(16, 12, generator=g), torch.randn(3, 16, 40, generator=g),
                              torch.randn(3, 40, 12, generator=g))),
    "matrix @ vector": (lambda a, v: a @ v, (torch.randn(16, 40, generator=g), torch.randn(40, generator=g))),
}


def _close_to(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal but where summation order moved a value across a bfloat16 rounding boundary: at most max(2, 0.2 %) of
    the elements, each by one bfloat16 step at most."""
    assert a.shape == b.shape
    return bool((a != b).sum() <= max(2, 2e-3 * a.numel()) and torch.all((a - b).abs() <= b.abs() * 2 ** -7 + 1e-30))


@pytest.mark.parametrize("name", PRODUCTS)
def test_float32_kernels_compute_the_bf16_product_and_its_gradient(name):
    """Values and gradients equal the float64 oracle's up to summation order (a few in 10,000 differ here, by one
    bfloat16 step); results are bf16 as autocast's; float32 training differs in most elements. (That the mode is
    engaged at all is the no-bfloat16-product test below: PyTorch's own mm already matches the definition.)"""
    fn, inputs = PRODUCTS[name]
    out, grads = _run("float32", fn, *inputs)
    ref, ref_grads = _run("oracle", fn, *inputs)
    fp32, _ = _run("off", fn, *inputs)
    for a, b in zip([out, *grads], [ref, *ref_grads], strict=True):
        assert _close_to(a, b), name
    assert (out != fp32).float().mean() > 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16), amp.Float32Kernels():
        assert fn(*inputs).dtype == torch.bfloat16  # autocast's output dtype


@pytest.mark.parametrize("name", PRODUCTS)
def test_float32_kernels_agree_with_pytorchs_bf16_kernels(name):
    """Outputs and gradients within a few bfloat16 steps of the tensor's scale, not element-exact: on an AVX2 CPU
    PyTorch's bfloat16 fallback kernels themselves depart from the definition where they round partial sums (the
    convolution backward: most grad_input elements differ from the oracle by one or two bfloat16 steps; addbmm's
    output), where the float32 kernels match it (the oracle test above)."""
    fn, inputs = PRODUCTS[name]
    out, grads = _run("float32", fn, *inputs)
    nat, nat_grads = _run("native", fn, *inputs)
    for a, b in zip([out, *grads], [nat, *nat_grads], strict=True):
        assert torch.allclose(a, b, rtol=0, atol=2 ** -6 * b.abs().max().item()), name
        assert ((a - b).norm() / b.norm()).item() < 2 ** -7, name


def _pgd_like_step(kind: str, model, x, y):
    """An input gradient taken inside autocast (as the training attack takes it), then the loss on the input moved along
    it backpropagated outside autocast. Returns the parameter gradients."""
    model.zero_grad()
    with _kernels(kind) as autocast:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            xa = x.clone().requires_grad_(True)
            (gx,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
            loss = F.cross_entropy(model(x + gx / gx.abs().max()), y)  # smooth in gx (sign() is not)
        loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.fixture(scope="module")
def small_cnn_batch():
    torch.manual_seed(0)
    model = SmallCNN(drop=0.0).to(memory_format=torch.channels_last)
    torch.nn.init.normal_(model.classifier[-1].weight, std=0.1)  # zero-initialised: no gradient would flow
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1)).to(memory_format=torch.channels_last)
    return model, x, torch.arange(32) % 10


def test_a_training_step_under_float32_kernels_is_bf16_autocasts_step(small_cnn_batch):
    """A SmallCNN (channels_last, dropout off): the parameter gradients under float32 kernels stay within a few per
    cent of the float64 oracle's (differences compound through two passes and the layers; at most 3.4 % on an AVX2
    CPU) and float32 training's are several times farther. Where the CPU has no bfloat16 instructions, the float32
    kernels are also at least as close as PyTorch's fallback bfloat16 kernels (several times closer there)."""
    grads = {k: _pgd_like_step(k, *small_cnn_batch) for k in ("float32", "native", "off", "oracle")}
    for i, ref in enumerate(grads["oracle"]):
        dist = {k: ((g[i] - ref).norm() / ref.norm()).item() for k, g in grads.items()}
        assert dist["float32"] < 0.08, (i, dist)
        assert dist["float32"] < dist["off"] / 4, (i, dist)
        if not bf16_native():
            assert dist["float32"] <= dist["native"] + 0.01, (i, dist)


def test_no_bfloat16_product_reaches_a_kernel_under_float32_kernels(small_cnn_batch):
    """Every product of the step (forward, the attack's backward inside autocast, the training backward outside it)
    reaches its kernel in float32; without the mode they reach it in bfloat16, so the check can fail."""
    for kind, want in (("float32", {torch.float32}), ("native", {torch.bfloat16})):
        with _Kernels() as seen:
            _pgd_like_step(kind, *small_cnn_batch)
        assert {"aten.convolution.default", "aten.convolution_backward.default", "aten.addmm.default",
                "aten.mm.default"} <= {name for name, _ in seen.calls}
        assert set().union(*(dtypes for _, dtypes in seen.calls)) == want, kind


def test_float32_kernels_pass_through_other_dtypes_and_ops():
    fn, inputs = PRODUCTS["conv2d"]
    plain = fn(*inputs)
    a = torch.randn(64, generator=torch.Generator().manual_seed(2))
    with _Kernels() as seen, amp.Float32Kernels():
        assert torch.equal(fn(*inputs), plain)  # float32: untouched
        with torch.autocast("cpu", dtype=torch.float16):  # float16: autocast's own
            assert fn(*inputs).dtype == torch.float16
        assert torch.equal(torch.relu(a.bfloat16()), torch.relu(a).bfloat16())  # not a product
        assert (a.bfloat16() @ a.bfloat16()).dtype == torch.bfloat16
    dtypes = [d for _, d in seen.calls]
    assert dtypes == [{torch.float32}, {torch.float16}, {torch.float32}]  # conv2d, conv2d, dot (from bf16)


def test_the_kernel_choice_follows_the_cpu_and_the_environment(monkeypatch):
    monkeypatch.delenv(amp.BF16_KERNELS_ENV, raising=False)
    for native, want in ((False, "float32"), (True, "native")):
        monkeypatch.setattr(amp, "bf16_native", lambda native=native: native)
        assert amp.bf16_kernels("bf16", CPU) == want
    assert amp.bf16_kernels("off", CPU) is None and amp.bf16_kernels("bf16", torch.device("cuda")) is None
    for forced in ("native", "float32", " Float32 "):
        monkeypatch.setenv(amp.BF16_KERNELS_ENV, forced)
        assert amp.bf16_kernels("bf16", CPU) == forced.strip().lower()
    monkeypatch.setenv(amp.BF16_KERNELS_ENV, "fp32")
    with pytest.raises(ConfigError, match="GENERALIST_BENCH_BF16_KERNELS='fp32'; valid: auto, native, float32"):
        amp.bf16_kernels("bf16", CPU)
