"""pytest plugin ``generalist_bench`` (entry point ``pytest11``): the ``robust_regression`` fixture.

    def test_my_model_stays_robust(robust_regression):
        robust_regression(load_my_model(), dataset="fashion_mnist", eps=0.1, attacks="apgd-ce,apgd-t", n=500)

The baseline lives beside the test, one JSON per test: ``<test dir>/<test module>/<test name>.json`` (the
pytest-regressions layout). No baseline yet: the test fails and writes one; commit it. ``--robust-update``
re-records every baseline it meets and passes. A regression fails with the report of
``generalist_bench.regression.compare``; an improvement passes and is reported in the terminal summary.

This module is imported by every pytest run in an environment where generalist-bench is installed, so it imports
nothing heavy (torch, the evaluation) until the fixture is used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

_REPORTS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("generalist_bench", "robust-accuracy regression (generalist-bench)")
    group.addoption("--robust-update", action="store_true", default=False,
                    help="re-record every robust_regression baseline the selected tests meet (and pass them)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REPORTS_KEY] = []


def baseline_path(request: pytest.FixtureRequest, basename: str | None = None) -> Path:
    module = Path(str(request.node.path))
    name = basename or re.sub(r"[^\w.-]+", "_", request.node.name)
    return module.parent / module.stem / f"{name}.json"


class RobustRegression:
    """The fixture's value: call it with a model and a protocol; returns the comparison's ``Outcome``."""

    def __init__(self, request: pytest.FixtureRequest):
        self.request = request
        self.update = bool(request.config.getoption("robust_update"))

    def __call__(self, model, *, dataset: str | None = None, x=None, y=None, eps: float, norm: str = "Linf",
                 attacks: Any = "apgd-ce,apgd-t", n: int | None = 500, seed: int = 0, split: str = "test",
                 tolerance_points: float | None = None, tolerance_flips: int | None = None,
                 basename: str | None = None, batch_size: int = 500, device: str = "cpu"):
        from . import regression as R

        path = baseline_path(self.request, basename)
        record = R.measure(model, dataset=dataset, x=x, y=y, eps=eps, norm=norm, attacks=attacks, n=n, seed=seed,
                           split=split, batch_size=batch_size, device=device)
        reports = self.request.config.stash[_REPORTS_KEY]
        if self.update:
            R.write_baseline(path, record)
            reports.append(f"{self.request.node.nodeid}: baseline re-recorded: {path}")
            return None
        if not path.exists():
            R.write_baseline(path, record)
            pytest.fail(f"no robust-accuracy baseline yet: wrote {path} (clean {record['clean_acc']:.2f}%, robust "
                        f"{record['robust_acc']:.2f}% on n = {record['protocol']['n']}); review and commit it, then "
                        "re-run", pytrace=False)
        try:
            baseline = R.read_baseline(path)
            outcome = R.compare(baseline, record, tolerance_points=tolerance_points, tolerance_flips=tolerance_flips,
                                path=path)
        except (R.BaselineFileError, R.BaselineMismatchError) as e:
            pytest.fail(str(e), pytrace=False)
        if not outcome.passed:
            pytest.fail(outcome.report, pytrace=False)
        if outcome.improved:
            reports.append(f"{self.request.node.nodeid}: {outcome.report}")
        return outcome


@pytest.fixture
def robust_regression(request: pytest.FixtureRequest) -> RobustRegression:
    """Compare a model's clean and robust accuracy with the baseline committed beside the test."""
    return RobustRegression(request)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    reports = config.stash.get(_REPORTS_KEY, [])
    if reports:
        terminalreporter.section("robust-accuracy baselines")
        for r in reports:
            terminalreporter.write_line(r)
