"""The evaluation harness: exactness against pyautoattack, determinism (batch size, shards, resume), the result
JSON, sanity checks, bad inputs and the CLI.

Heavy AutoAttack runs use a tiny MLP (its forward pass is ~100× cheaper than the SmallCNN's); the rest uses
the session's ``clean_small_cnn``. A full AutoAttack run of the SmallCNN against pyautoattack is marked slow.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from generalist_bench.errors import CheckpointError, ConfigError, ModelOutputError, UnknownNameError
from generalist_bench.evaluation import EvalResult, evaluate, merge_results, quick_eval

EPS = 0.03
N = 32


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def aa_result(mlp):
    """The standard AutoAttack suite on the MLP, first 32 test points, batches of 16."""
    return evaluate(mlp, eps=EPS, suite="autoattack", n_examples=N, batch_size=16, progress=False)


# cheap variants of the AutoAttack components (each still fools some points) for resume tests
WEAK = {"apgd-ce": {"n_iter": 1}, "apgd-t": {"n_iter": 1, "n_target_classes": 1},
        "fab-t": {"n_iter": 5, "n_target_classes": 2}, "square": {"n_queries": 150}}


# ------------------------------------------------------------------------------------------ helpers
def seeded_pyautoattack(model, x, eps, norm="Linf", seed=0):
    """pyautoattack.AutoAttack(version='standard') whose random starts are ours.

    Upstream draws each batch's random numbers after ``torch.manual_seed(seed)``; to compare per-sample flags
    we give the direct call the same per-sample starts as the harness. The instances keep all their
    attributes and code; only their class becomes the ``Seeded*`` subclass, which (a) passes APGD a per-sample
    ``x_init`` computed by upstream's own start formula and (b) reroutes Square's per-point draws. The points'
    indices are recovered by looking the rows up (upstream does not pass them down).
    """
    from pyautoattack import AutoAttack

    from generalist_bench.evaluation.autoattack.apgd import SeededAPGD, SeededAPGDTargeted
    from generalist_bench.evaluation.autoattack.square import SeededSquare

    lookup = {x[i].numpy().tobytes(): i for i in range(len(x))}
    assert len(lookup) == len(x), "test points must be distinct images"

    def rows(xb):
        return torch.tensor([lookup[r.numpy().tobytes()] for r in xb.detach().cpu()])

    aa = AutoAttack(model, norm=norm, eps=eps, version="standard", seed=seed, device="cpu")
    for attr, cls, tag in (("apgd", SeededAPGD, "apgd-ce"), ("apgd_targeted", SeededAPGDTargeted, "apgd-t"),
                           ("square", SeededSquare, "square")):
        obj = getattr(aa, attr)
        obj.__class__ = cls
        obj.ps_seed, obj.ps_tag, obj.row_indices = seed, tag, rows
    return aa


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def run_pyautoattack(aa, x, y, batch_size):
    """Upstream's per-sample robust flags and its logged cumulative accuracy after each attack (percent)."""
    logger = logging.getLogger("auto-attack")
    h, old = _Records(), logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    try:
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    after = {}
    for line in h.lines:
        m = re.match(r"robust accuracy after (\S+): ([\d.]+)%", line)
        if m:
            after[m.group(1).lower()] = float(m.group(2))
    return (y_adv == y), after


# ------------------------------------------------------------------------------------------ exactness
def test_autoattack_suite_equals_pyautoattack(mlp, aa_result, fmnist_test):
    x, y = fmnist_test.x[:N], fmnist_test.y[:N]
    flags, after = run_pyautoattack(seeded_pyautoattack(mlp, x, EPS), x, y, batch_size=16)
    assert torch.equal(aa_result.flags("robust"), flags)
    assert aa_result.robust_acc == pytest.approx(100.0 * flags.float().mean().item())
    for name, acc in after.items():  # upstream logs with two decimals
        assert aa_result.per_attack[name] == pytest.approx(acc, abs=0.006)
    assert aa_result.clean_acc > aa_result.per_attack["apgd-ce"] > 0  # the test is not vacuous


def test_weakened_chain_equals_pyautoattack_at_every_stage(mlp, fmnist_test):
    """Weak APGDs leave points for FAB-T to fool; every stage still matches upstream."""
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    x, y = fmnist_test.x[:N], fmnist_test.y[:N]
    ours = evaluate(mlp, eps=0.05, n_examples=N, batch_size=16, progress=False, attack_params=WEAK)
    assert ours.protocol["suite"] == "autoattack-custom"
    aa = seeded_pyautoattack(mlp, x, 0.05)
    log = logging.getLogger("auto-attack")
    for attr, cls in (("apgd", APGDAttack), ("apgd_targeted", APGDAttack_targeted)):  # rebuild with 1 iteration
        old = getattr(aa, attr)
        kw = {"n_target_classes": 1} if attr == "apgd_targeted" else {}
        new = cls(mlp, n_iter=1, norm="Linf", n_restarts=1, eps=0.05, seed=0, rho=.75, device="cpu", logger=log, **kw)
        new.__class__ = type(old)
        new.ps_seed, new.ps_tag, new.row_indices = old.ps_seed, old.ps_tag, old.row_indices
        setattr(aa, attr, new)
    aa.fab.n_iter, aa.fab.n_target_classes, aa.square.n_queries = 5, 2, 150
    flags, after = run_pyautoattack(aa, x, y, batch_size=16)
    assert torch.equal(ours.flags("robust"), flags)
    assert len(after) == 4
    for name, acc in after.items():
        assert ours.per_attack[name] == pytest.approx(acc, abs=0.006)
    cum = ours.autoattack["cumulative"]
    assert cum["clean"] > cum["apgd-ce"] and cum["apgd-t"] > cum["fab-t"]  # FAB-T fooled points too


def test_square_and_fab_equal_pyautoattack_custom(mlp, fmnist_test):
    """Square (which fools points here) and FAB-T against upstream's driver (version='custom', cumulative).
    Ours runs each on every correct point (individual); by per-sample independence the conjunction equals
    upstream's cumulative flags."""
    x, y = fmnist_test.x[:N], fmnist_test.y[:N]
    ours = evaluate(mlp, eps=0.05, n_examples=N, batch_size=16, progress=False,
                    attacks=[("square", {"n_queries": 300}), ("fab-t", {"n_iter": 10, "n_target_classes": 3})])
    from pyautoattack import AutoAttack

    from generalist_bench.evaluation.autoattack.square import SeededSquare

    aa = seeded_pyautoattack(mlp, x, 0.05)
    custom = AutoAttack(mlp, norm="Linf", eps=0.05, version="custom", attacks=["square", "fab-t"], seed=0)
    custom.square = aa.square
    assert type(custom.square) is SeededSquare
    custom.square.n_queries, custom.fab.n_iter, custom.fab.n_target_classes = 300, 10, 3
    flags, after = run_pyautoattack(custom, x, y, batch_size=16)
    assert ours.per_attack["square"] == pytest.approx(after["square"], abs=0.006)
    assert ours.per_attack["square"] < ours.clean_acc  # Square fooled points
    assert torch.equal(ours.flags("robust"), flags)


@pytest.mark.slow
def test_autoattack_suite_equals_pyautoattack_smallcnn(clean_small_cnn, fmnist_test):
    x, y = fmnist_test.x[:16], fmnist_test.y[:16]
    ours = evaluate(clean_small_cnn, eps=EPS, n_examples=16, batch_size=16, progress=False)
    flags, _ = run_pyautoattack(seeded_pyautoattack(clean_small_cnn, x, EPS), x, y, batch_size=16)
    assert torch.equal(ours.flags("robust"), flags)


def test_paper_style_autoattack_entry_is_the_chain(mlp, aa_result):
    """In individual mode the 'autoattack' entry reuses each component's per-sample results: same flags as the
    cumulative suite (a point's attack does not depend on which other points are attacked with it)."""
    r = evaluate(mlp, eps=EPS, attacks="apgd-ce,apgd-t,autoattack", n_examples=N, batch_size=16, progress=False)
    assert r.per_attack_mode == "individual"
    assert r.per_attack["autoattack"] == aa_result.robust_acc
    assert r.autoattack["cumulative"] == aa_result.autoattack["cumulative"]
    assert torch.equal(r.flags("robust"), aa_result.flags("robust"))
    assert r.per_attack["apgd-ce"] >= aa_result.per_attack["apgd-ce"]
    # each component ran on every correctly classified point: individual accuracy ≥ the cumulative one
    assert r.per_attack["apgd-t"] >= aa_result.per_attack["apgd-t"]


# ------------------------------------------------------------------------------------------ determinism
def test_batch_size_does_not_change_results(mlp, aa_result):
    r = evaluate(mlp, eps=EPS, suite="autoattack", n_examples=N, batch_size=5, progress=False)
    for name in ("clean", "robust"):
        assert torch.equal(r.flags(name), aa_result.flags(name))
    assert r.samples["attacks"] == aa_result.samples["attacks"]
    assert r.per_attack == aa_result.per_attack


def test_batch_size_does_not_change_results_smallcnn(clean_small_cnn):
    kw = dict(eps=0.05, attacks=["pgd-10", "cw", "mim", ("apgd-t", {"n_iter": 10, "n_target_classes": 3}),
                                 ("square", {"n_queries": 100})], n_examples=24, progress=False)
    a = evaluate(clean_small_cnn, batch_size=8, **kw)
    b = evaluate(clean_small_cnn, batch_size=24, **kw)
    assert a.samples["attacks"] == b.samples["attacks"] and a.per_attack == b.per_attack
    # torchattacks re-enters train mode if it finds the model in train mode: dropout must never be on
    assert a.sanity["ok"] and all(s.get("train_mode_forwards", 0) == 0 for s in a.attack_stats.values())


def test_shards_merge_to_the_unsharded_result(mlp, aa_result):
    parts = [evaluate(mlp, eps=EPS, n_examples=N, batch_size=16, shard=(k, 3), progress=False) for k in (2, 0, 1)]
    assert [p.n_examples for p in parts] == [11, 10, 11] and parts[0].protocol["shard"] == [2, 3]
    merged = merge_results([p.to_dict() for p in parts])
    assert merged.samples == aa_result.samples
    for key in ("clean_acc", "robust_acc", "per_attack", "autoattack", "n_examples"):
        assert getattr(merged, key) == getattr(aa_result, key), key
    assert merged.protocol["shard"] is None and len(merged.protocol["merged_from"]) == 3
    with pytest.raises(ConfigError, match="complete set"):
        merge_results(parts[:2])
    other = evaluate(mlp, eps=0.04, n_examples=N, batch_size=16, shard=(1, 3), progress=False,
                     attacks="fgsm")
    with pytest.raises(ConfigError, match="different protocols"):
        merge_results([parts[0], other, parts[2]])


def test_resume_after_interruption(mlp, tmp_path, monkeypatch):
    from generalist_bench.evaluation import api

    state = tmp_path / "run.state.json"
    kw = dict(eps=0.05, n_examples=N, batch_size=4, attack_params=WEAK, progress=False)
    batches_full = []
    full = evaluate(mlp, callback=batches_full.append, **kw)

    class Boom(Exception):
        pass

    seen = []

    def interrupt(info):
        seen.append(info)
        if len(seen) == 3:
            raise Boom

    with pytest.raises(Boom):
        evaluate(mlp, state_path=state, callback=interrupt, **kw)
    saved = json.loads(state.read_text())
    assert saved["atoms"]["apgd-ce"]["flags"].count(".") < N  # progress was saved batch by batch
    resumed_batches = []
    resumed = evaluate(mlp, state_path=state, callback=resumed_batches.append, **kw)
    assert resumed.samples == full.samples and resumed.per_attack == full.per_attack
    assert len(resumed_batches) == len(batches_full) - 3  # finished batches were not redone
    assert resumed.protocol["sessions"] == 2
    # the same arguments once more, from other code: nothing left to do, and the result is still the recorded
    # sessions' (their commit, count and time), the state file untouched
    saved = state.read_bytes()
    again = []
    monkeypatch.setattr(api, "git_commit", lambda: "a-later-commit")
    reloaded = evaluate(mlp, state_path=state, callback=again.append, **kw)
    assert again == [] and reloaded.samples == full.samples
    assert reloaded.protocol["sessions"] == 2 and reloaded.protocol["git_commit"] == resumed.protocol["git_commit"]
    assert resumed.protocol["git_commit"] != "a-later-commit" and reloaded.wall_time_s == resumed.wall_time_s
    assert state.read_bytes() == saved
    # different arguments → a clear error naming the difference
    with pytest.raises(ConfigError, match="eps"):
        evaluate(mlp, state_path=state, **{**kw, "eps": 0.06})
    with pytest.raises(ConfigError, match="model_sha256"):
        evaluate(tiny_mlp_like(mlp), state_path=state, **kw)


def tiny_mlp_like(model):
    m = copy.deepcopy(model)
    with torch.no_grad():
        m[-1].bias.add_(0.01)
    return m


# ------------------------------------------------------------------------------------------ result JSON
def test_result_json_schema(aa_result, tmp_path):
    d = json.loads(aa_result.to_json())
    for key in ("protocol", "clean_acc", "robust_acc", "per_attack", "n_examples", "sanity", "wall_time_s"):
        assert key in d
    assert isinstance(d["clean_acc"], float) and 0 <= d["robust_acc"] <= d["clean_acc"] <= 100
    assert d["n_examples"] == N and d["per_attack_mode"] == "cumulative"
    assert list(d["per_attack"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert d["per_attack"]["square"] == d["robust_acc"] == d["autoattack"]["robust_acc"]
    p = d["protocol"]
    for key in ("suite", "dataset", "split", "index_rule", "n_examples", "norm", "eps", "attacks", "seed",
                "batch_size", "device", "dtype", "versions", "git_commit", "model_sha256", "engine", "exact",
                "protocol_doc"):
        assert key in p, key
    assert (Path(__file__).parents[1] / p["protocol_doc"]).is_file()  # the definitions live there, not in the file
    assert not [k for k, v in p.items() if isinstance(v, str) and len(v) > 200 and k != "data_source"]
    assert (p["suite"], p["dataset"], p["split"], p["index_rule"], p["norm"], p["eps"], p["dtype"]) == (
        "autoattack", "fashion_mnist", "test", "first_n", "Linf", EPS, "float32")
    assert [a["name"] for a in p["attacks"]] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert p["attacks"][1]["params"]["n_target_classes"] == 9 and p["attacks"][3]["params"]["n_queries"] == 5000
    assert p["versions"]["pyautoattack"] == "0.2.0"
    for name in ("apgd-ce", "apgd-t", "fab-t", "square"):
        s = d["attack_stats"][name]
        assert s["wall_time_s"] > 0 and s["forward_images"] > 0
    assert d["attack_stats"]["apgd-ce"]["backward_images"] > 0 and d["attack_stats"]["square"]["backward_images"] == 0
    assert d["sanity"]["ok"] and d["sanity"]["robust_le_clean"] and d["sanity"]["worst_le_each_attack"]
    assert d["sanity"]["perturbation"]["apgd-ce"]["max_norm"] <= EPS + 1e-6
    assert "batch_invariance" in d["sanity"] and "autoattack_checks" in d["sanity"]
    back = EvalResult.from_dict(d)
    assert back == aa_result and back.to_dict() == d
    with pytest.raises(ConfigError, match="unknown evaluation result key"):
        EvalResult.from_dict({**d, "bogus": 1})


def test_sanity_checks_and_quick_eval(clean_small_cnn, fmnist_test):
    r = evaluate(clean_small_cnn, eps=0.05, suite="quick", n_examples=48, batch_size=48, progress=False,
                 check_eps0=True, check_large_eps=True)
    assert r.sanity["ok"], r.sanity["violations"]
    assert r.sanity["eps0"]["ok"] and r.sanity["eps0"]["robust_acc"] == r.clean_acc
    assert r.sanity["large_eps"]["robust_acc"] <= 5.0
    assert r.robust_acc == r.per_attack["pgd-20"] < r.per_attack["natural"] == r.clean_acc
    # quick_eval (the trainer's validation) gives the quick suite's numbers for the same points
    clean, robust = quick_eval(clean_small_cnn, fmnist_test.x[:48], fmnist_test.y[:48], eps=0.05, batch_size=20)
    assert (clean, robust) == (r.clean_acc, r.robust_acc)
    assert quick_eval(clean_small_cnn, fmnist_test.x[:48], fmnist_test.y[:48], eps=0.0)[1] == clean


def test_model_mode_and_requires_grad_are_restored(mlp):
    m = copy.deepcopy(mlp).train()
    m[2].weight.requires_grad_(False)
    evaluate(m, eps=EPS, attacks="pgd-3", n_examples=8, batch_size=8, progress=False)
    assert all(mod.training for mod in m.modules())
    assert [p.requires_grad for p in m.parameters()] == [False, True, True, True]


def test_index_rule_random_and_l2(mlp):
    r = evaluate(mlp, threat_model="L2", eps=1.0, n_examples=16, batch_size=16, index_rule="random", sample_seed=7,
                 attacks=["pgd-5", ("apgd-ce", {"n_iter": 10}), ("fab-t", {"n_iter": 5}),
                          ("square", {"n_queries": 100})], progress=False)
    idx = r.indices
    assert len(idx) == 16 and idx.max() > 16 and torch.equal(idx, idx.sort().values)
    assert r.protocol["sample_seed"] == 7 and r.protocol["norm"] == "L2"
    assert r.sanity["ok"] and all(p["max_norm"] <= 1.0 + 1e-6 for p in r.sanity["perturbation"].values())
    again = evaluate(mlp, threat_model="l2", eps=1.0, n_examples=16, batch_size=16, index_rule="random",
                     sample_seed=7, attacks="pgd-5", progress=False)
    assert torch.equal(again.indices, idx)


def test_autoattack_checks_are_recorded(mlp):
    class Noisy(nn.Module):  # a randomised defence: pyautoattack's check_randomized must flag it
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x) + 0.5 * torch.randn(x.shape[0], 10)

    from generalist_bench.evaluation.checks import autoattack_precheck, capture_autoattack_warnings

    # evaluate() refuses randomised models outright (tests/test_reliability.py); the capture of pyautoattack's
    # own findings, which end up in sanity.autoattack_checks, is checked on the precheck directly
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with capture_autoattack_warnings() as cap:
        autoattack_precheck(Noisy(mlp), x, y, ("apgd-ce",), 9)
    assert any("randomized defense" in m for m in cap.messages)


def test_progress_lines(mlp, capsys):
    evaluate(mlp, eps=EPS, attacks="pgd-2", n_examples=8, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "[eval] pgd-2: 4/" in err and "robust" in err and "acc" in err
    evaluate(mlp, eps=EPS, attacks="pgd-2", n_examples=8, batch_size=4, progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ bad input
class _Out(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.lin = nn.Linear(784, 10)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.lin(x.flatten(1)))


@pytest.mark.parametrize("model, match", [
    (_Out(lambda z: z.softmax(1)), "probabilities"),
    (_Out(lambda z: z[:, :7]), "7 logits per image but fashion_mnist has 10"),
    (_Out(lambda z: z * float("nan")), "NaN"),
    (_Out(lambda z: z.sum(1)), "shape"),
    (nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), "fails on fashion_mnist inputs of shape"),
])
def test_bad_models_raise_model_output_error(model, match):
    with pytest.raises(ModelOutputError, match=match):
        evaluate(model, eps=EPS, attacks="fgsm", n_examples=4, batch_size=4, progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"eps": -0.1}, ConfigError, "eps must be ≥ 0"),
    ({"eps": 1.5}, ConfigError, "Linf eps must be ≤ 1"),
    ({"eps": None, "threat_model": "L2"}, ConfigError, "needs an explicit eps"),
    ({"threat_model": "L7"}, UnknownNameError, "valid threat models: L2, Linf"),
    ({"attacks": "pgd-20,nope"}, UnknownNameError, "unknown attack 'nope'; valid attacks: apgd-ce"),
    ({"suite": "paperr", "attacks": None}, UnknownNameError, "valid suites: autoattack, paper, quick"),
    ({"batch_size": 0}, ConfigError, "batch_size"),
    ({"shard": (3, 3)}, ConfigError, "shard"),
    ({"attack_params": {"square": {"n_queries": 1}}}, ConfigError, "not in the plan"),
])
def test_bad_arguments(mlp, kwargs, error, match):
    base = dict(eps=EPS, attacks="fgsm", n_examples=4, batch_size=4, progress=False)
    with pytest.raises(error, match=match):
        evaluate(mlp, **{**base, **kwargs})


def test_violated_invariant_is_loud(mlp):
    """An attack that leaves the eps-ball is caught: a warning, ``sanity.ok`` False, or an error with strict."""
    from generalist_bench.attacks.registry import ATTACKS, register_attack
    from generalist_bench.evaluation import SanityCheckError

    class Cheat:
        def __call__(self, model, x, y, *, indices=None, seed=0):
            return (x + 0.2).clamp(0, 1)

        def params(self):
            return {}

    register_attack("test-cheat", norms=("Linf",), source="tests", description="", randomness="none")(
        lambda **kw: Cheat())
    try:
        with pytest.warns(RuntimeWarning, match="outside the Linf ball"):
            r = evaluate(mlp, eps=EPS, attacks="test-cheat", n_examples=8, batch_size=8, progress=False)
        assert not r.sanity["ok"] and r.sanity["perturbation"]["test-cheat"]["n_outside_ball"] > 0
        with pytest.raises(SanityCheckError, match="outside the Linf ball"):
            evaluate(mlp, eps=EPS, attacks="test-cheat", n_examples=8, batch_size=8, progress=False, strict=True)
    finally:
        ATTACKS.unregister("test-cheat")


def test_half_precision_model_is_refused(mlp):
    with pytest.raises(ConfigError, match="float32"):
        evaluate(copy.deepcopy(mlp).half(), eps=EPS, attacks="fgsm", n_examples=4, progress=False)


def test_default_eps_and_suites():
    from generalist_bench.evaluation.api import resolve_eps
    from generalist_bench.evaluation.suites import list_suites, resolve_plan

    assert resolve_eps(None, "Linf", "fashion_mnist") == 0.1
    assert list_suites() == ["autoattack", "paper", "quick"]
    paper = resolve_plan("paper", None, norm="Linf", eps=0.1, num_classes=10)
    assert paper.entries == ("natural", "pgd-20", "pgd-100", "mim", "cw", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t",
                             "square", "autoattack")
    assert paper.mode == "individual" and paper.attacks["pgd-100"].pgd.steps == 100
    assert "mim" not in resolve_plan("paper", None, norm="L2", eps=0.5, num_classes=10).entries


# ------------------------------------------------------------------------------------------ CLI
def test_cli_help(capsys):
    from generalist_bench.cli import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--checkpoint", "--robustbench", "--suite", "--attacks", "--resume", "--shard", "--merge"):
        assert flag in out


def test_cli_runs_resumes_and_merges(clean_small_cnn, tmp_path, capsys):
    from generalist_bench.cli import main

    ckpt = tmp_path / "m.pt"
    torch.save({"state_dict": clean_small_cnn.state_dict()}, ckpt)
    out = tmp_path / "r.json"
    args = ["eval", "--checkpoint", str(ckpt), "--arch", "small_cnn", "--attacks", "fgsm,pgd-3", "--eps", "8/255",
            "--n-examples", "12", "--batch-size", "6", "--no-progress"]
    assert main(args + ["--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["protocol"]["eps"] == pytest.approx(8 / 255) and d["n_examples"] == 12
    assert set(d["per_attack"]) == {"fgsm", "pgd-3"} and (tmp_path / "r.json.state.json").exists()
    assert "fgsm" in capsys.readouterr().out
    assert main(args + ["--out", str(out), "--resume"]) == 0
    assert json.loads(out.read_text())["samples"] == d["samples"]
    for k in (0, 1):
        assert main(args + ["--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}.json")]) == 0
    merged = tmp_path / "merged.json"
    assert main(["eval", "--merge", str(tmp_path / "s1.json"), str(tmp_path / "s0.json"), "--out", str(merged)]) == 0
    assert json.loads(merged.read_text())["samples"] == d["samples"]


def test_cli_checkpoint_errors(clean_small_cnn, tmp_path, capsys):
    from generalist_bench.cli import main

    good = tmp_path / "good.pt"
    torch.save(clean_small_cnn.state_dict(), good)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pt").write_bytes(bytes(range(256)) * 64)
    torch.save(clean_small_cnn, tmp_path / "module.pt")
    sd = dict(clean_small_cnn.state_dict())
    sd.pop("classifier.6.bias")
    torch.save(sd, tmp_path / "keys.pt")
    for name, match in (("trunc", "truncated or corrupted"), ("garbage", "truncated or corrupted"),
                        ("module", "pickled Python objects"),
                        ("keys", "does not fit architecture 'small_cnn'.*missing keys"), ("absent", "does not exist")):
        argv = ["eval", "--checkpoint", str(tmp_path / f"{name}.pt"), "--arch", "small_cnn", "--attacks", "fgsm",
                "--n-examples", "4", "--no-progress"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert re.search(match, err) and err.count("\n") == 1, err
    from generalist_bench.evaluation.loading import load_checkpoint

    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(good, "small_cnn", "cifar10")
    assert main(["eval", "--checkpoint", str(good), "--attacks", "fgsm"]) == 2
    assert "--checkpoint needs --arch" in capsys.readouterr().err
    assert main(["eval", "--robustbench", "Carmon2019Unlabeled", "--attacks", "fgsm"]) == 2
    assert "cifar10 and cifar100 only" in capsys.readouterr().err
    assert main(["eval", "--model", "zoo:no-such-model", "--model-dir", str(tmp_path), "--attacks", "fgsm"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["eval", "--attacks", "fgsm"]) == 2
    assert "give exactly one of" in capsys.readouterr().err


def test_evaluate_with_a_spec_equals_the_keyword_form_and_its_steps(mlp, one_thread):
    """evaluate(model, EvalSpec(...)) is the keyword form; plan_evaluation → run_plan → report give the same result;
    a bad spec is refused when it is built."""
    from generalist_bench.evaluation import EvalSpec, plan_evaluation, report, run_plan
    from generalist_bench.evaluation.loop import EvalState

    spec = EvalSpec(dataset="fashion_mnist", eps=0.05, attacks="pgd-5,apgd-ce", n_examples=30, batch_size=8)
    a = evaluate(mlp, spec, progress=False)
    b = evaluate(mlp, dataset="fashion_mnist", eps=0.05, attacks="pgd-5,apgd-ce", n_examples=30, batch_size=8,
                 progress=False)
    plan = plan_evaluation(mlp, spec)
    state = EvalState.load_or_new(None, plan.key, plan.split_indices, plan.attacks.atoms)
    run_plan(mlp, plan, state, progress=False)
    c = report(plan, state)
    for r in (b, c):
        assert r.samples == a.samples and r.per_attack == a.per_attack and r.robust_acc == a.robust_acc
    assert plan.protocol["n_examples"] == 30 and plan.eps == 0.05 and len(plan.x) == 30
    with pytest.raises(ConfigError, match="batch_size"):
        EvalSpec(batch_size=0)
    with pytest.raises(UnknownNameError, match="evaluation engine"):
        EvalSpec(engine="turbo")
    with pytest.raises(ConfigError, match="eps is required"):
        EvalSpec(x=torch.zeros(1, 1, 28, 28), y=torch.zeros(1, dtype=torch.long))
