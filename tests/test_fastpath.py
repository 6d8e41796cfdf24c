"""The evaluation's model runner (``evaluation.fastpath``): row chunks and prepacked oneDNN no-grad passes that
must give the eager model's numbers, checked at run time, with any difference reported."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from generalist_bench.evaluation import evaluate, fastpath
from generalist_bench.evaluation.fastpath import ModelRunner, prepacked_copy

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


def _cnn():
    torch.manual_seed(0)
    from generalist_bench.models import model_for_dataset

    return model_for_dataset("small_cnn", "fashion_mnist").eval().requires_grad_(False)


def test_prepacked_copy_converts_the_conv_runs_and_leaves_the_model_alone():
    model = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast, reason = prepacked_copy(model)
    assert fast is not None and reason == "4 Conv2d layer(s) prepacked in oneDNN blocks"
    assert isinstance(fast.features[0], fastpath._OneDNNBlock) and len(fast.features) == 1
    assert isinstance(fast.classifier[1], nn.Linear)  # only conv runs move to oneDNN
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert isinstance(model.features[0], nn.Conv2d)  # the original is untouched (a copy was converted)
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-5)

    class NoSequential(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x):
            return self.conv(x).flatten(1)

    assert prepacked_copy(NoSequential()) == (None, "no Conv2d inside an nn.Sequential to prepack")
    # a run must start with a convolution; BatchNorm (not bit-exact in oneDNN) ends a run
    seq = nn.Sequential(nn.ReLU(), nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3)).eval()
    fast, _ = prepacked_copy(seq)
    kinds = [type(m).__name__ for m in fast]
    assert kinds == ["ReLU", "_OneDNNBlock", "BatchNorm2d", "ReLU", "_OneDNNBlock"]
    # a layer with a hook stays eager (the hook would be lost); a Sequential subclass keeps its own forward
    hooked = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)).eval()
    hooked[2].register_forward_hook(lambda *a: None)
    assert [type(m).__name__ for m in prepacked_copy(hooked)[0]] == ["_OneDNNBlock", "Conv2d"]

    class MySeq(nn.Sequential):
        def forward(self, x):
            return super().forward(x) * 2

    assert prepacked_copy(MySeq(nn.Conv2d(1, 4, 3), nn.ReLU()))[0] is None


def test_runner_uses_prepacked_only_for_batch_sizes_that_matched(robust_small_cnn):
    model = robust_small_cnn.eval().requires_grad_(False)
    runner = ModelRunner(model, chunk_rows=128)
    x = torch.rand(300, 1, 28, 28)
    with torch.no_grad():
        for n in (300, 300, 7, 7, 1, 1):
            out = runner(x[:n])
            eager = torch.cat([model(p) for p in torch.tensor_split(x[:n], -(-n // 128))])
            assert torch.equal(out, eager), n  # bit for bit: the chunks' eager logits
    # 300 rows run as chunks of 100; every batch size was verified once before any prepacked use
    assert set(runner.sizes) == {(100, 1, 28, 28), (7, 1, 28, 28), (1, 1, 28, 28)}
    assert runner.report["verified_calls"] == 3 and runner.report["mismatches"] == 0
    assert runner.report["used"] == any(runner.sizes.values())
    assert runner.report["eager_batch_sizes"] == sorted(k[0] for k, v in runner.sizes.items() if not v)
    # inputs that are not contiguous (eager may pick other kernels for them) never take the prepacked path
    before = dict(runner.report)
    with torch.no_grad():
        xt = x[:50].transpose(2, 3)
        assert not xt.is_contiguous() and torch.equal(runner(xt), model(xt))
    assert runner.report == before and (50, 1, 28, 28) not in runner.sizes


def test_runner_gradients_are_the_chunks_eager_gradients(robust_small_cnn):
    model = robust_small_cnn.eval().requires_grad_(False)
    runner = ModelRunner(model, chunk_rows=64)
    x = torch.rand(150, 1, 28, 28)
    y = torch.randint(0, 10, (150,))

    def grad(f, inp, lab):
        inp = inp.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(f(inp), lab, reduction="sum")
        return torch.autograd.grad(loss, inp)[0]

    g = grad(runner, x, y)
    # 150 rows -> 3 chunks of 50
    parts = zip(torch.tensor_split(x, 3), torch.tensor_split(y, 3), strict=True)
    ref = torch.cat([grad(model, p, q) for p, q in parts])
    assert torch.equal(g, ref)
    assert runner.report["verified_calls"] == 0  # gradient passes never take the prepacked path


def test_runner_keeps_eager_logits_when_prepacked_ones_differ(robust_small_cnn):
    model = robust_small_cnn.eval().requires_grad_(False)
    runner = ModelRunner(model)

    class Off(nn.Module):
        def forward(self, x):
            return model(x) + 1e-6

    runner.fast = Off()
    x = torch.rand(20, 1, 28, 28)
    with torch.no_grad():
        for _ in range(3):
            assert torch.equal(runner(x), model(x))
    assert runner.sizes == {(20, 1, 28, 28): False} and runner.report["eager_batch_sizes"] == [20]
    assert not runner.report["used"] and runner.report["mismatches"] == 0


def test_a_later_difference_is_counted_and_reported_by_evaluate(robust_small_cnn, monkeypatch):
    """A batch size verified once and then computed differently: counted, and the evaluation says so."""
    model = robust_small_cnn
    calls = {"n": 0}

    class Drifting(nn.Module):
        def forward(self, x):
            calls["n"] += 1
            out = model(x)
            return out if calls["n"] <= 3 else out + 1e-6

    monkeypatch.setattr(fastpath, "prepacked_copy", lambda m: (Drifting(), "test: drifting"))
    monkeypatch.setattr(fastpath, "VERIFY_EVERY", 2)
    with pytest.warns(RuntimeWarning, match="prepacked no-grad forward"):
        r = evaluate(model, attacks=[("square", {"n_queries": 30})], n_examples=12, batch_size=12, progress=False)
    mr = r.sanity["model_runner"]
    assert mr["used"] and mr["mismatches"] >= 1 and mr["prepacked"] == "test: drifting"
    assert any("prepacked no-grad forward" in v for v in r.sanity["run_violations"])
    assert not r.sanity["ok"]
    from generalist_bench.evaluation.result import SanityCheckError

    calls["n"] = 0
    with pytest.raises(SanityCheckError, match="prepacked no-grad forward"):
        evaluate(model, attacks=[("square", {"n_queries": 30})], n_examples=12, batch_size=12, progress=False,
                 strict=True)


def test_evaluate_reports_the_runner_and_pyautoattack_engine_runs_the_eager_model(robust_small_cnn):
    kw = dict(attacks=[("square", {"n_queries": 50})], n_examples=20, batch_size=20, progress=False)
    r = evaluate(robust_small_cnn, **kw)
    mr = r.sanity["model_runner"]
    assert mr["chunk_rows"] == 128 and mr["mismatches"] == 0 and mr["verified_calls"] >= 1
    assert mr["prepacked"] == "4 Conv2d layer(s) prepacked in oneDNN blocks" and mr["used"]
    assert r.sanity["ok"]
    ref = evaluate(robust_small_cnn, engine="pyautoattack", **kw)
    assert ref.sanity["model_runner"] is None
    assert torch.equal(r.flags("square"), ref.flags("square"))


def test_runner_reports_merge_over_sessions_and_shards():
    from generalist_bench.evaluation.result import merge_runner_reports

    a = {"chunk_rows": 128, "prepacked": "p", "verified_calls": 3, "mismatches": 0, "used": True,
         "eager_batch_sizes": [1]}
    b = {"chunk_rows": 128, "prepacked": "p", "verified_calls": 2, "mismatches": 1, "used": False,
         "eager_batch_sizes": [1, 3]}
    m = merge_runner_reports([a, b])
    assert m["verified_calls"] == 5 and m["mismatches"] == 1 and m["used"] is True
    assert m["eager_batch_sizes"] == [1, 3] and m["chunk_rows"] == 128
