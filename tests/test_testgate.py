"""The test gate: a no-op without its variable; with it, the n-th arrival waits for its own go file."""

from __future__ import annotations

import threading
import time

from generalist_bench.utils import testgate


def test_gate_is_a_no_op_without_the_variable(monkeypatch):
    monkeypatch.delenv(testgate.ENV, raising=False)
    t0 = time.monotonic()
    testgate.gate("anything")
    assert time.monotonic() - t0 < 0.5


def test_gate_waits_for_its_own_go_file(monkeypatch, tmp_path):
    monkeypatch.setenv(testgate.ENV, str(tmp_path))
    monkeypatch.setattr(testgate, "_reached", {})
    passed = []
    worker = threading.Thread(target=lambda: [testgate.gate("p"), passed.append(1), testgate.gate("p"),
                                              passed.append(2)])
    worker.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "p.1.arrived").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    assert passed == []                    # waiting at gate 1
    (tmp_path / "p.1.go").touch()
    while not (tmp_path / "p.2.arrived").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert passed == [1]                   # through gate 1, waiting at gate 2
    (tmp_path / "p.2.go").touch()
    worker.join(30)
    assert passed == [1, 2]


def test_an_unreleased_gate_ends_the_process_after_its_timeout(monkeypatch, tmp_path):
    import pytest

    monkeypatch.setenv(testgate.ENV, str(tmp_path))
    monkeypatch.setenv(testgate.ENV + "_TIMEOUT", "0.2")
    monkeypatch.setattr(testgate, "_reached", {})
    monkeypatch.setattr(testgate, "_interrupted", [])
    with pytest.raises(SystemExit, match="not released in time"):
        testgate.gate("q")
