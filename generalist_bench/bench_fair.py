"""``python -m generalist_bench.bench_fair``: standard AutoAttack, every tool at its own best batch size, on two
models, with each run's distance to the pass-count bound.

Protocol (one process, one tool at a time, the same points, eps and thread count for all):

1. **Models.** A zoo model (default ``fmnist-smallcnn-pgd_at_seed0``) and an *outside* model whose architecture and
   training this project did not choose: the MNIST network of Madry et al. (2018) (conv 5×5 32, max-pool, conv 5×5
   64, max-pool, fc 1024, fc 10), PGD-7 adversarially trained here on Fashion-MNIST for a short budget (see
   ``OUTSIDE``) and saved with its sha256 to ``<out>/outside_madry_cnn.pt``; a later run loads that file.
2. **Per-pass cost.** For each model and batch size, ms per image of a float32 forward without gradient (eager,
   and through the prepacked oneDNN copy that the exact engine may use: the cheaper counts) and of an eager forward +
   input gradient (best of 3, sizes interleaved). The best per-image cost over all sizes of each kind of pass is what
   this CPU delivers for this model in float32.
3. **Sweep.** Every tool at every batch size of ``--batch-sizes`` on the first ``--n`` test points (one run each;
   the tool order rotates from one batch size to the next). The sweep only picks each tool's batch size: its runs
   are not counted in the results (a run picked for being fastest would bias its tool's numbers).
   Tools: pyautoattack with the model's parameters frozen (its best use: a user can freeze them), ours with
   upstream's loops (``engine="pyautoattack"``), ``compact`` (exact, the default), ``fast`` (bfloat16 search,
   verdicts confirmed in float32), ``torchattacks.AutoAttack`` (10-step APGD: a weaker attack, for reference).
4. **Best vs best.** Each tool at the batch size where its sweep was fastest, ``--repeats`` times, interleaved
   (tool order rotated every repeat), plus pyautoattack as a user calls it (parameters trainable) at its frozen
   twin's best batch. Medians, min–max spreads, ratios to pyautoattack's best.
5. **The bound.** Every run counts the images it sends through the model (forward; of those, with an input
   gradient). ``bound = (forward − gradient images) × best no-grad cost + gradient images × best forward+gradient
   cost``: no float32 tool doing these passes can be faster on this machine. Each run is reported as ×bound; and
   pyautoattack's pass count at the same costs tells how much of a speed-up comes from doing fewer passes. The
   ``fast`` engine's bfloat16 search passes are cheaper than float32 ones, so it can go below its bound.
6. **Exactness.** ``compact`` must give per-point flags identical to ``engine="pyautoattack"`` at the same batch
   size (same per-sample random starts); that is checked on every batch size of the sweep.

A rerun with other conditions (n, eps, threads, device, versions, model files) than those recorded in ``fair.json``
is refused: the runs of one results file are comparable.

Results go to ``<out>/fair.json`` after every run (a rerun skips what is recorded: an interrupted benchmark
resumes) and to ``<out>/FAIR.md``. Timings are measurements of this machine, not tests; a run while another job
uses the CPU is slowed by it (``--note`` records such conditions in the results).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils.env import hardware, library_versions
from .utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

TOOLS = ("pyautoattack-frozen", "ours-pyautoattack", "compact", "fast", "torchattacks")
TITLES = {"pyautoattack": "pyautoattack (as a user calls it)",
          "pyautoattack-frozen": "pyautoattack, parameters frozen",
          "ours-pyautoattack": "ours, engine=pyautoattack (upstream loops)",
          "compact": "ours, engine=compact (exact)", "fast": "ours, engine=fast (bf16 search)",
          "torchattacks": "torchattacks.AutoAttack (10-step APGD: weaker)"}
REFERENCE = "pyautoattack-frozen"  # ratios are against pyautoattack at its best
# the outside model's training: PGD-7 (step eps/4, uniform start), SGD momentum 0.9, lr 0.01, batch 128
OUTSIDE = {"arch": "madry_mnist_cnn", "train_images": 20000, "epochs": 2, "pgd_steps": 7, "lr": 0.01,
           "batch": 128, "seed": 0, "eps": 0.1}


def log(msg: str) -> None:
    print(f"[bench-fair] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ models
class MadryMnistCNN(nn.Module):
    """The MNIST network of Madry et al. (2018, their ``model.py``): pixels in [0, 1], no normalisation."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(),
                                        nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_outside(spec: dict[str, Any] = OUTSIDE, x: torch.Tensor | None = None,
                  y: torch.Tensor | None = None) -> nn.Module:
    """PGD-AT of the Madry CNN on the first ``train_images`` training images (validation images excluded)."""
    from .attacks import PGD
    from .bench import pgd_at_epoch
    from .data import load_dataset

    if x is None:
        x, y = load_dataset("fashion_mnist", "train")
    x, y = x[:spec["train_images"]], y[:spec["train_images"]]
    torch.manual_seed(spec["seed"])
    model = MadryMnistCNN()
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=0.9)
    eps = spec["eps"]
    attack = PGD(eps=eps, steps=spec["pgd_steps"], step_size=eps / 4, norm="Linf", start="uniform", loss="ce")
    g = torch.Generator().manual_seed(spec["seed"])
    for epoch in range(spec["epochs"]):
        pgd_at_epoch(model, opt, x, y, spec["batch"], g, lambda m, xb, yb: attack(m, xb, yb, generator=g))
        log(f"outside model: epoch {epoch + 1}/{spec['epochs']} done")
    return model.eval()


def outside_model(out: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The outside model from ``out/outside_madry_cnn.pt`` if its recorded sha256 matches, else trained and saved."""
    path, meta_path = out / "outside_madry_cnn.pt", out / "outside_madry_cnn.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") == _sha256(path) and meta.get("spec") == OUTSIDE:
            model = MadryMnistCNN()
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval(), meta
    log("outside model: training (the first run only) ...")
    t0 = time.perf_counter()
    model = train_outside()
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(path, buf.getvalue())
    meta = {"spec": OUTSIDE, "sha256": _sha256(path), "train_seconds": time.perf_counter() - t0,
            "what": "Madry et al. (2018) MNIST CNN, PGD-7 adversarially trained by generalist_bench.bench_fair"}
    atomic_write_json(meta_path, meta)
    return model, meta


# ------------------------------------------------------------------------------------------ passes
def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def pass_costs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sizes: list[int], images: int = 1024,
               repeats: int = 3, device: str = "cpu") -> dict[str, Any]:
    """Best ms per image of a no-grad forward and of a forward + input gradient, per batch size (sizes
    interleaved, best of ``repeats``), and the best of each kind over all sizes."""
    model = copy.deepcopy(model).eval().requires_grad_(False).to(device)
    images = max(images, max(sizes))
    reps = -(-images // len(y))  # fewer images than needed: the same ones again (the cost does not depend on them)
    x, y = x.repeat(reps, 1, 1, 1)[:images].to(device), y.repeat(reps)[:images].to(device)

    from .evaluation.fastpath import prepacked_copy

    packed = prepacked_copy(model)[0] if torch.device(device).type == "cpu" else None

    def fwd(xb, yb):
        with torch.no_grad():
            return model(xb)

    def fwd_packed(xb, yb):
        with torch.no_grad():
            return packed(xb)

    def fwd_grad(xb, yb):
        xb = xb.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(xb), yb, reduction="sum"), xb)[0]

    passes = [("forward", fwd), ("forward+gradient", fwd_grad)] + ([("prepacked forward", fwd_packed)] if packed
                                                                    is not None else [])
    best: dict[tuple[str, int], float] = {}
    for _ in range(repeats):
        for b in sizes:
            for name, f in passes:
                f(x[:b], y[:b])  # warm-up of this shape
                _sync(device)
                t0 = time.perf_counter()
                for i in range(0, len(y) - b + 1, b):
                    f(x[i:i + b], y[i:i + b])
                _sync(device)
                ms = (time.perf_counter() - t0) / (len(y) // b * b) * 1e3
                best[(name, b)] = min(ms, best.get((name, b), math.inf))
    rows = [{"batch_size": b, "forward_ms": best[("forward", b)], "forward_gradient_ms": best[("forward+gradient", b)],
             "prepacked_forward_ms": best.get(("prepacked forward", b))} for b in sizes]
    fwd_best = min(min(r["forward_ms"], r["prepacked_forward_ms"] or math.inf) for r in rows)
    return {"rows": rows, "best_forward_ms": fwd_best,
            "best_forward_gradient_ms": min(r["forward_gradient_ms"] for r in rows)}


def bound_seconds(forward_images: int, gradient_images: int, costs: dict[str, Any]) -> float:
    """The time of these passes at the best measured per-image costs."""
    return (max(0, forward_images - gradient_images) * costs["best_forward_ms"]
            + gradient_images * costs["best_forward_gradient_ms"]) / 1e3


# ------------------------------------------------------------------------------------------ tools
def _counted(model: nn.Module, frozen: bool):
    from .attacks.model_call import ModelCall

    m = copy.deepcopy(model).eval()
    m.requires_grad_(not frozen)
    return ModelCall(m)


def run_tool(tool: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, bs: int,
             device: str = "cpu") -> dict[str, Any]:
    """One standard-AutoAttack run of ``tool``: seconds, robust accuracy, per-point robust flags, passes."""
    if tool in ("pyautoattack", "pyautoattack-frozen"):
        from pyautoattack import AutoAttack

        call = _counted(model, frozen=tool == "pyautoattack-frozen").to(device)
        aa = AutoAttack(call, norm="Linf", eps=eps, version="standard", seed=0, device=device)
        with torch.random.fork_rng():
            t0 = time.perf_counter()
            _, y_adv = aa.run_standard_evaluation(x.to(device), y.to(device), batch_size=bs)
            _sync(device)
            dt = time.perf_counter() - t0
        flags = (y_adv.cpu() == y)
        c = call.counts
        return {"seconds": dt, "robust_acc": 100.0 * flags.float().mean().item(), "flags": flags,
                "forward_images": c["forward_images"], "gradient_images": c["backward_images"]}
    if tool == "torchattacks":
        import torchattacks

        call = _counted(model, frozen=True).to(device)
        atk = torchattacks.AutoAttack(call, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
        advs = []
        with torch.random.fork_rng():
            t0 = time.perf_counter()
            for b in range(0, len(y), bs):
                advs.append(atk(x[b:b + bs].to(device), y[b:b + bs].to(device)))
            _sync(device)
            dt = time.perf_counter() - t0
        c = dict(call.counts)  # before the untimed final check below
        with torch.no_grad():
            flags = (call.model(torch.cat(advs)).argmax(1) == y.to(device)).cpu()
        return {"seconds": dt, "robust_acc": 100.0 * flags.float().mean().item(), "flags": flags,
                "forward_images": c["forward_images"], "gradient_images": c["backward_images"]}
    from .evaluation import evaluate

    engine = {"ours-pyautoattack": "pyautoattack", "compact": "compact", "fast": "fast"}[tool]
    t0 = time.perf_counter()
    m = copy.deepcopy(model).to(device)
    dev = next(m.parameters()).device  # "cuda" → "cuda:0": the device the evaluation checks the model against
    # the first len(y) test points, which main() gives every tool (as a data set: per-point seeds from its indices)
    r = evaluate(m, dataset="fashion_mnist", eps=eps, suite="autoattack", n_examples=len(y), batch_size=bs,
                 engine=engine, progress=False, device=dev)
    dt = time.perf_counter() - t0
    stats = r.attack_stats.values()
    return {"seconds": dt, "robust_acc": r.robust_acc, "flags": r.flags("robust"),
            "forward_images": sum(int(s.get("forward_images", 0)) for s in stats),
            "gradient_images": sum(int(s.get("backward_images", 0)) for s in stats)}


# ------------------------------------------------------------------------------------------ the run
class Record:
    """``fair.json``: every finished run, saved after each one; keys make reruns skip what is recorded."""

    def __init__(self, path: Path, meta: dict[str, Any], conditions: dict[str, Any] | None = None):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {"runs": {}, "models": {}}
        old = self.data.setdefault("conditions", conditions)
        if conditions is not None and old != conditions:
            diff = sorted(k for k in set(old or {}) | set(conditions) if (old or {}).get(k) != conditions.get(k))
            raise SystemExit(f"{path} holds runs made under other conditions ({', '.join(diff)} differ): use another "
                             "--out, or delete it to start over")
        self.data.setdefault("sessions", []).append(meta)

    def key(self, model: str, phase: str, tool: str, bs: int, rep: int) -> str:
        return f"{model}|{phase}|{tool}|{bs}|{rep}"

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def _flags_str(flags: torch.Tensor) -> str:
    return "".join("1" if f else "0" for f in flags.tolist())


def run_benchmark(models: dict[str, tuple[nn.Module, dict[str, Any]]], x: torch.Tensor, y: torch.Tensor,
                  eps: float, batch_sizes: list[int], repeats: int, tools: tuple[str, ...], record: Record,
                  device: str = "cpu", pass_images: int = 1024,
                  runner: Callable[..., dict[str, Any]] = run_tool) -> dict[str, Any]:
    runs = record.data["runs"]

    def do(model_name: str, model: nn.Module, phase: str, tool: str, bs: int, rep: int) -> dict[str, Any]:
        k = record.key(model_name, phase, tool, bs, rep)
        if k not in runs:
            log(f"{model_name}: {phase} {TITLES[tool]}, batch {bs}, repeat {rep} ...")
            r = runner(tool, model, x, y, eps, bs, device)
            r["flags"] = _flags_str(r["flags"])
            runs[k] = {"model": model_name, "phase": phase, "tool": tool, "batch_size": bs, "repeat": rep, **r}
            record.save()
            log(f"  {r['seconds']:.1f} s, robust {r['robust_acc']:.2f}%")
        return runs[k]

    for name, (model, meta) in models.items():
        if "costs" not in record.data["models"].get(name, {}):
            log(f"{name}: per-pass costs ...")
            sizes = sorted(set(batch_sizes) | {128})
            record.data["models"][name] = {**meta, "costs": pass_costs(model, x, y, sizes, images=pass_images,
                                                                       device=device)}
            record.save()
    for name, (model, _) in models.items():
        for i, bs in enumerate(batch_sizes):
            for tool in tools[i % len(tools):] + tools[:i % len(tools)]:
                do(name, model, "sweep", tool, bs, 0)
        best = {t: min(batch_sizes, key=lambda b, t=t: runs[record.key(name, "sweep", t, b, 0)]["seconds"])
                for t in tools}
        record.data["models"][name]["best_batch"] = best
        for rep in range(1, repeats + 1):
            order = list(tools[rep % len(tools):] + tools[:rep % len(tools)])
            if REFERENCE in tools:
                order.append("pyautoattack")
            for tool in order:
                do(name, model, "best", tool, best[REFERENCE if tool == "pyautoattack" else tool], rep)
    record.save()
    return summarise(record.data, tools, repeats)


def summarise(data: dict[str, Any], tools: tuple[str, ...], repeats: int) -> dict[str, Any]:
    runs = data["runs"].values()
    out: dict[str, Any] = {}
    for name, m in data["models"].items():
        if "best_batch" not in m:
            continue
        costs, best = m["costs"], m["best_batch"]
        by_tool: dict[str, Any] = {}
        for tool in (*tools, "pyautoattack") if REFERENCE in tools else tools:
            bs = best[REFERENCE if tool == "pyautoattack" else tool]
            rs = [r for r in runs if r["model"] == name and r["tool"] == tool and r["batch_size"] == bs
                  and r["phase"] == "best" and r["repeat"] <= repeats]
            if not rs:
                continue
            secs = [r["seconds"] for r in rs]
            fwd, grad = rs[0]["forward_images"], rs[0]["gradient_images"]
            by_tool[tool] = {"batch_size": bs, "runs": len(secs), "median_s": statistics.median(secs),
                             "min_s": min(secs), "max_s": max(secs), "robust_acc": rs[0]["robust_acc"],
                             "forward_images": fwd, "gradient_images": grad,
                             "bound_s": bound_seconds(fwd, grad, costs), "flags": rs[0]["flags"]}
        ref = by_tool.get(REFERENCE)
        for t in by_tool.values():
            t["x_bound"] = t["median_s"] / t["bound_s"] if t["bound_s"] else None
            if ref:
                t["speedup_vs_reference"] = ref["median_s"] / t["median_s"]
                t["speedup_range"] = (ref["min_s"] / t["max_s"], ref["max_s"] / t["min_s"])
                t["reference_passes_at_best_cost_s"] = ref["bound_s"]
        sweep = {(r["tool"], r["batch_size"]): r for r in runs if r["model"] == name and r["phase"] == "sweep"}
        exact = {bs: sweep[("compact", bs)]["flags"] == sweep[("ours-pyautoattack", bs)]["flags"]
                 for (tool, bs) in sweep if tool == "compact" and ("ours-pyautoattack", bs) in sweep}
        # pyautoattack itself draws its random starts per batch, not per point: equal flags are expected, not implied
        same_as_ref = {bs: sweep[("compact", bs)]["flags"] == sweep[(REFERENCE, bs)]["flags"]
                       for (tool, bs) in sweep if tool == "compact" and (REFERENCE, bs) in sweep}
        out[name] = {"tools": by_tool, "sweep": {f"{t}@{b}": r["seconds"] for (t, b), r in sorted(sweep.items())},
                     "compact_flags_identical_to_upstream_loops": exact,
                     "compact_flags_identical_to_pyautoattack": same_as_ref, "costs": costs, "best_batch": best}
    return out


# ------------------------------------------------------------------------------------------ report
def render(summary: dict[str, Any], data: dict[str, Any], batch_sizes: list[int], tools: tuple[str, ...],
           n: int, eps: float) -> str:
    s0 = data["sessions"][-1]
    lines = ["# AutoAttack, best vs best", "",
             f"Regenerate: `{s0['command']}`. Every number below comes from the runs recorded in `fair.json` "
             f"({len(data['sessions'])} session(s)); timings are measurements of this machine, not tests.", "",
             f"Standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square), Linf eps {eps:g}, the first {n} Fashion-MNIST "
             f"test points, {s0['threads']} torch thread(s), one tool at a time in one process. Each tool runs at "
             f"the batch size where it was fastest in a sweep over {', '.join(map(str, batch_sizes))}; then "
             "repeats, interleaved. Ratios are against pyautoattack at its best (parameters frozen, its best "
             "batch): median ratio, and in brackets the range from the slowest to the fastest pairing.", ""]
    for note in {s.get("note") for s in data["sessions"] if s.get("note")}:
        lines += [f"Conditions: {note}", ""]
    for name, m in summary.items():
        c = m["costs"]
        lines += [f"## {name}", "", f"Best per-image cost on this CPU: forward {c['best_forward_ms']:.3f} ms, "
                  f"forward + input gradient {c['best_forward_gradient_ms']:.3f} ms.", "",
                  "| tool | best batch | runs | median s | min–max s | × vs pyautoattack | robust % | "
                  "images fwd / grad | bound s | × bound |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for tool, t in m["tools"].items():
            sp = t.get("speedup_vs_reference")
            spr = t.get("speedup_range")
            xb = f"{t['x_bound']:.2f}" if t["x_bound"] is not None else "–"
            lines.append(f"| {TITLES[tool]} | {t['batch_size']} | {t['runs']} | {t['median_s']:.1f} | "
                         f"{t['min_s']:.1f}–{t['max_s']:.1f} | "
                         + (f"**{sp:.2f}×** [{spr[0]:.2f}–{spr[1]:.2f}]" if sp else "–")
                         + f" | {t['robust_acc']:.2f} | {t['forward_images']:,} / {t['gradient_images']:,} | "
                         f"{t['bound_s']:.1f} | {xb} |")
        ref = m["tools"].get(REFERENCE)
        if ref:
            lines += ["", f"pyautoattack's own passes at the best per-image costs would take {ref['bound_s']:.1f} s: "
                      "a tool's time below that comes from sending fewer images through the model, above its own "
                      "bound from everything else (Python, small batches, layout conversions)."]
        def _by_batch(d):
            return ", ".join(f"batch {b}: **{v}**" for b, v in sorted(d.items(), key=lambda kv: int(kv[0])))

        ex, same = m["compact_flags_identical_to_upstream_loops"], m.get("compact_flags_identical_to_pyautoattack", {})
        if ex:
            lines += ["", "Exactness: compact's per-point flags identical to the upstream loops' at the same batch "
                      "size (same per-sample random starts): " + _by_batch(ex)]
        if same:
            lines += ["", "compact's per-point flags identical to pyautoattack's own (its per-batch random starts) at "
                      "the same batch size: " + _by_batch(same)]
        lines += ["",
                  "Sweep (seconds, one run each):", "",
                  "| tool | " + " | ".join(f"batch {b}" for b in batch_sizes) + " |",
                  "|---|" + "---:|" * len(batch_sizes)]
        for tool in tools:
            lines.append(f"| {TITLES[tool]} | " + " | ".join(
                f"{m['sweep'][f'{tool}@{b}']:.1f}" if f"{tool}@{b}" in m["sweep"] else "–" for b in batch_sizes)
                + " |")
        lines += ["", "Per-image cost by batch size (ms):", "", "| batch | forward | forward + gradient |",
                  "|---:|---:|---:|"]
        lines += [f"| {r['batch_size']} | {r['forward_ms']:.3f} | {r['forward_gradient_ms']:.3f} |" for r in c["rows"]]
        lines.append("")
    hw = s0["hardware"]
    lines += ["## Machine", "", f"- {hw.get('cpu', '?')}, {hw.get('cpu_count', '?')} logical CPUs; "
              f"versions: " + ", ".join(f"{k} {v}" for k, v in s0["versions"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m generalist_bench.bench_fair", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fmnist-smallcnn-pgd_at_seed0", help="the zoo model")
    p.add_argument("--n", type=int, default=100, help="test points (default 100)")
    p.add_argument("--batch-sizes", default="25,50,100", help="the sweep (default 25,50,100)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each tool at its best batch size (default 3)")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/fair", help="output directory (fair.json, FAIR.md, outside model)")
    p.add_argument("--note", default="", help="conditions of this session, recorded (e.g. 'tuning paused')")
    p.add_argument("--outside-dir", default=None, help="where the outside model is read (or trained and saved); "
                                                       "default: --out (a second output directory can reuse "
                                                       "benchmarks/fair's model instead of a copy)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from .data import load_dataset
    from .evaluation.api import model_fingerprint
    from .zoo.store import find_card, load_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip())
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        p.error(f"unknown tool(s) {bad}; tools: {', '.join(TOOLS)}")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    card = find_card(args.model, "fashion_mnist", "Linf", "model_zoo")[0]
    eps = float(card.eps)
    test = load_dataset("fashion_mnist", "test")
    x, y = test.x[:args.n], test.y[:args.n]
    zoo_model = load_model(args.model, dataset="fashion_mnist")
    models = {args.model: (zoo_model, {"what": "zoo model", "card": card.model_id}),
              "outside_madry_cnn": outside_model(Path(args.outside_dir) if args.outside_dir else out)}
    meta = {"command": "python -m generalist_bench.bench_fair " + " ".join(argv if argv is not None else sys.argv[1:]),
            "threads": torch.get_num_threads(), "device": args.device, "hardware": hardware(),
            "versions": library_versions(), "note": args.note, "n": args.n, "eps": eps,
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    conditions = {"n": args.n, "eps": eps, "threads": torch.get_num_threads(), "device": args.device,
                  "cpu": hardware().get("cpu"),
                  "versions": library_versions(), "batch_sizes": batch_sizes, "tools": list(tools),
                  "models": {k: model_fingerprint(m) for k, (m, _) in models.items()}}
    record = Record(out / "fair.json", meta, conditions)
    summary = run_benchmark(models, x, y, eps, batch_sizes, args.repeats, tools, record, device=args.device)
    atomic_write_text(out / "FAIR.md", render(summary, record.data, batch_sizes, tools, args.n, eps))
    log(f"wrote {out / 'FAIR.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
