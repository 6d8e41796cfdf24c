"""CLI: one entry point listing every stage; user errors are one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generalist_bench.cli import SUBCOMMANDS, main
from generalist_bench.presets import get_preset, list_presets

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("train", "eval", "submit", "leaderboard", "zoo", "presets")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "generalist_bench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_subcommands_are_declared():
    assert set(STAGES) <= set(SUBCOMMANDS)


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in STAGES:
        assert name in out, name


@pytest.mark.parametrize("name", STAGES)
def test_subcommand_help(name, capsys):
    """Every stage module exists and builds its options (``add_arguments``); ``--help`` exits 0."""
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: generalist-bench {name}")


def test_unknown_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["nope"])
    assert e.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "presets" in capsys.readouterr().out


def test_python_dash_m_help():
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    for name in STAGES:
        assert name in r.stdout, name
    assert "Traceback" not in r.stderr


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    assert capsys.readouterr().out.split() == list_presets()


def test_presets_prints_the_resolved_config(capsys):
    assert main(["presets", "fmnist-smallcnn-pgd_at", "--set", "train.epochs=3", "--set", "train.amp=off"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = get_preset("fmnist-smallcnn-pgd_at").to_dict()
    expected["train"]["epochs"], expected["train"]["amp"] = 3, "off"
    assert data == expected


def test_unknown_preset_is_one_line_and_exit_code_2(capsys):
    assert main(["presets", "nope"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err and captured.out == ""
    assert err.startswith("generalist-bench presets: error: unknown preset 'nope'")
    for name in list_presets():
        assert name in err, name


def test_bad_override_is_one_line_and_exit_code_2(capsys):
    assert main(["presets", "fmnist-smallcnn-pgd_at", "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.epoch" in err


def test_python_dash_m_error_exit_code():
    r = _run("presets", "nope")
    assert r.returncode == 2
    assert r.stdout == "" and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "unknown preset 'nope'" in r.stderr and "fmnist-smallcnn-generalist" in r.stderr
