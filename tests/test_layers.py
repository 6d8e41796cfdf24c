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
