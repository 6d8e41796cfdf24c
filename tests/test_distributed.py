"""DDP on torchrun: 2 CPU processes (gloo), each Generalist learner wrapped in DDP, merge identical on
every rank, only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_two_process_ddp_generalist(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("ddp_worker.py")), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "ranks.json").read_text())
    assert info["world_size"] == 2
    d0, d1 = info["digests"]
    assert d0 == d1, "global learner or a base learner differs between ranks"
    # 256 images, 2 ranks → 128 per rank, batch 32 → 4 steps per epoch, 2 epochs
    assert info["steps"] == 8
    assert (out / "checkpoint.pt").is_file() and (out / "summary.json").is_file()
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_torchrun_evaluation_on_two_ranks_equals_one_process(tmp_path, clean_small_cnn):
    """torchrun -m generalist_bench.eval on 2 gloo ranks: one shard each, rank 0 merges and writes; the merged result
    equals a single-process run point for point."""
    import torch

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    ck = tmp_path / "m.pt"
    torch.save(clean_small_cnn.state_dict(), ck)
    args = ["--checkpoint", str(ck), "--arch", "small_cnn", "--dataset", "fashion_mnist", "--attacks",
            "apgd-ce,pgd-5", "--n-examples", "24", "--batch-size", "5", "--eps", "0.05", "--no-progress"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    r = subprocess.run([sys.executable, "-m", "generalist_bench.eval", *args, "--out", str(one)], env=env,
                       capture_output=True, text=True, timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                        "generalist_bench.eval", *args, "--out", str(two)], env=env, capture_output=True, text=True,
                       timeout=600, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert b["protocol"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert a["samples"] == b["samples"] and a["per_attack"] == b["per_attack"]
    assert a["clean_acc"] == b["clean_acc"] and a["robust_acc"] == b["robust_acc"] and b["n_examples"] == 24
    assert r.stdout.count("fashion_mnist test, first 24 points") == 1, r.stdout  # rank 0 alone reports
    assert sorted(p.name for p in tmp_path.glob("two.json.state.json.rank*")) == [  # one resumable state per rank
        "two.json.state.json.rank0of2", "two.json.state.json.rank1of2"]
