"""The pytest plugin, through pytester: registration, a missing baseline, an unchanged model, a degraded model,
--robust-update, a protocol mismatch, a corrupt or hand-edited baseline, tensors instead of a data set."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version

import pytest
import torch
from conftest import tiny_mlp

pytest_plugins = ["pytester"]

MODULE = textwrap.dedent('''
    import os
    import torch
    from torch import nn
    from generalist_bench.models import Normalize

    def load(name="GB_MODEL"):
        m = nn.Sequential(Normalize((0.5,), (0.5,)), nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
        m.load_state_dict(torch.load(os.environ[name], weights_only=True))
        return m.eval()

    def test_stays_robust(robust_regression):
        robust_regression(load(), dataset="fashion_mnist", eps=float(os.environ.get("GB_EPS", "0.05")),
                          attacks="apgd-ce", n=int(os.environ.get("GB_N", "60")))

    def test_tensors(robust_regression):
        from generalist_bench.data import load_dataset
        x, y = load_dataset("fashion_mnist", "test")
        robust_regression(load(), x=x[100:140], y=y[100:140], eps=0.05, attacks="apgd-ce")
''')


@pytest.fixture(scope="module")
def models(tmp_path_factory, fmnist_train):
    d = tmp_path_factory.mktemp("plugin_models")
    good = tiny_mlp(fmnist_train)
    torch.save(good.state_dict(), d / "good.pt")
    torch.manual_seed(1)
    untrained = copy.deepcopy(good)
    for m in untrained:  # another model of the same architecture: the good one's layers, re-initialised
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    torch.save(untrained.state_dict(), d / "bad.pt")
    return d / "good.pt", d / "bad.pt"


@pytest.fixture
def project(pytester, models, monkeypatch, one_thread):
    monkeypatch.setenv("GB_MODEL", str(models[0]))
    pytester.makepyfile(test_mine=MODULE)
    return pytester


def _baseline(pytester, name="test_stays_robust"):
    return pytester.path / "test_mine" / f"{name}.json"


def test_pytest_help_lists_the_option_in_a_fresh_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0 and "--robust-update" in out.stdout, out.stderr[-2000:]


def test_missing_baseline_fails_and_is_written_then_an_unchanged_model_passes(project):
    r = project.runpytest("-k", "stays_robust")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*no robust-accuracy baseline yet: wrote*test_stays_robust.json*"])
    rec = json.loads(_baseline(project).read_text())
    assert rec["protocol"]["n"] == 60 and rec["protocol"]["eps"] == 0.05
    assert [a["name"] for a in rec["protocol"]["attacks"]] == ["apgd-ce"]
    assert len(rec["flags"]["robust"]) == 60 and rec["versions"]["torch"] == version("torch")
    assert 0 < rec["robust_acc"] < rec["clean_acc"]
    project.runpytest("-k", "stays_robust").assert_outcomes(passed=1)


def test_degraded_model_fails_with_the_report_and_update_rerecords(project, models, monkeypatch):
    project.runpytest("-k", "stays_robust")  # writes the baseline
    before = _baseline(project).read_text()
    monkeypatch.setenv("GB_MODEL", str(models[1]))
    r = project.runpytest("-k", "stays_robust")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*ROBUST ACCURACY REGRESSION (tolerance 1 point(s) of n = 60)*",
                            "*protocol: fashion_mnist test split, first n points, n = 60, Linf eps = 0.05, "
                            "attacks: apgd-ce, seed 0, engine compact*",
                            "*clean  baseline*now*lost*gained*exact McNemar p =*",
                            "*robust baseline*now*",
                            "*points lost (positions in the evaluated points):*"])
    assert _baseline(project).read_text() == before  # a failing check never rewrites the baseline
    r = project.runpytest("-k", "stays_robust", "--robust-update")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*robust-accuracy baselines*", "*baseline re-recorded*"])
    assert _baseline(project).read_text() != before
    project.runpytest("-k", "stays_robust").assert_outcomes(passed=1)
    # back to the good model: an improvement passes and is reported
    monkeypatch.setenv("GB_MODEL", str(models[0]))
    r = project.runpytest("-k", "stays_robust")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*robust accuracy improved*"])


def test_protocol_mismatch_and_corrupt_or_edited_baselines_are_clear_errors(project, monkeypatch):
    project.runpytest("-k", "stays_robust")
    path = _baseline(project)
    good = path.read_text()
    monkeypatch.setenv("GB_EPS", "0.1")
    r = project.runpytest("-k", "stays_robust")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*protocol differs from its baseline*", "*eps: baseline 0.05, this call 0.1*"])
    monkeypatch.setenv("GB_EPS", "0.05")
    monkeypatch.setenv("GB_N", "50")
    project.runpytest("-k", "stays_robust").stdout.fnmatch_lines(["*n: baseline 60, this call 50*"])
    monkeypatch.delenv("GB_N")
    rec = json.loads(good)
    rec["robust_acc"] += 10  # hand-edited
    path.write_text(json.dumps(rec))
    r = project.runpytest("-k", "stays_robust")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*does not match its checksum: it was edited by hand or damaged*"])
    path.write_text(good[: len(good) // 2])  # truncated
    project.runpytest("-k", "stays_robust").stdout.fnmatch_lines(["*is not valid JSON*"])
    path.write_text(good)
    project.runpytest("-k", "stays_robust").assert_outcomes(passed=1)


def test_tensors_instead_of_a_data_set(project):
    project.runpytest("-k", "tensors").assert_outcomes(failed=1)
    rec = json.loads(_baseline(project, "test_tensors").read_text())
    assert rec["protocol"]["data"]["kind"] == "tensors" and rec["protocol"]["n"] == 40
    assert rec["protocol"]["data"]["source"].startswith("tensors sha256:")
    project.runpytest("-k", "tensors").assert_outcomes(passed=1)


def test_tolerance_in_flipped_points_and_bad_tolerances():
    from generalist_bench import regression as R

    def rec(clean, robust):
        return {"protocol": {"data": {"kind": "dataset", "dataset": "d", "split": "test"}, "n": len(clean),
                             "eps": 0.1, "norm": "Linf", "attacks": [{"name": "apgd-ce"}], "seed": 0,
                             "engine": "compact"},
                "flags": {"clean": clean, "robust": robust}, "versions": {"torch": "1"}}

    base = rec("1111111111", "1111100000")
    now = rec("1111111111", "1110100001")  # lost 1 (position 3), gained 1 (position 9): net 0
    o = R.compare(base, now, tolerance_flips=0)
    assert o.passed and not o.improved and o.comparisons[1].lost == (3,) and o.comparisons[1].gained == (9,)
    worse = rec("1111111111", "1100000000")  # net −3 robust points = 30 points of n = 10
    assert not R.compare(base, worse, tolerance_flips=2).passed
    assert R.compare(base, worse, tolerance_flips=3).passed
    assert not R.compare(base, worse).passed  # default: 1 point
    assert R.compare(base, worse).comparisons[1].mcnemar_p == pytest.approx(0.25)  # 3 discordant, all one way
    with pytest.raises(R.GeneralistBenchError, match="not both"):
        R.compare(base, now, tolerance_points=1, tolerance_flips=1)
    with pytest.raises(R.BaselineMismatchError, match="seed: baseline 0, this call 1"):
        R.compare(base, {**now, "protocol": {**now["protocol"], "seed": 1}})


def test_plugin_module_imports_nothing_heavy():
    code = "import sys, generalist_bench.pytest_plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "False", out.stderr[-2000:]
