"""A rendezvous for tests that interrupt a run at a point they choose, never at a time.

With ``$GENERALIST_BENCH_TEST_GATE=DIR`` set, the n-th time a process reaches ``gate(point)`` it creates
``DIR/<point>.<n>.arrived`` and waits until ``DIR/<point>.<n>.go`` exists. A test can then interrupt or kill it
there, or release it and strike a moment later (the process cannot get past the next gate meanwhile). Without
the variable, ``gate`` returns at once. A gate not released within ``$GENERALIST_BENCH_TEST_GATE_TIMEOUT`` seconds
(default 600) ends the process, so a crashed test leaves no process waiting forever.

Points: ``eval-state-saved`` (after every evaluation state write) and
``train-checkpoint-saved`` (after every epoch's checkpoint).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "GENERALIST_BENCH_TEST_GATE"
_reached: dict[str, int] = {}
_interrupted: list[BaseException] = []  # once a wait was interrupted (Ctrl-C), gates no longer wait: cleanup code
                                        # that saves state on the way out must not block the exit


def gate(point: str) -> None:
    root = os.environ.get(ENV)
    if not root or _interrupted:
        return
    n = _reached[point] = _reached.get(point, 0) + 1
    go = Path(root, f"{point}.{n}.go")
    deadline = time.monotonic() + float(os.environ.get(ENV + "_TIMEOUT", "600"))
    try:  # from the arrival marker on: a test may interrupt as soon as it sees it, even before the wait begins
        Path(root, f"{point}.{n}.arrived").touch()
        while not go.exists():
            if time.monotonic() > deadline:  # the test that drove this process is gone: do not hang forever
                raise SystemExit(f"test gate {point} #{n} was not released in time")
            time.sleep(0.01)
    except BaseException as e:
        _interrupted.append(e)
        raise
