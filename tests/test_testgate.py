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


def test_an_interrupt_right_after_the_arrival_marker_still_disarms_later_gates(monkeypatch, tmp_path):
    """A test interrupts as soon as it sees ``<point>.<n>.arrived``; on a busy machine the signal can land before
    the wait loop starts. The cleanup code that saves state on the way out reaches the gate again: it must return
    at once, not wait for a go file nobody will write (a CI run hung here for 60 s)."""
    import pytest

    monkeypatch.setenv(testgate.ENV, str(tmp_path))
    monkeypatch.setenv(testgate.ENV + "_TIMEOUT", "2")
    monkeypatch.setattr(testgate, "_reached", {})
    monkeypatch.setattr(testgate, "_interrupted", [])
    real_touch = testgate.Path.touch

    def touch_then_signal(self, *a, **kw):
        real_touch(self, *a, **kw)
        if self.name.endswith(".arrived"):
            raise KeyboardInterrupt  # what Ctrl-C delivered just after the marker was written looks like

    monkeypatch.setattr(testgate.Path, "touch", touch_then_signal)
    with pytest.raises(KeyboardInterrupt):
        testgate.gate("r")
    assert (tmp_path / "r.1.arrived").exists()
    monkeypatch.setattr(testgate.Path, "touch", real_touch)
    t0 = time.monotonic()
    testgate.gate("r")  # the cleanup's gate: disarmed (before the fix: waited, then SystemExit after 2 s)
    assert time.monotonic() - t0 < 1.0 and not (tmp_path / "r.2.arrived").exists()
