"""Evaluation attacks: registry, threat-model bounds, official parameters, per-sample determinism, strength."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from generalist_bench.attacks import PGD, build_attack, list_attacks
from generalist_bench.errors import ConfigError, UnknownNameError

EPS = {"Linf": 0.05, "L2": 1.0}
# cheap settings: the bounds and determinism do not depend on the number of iterations
CHEAP = {"apgd-ce": {"n_iter": 10}, "apgd-dlr": {"n_iter": 10}, "apgd-t": {"n_iter": 5, "n_target_classes": 3},
         "fab-t": {"n_iter": 5, "n_target_classes": 3}, "square": {"n_queries": 100}, "mim": {"steps": 5},
         "cw": {"steps": 5}, "pgd-5": {}, "fgsm": {}}
NAMES = ["fgsm", "pgd-5", "mim", "cw", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def pts(fmnist_test):
    return fmnist_test.x[:24], fmnist_test.y[:24]


def test_registry_names_and_errors():
    assert {"fgsm", "pgd-<k>", "mim", "cw", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square"} <= set(list_attacks())
    assert build_attack("PGD_100", norm="Linf", eps=0.1).pgd.steps == 100
    assert build_attack("cw-inf", norm="Linf", eps=0.1).name == "cw"
    with pytest.raises(UnknownNameError, match="valid attacks: .*apgd-ce"):
        build_attack("pgdd", norm="Linf", eps=0.1)
    with pytest.raises(ConfigError, match="supports norms Linf"):
        build_attack("mim", norm="L2", eps=0.5)
    with pytest.raises(ConfigError, match="bad parameters"):
        build_attack("square", norm="Linf", eps=0.1, params={"n_querys": 10})


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("name", NAMES)
def test_attack_stays_in_threat_model(name, norm, clean_small_cnn, pts):
    """‖x_adv − x‖ ≤ eps (+1e-6) and x_adv ∈ [0, 1], on a trained SmallCNN."""
    try:
        attack = build_attack(name, norm=norm, eps=EPS[norm], params=CHEAP[name])
    except ConfigError:
        assert name in ("fgsm", "mim") and norm == "L2"
        return
    x, y = pts[0][:8], pts[1][:8]
    x_adv = attack(clean_small_cnn, x, y, indices=torch.arange(8), seed=0)
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)
    assert float(size.max()) <= EPS[norm] + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert not clean_small_cnn.training


def test_autoattack_standard_parameters_match_pyautoattack():
    """Our builders use exactly the parameters pyautoattack's AutoAttack(version='standard') sets."""
    from pyautoattack import AutoAttack

    for norm, eps in (("Linf", 0.1), ("L2", 0.5)):
        aa = AutoAttack(nn.Linear(2, 2), norm=norm, eps=eps, version="standard", seed=0)
        assert aa.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
        ce = build_attack("apgd-ce", norm=norm, eps=eps, num_classes=10).build(nn.Identity(), "cpu", 0)
        t = build_attack("apgd-t", norm=norm, eps=eps, num_classes=10).build(nn.Identity(), "cpu", 0)
        fab = build_attack("fab-t", norm=norm, eps=eps, num_classes=10).build(nn.Identity(), "cpu", 0)
        sq = build_attack("square", norm=norm, eps=eps, num_classes=10).build(nn.Identity(), "cpu", 0)
        for ours, theirs in ((ce, aa.apgd), (t, aa.apgd_targeted)):
            for k in ("n_iter", "n_restarts", "eps", "norm", "eot_iter", "thr_decr", "use_largereps", "n_iter_2",
                      "n_iter_min", "size_decr"):
                assert getattr(ours, k) == getattr(theirs, k), k
        assert ce.loss == "ce" and t.n_target_classes == aa.apgd_targeted.n_target_classes == 9
        aa.fab.targeted = True  # AutoAttack sets these right before running FAB-T
        aa.fab.n_restarts = 1
        for k in ("norm", "n_restarts", "n_iter", "eps", "alpha_max", "eta", "beta", "targeted", "n_target_classes"):
            assert getattr(fab, k) == getattr(aa.fab, k), k
        for k in ("norm", "n_queries", "eps", "p_init", "n_restarts", "targeted", "loss", "rescale_schedule"):
            assert getattr(sq, k) == getattr(aa.square, k), k


def test_pgd_and_mim_are_torchattacks_updates(clean_small_cnn, pts):
    """Without a random start our PGD is bit-identical to torchattacks.PGD; MIM *is* torchattacks.MIFGSM."""
    import torchattacks

    x, y = pts[0][:8], pts[1][:8]
    ours = PGD(eps=0.05, steps=5, step_size=0.0125, start="none")(clean_small_cnn, x, y)
    theirs = torchattacks.PGD(clean_small_cnn, eps=0.05, alpha=0.0125, steps=5, random_start=False)(x, y)
    assert torch.equal(ours, theirs)
    mim = build_attack("mim", norm="Linf", eps=0.05, params={"steps": 5})(clean_small_cnn, x, y)
    ref = torchattacks.MIFGSM(clean_small_cnn, eps=0.05, alpha=0.0125, steps=5, decay=1.0)(x, y)
    assert torch.equal(mim, ref)


@pytest.mark.parametrize("name", ["pgd-5", "cw", "apgd-ce", "apgd-t", "fab-t", "square"])
def test_per_sample_results_do_not_depend_on_the_batch(name, mlp, pts):
    """A sample attacked alone-ish (batches of 5) or in one batch of 24: same random numbers, same result.
    Bit-identity of x_adv is not guaranteed (batch-size-dependent float kernels); the robust flags are."""
    x, y = pts
    attack = build_attack(name, norm="Linf", eps=0.08, params=CHEAP[name])
    idx = torch.arange(100, 124)  # any indices: the seeds come from them, not from the positions
    full = attack(mlp, x, y, indices=idx, seed=3)
    parts = torch.cat([attack(mlp, x[i:i + 5], y[i:i + 5], indices=idx[i:i + 5], seed=3) for i in range(0, 24, 5)])
    with torch.no_grad():
        assert torch.equal(mlp(full).argmax(1) == y, mlp(parts).argmax(1) == y)
    if name == "square":  # same per-point draws and shared stream → the same x_adv (up to float noise)
        assert torch.allclose(full, parts, atol=1e-5)
    other_seed = attack(mlp, x, y, indices=idx, seed=4)
    if name in ("pgd-5", "cw", "apgd-ce", "apgd-t", "square"):  # these draw random numbers: seed matters
        assert not torch.equal(other_seed, full)


def test_mim_and_cw_at_least_as_strong_as_fgsm(clean_small_cnn, fmnist_test):
    from generalist_bench.evaluation import evaluate

    r = evaluate(clean_small_cnn, eps=0.05, attacks="fgsm,mim,cw", n_examples=64, batch_size=64, progress=False)
    assert r.per_attack["mim"] <= r.per_attack["fgsm"]
    assert r.per_attack["cw"] <= r.per_attack["fgsm"]
    assert r.per_attack["cw"] < r.clean_acc  # the CW margin has a gradient on correctly classified points
