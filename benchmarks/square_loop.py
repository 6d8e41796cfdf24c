"""Linf Square in the exact engine, one change measured: the window-only loop against the loop it replaced.

Three implementations of the same attack, run on the same points with the same seeded draws:

- ``upstream``: pyautoattack's ``SquareAttack.attack_single_run`` (``impl="pyautoattack"``);
- ``previous``: the compact loop before the window-only change (whole images projected and blended, no-op
  proposals skipped), read from git at ``--previous`` (default: the commit before the change) — not a copy kept
  in the tree;
- ``compact``: the loop in this checkout.

For each model (the zoo model and ``bench_fair``'s outside Madry CNN) Square runs with AutoAttack's settings
(5,000 queries, p_init 0.8) on the first ``--n`` test points in one batch, ``--repeats`` times, implementations
interleaved (order rotated every repeat). Every run's adversarial images must equal upstream's bit for bit. The
pass-count bound is the images sent through the model × the best prepacked forward cost of ``bench_fair``'s
per-pass measurement on this machine.

Usage: ``python benchmarks/square_loop.py --note "…"`` → ``benchmarks/square/{square.json,SQUARE.md}``. Timings
are measurements of this machine, not tests; ``--note`` records the conditions (e.g. a paused background job).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from generalist_bench import bench_fair
from generalist_bench.evaluation.autoattack.square import CompactSquare, Square
from generalist_bench.evaluation.fastpath import ModelRunner
from generalist_bench.evaluation.loop import prepared
from generalist_bench.utils.env import git_commit, hardware, library_versions
from generalist_bench.utils.io import atomic_write_json, atomic_write_text

IMPLS = ("upstream", "previous", "compact")
COMPACT_PATH = "generalist_bench/evaluation/autoattack/compact.py"


def previous_loop(rev: str):
    """``square_linf_run`` as it was at ``rev``: that revision's compact.py run as a module of this package."""
    src = subprocess.run(["git", "show", f"{rev}:{COMPACT_PATH}"], capture_output=True, text=True, check=True).stdout
    mod = types.ModuleType("generalist_bench.evaluation.autoattack._compact_previous")
    mod.__package__ = "generalist_bench.evaluation.autoattack"
    exec(compile(src, f"{rev}:{COMPACT_PATH}", "exec"), mod.__dict__)
    return mod.square_linf_run


def run(impl: str, model, x, y, eps: float, prev, n_queries: int):
    sq = Square(norm="Linf", eps=eps, n_queries=n_queries, impl="pyautoattack" if impl == "upstream" else "compact")
    runner = ModelRunner(model)
    atk = sq.prepare(runner, x, None, 0)
    if impl == "previous":
        assert isinstance(atk, CompactSquare)
        atk.attack_single_run = types.MethodType(lambda self, a, b: prev(self, a, b), atk)
    c0 = runner.snapshot()
    t0 = time.perf_counter()
    with torch.no_grad():
        x_adv = atk.perturb(x, y).detach()
    dt = time.perf_counter() - t0
    c1 = runner.snapshot()
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y)
    return {"seconds": dt, "robust": int(robust.sum()),
            "forward_images": int(c1["forward_images"] - c0["forward_images"])}, x_adv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fmnist-smallcnn-pgd_at_seed0")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-queries", type=int, default=5000, help="AutoAttack's 5,000; fewer for a smoke run")
    p.add_argument("--previous", default="a04cbb5^", help="git revision holding the loop before the change")
    p.add_argument("--out", default="benchmarks/square")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    from generalist_bench.data import load_dataset
    from generalist_bench.zoo.store import find_card, load_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prev = previous_loop(args.previous)
    card = find_card(args.model, "fashion_mnist", "Linf", "model_zoo")[0]
    eps = float(card.eps)
    test = load_dataset("fashion_mnist", "test")
    models = {args.model: load_model(args.model, dataset="fashion_mnist"),
              "outside_madry_cnn": bench_fair.outside_model(Path("benchmarks/fair"))[0]}
    res = {"command": "python benchmarks/square_loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "note": args.note, "hardware": hardware(), "versions": library_versions(), "git_commit": git_commit(),
           "previous": subprocess.run(["git", "rev-parse", args.previous], capture_output=True, text=True,
                                      check=True).stdout.strip(),
           "threads": torch.get_num_threads(), "n": args.n, "n_queries": args.n_queries, "eps": eps,
           "started": time.strftime("%Y-%m-%d %H:%M:%S"),
           "costs": {}, "runs": []}
    for name, model in models.items():
        model.eval()
        x, y = test.x[:args.n], test.y[:args.n]
        with prepared(model):
            keep = model(x).argmax(1) == y  # upstream's perturb attacks these; the others pass through
            print(f"[square] {name}: per-pass costs", file=sys.stderr, flush=True)
            res["costs"][name] = bench_fair.pass_costs(model, x, y, [32, 64, 96, 128], images=1024)
            ref = None
            for rep in range(args.repeats):
                for impl in IMPLS[rep % 3:] + IMPLS[:rep % 3]:
                    r, x_adv = run(impl, model, x, y, eps, prev, args.n_queries)
                    ref = x_adv if ref is None else ref  # repeat 0 runs upstream first
                    same = bool(torch.equal(x_adv, ref))
                    res["runs"].append({"model": name, "impl": impl, "repeat": rep, "attacked": int(keep.sum()),
                                        "identical_to_upstream": same, **r})
                    print(f"[square] {name} {impl} rep {rep}: {r['seconds']:.1f} s, identical {same}",
                          file=sys.stderr, flush=True)
                    atomic_write_json(out / "square.json", res)
    atomic_write_text(out / "SQUARE.md", render(res))
    return 0


def render(res: dict) -> str:
    lines = ["# Linf Square: window-only loop vs the loop it replaced vs upstream", "",
             f"`{res['command']}`; {res['started']}; commit `{res['git_commit'][:10]}`, previous loop from "
             f"`{res['previous'][:10]}`; {res['threads']} threads; {res['hardware'].get('cpu')}. Square with "
             f"AutoAttack's settings ({res['n_queries']:,} queries, p_init 0.8, margin loss), Linf eps {res['eps']}, "
             "the first "
             f"{res['n']} Fashion-MNIST test points in one batch. Conditions: {res['note'] or 'not recorded'}.", ""]
    for name, c in res["costs"].items():
        runs = [r for r in res["runs"] if r["model"] == name]
        best = c["best_forward_ms"]
        lines += [f"## {name}", "", f"Points attacked: {runs[0]['attacked']}; best forward cost on this machine "
                  f"{best:.3f} ms/image.", "",
                  "| loop | runs | median s | min–max s | vs upstream | vs previous | images forward | × bound | "
                  "images identical to upstream's | robust |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        med = {i: statistics.median(r["seconds"] for r in runs if r["impl"] == i) for i in IMPLS}
        for i in IMPLS:
            rs = [r for r in runs if r["impl"] == i]
            bound = rs[0]["forward_images"] * best / 1000
            same = all(r["identical_to_upstream"] for r in rs)
            lines.append(f"| {i} | {len(rs)} | {med[i]:.1f} | {min(r['seconds'] for r in rs):.1f}–"
                         f"{max(r['seconds'] for r in rs):.1f} | {med['upstream'] / med[i]:.2f}× | "
                         f"{med['previous'] / med[i]:.2f}× | {rs[0]['forward_images']:,} | {med[i] / bound:.2f} | "
                         f"{same} | {rs[0]['robust']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
