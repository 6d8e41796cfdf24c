"""The fair benchmark's plumbing (``generalist_bench.bench_fair``): tools run the same attack on the same points and
count their passes, best batch sizes are picked from the sweep, interrupted runs resume, the bound is the pass
count times the best per-image cost. No timing is asserted: timings are measurements, not tests."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from generalist_bench import bench_fair as bf


@pytest.fixture(scope="module")
def tiny(fmnist_test, fmnist_train):
    """A linear classifier trained for a few steps: most of the 6 points right, so every attack has work."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    xt, yt = fmnist_train
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for i in range(0, 3000, 100):
        loss = nn.functional.cross_entropy(model(xt[i:i + 100]), yt[i:i + 100])
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = fmnist_test
    return model.eval(), x[:6], y[:6]


def test_bound_is_passes_times_the_best_per_image_costs():
    costs = {"best_forward_ms": 0.5, "best_forward_gradient_ms": 2.0}
    assert bf.bound_seconds(3000, 1000, costs) == pytest.approx((2000 * 0.5 + 1000 * 2.0) / 1e3)


def test_pass_costs_cover_every_size_and_take_the_best(tiny):
    model, x, y = tiny
    c = bf.pass_costs(model, x.repeat(8, 1, 1, 1), y.repeat(8), [4, 8], images=48, repeats=1)
    assert [r["batch_size"] for r in c["rows"]] == [4, 8]
    assert c["best_forward_ms"] == min(r["forward_ms"] for r in c["rows"]) > 0
    assert c["best_forward_gradient_ms"] == min(r["forward_gradient_ms"] for r in c["rows"]) > 0


@pytest.mark.parametrize("tool", [*bf.TOOLS, "pyautoattack"])
def test_every_tool_runs_standard_autoattack_and_counts_its_passes(tiny, tool):
    model, x, y = tiny
    r = bf.run_tool(tool, model, x, y, 0.1, 4)
    assert len(r["flags"]) == len(y) and r["robust_acc"] == pytest.approx(100.0 * r["flags"].float().mean().item())
    assert r["forward_images"] >= len(y) and 0 < r["gradient_images"] <= r["forward_images"]


def test_compact_gives_the_upstream_loops_flags(tiny):
    model, x, y = tiny
    a, b = bf.run_tool("compact", model, x, y, 0.1, 4), bf.run_tool("ours-pyautoattack", model, x, y, 0.1, 4)
    assert torch.equal(a["flags"], b["flags"])


def test_sweep_best_batch_repeats_and_resume(tmp_path, tiny):
    model, x, y = tiny
    calls = []

    def fake(tool, model, x, y, eps, bs, device):  # seconds: each tool fastest at a different batch size
        calls.append((tool, bs))
        secs = {"compact": {2: 9.0, 4: 3.0}, "ours-pyautoattack": {2: 5.0, 4: 8.0}}[tool][bs]
        return {"seconds": secs + 0.1 * len(calls), "robust_acc": 50.0, "flags": torch.tensor([True, False]),
                "forward_images": 1000, "gradient_images": 400}

    tools = ("compact", "ours-pyautoattack")
    rec = bf.Record(tmp_path / "fair.json", {"command": "x"})
    summary = bf.run_benchmark({"m": (model, {"what": "t"})}, x, y, 0.1, [2, 4], 2, tools, rec, pass_images=8,
                               runner=fake)
    assert len(calls) == 2 * 2 + 2 * 2  # the sweep, then 2 repeats of each tool at its best
    assert rec.data["models"]["m"]["best_batch"] == {"compact": 4, "ours-pyautoattack": 2}
    assert calls[4:] == [("ours-pyautoattack", 2), ("compact", 4), ("compact", 4), ("ours-pyautoattack", 2)]  # rotated
    t = summary["m"]["tools"]["compact"]
    assert t["runs"] == 2 and t["batch_size"] == 4 and t["min_s"] <= t["median_s"] <= t["max_s"]  # sweep not counted
    costs = rec.data["models"]["m"]["costs"]
    assert t["bound_s"] == pytest.approx(bf.bound_seconds(1000, 400, costs)) and t["x_bound"] > 0
    assert summary["m"]["compact_flags_identical_to_upstream_loops"] == {2: True, 4: True}
    assert summary["m"]["compact_flags_identical_to_pyautoattack"] == {}  # pyautoattack not run: nothing claimed
    saved = json.loads((tmp_path / "fair.json").read_text())
    assert len(saved["runs"]) == 8
    calls.clear()
    rec2 = bf.Record(tmp_path / "fair.json", {"command": "x"})
    bf.run_benchmark({"m": (model, {"what": "t"})}, x, y, 0.1, [2, 4], 3, tools, rec2, pass_images=8, runner=fake)
    assert calls == [("ours-pyautoattack", 2), ("compact", 4)]  # only the new third repeat runs
    assert len(rec2.data["sessions"]) == 2  # a resumed benchmark records both sessions
    with pytest.raises(SystemExit, match="other conditions.*threads"):
        bf.Record(tmp_path / "c.json", {}, {"threads": 2}).save() or bf.Record(tmp_path / "c.json", {}, {"threads": 1})
    md = bf.render(bf.summarise(rec2.data, tools, 3), {**rec2.data, "sessions": [
        {"command": "x", "threads": 1, "hardware": {}, "versions": {}}]}, [2, 4], tools, 2, 0.1)
    assert "| ours, engine=compact (exact) | 4 | 3 |" in md and "batch 2: **True**" in md


def test_outside_model_is_trained_once_and_reloaded_by_checksum(tmp_path, monkeypatch, fmnist_test):
    x, y = fmnist_test
    spec = {**bf.OUTSIDE, "train_images": 64, "epochs": 1, "pgd_steps": 1, "batch": 32}
    monkeypatch.setattr(bf, "OUTSIDE", spec)
    trained = []
    real = bf.train_outside
    monkeypatch.setattr(bf, "train_outside", lambda: trained.append(1) or real(spec, x, y))
    m1, meta1 = bf.outside_model(tmp_path)
    m2, meta2 = bf.outside_model(tmp_path)
    assert trained == [1] and meta1["sha256"] == meta2["sha256"]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))
    (tmp_path / "outside_madry_cnn.pt").write_bytes(b"damaged")
    bf.outside_model(tmp_path)
    assert trained == [1, 1]  # a file that does not match its checksum is not used
    assert m1(x[:2]).shape == (2, 10)
