"""The package's layers: attacks/ imports nothing from evaluation/ (AutoAttack's components live under
evaluation/autoattack/ and reach the attack registry through generalist_bench.plugins)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "generalist_bench"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, statically or through importlib with a literal name, made absolute."""
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level] if node.level else ()
            mod = ".".join((*base, node.module)) if node.module else ".".join(base)
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(
                "generalist_bench."):
            out.add(node.value)
    return out


def test_attacks_import_nothing_from_evaluation():
    offenders = {str(p.relative_to(PKG)): sorted(m for m in _imports(p) if m.startswith("generalist_bench.evaluation"))
                 for p in (PKG / "attacks").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_relative_and_absolute_imports(tmp_path):
    assert "generalist_bench.evaluation.fastpath" in _imports(PKG / "evaluation" / "autoattack" / "compact.py")
    assert "generalist_bench.attacks.base" in _imports(PKG / "evaluation" / "autoattack" / "apgd.py")


def test_autoattack_components_are_registered_through_the_plugin_loader():
    from generalist_bench import plugins
    from generalist_bench.attacks import get_attack_info

    assert "generalist_bench.evaluation.autoattack" in plugins.BUILTIN["attacks"]
    assert get_attack_info("apgd-t").source == "pyautoattack"


def test_the_model_call_is_the_one_interface_attacks_get():
    """An attack gets a ``ModelCall``: logits with or without a graph by autograd's rule, passes counted, precision
    switched explicitly (a no-op without a search precision), and nothing found by walking wrappers."""
    import pytest
    import torch
    import torch.nn as nn

    from generalist_bench.attacks.model_call import ModelCall
    from generalist_bench.evaluation import fastpath

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    call = ModelCall(net)
    assert not call.training and not call.can_search
    x = torch.rand(5, 1, 2, 2)
    with torch.no_grad():
        assert torch.equal(call(x), net(x)) and not call(x).requires_grad
    xg = x.clone().requires_grad_()
    g, = torch.autograd.grad(call(xg).sum(), xg)
    assert g.shape == x.shape
    assert call.snapshot() == {"forward_calls": 3, "forward_images": 15, "backward_calls": 1, "backward_images": 5,
                               "train_mode_forwards": 0}
    with call.precision("search"):
        assert not call.searching  # no search precision: exact calls
    with pytest.raises(ValueError, match="precision 'half'"):
        with call.precision("half"):
            pass

    # torchattacks' mode handling (record .training, .eval(), restore .train() if it was training) keeps eval
    given = call.training
    call.eval()
    if given:
        call.train()
    assert not net.training
    call.train()  # an attack that switches to train mode reaches the model and is counted by the tripwire
    call(x)
    assert net.training and call.counts["train_mode_forwards"] == 1
    net.eval()

    searcher = fastpath.ModelRunner(net, search_model=fastpath.SearchModel(net, "float32"))
    outer = ModelCall(searcher)  # a wrapper around a model call is just a model: its precision is not found
    with fastpath.search(outer):
        assert not fastpath.is_searching(outer) and not searcher.searching
    with fastpath.search(searcher):
        assert fastpath.is_searching(searcher)
