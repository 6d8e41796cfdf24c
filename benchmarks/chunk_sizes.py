"""Chunk sizes per pass kind in the exact engine: measured, not guessed.

``ModelRunner`` splits every model call into chunks (``fastpath.DEFAULT_CHUNK_ROWS`` rows for passes without a
gradient, ``DEFAULT_GRAD_CHUNK_ROWS`` for passes with an input gradient). This script

1. measures the per-image cost of each kind of pass (eager forward, prepacked forward, forward + input gradient)
   at batch sizes 16…256, for the two models of ``bench_fair`` (the zoo model and the outside Madry CNN,
   loaded from ``benchmarks/fair/outside_madry_cnn.pt``), sizes interleaved, best of 3;
2. runs standard AutoAttack with ``engine="compact"`` on the first ``--n`` test points at ``--batch-size`` under
   each chunk setting of ``--variants`` (``nograd/grad`` rows), ``--repeats`` times interleaved (order rotated
   every repeat), and checks that every setting gives per-point flags identical to the first one's.

Usage: ``python benchmarks/chunk_sizes.py --out benchmarks/chunks`` → ``chunks.json`` and ``CHUNKS.md``. Timings
are measurements of this machine, not tests; ``--note`` records the conditions (e.g. a paused background job).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

from generalist_bench import bench_fair
from generalist_bench.evaluation import evaluate, fastpath
from generalist_bench.utils.env import hardware, library_versions
from generalist_bench.utils.io import atomic_write_json, atomic_write_text

ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
SIZES = [16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256]


def run_compact(model, n: int, bs: int, eps: float, nograd: int, grad: int) -> dict:
    fastpath.DEFAULT_CHUNK_ROWS, fastpath.DEFAULT_GRAD_CHUNK_ROWS = nograd, grad
    t0 = time.perf_counter()
    r = evaluate(copy.deepcopy(model), dataset="fashion_mnist", eps=eps, suite="autoattack", n_examples=n,
                 batch_size=bs, engine="compact", progress=False)
    dt = time.perf_counter() - t0
    per = {a: {"s": round(float(s.get("wall_time_s", 0.0)), 2), "forward_images": int(s.get("forward_images", 0)),
               "gradient_images": int(s.get("backward_images", 0))} for a, s in r.attack_stats.items()}
    return {"seconds": dt, "robust_acc": r.robust_acc, "per_attack_s": per,
            "flags": "".join("1" if f else "0" for f in r.flags("robust").tolist())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fmnist-smallcnn-pgd_at_seed0")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--variants", default="128/128,128/64,256/64", help="nograd/grad chunk rows, the first is the "
                                                                        "reference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/chunks")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    from generalist_bench.data import load_dataset
    from generalist_bench.zoo.store import find_card, load_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [tuple(int(v) for v in s.split("/")) for s in args.variants.split(",")]
    card = find_card(args.model, "fashion_mnist", "Linf", "model_zoo")[0]
    eps = float(card.eps)
    test = load_dataset("fashion_mnist", "test")
    x, y = test.x[:args.n], test.y[:args.n]
    models = {args.model: load_model(args.model, dataset="fashion_mnist"),
              "outside_madry_cnn": bench_fair.outside_model(Path("benchmarks/fair"))[0]}
    res = {"command": "python benchmarks/chunk_sizes.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "note": args.note, "hardware": hardware(), "versions": library_versions(),
           "threads": torch.get_num_threads(), "n": args.n, "batch_size": args.batch_size, "eps": eps,
           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "costs": {}, "runs": []}
    for name, model in models.items():
        print(f"[chunks] {name}: per-pass costs", file=sys.stderr, flush=True)
        res["costs"][name] = bench_fair.pass_costs(model, x, y, SIZES, images=1024)
        atomic_write_json(out / "chunks.json", res)
    for rep in range(args.repeats):
        for name, model in models.items():
            for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:
                r = run_compact(model, args.n, args.batch_size, eps, *v)
                res["runs"].append({"model": name, "variant": f"{v[0]}/{v[1]}", "repeat": rep, **r})
                print(f"[chunks] {name} {v[0]}/{v[1]} rep {rep}: {r['seconds']:.1f} s", file=sys.stderr, flush=True)
                atomic_write_json(out / "chunks.json", res)
    atomic_write_text(out / "CHUNKS.md", render(res, variants))
    return 0


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def render(res: dict, variants: list[tuple[int, int]]) -> str:
    lines = ["# Chunk sizes per pass kind (exact engine)", "",
             f"`{res['command']}`; {res['started']}; {res['threads']} threads; {res['hardware'].get('cpu')}. "
             f"Standard AutoAttack, engine `compact`, first {res['n']} Fashion-MNIST test points, Linf eps "
             f"{res['eps']}, batch {res['batch_size']}. Conditions: {res['note'] or 'not recorded'}.", ""]
    for name, c in res["costs"].items():
        lines += [f"## {name}", "", "Per-image cost (ms, best of 3, sizes interleaved):", "",
                  "| batch | forward | prepacked forward | forward + gradient |", "|---:|---:|---:|---:|"]
        lines += [f"| {r['batch_size']} | {r['forward_ms']:.3f} | {_ms(r['prepacked_forward_ms'])} | "
                  f"{r['forward_gradient_ms']:.3f} |" for r in c["rows"]]
        runs = [r for r in res["runs"] if r["model"] == name]
        ref = f"{variants[0][0]}/{variants[0][1]}"
        ref_med = statistics.median(r["seconds"] for r in runs if r["variant"] == ref) if runs else None
        ref_flags = {r["flags"] for r in runs if r["variant"] == ref}
        lines += ["", "| chunk rows (no-grad / grad) | runs | median s | min–max | vs "
                  f"{ref} | flags identical to {ref} |", "|---|---:|---:|---:|---:|---|"]
        for v in variants:
            vs = f"{v[0]}/{v[1]}"
            rs = [r for r in runs if r["variant"] == vs]
            if not rs:
                continue
            med = statistics.median(r["seconds"] for r in rs)
            lines.append(f"| {vs} | {len(rs)} | {med:.1f} | {min(r['seconds'] for r in rs):.1f}–"
                         f"{max(r['seconds'] for r in rs):.1f} | {ref_med / med:.3f}× | "
                         f"{all(r['flags'] in ref_flags for r in rs) and len(ref_flags) == 1} |")
        lines += ["", "Per attack (median over the runs of each setting): seconds and × its pass-count bound "
                  "(forward images without gradient × best forward cost + gradient images × best forward + gradient "
                  "cost, both over all sizes above):", "",
                  "| chunk rows | " + " | ".join(ATTACKS) + " |", "|---|" + "---:|" * len(ATTACKS)]
        for v in variants:
            vs = f"{v[0]}/{v[1]}"
            rs = [r for r in runs if r["variant"] == vs]
            if not rs:
                continue
            cells = []
            for a in ATTACKS:
                sec = statistics.median(r["per_attack_s"][a]["s"] for r in rs if a in r["per_attack_s"])
                st = rs[0]["per_attack_s"][a]
                b = bench_fair.bound_seconds(st["forward_images"], st["gradient_images"], c)
                cells.append(f"{sec:.1f} ({sec / b:.2f}×)" if b else f"{sec:.1f}")
            lines.append(f"| {vs} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
