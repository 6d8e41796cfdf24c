"""Reliability (docs/RELIABILITY.md): processes killed at random points resume to identical results, Ctrl-C is one
line and exit 130, concurrent submissions leave a valid zoo, bad inputs get one clear message, loading never
executes code. The table in docs/RELIABILITY.md names one test per row; ``test_every_row_has_a_test`` keeps
the two in step.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from generalist_bench.errors import CheckpointError, ConfigError, GeneralistBenchError, ModelOutputError

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--set", "data.train_subset=192", "--set", "train.batch_size=64", "--set", "train.selection.n_val=32",
              "--set", "train.selection.attack_steps=1", "--set", "train.epochs=4",
              "--set", "train.merge.warmup_epochs=1", "--set", "train.merge.redistribute_every=1"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "generalist_bench", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


class Gate:
    """Drives a subprocess through ``generalist_bench.utils.testgate``: it waits at each gate until released, so
    an interrupt lands at a point the test chose, however busy the machine is."""

    def __init__(self, root: Path, point: str):
        self.root, self.point, self.released = root, point, 0
        root.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        from generalist_bench.utils.testgate import ENV

        return {**_env(), ENV: str(self.root)}

    def wait(self, p: subprocess.Popen, n: int, timeout: float = 300) -> None:
        """Until the process reached its n-th gate (it is waiting there)."""
        arrived, deadline = self.root / f"{self.point}.{n}.arrived", time.monotonic() + timeout
        while not arrived.exists():
            assert p.poll() is None, f"the process ended (exit {p.returncode}) before gate {n}"
            assert time.monotonic() < deadline, f"gate {n} not reached in {timeout} s"
            time.sleep(0.01)

    def release(self, p: subprocess.Popen, count: int) -> None:
        """Let it pass ``count`` more gates, one after the other."""
        for _ in range(count):
            self.wait(p, self.released + 1)
            self.released += 1
            (self.root / f"{self.point}.{self.released}.go").touch()


def _same(a, b, path="") -> list[str]:
    """Differences between two nested checkpoint structures (tensors compared exactly; timings ignored)."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        return [] if torch.is_tensor(a) and torch.is_tensor(b) and torch.equal(a, b) else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path} keys"]
        return [d for k in a if not any(t in str(k) for t in ("seconds", "elapsed", "img_per_s"))
                for d in _same(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path} length"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


# ------------------------------------------------------------------------------------------ fault tests
def test_training_killed_at_random_points_resumes_bit_identical(tmp_path):
    """SIGKILL a Generalist training run three times at seeded random points (after a random number of epoch
    checkpoints, then a random moment inside the next epoch or its checkpoint write; a gate after each checkpoint
    keeps the run from getting further) and resume each time: the final weights and the selection equal an
    uninterrupted run's."""
    ref, part = tmp_path / "ref", tmp_path / "part"
    base = _cli("train", "--preset", "fmnist-smallcnn-generalist", *TINY_TRAIN, "--no-progress")
    r = subprocess.run([*base, "--out", str(ref)], env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rng = random.Random(7)
    epochs_done = []
    for k in range(3):
        done = torch.load(part / "checkpoint.pt", weights_only=True)["epoch"] if (part / "checkpoint.pt").exists() \
            else 0
        g = Gate(tmp_path / f"gate{k}", "train-checkpoint-saved")
        argv = [*base, "--out", str(part)] + (["--resume"] if k else [])
        p = subprocess.Popen(argv, env=g.env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        g.release(p, rng.randint(0, max(0, 2 - done)))  # whole epochs it may finish
        time.sleep(rng.uniform(0.0, 0.4))                 # then anywhere in the next epoch or its checkpoint write
        assert p.poll() is None, "the run got past a closed gate"
        p.send_signal(signal.SIGKILL)
        p.wait()
        epochs_done.append(done)
    assert epochs_done[0] == 0 and epochs_done[-1] < 4
    r = subprocess.run([*base, "--out", str(part), "--resume"], env=_env(), cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a = torch.load(ref / "checkpoint.pt", weights_only=True)
    b = torch.load(part / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    # every learner's weights and optimizer state, the merge state, history and the selected state
    assert _same(a, b) == []
    ba, bb = torch.load(ref / "best.pt", weights_only=True), torch.load(part / "best.pt", weights_only=True)
    assert ba.keys() == bb.keys() and all(torch.equal(ba[k], bb[k]) for k in ba)
    sa = json.loads((ref / "summary.json").read_text())["selection"]["chosen"]
    sb = json.loads((part / "summary.json").read_text())["selection"]["chosen"]
    assert sa == sb


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory, clean_small_cnn):
    path = tmp_path_factory.mktemp("ck") / "small_cnn.pt"
    torch.save(clean_small_cnn.state_dict(), path)
    return path


def _points_done(state: Path) -> int:
    from generalist_bench.evaluation.result import decode_flags

    try:
        d = json.loads(state.read_text())
    except (OSError, ValueError):
        return 0
    return sum(int(decode_flags(a["flags"])[0].sum()) for a in d.get("atoms", {}).values())


def test_evaluation_killed_mid_attack_resumes_identical(small_ckpt, tmp_path):
    """SIGKILL ``generalist-bench eval`` while it attacks (state saved after every batch) — twice, after a seeded
    random number of saved batches plus a random moment in the next one (a gate after each state write keeps the
    run from getting further) — and resume with --resume: the per-sample result equals an uninterrupted run's."""
    args = ["eval", "--checkpoint", str(small_ckpt), "--arch", "small_cnn", "--attacks", "pgd-20,apgd-ce",
            "--n-examples", "48", "--batch-size", "4", "--eps", "0.1", "--no-progress"]
    ref = tmp_path / "ref.json"
    r = subprocess.run(_cli(*args, "--out", str(ref)), env=_env(), cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "part.json"
    state = tmp_path / "part.json.state.json"
    rng = random.Random(3)
    done_before = []
    for k, argv in enumerate([_cli(*args, "--out", str(out)), _cli(*args, "--out", str(out), "--resume")]):
        g = Gate(tmp_path / f"gate{k}", "eval-state-saved")
        p = subprocess.Popen(argv, env=g.env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        g.release(p, rng.randint(1, 8))    # that many batches saved (a gate waits after each state write) ...
        time.sleep(rng.uniform(0.0, 0.3))  # ... then anywhere inside the next batch, or in its state write
        assert p.poll() is None, f"run {k} got past a closed gate"
        p.send_signal(signal.SIGKILL)
        p.wait()
        done_before.append(_points_done(state))
    assert 0 < done_before[0] <= done_before[1] < 2 * 48  # killed mid-run both times, progress kept
    r = subprocess.run(_cli(*args, "--out", str(out), "--resume"), env=_env(), cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = json.loads(ref.read_text()), json.loads(out.read_text())
    assert a["samples"] == b["samples"] and a["per_attack"] == b["per_attack"]
    assert b["protocol"]["sessions"] == 3  # it really resumed, twice


def test_ctrl_c_is_one_line_exit_130_and_resumable(small_ckpt, tmp_path):
    args = ["eval", "--checkpoint", str(small_ckpt), "--arch", "small_cnn", "--attacks", "apgd-ce",
            "--n-examples", "40", "--batch-size", "4", "--eps", "0.1", "--no-progress",
            "--out", str(tmp_path / "r.json")]
    g = Gate(tmp_path / "gate", "eval-state-saved")
    # SIGINT restored to its default in the child: a shell's background job (`nohup pytest … &`) ignores SIGINT,
    # children inherit that, and a Python started with SIGINT ignored never raises KeyboardInterrupt
    p = subprocess.Popen(_cli(*args), env=g.env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = tmp_path / "r.json.state.json"
    g.release(p, 2)
    g.wait(p, 3)  # interrupt mid-run, while it waits after its third saved batch
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"still running 60 s after Ctrl-C; its stderr:\n{err[-3000:]}\ngates: "
                    f"{sorted(f.name for f in (tmp_path / 'gate').iterdir())}")
    assert p.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[eval]")]
    assert len(lines) == 1 and "interrupted" in lines[0].lower() and "Traceback" not in err, err
    json.loads(state.read_text())  # the state file is intact JSON
    assert not (tmp_path / "r.json").exists()  # no partial result
    r = subprocess.run(_cli(*args, "--resume"), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text())["protocol"]["sessions"] == 2


SUBMIT = ("import sys; sys.path.insert(0, 'tests'); from test_train_and_submit import TINY; "
          "from generalist_bench import train_and_submit as tas; tas.QUICK = TINY; "
          "from generalist_bench.cli import main; sys.exit(main(sys.argv[1:]))")


def test_concurrent_submissions_leave_a_valid_zoo(tmp_path):
    """Two train_and_submit processes on the same runs/zoo/leaderboard directories at once (the tiny profile of
    tests/test_train_and_submit.py): both succeed, one waits for the other per preset, and the zoo verifies
    (every checkpoint matches its card's sha256)."""
    from generalist_bench.zoo.store import verify_zoo

    d = {k: tmp_path / k for k in ("zoo", "lb", "runs")}
    argv = ["submit", "--quick", "--trainers", "standard,pgd_at", "--model-dir", str(d["zoo"]), "--leaderboard-dir",
            str(d["lb"]), "--runs-dir", str(d["runs"]), "--no-progress"]
    procs = [subprocess.Popen([sys.executable, "-c", SUBMIT, *argv], env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    assert any("waiting for it to finish" in err for _, err in outs)  # they really overlapped
    checks = verify_zoo(d["zoo"])
    assert len(checks) == 2 and all(ok for _, ok, _ in checks), checks
    assert not [p for p in d["zoo"].rglob("*") if ".tmp" in p.name or p.name.startswith("tmp")]
    assert not [p for p in d["lb"].rglob("*") if ".tmp" in p.name or p.name.startswith("tmp")]
    assert any("fmnist-smallcnn-pgd_at_seed0_quick" in p.read_text() for p in d["lb"].rglob("*.md"))


def test_training_dir_in_use_is_refused(tmp_path):
    from generalist_bench.utils.io import exclusive_or_fail

    with exclusive_or_fail(tmp_path / "run" / ".run.lock", "busy"):
        r = subprocess.run(_cli("train", "--preset", "fmnist-smallcnn-standard", *TINY_TRAIN[:6], "--out",
                                str(tmp_path / "run"), "--no-progress"),
                           env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "in use by another process" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ bad inputs
class _Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x):
        return self.lin(x.flatten(1)) + 0.1 * torch.randn(len(x), 10)


def test_randomised_model_is_refused():
    from generalist_bench.evaluation import evaluate

    with pytest.raises(ModelOutputError, match="randomised"):
        evaluate(_Noisy(), eps=0.1, attacks="fgsm", n_examples=4, batch_size=4, progress=False)


@pytest.mark.parametrize("bad, match", [
    (lambda x: x.masked_fill(torch.zeros_like(x, dtype=torch.bool).index_fill_(0, torch.tensor([1]), True),
                             float("nan")), "1 image.s. contain NaN"),
    (lambda x: x * 255.0, r"pixels in \[0, 1\].*\[0, 255\]"),
    (lambda x: (x - 0.5) / 0.5, r"got values in \[-1"),
    (lambda x: (x * 255).to(torch.uint8), "float tensor"),
])
def test_bad_images_are_refused(mlp, fmnist_test, bad, match):
    from generalist_bench.evaluation import quick_eval

    x, y = fmnist_test.x[:8], fmnist_test.y[:8]
    with pytest.raises(ConfigError, match=match):
        quick_eval(mlp, bad(x), y, eps=0.1)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('GB_EVIL_MARKER', '/tmp/gb-evil-marker')}",))


def test_malicious_checkpoint_is_not_executed(tmp_path, monkeypatch, capsys):
    """A checkpoint whose unpickling would run a shell command: refused by weights_only loading, nothing runs."""
    from generalist_bench.cli import main

    marker = tmp_path / "pwned"
    monkeypatch.setenv("GB_EVIL_MARKER", str(marker))
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil()}, tmp_path / "evil.pt")
    assert main(["eval", "--checkpoint", str(tmp_path / "evil.pt"), "--arch", "small_cnn", "--attacks", "fgsm",
                 "--n-examples", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pickled Python objects" in err and err.count("\n") == 1
    assert not marker.exists()
    from generalist_bench.evaluation.loading import load_checkpoint

    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt", "small_cnn", "fashion_mnist")
    assert not marker.exists()


def test_every_torch_load_is_weights_only():
    """Safe loading only: no ``torch.load`` in the package without ``weights_only=True``."""
    offenders = []
    for path in (ROOT / "generalist_bench").rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            call = text[m.start():text.find(")", text.find("\n", m.start()) - 1) + 200]
            stmt = call[:call.find("\n\n")] if "\n\n" in call else call
            if "weights_only=True" not in stmt.split(")\n")[0] + ")":
                offenders.append(f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}")
    assert not offenders, offenders


def test_cli_read_only_output_is_one_line_exit_2(small_ckpt, capsys):
    from generalist_bench.cli import main

    rc = main(["eval", "--checkpoint", str(small_ckpt), "--arch", "small_cnn", "--attacks", "fgsm", "--n-examples",
               "4", "--no-progress", "--out", "/proc/generalist-bench/result.json"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "cannot write" in err, err


def test_cli_full_disk_keeps_old_result(small_ckpt, tmp_path, monkeypatch, capsys):
    import errno

    from generalist_bench.cli import main
    from generalist_bench.utils import io

    out = tmp_path / "r.json"
    out.write_text('{"old": true}')
    real = io.os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    rc = main(["eval", "--checkpoint", str(small_ckpt), "--arch", "small_cnn", "--attacks", "fgsm", "--n-examples",
               "4", "--no-progress", "--out", str(out)])
    monkeypatch.setattr(io.os, "fsync", real)
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and err.count("\n") == 1, err
    assert out.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize("argv, match", [
    (["eval", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["eval", "--suite", "paperr"], "unknown suite"),
    (["eval", "--attacks", "pgd-20,nope"], "unknown attack 'nope'"),
    (["eval", "--arch", "resnet99"], "unknown (model|architecture)"),
    (["train", "--preset", "nope"], "unknown preset"),
    (["eval", "--eps", "-0.1"], "eps"),
    (["eval", "--eps", "2"], "eps"),
    (["eval", "--data-dir", "/nonexistent/data", "--dataset", "mnist"], "(not found|does not exist|no such|missing)"),
])
def test_cli_bad_names_and_values_are_one_line_exit_2(small_ckpt, argv, match, capsys):
    from generalist_bench.cli import main

    full = [*argv, "--no-progress", "--n-examples", "4"] if argv[0] == "eval" else [*argv, "--no-progress"]
    if argv[0] == "eval":
        arch = ["--arch", argv[argv.index("--arch") + 1]] if "--arch" in argv else ["--arch", "small_cnn"]
        full = [a for i, a in enumerate(full) if a != "--arch" and (i == 0 or full[i - 1] != "--arch")]
        full += ["--checkpoint", str(small_ckpt), *arch]
        if "--attacks" not in full and "--suite" not in full:
            full += ["--attacks", "fgsm"]
    rc = main(full)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert re.search(match, err, re.I) and err.count("error:") == 1 and "Traceback" not in err, err
    # one line, except the missing-data message, which lists where it looked and how to get the files
    assert err.count("\n") == 1 or err.splitlines()[0].endswith("Looked in:"), err


def test_corrupt_or_foreign_eval_state_is_one_line(small_ckpt, tmp_path, capsys):
    from generalist_bench.cli import main

    args = ["eval", "--checkpoint", str(small_ckpt), "--arch", "small_cnn", "--attacks", "fgsm", "--n-examples", "4",
            "--no-progress", "--out", str(tmp_path / "r.json"), "--resume"]
    state = tmp_path / "r.json.state.json"
    state.write_text('{"format": "generalist_bench.eval_state/1", "key": ')  # truncated JSON
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unreadable" in err and "delete it to start over" in err and err.count("\n") == 1, err
    state.unlink()
    assert main(args) == 0
    capsys.readouterr()
    rc = main([a if a != "4" else "6" for a in args])  # another n with the old state: refused, state kept
    err = capsys.readouterr().err
    assert rc == 2 and "belongs to a different evaluation" in err and err.count("\n") == 1, err
    json.loads(state.read_text())


def test_every_row_has_a_test():
    """docs/RELIABILITY.md: every test it names exists."""
    table = (ROOT / "docs" / "RELIABILITY.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    assert len(named) >= 20
    for file, test in named:
        text = (ROOT / file).read_text()
        assert re.search(rf"^def {test}\(", text, re.M), f"{file}::{test} is named in docs/RELIABILITY.md but missing"


def test_errors_are_typed():
    for cls in (CheckpointError, ConfigError, ModelOutputError):
        assert issubclass(cls, GeneralistBenchError)
