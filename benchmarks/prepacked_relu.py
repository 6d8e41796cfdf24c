"""The prepacked (oneDNN) forward with its ReLUs out of place (``torch.relu``, as before) and in place
(``torch.relu_``, now): outputs compared bit for bit, per-image cost at a few batch sizes, interleaved, best of
``--repeats``. The model is a zoo entry (default ``fmnist-smallcnn-pgd_at_seed0``).

Usage: ``python benchmarks/prepacked_relu.py --note "…"`` → ``benchmarks/prepacked/{relu.json,RELU.md}``. Timings are
measurements of this machine, not tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from generalist_bench.evaluation import fastpath
from generalist_bench.utils.env import git_commit, hardware, library_versions
from generalist_bench.utils.io import atomic_write_json, atomic_write_text


def out_of_place(self, x: torch.Tensor) -> torch.Tensor:
    h = x.contiguous().to_mkldnn()
    for op in self.ops:
        h = torch.relu(h) if isinstance(op, nn.ReLU) else op(h)
    return h.to_dense()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fmnist-smallcnn-pgd_at_seed0")
    p.add_argument("--sizes", default="32,64,128")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/prepacked")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    from generalist_bench.data import load_dataset
    from generalist_bench.zoo.store import load_model

    model = load_model(args.model, dataset="fashion_mnist").eval().requires_grad_(False)
    sizes = [int(s) for s in args.sizes.split(",")]
    x = load_dataset("fashion_mnist", "test").x[:max(sizes)]
    packed = fastpath.prepacked_copy(model)[0]
    in_place = fastpath._OneDNNBlock.forward
    variants = {"relu (out of place)": out_of_place, "relu_ (in place)": in_place}
    best = {(v, b): float("inf") for v in variants for b in sizes}
    identical = True
    try:
        with torch.no_grad():
            outs = {}
            for v, f in variants.items():
                fastpath._OneDNNBlock.forward = f
                outs[v] = packed(x)
            identical = bool(torch.equal(*outs.values())) and bool(torch.equal(outs["relu_ (in place)"], model(x)))
            for _ in range(args.repeats):
                for b in sizes:
                    for v, f in variants.items():
                        fastpath._OneDNNBlock.forward = f
                        packed(x[:b])
                        t0 = time.perf_counter()
                        for _ in range(args.calls):
                            packed(x[:b])
                        best[(v, b)] = min(best[(v, b)], (time.perf_counter() - t0) / args.calls / b * 1e3)
    finally:
        fastpath._OneDNNBlock.forward = in_place
    command = "python benchmarks/prepacked_relu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    res = {"command": command, "note": args.note, "git_commit": git_commit(), "hardware": hardware(),
           "versions": library_versions(), "threads": torch.get_num_threads(), "model": args.model,
           "identical": identical, "ms_per_image": {f"{v}|{b}": ms for (v, b), ms in best.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "relu.json", res)
    lines = ["# Prepacked forward: ReLU out of place vs in place", "",
             f"`{command}`; commit `{res['git_commit'][:10]}`; {res['threads']} threads; "
             f"{res['hardware'].get('cpu')}; model `{args.model}`; best of {args.repeats} × {args.calls} calls, "
             f"variants interleaved. Conditions: {args.note or 'not recorded'}.", "",
             f"Outputs identical (in place = out of place = eager model): **{identical}**", "",
             "| batch | relu, ms/image | relu_, ms/image | speed-up |", "|---:|---:|---:|---:|"]
    for b in sizes:
        a, c = best[("relu (out of place)", b)], best[("relu_ (in place)", b)]
        lines.append(f"| {b} | {a:.4f} | {c:.4f} | {a / c:.3f}× |")
    atomic_write_text(out / "RELU.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
