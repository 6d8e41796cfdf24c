"""Crash-safe file writing: temp file in the same directory, fsync, rename. Plus sha256 and a file lock."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import GeneralistBenchError


def _umask() -> int:
    mask = os.umask(0o022)  # read once at import: os.umask can only be read by setting it
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


def _mode_for(path: Path) -> int:
    """The permissions the written file gets: the replaced file's, else those of a file made by ``open``
    (``mkstemp`` creates 0600 files, which would make cards and checkpoints unreadable to other users)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return _NEW_FILE_MODE


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one, never a mix."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise GeneralistBenchError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), _mode_for(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise GeneralistBenchError(f"cannot write {path}: {e.strerror or e}") from e
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """The JSON values of a JSON-lines file (e.g. a run's ``history.jsonl``), blank lines skipped. ``OSError`` /
    ``ValueError`` as ``open`` / ``json.loads`` raise them."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float | None = None, busy_message: str | None = None
              ) -> Iterator[None]:
    """An exclusive lock on ``path`` (``filelock``; on Linux an ``flock``, which the kernel drops when its holder
    dies, even by SIGKILL). ``timeout``: seconds to wait (None: as long as it takes; 0: not at all); when it runs
    out, ``GeneralistBenchError(busy_message)`` (default: "timed out waiting for lock PATH")."""
    from filelock import FileLock, Timeout

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=-1 if timeout is None else timeout)
        lock.acquire()
    except Timeout:
        raise GeneralistBenchError(busy_message or f"timed out waiting for lock {path}") from None
    except OSError as e:
        raise GeneralistBenchError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield
    finally:
        lock.release()


def exclusive_or_fail(path: str | os.PathLike, busy_message: str):
    """``file_lock`` that does not wait: ``GeneralistBenchError(busy_message)`` at once if another process holds it."""
    return file_lock(path, timeout=0, busy_message=busy_message)
