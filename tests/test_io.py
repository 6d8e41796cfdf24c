"""utils/io: atomic writes keep the old file on any failure and leave no temp files; clear errors; sha256;
the file lock serialises processes."""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest
import torch

from generalist_bench.errors import GeneralistBenchError
from generalist_bench.utils import io
from generalist_bench.utils.io import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    file_lock,
    sha256_file,
)

FORK = multiprocessing.get_context("fork")  # the children only touch files: fork is safe and fast


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_writes_round_trip(tmp_path):
    assert atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01") == tmp_path / "a" / "b.bin"  # makes parents
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(tmp_path / "j.json", {"eps": 0.1, "n": [1, 2]})
    assert json.loads((tmp_path / "j.json").read_text()) == {"eps": 0.1, "n": [1, 2]}
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "m.pt")
    assert torch.equal(torch.load(tmp_path / "m.pt")["w"], torch.arange(3))
    atomic_write_text(tmp_path / "t.txt", "new")  # replaces
    assert (tmp_path / "t.txt").read_text() == "new"
    assert _only(tmp_path) == ["a", "j.json", "m.pt", "t.txt"]


def test_written_files_are_not_private(tmp_path):
    """Regression: mkstemp creates 0600 files, so every card, checkpoint and leaderboard page written atomically
    was unreadable by other users. New files get the mode open() gives them; replaced files keep theirs."""
    (tmp_path / "plain.json").write_text("{}")
    atomic_write_text(tmp_path / "card.json", "{}")
    assert (tmp_path / "card.json").stat().st_mode == (tmp_path / "plain.json").stat().st_mode
    os.chmod(tmp_path / "card.json", 0o640)
    atomic_write_text(tmp_path / "card.json", "{}")
    assert stat.S_IMODE((tmp_path / "card.json").stat().st_mode) == 0o640


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("killed")])
@pytest.mark.parametrize("where", ["os.replace", "os.fsync"])
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch, exc, where):
    target = tmp_path / "card.json"
    target.write_text("old")

    def boom(*a, **kw):
        raise exc

    monkeypatch.setattr(io.os, where.split(".")[1], boom)
    with pytest.raises(GeneralistBenchError if isinstance(exc, OSError) else RuntimeError) as e:
        atomic_write_text(target, "new")
    monkeypatch.undo()
    if isinstance(exc, OSError):
        assert str(target) in str(e.value) and "No space left on device" in str(e.value)
    assert target.read_text() == "old"
    assert _only(tmp_path) == ["card.json"]  # no temp file left behind


def test_failed_serialisation_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(ValueError):  # NaN is not JSON: never write it
        atomic_write_json(target, {"robust_acc": float("nan")})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"t": torch.zeros(1)})
    assert json.loads(target.read_text()) == {"ok": 1}
    ckpt = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.ones(2)}, ckpt)
    with pytest.raises(Exception):  # noqa: B017  (pickling a lambda: the error type is pickle's business)
        atomic_torch_save({"f": lambda: 0}, ckpt)
    assert torch.equal(torch.load(ckpt)["w"], torch.ones(2))
    assert _only(tmp_path) == ["model.pt", "result.json"]


def _try_write(path: str, queue) -> None:
    if os.geteuid() == 0:
        os.setuid(65534)  # root ignores permissions: try as nobody
    old = "?"
    try:
        old = Path(path).read_text()  # the folder is reachable and readable, only not writable
        atomic_write_text(path, "new")
        queue.put((old, "ok", ""))
    except BaseException as e:  # report whatever happened to the parent
        queue.put((old, type(e).__name__, str(e)))


def test_read_only_dir_is_a_clear_error():
    folder = Path(tempfile.mkdtemp(prefix="gb-test-ro-"))  # not under tmp_path: pytest's base dir is 0700
    try:
        (folder / "card.json").write_text("old")
        os.chmod(folder / "card.json", 0o644)
        os.chmod(folder, 0o555)
        queue = FORK.Queue()
        p = FORK.Process(target=_try_write, args=(str(folder / "card.json"), queue))
        p.start()
        old, kind, msg = queue.get(timeout=30)
        p.join(10)
        assert (old, kind) == ("old", "GeneralistBenchError"), msg
        assert msg == f"cannot write {folder / 'card.json'}: Permission denied"
        assert (folder / "card.json").read_text() == "old" and _only(folder) == ["card.json"]
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder)


def test_unwritable_places_are_clear_errors(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GeneralistBenchError, match="cannot write .*file/sub/out.json"):
        atomic_write_text(tmp_path / "file" / "sub" / "out.json", "{}")  # a parent is a file

    def denied(*a, **kw):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(GeneralistBenchError, match="cannot write .*out.json: Read-only file system"):
        atomic_write_text(tmp_path / "out.json", "{}")


def test_sha256_file(tmp_path):
    data = os.urandom(100_000)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    assert sha256_file(tmp_path / "f", chunk=4097) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(str(tmp_path / "empty")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _hold_lock(lock: str, log: str, name: str) -> None:
    with file_lock(lock):
        with open(log, "a") as f:
            f.write(f"start {name}\n")
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write(f"end {name}\n")


def test_file_lock_serialises_processes(tmp_path):
    lock, log = str(tmp_path / "zoo" / ".lock"), str(tmp_path / "log")
    procs = [FORK.Process(target=_hold_lock, args=(lock, log, name)) for name in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
        assert p.exitcode == 0
    lines = Path(log).read_text().split()
    events = list(zip(lines[::2], lines[1::2], strict=True))
    assert len(events) == 4
    first, second = events[0][1], events[2][1]
    assert {first, second} == {"a", "b"}
    assert events == [("start", first), ("end", first), ("start", second), ("end", second)]  # never interleaved


def test_file_lock_timeout(tmp_path):
    lock = tmp_path / "lock"
    with file_lock(lock):
        start = time.monotonic()
        with pytest.raises(GeneralistBenchError, match="timed out waiting for lock"):
            with file_lock(lock, timeout=0.2):
                pass
        assert time.monotonic() - start < 5
    with file_lock(lock, timeout=0.2):  # released: taken at once
        pass
