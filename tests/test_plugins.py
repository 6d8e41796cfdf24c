"""Third-party plugins: a small distribution, installed with pip into a temporary directory during the test, adds
an attack, a suite and a model through entry points; they are listed by the CLI and run with per-sample seeding and
worst-case aggregation like the built-ins; a broken plugin is reported by name and breaks nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "gb-demo-plugin"
version = "0.1.0"

[project.entry-points."generalist_bench.attacks"]
demo = "gb_demo_plugin.attacks"
broken = "gb_demo_plugin.broken"

[project.entry-points."generalist_bench.suites"]
demo = "gb_demo_plugin.suites"

[project.entry-points."generalist_bench.models"]
demo = "gb_demo_plugin.models"

[tool.setuptools]
packages = ["gb_demo_plugin"]
"""

ATTACKS = '''
"""An adaptive attack of a third party: a random signed start, then PGD steps on the CE loss."""
import torch
import torch.nn.functional as F
from generalist_bench.attacks import register_attack, per_sample_rand


class NoisyPGD:
    def __init__(self, eps, steps=5):
        self.eps, self.steps, self.name = eps, steps, "demo-noisy-pgd"

    def __call__(self, model, x, y, *, indices=None, seed=0):
        idx = torch.arange(len(y)) if indices is None else indices
        delta = (per_sample_rand(tuple(x.shape), idx, seed, "demo") * 2 - 1) * self.eps
        xa = (x + delta).clamp(0, 1)
        for _ in range(self.steps):
            xa.requires_grad_(True)
            g, = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
            xa = (x + (xa.detach() + self.eps / 4 * g.sign() - x).clamp(-self.eps, self.eps)).clamp(0, 1)
        return xa.detach()

    def params(self):
        return {"impl": "gb_demo_plugin.attacks.NoisyPGD", "eps": self.eps, "steps": self.steps,
                "randomness": "start from (seed, index, 'demo')"}


@register_attack("demo-noisy-pgd", norms=("Linf",), source="gb-demo-plugin", description="demo adaptive attack",
                 randomness="per sample")
def build(*, norm, eps, num_classes, steps=5):
    return NoisyPGD(eps, steps)
'''

SUITES = '''
from generalist_bench.evaluation import register_suite


@register_suite("demo-adaptive", "individual", "APGD-CE and the demo plugin's attack")
def demo(norm):
    return ["natural", "pgd-5", "demo-noisy-pgd"]
'''

MODELS = '''
from torch import nn
from generalist_bench.models import register_model, Normalize


@register_model
def demo_mlp(num_classes=10, in_channels=1, mean=(0.5,), std=(0.5,), **kw):
    return nn.Sequential(Normalize(mean, std), nn.Flatten(), nn.Linear(784 * in_channels, 32), nn.ReLU(),
                         nn.Linear(32, num_classes))
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """gb-demo-plugin, built from source and installed by pip into a temporary directory."""
    src = tmp_path_factory.mktemp("plugin_src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    pkg = src / "gb_demo_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "attacks.py").write_text(ATTACKS)
    (pkg / "suites.py").write_text(SUITES)
    (pkg / "models.py").write_text(MODELS)
    (pkg / "broken.py").write_text("raise ImportError('the demo plugin is broken on purpose')\n")
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert list(target.glob("gb_demo_plugin-0.1.0.dist-info/entry_points.txt"))
    return target


def _run(site: Path, *argv: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", textwrap.dedent(code)] if code else [sys.executable, "-m", "generalist_bench", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def test_cli_lists_plugins_and_reports_the_broken_one_by_name(site):
    r = _run(site, "plugins")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "demo-noisy-pgd  [plugin demo: gb_demo_plugin.attacks (from gb-demo-plugin)]" in out
    assert "demo-adaptive  [plugin demo: gb_demo_plugin.suites (from gb-demo-plugin)]" in out
    assert "demo_mlp  [plugin demo: gb_demo_plugin.models (from gb-demo-plugin)]" in out
    assert "BROKEN plugin 'broken' (group generalist_bench.attacks): ImportError: the demo plugin is broken" in out
    assert "apgd-t" in out and "small_cnn" in out  # the built-ins are all there
    assert "plugin 'broken'" in r.stderr  # and it was warned about, by name


def test_plugin_attack_runs_in_a_suite_with_per_sample_seeding_and_worst_case(site, tmp_path):
    code = """
        import json, torch
        import generalist_bench as gb
        from generalist_bench.models import model_for_dataset
        torch.manual_seed(0)
        model = model_for_dataset("demo_mlp", "fashion_mnist")   # a plugin architecture
        x, y = gb.load_dataset("fashion_mnist", "train")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i in range(0, 4000, 100):
            loss = torch.nn.functional.cross_entropy(model(x[i:i + 100]), y[i:i + 100])
            opt.zero_grad(); loss.backward(); opt.step()
        model.eval()
        out = {}
        for bs in (7, 40):
            r = gb.evaluate(model, dataset="fashion_mnist", eps=0.1, suite="demo-adaptive", n_examples=40,
                            batch_size=bs, progress=False)
            out[bs] = {"per_attack": r.per_attack, "robust": r.robust_acc, "clean": r.clean_acc,
                       "flags": r.samples["attacks"], "robust_flags": r.samples["robust"],
                       "attacks": [a["name"] for a in r.protocol["attacks"]]}
        print(json.dumps(out))
    """
    r = _run(site, code=code)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    a, b = out["7"], out["40"]
    assert a["attacks"] == ["natural", "pgd-5", "demo-noisy-pgd"]
    assert a["flags"] == b["flags"] and a["robust_flags"] == b["robust_flags"]  # independent of the batch
    assert a["robust"] <= min(a["per_attack"]["pgd-5"], a["per_attack"]["demo-noisy-pgd"])  # worst case
    pgd = a["flags"]["pgd-5"]
    demo = a["flags"]["demo-noisy-pgd"]
    worst = "".join("1" if p == "1" and d == "1" else "0" for p, d in zip(pgd, demo, strict=True))
    assert a["robust_flags"] == worst
    assert a["per_attack"]["demo-noisy-pgd"] < a["clean"]  # the plugin's attack really attacks


def test_a_broken_plugin_does_not_break_the_built_ins(site):
    r = _run(site, "eval", "--help")
    assert r.returncode == 0
    code = """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            from generalist_bench.attacks import list_attacks
            from generalist_bench import plugins
            names = list_attacks()
        assert "apgd-ce" in names and "demo-noisy-pgd" in names, names
        assert list(plugins.broken("attacks")) == ["broken"]
        assert any("plugin 'broken'" in str(x.message) for x in w)
        print("OK")
    """
    r = _run(site, code=code)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_a_module_imported_again_re_registers_but_a_second_definition_is_refused():
    from generalist_bench.attacks.registry import _ATTACKS, register_attack

    def make():
        def builder(*, norm, eps, num_classes):
            return None
        return builder

    first, again = make(), make()  # the same definition (module and qualified name), as after a re-import
    try:
        register_attack("origin-test", norms=("Linf",), source="t", description="", randomness="")(first)
        register_attack("origin-test", norms=("Linf",), source="t", description="", randomness="")(again)
        assert _ATTACKS["origin-test"].builder is again

        def builder(*, norm, eps, num_classes):  # another definition under the taken name
            return None

        with pytest.raises(ValueError, match="already registered"):
            register_attack("origin-test", norms=("Linf",), source="t", description="", randomness="")(builder)
    finally:
        _ATTACKS.pop("origin-test", None)
