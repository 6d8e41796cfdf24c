"""The README's copy-paste examples run as written (with fewer points, for test time): the CI guard, an external
submission and a plugin."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

pytest_plugins = ["pytester"]


def blocks(heading: str, lang: str) -> list[str]:
    """The fenced ``lang`` blocks of the README section ``heading`` (up to the next ``## ``)."""
    start = README.index(f"## {heading}\n")
    end = README.find("\n## ", start + 1)
    section = README[start:end if end > 0 else None]
    found = re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)
    assert found, f"no {lang} block under '## {heading}'"
    return found


def test_guard_example(pytester, clean_small_cnn, fmnist_test, one_thread):
    code = blocks("Guard your model's robustness in CI", "python")[0]
    assert "n=500" in code
    code = code.replace("n=500", "n=20")  # the example as written, on 20 points
    torch.save(clean_small_cnn.state_dict(), pytester.path / "my_model.pt")
    torch.save((fmnist_test.x[:16], fmnist_test.y[:16]), pytester.path / "my_points.pt")
    pytester.makepyfile(test_robustness=code)
    pytester.runpytest().assert_outcomes(failed=2)  # no baselines yet: written
    assert (pytester.path / "test_robustness" / "test_my_model_stays_robust.json").exists()
    assert (pytester.path / "test_robustness" / "test_on_my_own_data.json").exists()
    pytester.runpytest().assert_outcomes(passed=2)


def test_submit_example(tmp_path, clean_small_cnn, monkeypatch, capsys, one_thread):
    from generalist_bench.cli import main as cli_main
    from generalist_bench.zoo import external

    monkeypatch.setattr(external, "QUICK_N", 200)
    cmd = blocks("Submit a model trained elsewhere", "bash")[0].replace("\\\n", " ")
    argv = shlex.split(cmd)
    assert argv[:2] == ["generalist-bench", "submit"]
    torch.save(clean_small_cnn.state_dict(), tmp_path / "their_model.pt")
    monkeypatch.chdir(tmp_path)
    assert cli_main([*argv[1:], "--n-examples", "8", "--no-progress"]) == 0
    card = json.loads((tmp_path / "model_zoo" / "fashion_mnist" / "Linf" / "TheirLab2026SmallCNN.json").read_text())
    assert card["trainer"] == "submitted" and card["venue"] == "ICML 2026"
    assert "TheirLab2026SmallCNN" in (tmp_path / "leaderboard" / "fashion_mnist_Linf_0.1.md").read_text()


def test_plugin_example(tmp_path, clean_small_cnn):
    toml = blocks("Write a plugin", "toml")[0]
    attacks, suites = blocks("Write a plugin", "python")
    src = tmp_path / "src"
    (src / "my_package").mkdir(parents=True)
    (src / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = '
                                        '"setuptools.build_meta"\n\n[project]\nname = "my-package"\nversion = "0.1"\n\n'
                                        + toml.split("\n", 1)[1] + '\n[tool.setuptools]\npackages = ["my_package"]\n')
    (src / "my_package" / "__init__.py").write_text("")
    (src / "my_package" / "attacks.py").write_text(attacks)
    (src / "my_package" / "suites.py").write_text(suites)
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(site), str(src)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = tmp_path / "ck.pt"
    torch.save(clean_small_cnn.state_dict(), ck)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "generalist_bench", "eval", "--checkpoint", str(ck), "--arch",
                        "small_cnn", "--dataset", "fashion_mnist", "--suite", "my-adaptive", "--n-examples", "10",
                        "--no-progress", "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [a["name"] for a in res["protocol"]["attacks"]] == ["natural", "apgd-ce", "my-attack"]
    assert res["robust_acc"] <= min(res["per_attack"]["apgd-ce"], res["per_attack"]["my-attack"])
    listing = subprocess.run([sys.executable, "-m", "generalist_bench", "plugins", "attacks"], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=300).stdout
    assert "my-attack  [plugin my_attacks: my_package.attacks (from my-package)]" in listing
