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
