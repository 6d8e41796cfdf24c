"""The evaluation's model runner (``evaluation.fastpath``): row chunks and prepacked oneDNN no-grad passes that
must give the eager model's numbers, checked at run time, with any difference reported."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

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


def test_gradient_passes_have_their_own_chunk_size(robust_small_cnn):
    model = robust_small_cnn.eval().requires_grad_(False)
    runner = ModelRunner(model, chunk_rows=100, grad_chunk_rows=40, prepack=False)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append((args[0].shape[0], torch.is_grad_enabled())))
    x, y = torch.rand(120, 1, 28, 28), torch.randint(0, 10, (120,))
    xg = x.clone().requires_grad_(True)
    g = torch.autograd.grad(nn.functional.cross_entropy(runner(xg), y, reduction="sum"), xg)[0]
    assert seen == [(40, True)] * 3  # 120 rows with an input gradient: chunks of 40
    parts = [p.clone().requires_grad_(True) for p in torch.tensor_split(x, 3)]
    ref = torch.cat([torch.autograd.grad(nn.functional.cross_entropy(model(p), q, reduction="sum"), p)[0]
                     for p, q in zip(parts, torch.tensor_split(y, 3), strict=True)])
    assert torch.equal(g, ref)
    seen.clear()
    with torch.no_grad():
        runner(x)
    assert seen == [(60, False)] * 2  # the same rows without a gradient: chunks of at most 100
    assert runner.report["chunk_rows"] == 100 and runner.report["grad_chunk_rows"] == 40
    assert ModelRunner(model, chunk_rows=100, grad_chunk_rows=None).grad_chunk_rows == 100  # None: one size


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


# ------------------------------------------------------------------------------------------ the fast engine's search
class _Liar(nn.Module):
    """A search model that calls every input misclassified: the exact logits plus 1,000 on the least likely class
    (a piecewise-constant shift, so input gradients stay the exact model's)."""

    dtype = "float32"

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        z = self.model(x)
        return z + 1000.0 * F.one_hot(z.argmin(1), z.shape[1]).to(z.dtype)


def _points(model, n=24):
    torch.manual_seed(1)
    x = torch.rand(n, 1, 28, 28)
    with torch.no_grad():
        return x, model(x).max(1)[1]  # every point classified "correctly"


def test_search_is_opt_in_and_its_verdicts_are_confirmed_by_the_exact_model(mlp):
    runner = counting = ModelRunner(mlp, search_model=_Liar(mlp))  # the model call counts its own passes
    x, y = _points(mlp)
    with torch.no_grad():
        assert torch.equal(counting(x), mlp(x))  # outside a search: the exact model
        with fastpath.search(counting):
            assert fastpath.is_searching(counting)
            cand = counting(x).max(1)[1] != y
            assert cand.all()  # the search says: all fooled
            assert not fastpath.confirm_fooled(counting, x, y, cand).any()  # the exact model disagrees
            with fastpath.exact(counting):
                assert torch.equal(counting(x), mlp(x))
            assert fastpath.is_searching(counting)
        assert not fastpath.is_searching(counting)
        assert torch.equal(fastpath.confirm_fooled(counting, x, y, cand), cand)  # outside: verdicts are exact
    assert runner.report["rejected"] == len(x) and runner.report["confirmed"] == 0
    assert runner.report["search_images"] == len(x)
    assert counting.counts["forward_calls"] == 4 and counting.counts["forward_images"] == 4 * len(x)  # + confirm
    plain = ModelRunner(mlp)  # compact engine: no search model, search() changes nothing
    with fastpath.search(plain):
        assert not fastpath.is_searching(plain)
    with pytest.raises(RuntimeError), fastpath.search(counting):  # an attack failing inside restores the mode
        raise RuntimeError("attack failed")
    assert not runner.searching
    from generalist_bench.attacks.model_call import ModelCall
    from generalist_bench.evaluation.api import model_call

    assert model_call(mlp, "fast", "cuda").search_model is None  # the fast engine searches on the CPU only
    assert model_call(mlp, "fast", "cpu").search_model is not None
    assert model_call(mlp, "compact", "cpu").search_model is None
    pya = model_call(mlp, "pyautoattack", "cpu")  # upstream as published: the model's own forward, counted
    assert type(pya) is ModelCall and not pya.can_search


@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-t", "fab-t"])
def test_attack_loops_count_a_point_fooled_only_when_the_exact_model_agrees(mlp, fmnist_test, attack):
    """With a search model that calls everything misclassified, the loops would stop at once if they trusted it:
    every row they return as fooled must be misclassified by the exact model, inside the ball."""
    from generalist_bench.attacks import build_attack
    from generalist_bench.evaluation.autoattack import compact

    runner = ModelRunner(mlp, search_model=_Liar(mlp))
    x, y = fmnist_test.x[:48], fmnist_test.y[:48]
    with torch.no_grad():
        ok = mlp(x).max(1)[1] == y
    x, y = x[ok], y[ok]
    eps = 0.03
    spec = build_attack(attack, norm="Linf", eps=eps, params={"n_iter": 10})
    atk = spec.build(runner, x.device, 0)
    n = len(y)
    if attack.startswith("apgd"):
        atk.init_hyperparam(x)
        x_init = (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0, 1)
        with torch.no_grad():
            order = mlp(x).sort(dim=1)[1]
        yt = order[:, -2] if attack == "apgd-t" else None
        fooled, xa = compact.apgd_run(atk, x, y, x_init, y_target=yt)
    else:
        with torch.no_grad():
            lt = mlp(x).sort(dim=1)[1][:, -2]
        fooled, xa = compact.fab_targeted_run(atk, x, y, lt, torch.arange(n))
    assert 0 < int(fooled.sum()) < n  # the attack ran: some points fooled, not all (the liar's verdicts were not taken)
    with torch.no_grad():
        assert (mlp(xa[fooled]).max(1)[1] != y[fooled]).all()
    assert ((xa - x).abs().flatten(1).max(1)[0] <= eps + 1e-6).all()
    assert runner.report["rejected"] > 0 and runner.report["escalated_images"] > 0
    if attack.startswith("apgd"):
        # every row's first verdict was rejected (or its search margin put it on the boundary): it escalated at once
        # and ran on the exact model from then on, so only the first pass searched
        assert 0 < runner.report["escalated_rows"] <= n and runner.report["search_images"] == n
    else:  # FAB: a row escalates once an iterate within eps is rejected or near the boundary
        assert 0 < runner.report["escalated_rows"] <= n


class _RunnerUpBoost(_Liar):
    """A search model that hides narrow misclassifications: each row's runner-up class gains 5% of the row's logit
    scale (inside ``NEAR_BOUNDARY``)."""

    def forward(self, x):
        z = self.model(x)
        second = z.topk(2, 1).indices[:, 1]
        return z + 0.05 * z.abs().max(1, keepdim=True)[0].detach() * F.one_hot(second, z.shape[1]).to(z.dtype)


def test_a_narrow_misclassification_the_search_misses_is_found_by_the_exact_check_near_the_boundary(mlp):
    """Points the exact model misclassifies by a margin the search model's error can hide: the search calls them
    correct, but near the boundary its "robust" verdict is checked in float32, so APGD settles them at the very
    iterate where the exact engine does (here its start)."""
    from generalist_bench.attacks import build_attack
    from generalist_bench.evaluation.autoattack import compact

    assert 0.05 < fastpath.NEAR_BOUNDARY
    runner = ModelRunner(mlp, search_model=_RunnerUpBoost(mlp))
    torch.manual_seed(3)
    x = torch.rand(400, 1, 28, 28)
    with torch.no_grad():
        z = mlp(x)
    top = z.topk(2, 1)
    pick = top.values[:, 0] - top.values[:, 1] < 0.05 * z.abs().max(1)[0]
    x, y = x[pick], top.indices[pick, 1]  # labelled as the runner-up: misclassified by a narrow margin
    assert len(y) >= 3
    atk = build_attack("apgd-ce", norm="Linf", eps=0.03, params={"n_iter": 10}).build(runner, x.device, 0)
    atk.init_hyperparam(x)
    with torch.no_grad(), fastpath.search(runner):
        assert (runner(x).max(1)[1] == y).all()  # the search calls every row correct
    fooled, xa = compact.apgd_run(atk, x, y, x.clone())
    assert fooled.all() and torch.equal(xa, x)  # settled at the start by the float32 check
    assert runner.report["confirmed"] == len(y) and runner.report["rejected"] == 0


def test_escalated_rows_run_on_the_exact_model_and_the_others_keep_searching(mlp):
    """Inside ``escalated(model, rows)`` the masked rows get the exact model's logits and input gradients, the others
    the search model's; confirmation skips the escalated rows (their verdicts are exact already)."""
    runner = ModelRunner(mlp, search_model=_Liar(mlp))
    x, y = _points(mlp, 10)
    esc = torch.zeros(10, dtype=torch.bool)
    esc[[1, 4, 5]] = True
    with fastpath.search(runner), fastpath.escalated(runner, esc):
        xa = x.clone().requires_grad_()
        z = runner(xa)
        z.logsumexp(1).sum().backward()
        with torch.no_grad():
            cand = z.max(1)[1] != y
            confirmed = fastpath.confirm_fooled(runner, x, y, cand)
        with pytest.raises(RuntimeError, match="a mask of"):
            runner(x[:4])
    xe = x.clone().requires_grad_()
    mlp(xe).logsumexp(1).sum().backward()
    xs = x.clone().requires_grad_()
    liar = _Liar(mlp)(xs)
    liar.logsumexp(1).sum().backward()
    with torch.no_grad():
        assert torch.equal(z[esc], mlp(x[esc])) and torch.equal(z[~esc], _Liar(mlp)(x[~esc]))
    assert torch.allclose(xa.grad[esc], xe.grad[esc], atol=1e-6)  # (batch sizes differ: last-bit rounding)
    assert torch.allclose(xa.grad[~esc], xs.grad[~esc], atol=1e-6)
    assert not cand[esc].any() and cand[~esc].all()  # exact rows: classified correctly; the liar's: "fooled"
    assert not confirmed.any() and runner.report["rejected"] == 7  # only the searching rows were rechecked
    assert runner.report["search_images"] == 7 and runner.report["escalated_images"] == 3
    hits = torch.zeros(10, dtype=torch.bool)
    hits[[0, 1]] = True
    fastpath.escalate(runner, esc, hits)
    assert esc.nonzero().flatten().tolist() == [0, 1, 4, 5] and runner.report["escalated_rows"] == 1
    z = torch.tensor([[5.0, 4.8, 0.0], [5.0, 0.0, 1.0], [5.0, 0.0, 1.0]])
    with fastpath.search(runner):  # margin 0.2 < 10% of 5; margin 4 is not; a misclassified row is (margin < 0)
        assert fastpath.near_boundary(runner, z, torch.tensor([0, 0, 2])).tolist() == [True, False, True]
    assert not fastpath.near_boundary(runner, z, torch.tensor([0, 0, 2])).any()  # outside a search: never


def test_square_runs_on_the_exact_model_under_the_fast_engine(mlp, monkeypatch):
    """Square's accept/reject steps compare losses that bfloat16 cannot resolve, so it never searches: even with a
    lying search model its flags equal the compact engine's."""
    kw = dict(eps=0.1, attacks=[("square", {"n_queries": 200})], n_examples=24, batch_size=24, progress=False)
    ref = evaluate(mlp, **kw)
    monkeypatch.setattr(fastpath, "SearchModel", _Liar)
    fast = evaluate(mlp, engine="fast", **kw)
    assert torch.equal(fast.flags("robust"), ref.flags("robust"))
    assert 0 < int(ref.flags("robust").sum()) < int(ref.flags("clean").sum())  # Square fooled some points, not all
    assert fast.sanity["model_runner"]["search_images"] == 0


def test_fast_engine_runs_the_clean_pass_exactly_and_reports_its_search(mlp):
    kw = dict(eps=0.1, attacks=[("apgd-ce", {"n_iter": 10}), ("fab-t", {"n_iter": 10, "n_target_classes": 2})],
              n_examples=32, batch_size=32, progress=False)
    fast = evaluate(mlp, engine="fast", **kw)
    ref = evaluate(mlp, **kw)
    assert torch.equal(fast.flags("clean"), ref.flags("clean"))  # the clean pass is float32, not the search
    assert fast.protocol["search_dtype"] == ("bfloat16" if fastpath.bf16_native() else "float32")
    assert ref.protocol["search_dtype"] is None
    mr = fast.sanity["model_runner"]
    assert mr["search_dtype"] == fast.protocol["search_dtype"] and mr["search_images"] > 0
    assert mr["confirmed"] >= 1  # points were fooled, each verdict confirmed in float32
    assert (fast.flags("robust") == ref.flags("robust")).float().mean().item() >= 0.9


def test_a_lying_search_reaches_no_verdict_of_the_evaluation(mlp, monkeypatch):
    """The clean pass, which points each attack gets, and the final check of every adversarial example are the exact
    model's: with a search model that calls everything misclassified, clean flags equal the compact engine's and
    points stay robust (a leak would report 0% robust accuracy)."""
    kw = dict(eps=0.03, attacks=[("apgd-ce", {"n_iter": 10}), ("apgd-t", {"n_iter": 10, "n_target_classes": 2}),
                                 ("fab-t", {"n_iter": 10, "n_target_classes": 2})],
              n_examples=32, batch_size=32, progress=False)
    ref = evaluate(mlp, **kw)
    monkeypatch.setattr(fastpath, "SearchModel", _Liar)
    fast = evaluate(mlp, engine="fast", **kw)
    assert torch.equal(fast.flags("clean"), ref.flags("clean"))
    assert ref.robust_acc >= 20.0 and fast.robust_acc > 0.0
    assert not (fast.flags("robust") & ~fast.flags("clean")).any()
    for a in ("apgd-ce", "apgd-t", "fab-t"):  # every attack searched, and its points' final flags came from float32
        assert fast.per_attack[a] > 0.0
    assert fast.sanity["model_runner"]["rejected"] > 0
