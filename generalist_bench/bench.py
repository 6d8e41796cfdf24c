"""``python -m generalist_bench.bench``: side-by-side timings against the peer tools, one run, one results file.

Everything runs in this process, on the same model, points, data and thread count, one job at a time:

- **AutoAttack** (standard, Linf) on the first ``--n`` test points of a zoo model: ``pyautoattack`` called as a
  user calls it, ``pyautoattack`` with the model's parameters frozen, our harness with upstream's loops
  (``engine="pyautoattack"``), our ``compact`` engine (the default) and our ``fast`` engine (bfloat16 search,
  every verdict that settles a point confirmed in float32), and
  ``torchattacks.AutoAttack`` (whose APGD runs 10 iterations, not AutoAttack's 100: a different, weaker
  attack, timed only for reference). Exactness is checked, not assumed: ``compact`` must give exactly the
  per-point flags of ``engine="pyautoattack"`` (same random starts); ``fast`` must agree with ``compact`` on
  ≥ 99.8% of points and in robust accuracy to 0.1 point.
- **Where AutoAttack's time goes**: per attack, seconds and images through the model, for each engine.
- **The model's passes by batch size**: ms per image for the eager forward, the prepacked forward of the
  evaluation's model runner (and whether it is bit-identical to eager) and forward + input gradient.
- **Evaluation scaling**: the compact AutoAttack as n grows, and as the batch size changes.
- **Training**: one PGD-AT epoch (SmallCNN, PGD-10, eps 0.1, step 0.025, batch 128, SGD) through our engine,
  through the adversarial-robustness-toolbox's ``AdversarialTrainerMadryPGD`` and through a plain PyTorch loop;
  a Generalist and a TRADES epoch against the PGD-AT epoch; bf16 autocast and channels_last.
- **bf16 accuracy**: PGD-AT trained in fp32 and in bf16 autocast with the same recipe; throughput and the
  clean / PGD-20 test accuracy difference.

Results: ``benchmarks/RESULTS.md`` (ratios first, then seconds, then machine and versions) and
``benchmarks/results.json``, both written atomically. Timings are measurements of this machine, not tests.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils.env import hardware, library_versions

AA_COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def default_model() -> str:
    from .zoo.store import list_zoo

    names = [e.model_id for e in list_zoo("model_zoo", dataset="fashion_mnist")]
    for want in ("fmnist-smallcnn-pgd_at_seed0", "fmnist-smallcnn-pgd_at_seed0_quick"):
        if want in names:
            return want
    raise SystemExit("no fmnist-smallcnn-pgd_at model in model_zoo/: pass --model NAME")


# ------------------------------------------------------------------------------------------ AutoAttack
class _LogTimes(logging.Handler):
    """pyautoattack's per-attack lines: 'robust accuracy after APGD-CE: 52.00% (total time 5.8 s)'."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.after: dict[str, tuple[float, float]] = {}

    def emit(self, record):
        m = re.match(r"robust accuracy after (\S+): ([\d.]+)% \(total time ([\d.]+) s\)", record.getMessage())
        if m:
            self.after[m.group(1).lower()] = (float(m.group(2)), float(m.group(3)))


@contextlib.contextmanager
def _aa_log():
    logger, h = logging.getLogger("auto-attack"), _LogTimes()
    old = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    try:
        yield h
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)


def run_pyautoattack(model: nn.Module, x, y, eps: float, bs: int, freeze: bool) -> dict[str, Any]:
    from pyautoattack import AutoAttack

    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(not freeze)
    aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0, device="cpu")
    with _aa_log() as h, torch.random.fork_rng():
        t0 = time.perf_counter()
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=bs)
        dt = time.perf_counter() - t0
    flags = (y_adv == y)
    per, prev = {}, 0.0
    for name in AA_COMPONENTS:
        if name in h.after:
            per[name] = {"seconds": h.after[name][1] - prev, "robust_after": h.after[name][0]}
            prev = h.after[name][1]
    return {"seconds": dt, "robust_acc": 100.0 * flags.float().mean().item(), "flags": flags, "per_attack": per}


def run_ours(model: nn.Module, n: int, eps: float, bs: int, engine: str, workers: int = 1) -> dict[str, Any]:
    from .evaluation import evaluate

    t0 = time.perf_counter()
    r = evaluate(model, eps=eps, n_examples=n, batch_size=bs, engine=engine, progress=False, workers=workers)
    dt = time.perf_counter() - t0
    per = {a: {"seconds": s["wall_time_s"], "forward_images": s["forward_images"],
               "backward_images": s["backward_images"], "points": s["points"]}
           for a, s in r.attack_stats.items() if a in AA_COMPONENTS}
    per["clean"] = {"seconds": r.attack_stats["clean"]["wall_time_s"]}
    return {"seconds": dt, "robust_acc": r.robust_acc, "flags": r.flags("robust"), "per_attack": per,
            "cumulative": r.autoattack["cumulative"]}


def run_torchattacks(model: nn.Module, x, y, eps: float, bs: int) -> dict[str, Any]:
    import torchattacks

    model = copy.deepcopy(model).eval()
    atk = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    robust = torch.zeros(len(y), dtype=torch.bool)
    with torch.random.fork_rng():
        t0 = time.perf_counter()
        for b in range(0, len(y), bs):
            xa = atk(x[b:b + bs], y[b:b + bs])
            with torch.no_grad():
                robust[b:b + bs] = model(xa).argmax(1) == y[b:b + bs]
        dt = time.perf_counter() - t0
    return {"seconds": dt, "robust_acc": 100.0 * robust.float().mean().item(), "flags": robust,
            "note": "torchattacks.AutoAttack: APGD/APGD-T/FAB/Square with torchattacks' defaults (APGD 10 steps); "
                    "not the official attack"}


def aa_section(model_name: str, n: int, bs: int, skip_slow_baselines: bool) -> dict[str, Any]:
    from .data import load_dataset
    from .zoo.store import find_card, load_model

    card = find_card(model_name, "fashion_mnist", "Linf", "model_zoo")[0]
    model = load_model(model_name, dataset="fashion_mnist")
    eps = float(card.eps)
    data = load_dataset("fashion_mnist", "test")
    x, y = data.x[:n], data.y[:n]
    runs: dict[str, dict[str, Any]] = {}
    plan = [("pyautoattack", lambda: run_pyautoattack(model, x, y, eps, bs, freeze=False))]
    if not skip_slow_baselines:
        plan.append(("pyautoattack (parameters frozen)", lambda: run_pyautoattack(model, x, y, eps, bs, freeze=True)))
        plan.append(("ours, engine=pyautoattack", lambda: run_ours(model, n, eps, bs, "pyautoattack")))
    w = min(2, torch.get_num_threads())
    plan += [("ours, engine=compact (default)", lambda: run_ours(model, n, eps, bs, "compact")),
             ("ours, engine=fast", lambda: run_ours(model, n, eps, bs, "fast")),
             (f"ours, engine=compact, {w} worker processes", lambda: run_ours(model, n, eps, bs, "compact", w)),
             (f"ours, engine=fast, {w} worker processes", lambda: run_ours(model, n, eps, bs, "fast", w)),
             ("torchattacks.AutoAttack (10-step APGD: a different attack)",
              lambda: run_torchattacks(model, x, y, eps, bs))]
    for name, fn in plan:
        log(f"AutoAttack: {name} on {n} points ...")
        runs[name] = fn()
        log(f"  {runs[name]['seconds']:.1f} s, robust {runs[name]['robust_acc']:.2f}%")
    base = runs["pyautoattack"]["seconds"]
    compact = runs["ours, engine=compact (default)"]
    fast = runs["ours, engine=fast"]
    checks: dict[str, Any] = {}
    if "ours, engine=pyautoattack" in runs:
        ref = runs["ours, engine=pyautoattack"]
        checks["compact_flags_identical_to_pyautoattack_loops"] = bool(torch.equal(compact["flags"], ref["flags"]))
    cw = runs[f"ours, engine=compact, {w} worker processes"]
    checks["workers_flags_identical_to_one_process"] = bool(torch.equal(cw["flags"], compact["flags"]))
    for label, r in (("fast", fast), ("fast_workers", runs[f"ours, engine=fast, {w} worker processes"])):
        agree = (r["flags"] == compact["flags"]).float().mean().item()
        diff = abs(r["robust_acc"] - compact["robust_acc"])
        checks[f"{label}_flag_agreement_with_compact"] = agree
        checks[f"{label}_robust_acc_diff_points"] = diff
        checks[f"{label}_within_tolerance"] = agree >= 0.998 and diff <= 0.1
    checks["pyautoattack_vs_compact_flag_agreement"] = (
        (runs["pyautoattack"]["flags"] == compact["flags"]).float().mean().item())
    for r in runs.values():
        r["speedup_vs_pyautoattack"] = base / r["seconds"]
        r["flags"] = None
    return {"model": model_name, "n": n, "batch_size": bs, "eps": eps, "runs": runs, "checks": checks}


def agreement_section(model_name: str, result_path: str) -> dict[str, Any]:
    """The ``fast`` engine against a committed exact AutoAttack result of the same zoo model (same points, batch
    size and seed): per-point flag agreement and robust-accuracy difference on that result's n points, a larger
    sample than the side-by-side section's."""
    from .evaluation import EvalResult, evaluate
    from .evaluation.api import model_fingerprint
    from .zoo.store import load_model

    ref = EvalResult.from_json(Path(result_path).read_text())
    pr = ref.protocol
    model = load_model(model_name, dataset=pr["dataset"])
    if model_fingerprint(model) != pr["model_sha256"]:
        raise SystemExit(f"{result_path} is a result of another model than {model_name}")
    if not pr.get("exact", True) or pr.get("suite") != "autoattack":
        raise SystemExit(f"{result_path} is not an exact standard AutoAttack result")
    log(f"agreement: fast engine on the {pr['n_examples']} points of {result_path} ...")
    t0 = time.perf_counter()
    r = evaluate(model, dataset=pr["dataset"], threat_model=pr["norm"], eps=pr["eps"], n_examples=pr["n_examples"],
                 batch_size=pr["batch_size"], seed=pr["seed"], split=pr["split"], index_rule=pr["index_rule"],
                 sample_seed=pr.get("sample_seed"), engine="fast", progress=False)
    seconds = time.perf_counter() - t0
    a, b = r.flags("robust"), ref.flags("robust")
    agree = (a == b).float().mean().item()
    diff = abs(r.robust_acc - ref.robust_acc)
    mr = r.sanity.get("model_runner") or {}
    return {"model": model_name, "reference": result_path, "reference_engine": pr["engine"], "n": pr["n_examples"],
            "eps": pr["eps"], "reference_robust_acc": ref.robust_acc, "fast_robust_acc": r.robust_acc,
            "clean_identical": bool(torch.equal(r.flags("clean"), ref.flags("clean"))), "flag_agreement": agree,
            "disagreements": int((a != b).sum()), "fast_only_robust": int((a & ~b).sum()),
            "fast_only_fooled": int((~a & b).sum()), "robust_acc_diff_points": diff,
            "disagreeing_indices": r.indices[a != b].tolist(),
            "within_tolerance": agree >= 0.998 and diff <= 0.1, "fast_seconds": seconds,
            "search_dtype": r.protocol.get("search_dtype"), "confirmed": mr.get("confirmed"),
            "rejected": mr.get("rejected"),
            "escalated_rows": mr.get("escalated_rows"), "escalated_images": mr.get("escalated_images"),
            "search_images": mr.get("search_images")}


def scaling_section(model_name: str, ns: list[int], batch_sizes: list[int], n_bs: int, bs0: int,
                    known: dict[tuple[int, int], dict[str, Any]]) -> dict[str, Any]:
    """Compact AutoAttack time as n grows (batch ``bs0``) and as the batch size changes (n = ``n_bs``); runs the
    AutoAttack section already made (``known``: (n, batch) → run) are reused, not repeated."""
    from .zoo.store import find_card, load_model

    card = find_card(model_name, "fashion_mnist", "Linf", "model_zoo")[0]
    model = load_model(model_name, dataset="fashion_mnist")
    out: dict[str, Any] = {"n": [], "batch_size": []}
    for key, n, bs in [("n", n, bs0) for n in ns] + [("batch_size", n_bs, b) for b in batch_sizes]:
        r = known.get((n, bs))
        if r is None:
            log(f"scaling: compact AutoAttack, n={n}, batch {bs} ...")
            r = run_ours(model, n, float(card.eps), bs, "compact")
            known[(n, bs)] = r
        out[key].append({"n": n, "batch_size": bs, "seconds": r["seconds"], "robust_acc": r["robust_acc"],
                         "seconds_per_point": r["seconds"] / n})
    return out


def model_section(model_name: str, sizes: list[int], images: int = 1024, repeats: int = 3) -> dict[str, Any]:
    """Per-image cost of the model's passes by batch size (why the evaluation's model runner uses row chunks and
    prepacked no-grad passes): eager forward, prepacked forward (``evaluation.fastpath``, with whether its
    logits equal the eager ones bit for bit at that size) and eager forward + input gradient. Sizes
    interleaved, best of ``repeats``."""
    from .data import load_dataset
    from .evaluation.fastpath import prepacked_copy
    from .zoo.store import load_model

    model = load_model(model_name, dataset="fashion_mnist").eval().requires_grad_(False)
    fast, reason = prepacked_copy(model)
    test = load_dataset("fashion_mnist", "test")
    x, y = test.x[:images], test.y[:images]

    def no_grad(m):
        def f(xb, yb):
            with torch.no_grad():
                return m(xb)
        return f

    def fwd_bwd(xb, yb):
        xb = xb.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(xb), yb, reduction="sum"), xb)[0]

    passes = [("eager forward", no_grad(model)), ("forward+input gradient", fwd_bwd)]
    if fast is not None:
        passes.insert(1, ("prepacked forward", no_grad(fast)))
    best: dict[tuple[str, int], float] = {}
    for _ in range(repeats):
        for b in sizes:
            for name, f in passes:
                f(x[:b], y[:b])
                t0 = time.perf_counter()
                for i in range(0, images, b):
                    f(x[i:i + b], y[i:i + b])
                ms = (time.perf_counter() - t0) / images * 1e3
                best[(name, b)] = min(ms, best.get((name, b), math.inf))
    identical = {}
    if fast is not None:
        with torch.no_grad():
            identical = {b: bool(torch.equal(fast(x[:b]), model(x[:b]))) for b in sizes}
    rows = [{"batch_size": b, **{name: best[(name, b)] for name, _ in passes},
             "prepacked_bit_identical": identical.get(b)} for b in sizes]
    return {"model": model_name, "images": images, "repeats": repeats, "prepacked": reason,
            "passes": [n for n, _ in passes], "rows": rows}


# ------------------------------------------------------------------------------------------ training
def _pgd(model, x, y, eps=0.1, step=0.025, steps=10, generator=None):
    """Plain Madry PGD (uniform start, sign steps), the model in eval mode as in our engine and ART."""
    model.eval()
    delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps
    xa = (x + delta).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
        xa = torch.min(torch.max(xa.detach() + step * g.sign(), x - eps), x + eps).clamp(0, 1)
    return xa.detach()


def hand_loop_epoch(x, y, batch: int = 128) -> float:
    from .models.registry import create_model

    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    pgd_at_epoch(model, opt, x, y, batch, g, lambda m, xb, yb: _pgd(m, xb, yb, generator=g))
    return len(y) / (time.perf_counter() - t0)


def pgd_at_epoch(model: nn.Module, opt, x, y, batch: int, generator: torch.Generator, attack) -> None:
    """One plain PyTorch PGD-AT epoch: shuffled batches, ``attack(model, x, y)`` in eval mode, a CE step."""
    perm = torch.randperm(len(y), generator=generator)
    for i in range(0, len(y), batch):
        idx = perm[i:i + batch]
        model.eval()
        xa = attack(model, x[idx], y[idx])
        model.train()
        loss = F.cross_entropy(model(xa), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def art_epoch(x, y, batch: int = 128) -> float:
    from art.defences.trainer import AdversarialTrainerMadryPGD
    from art.estimators.classification import PyTorchClassifier

    from .models.registry import create_model

    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), optimizer=opt, input_shape=(1, 28, 28),
                            nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=1, batch_size=batch, eps=0.1, eps_step=0.025, max_iter=10,
                                         num_random_init=1)
    xn, yn = x.numpy(), F.one_hot(y, 10).float().numpy()
    logging.getLogger("art").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    trainer.fit(xn, yn)
    return len(y) / (time.perf_counter() - t0)


def train_section(images: int, repeats: int) -> dict[str, Any]:
    from .bench_train import time_epoch
    from .data import load_dataset

    tr = load_dataset("fashion_mnist", "train")
    x, y = tr.x[:images], tr.y[:images]
    entries: list[tuple[str, Any]] = [
        ("ours: PGD-AT (fmnist-smallcnn-pgd_at)", lambda: time_epoch("fmnist-smallcnn-pgd_at", images)),
        ("plain PyTorch PGD-AT loop", lambda: hand_loop_epoch(x, y)),
    ]
    try:
        import art  # noqa: F401

        entries.append(("ART AdversarialTrainerMadryPGD", lambda: art_epoch(x, y)))
        art_note = None
    except ImportError:
        art_note = "adversarial-robustness-toolbox not installed (pip install -e '.[bench]')"
    entries += [
        ("ours: Generalist (fmnist-smallcnn-generalist)", lambda: time_epoch("fmnist-smallcnn-generalist", images)),
        ("ours: TRADES (fmnist-smallcnn-trades)", lambda: time_epoch("fmnist-smallcnn-trades", images)),
        ("ours: PGD-AT, bf16 autocast", lambda: time_epoch("fmnist-smallcnn-pgd_at+train.amp=bf16", images)),
        ("ours: PGD-AT, channels_last", lambda: time_epoch("fmnist-smallcnn-pgd_at+train.channels_last=true", images)),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in entries}
    for r in range(repeats):  # interleaved: machine noise hits every entry alike
        for name, fn in entries:
            log(f"training (repeat {r + 1}/{repeats}): {name}, one epoch of {images} images ...")
            rates[name].append(fn())
    med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    base = med["ours: PGD-AT (fmnist-smallcnn-pgd_at)"]
    rows = [{"name": k, "img_per_s": med[k], "seconds_per_epoch": images / med[k], "all_img_per_s": rates[k],
             "time_vs_our_pgd_at": base / med[k]} for k in rates]
    return {"images": images, "repeats": repeats, "batch_size": 128, "rows": rows, "art_note": art_note,
            "setup": "SmallCNN, first N Fashion-MNIST training images, batch 128, PGD-10 (eps 0.1, step 0.025, "
                     "uniform start, attack in eval mode), SGD lr 0.05 momentum 0.9 wd 5e-4; one epoch"}


def bf16_section(images: int, epochs: int, n_test: int) -> dict[str, Any]:
    """PGD-AT trained in fp32 and with bf16 autocast, same recipe and seed: throughput and test accuracy
    (clean and PGD-20 on the first ``n_test`` test points, evaluated in fp32)."""
    from .bench_train import train_and_score

    rows = []
    for label, spec in (("fp32", "fmnist-smallcnn-pgd_at"), ("bf16 autocast", "fmnist-smallcnn-pgd_at+train.amp=bf16")):
        log(f"bf16: training {label} for {epochs} epochs on {images} images ...")
        clean, robust, rate = train_and_score(spec, images, epochs, n_test)
        rows.append({"name": label, "spec": spec, "clean": clean, "pgd20": robust, "img_per_s": rate})
    return {"images": images, "epochs": epochs, "n_test": n_test, "rows": rows,
            "speedup": rows[1]["img_per_s"] / rows[0]["img_per_s"],
            "clean_diff": rows[1]["clean"] - rows[0]["clean"], "pgd20_diff": rows[1]["pgd20"] - rows[0]["pgd20"]}


# ------------------------------------------------------------------------------------------ report
def _render_aa(aa: dict[str, Any]) -> list[str]:
    L: list[str] = []
    L += [f"## AutoAttack (standard, Linf eps {aa['eps']:g}): {aa['n']} Fashion-MNIST test points, "
          f"`{aa['model']}`, batch {aa['batch_size']}", "",
          f"**Every tool at batch {aa['batch_size']} — not each tool's best setting.** pyautoattack is faster at "
          "smaller batches on this CPU (per-image cost grows with the batch; `compact` chunks calls to ≤ 128 rows "
          "internally), so these ratios overstate the exact engine's advantage (a user reported 1.24× at batch "
          "100 in issue #16, not measured here). The best-vs-best comparison is "
          "`python -m generalist_bench.bench_fair` → `benchmarks/fair/FAIR.md`.", "",
          "| run | speed-up vs pyautoattack | seconds | s / point | robust acc. (%) |", "|---|---:|---:|---:|---:|"]
    for name, r in aa["runs"].items():
        L.append(f"| {name} | **{r['speedup_vs_pyautoattack']:.2f}×** | {r['seconds']:.1f} | "
                 f"{r['seconds'] / aa['n']:.2f} | {r['robust_acc']:.2f} |")
    c = aa["checks"]
    L += ["", "Checks (from this run):", ""]
    if "compact_flags_identical_to_pyautoattack_loops" in c:
        L.append(f"- compact engine: per-point robust flags identical to pyautoattack's loops given the same "
                 f"random starts: **{c['compact_flags_identical_to_pyautoattack_loops']}**")
    L.append(f"- compact engine in worker processes: flags identical to one process: "
             f"**{c['workers_flags_identical_to_one_process']}**")
    for label, what in (("fast", "fast engine"), ("fast_workers", "fast engine in worker processes")):
        L.append(f"- {what} vs compact: flags agree on {100 * c[label + '_flag_agreement_with_compact']:.2f}% "
                 f"of points, robust accuracy differs by {c[label + '_robust_acc_diff_points']:.2f} points → "
                 f"within the tolerance (≥ 99.8%, ≤ 0.1 point): **{c[label + '_within_tolerance']}**")
    L.append(f"- pyautoattack as called by a user (its own batch-seeded random starts) vs compact (per-point "
             f"seeded starts): flags agree on {100 * c['pyautoattack_vs_compact_flag_agreement']:.2f}% of points")
    L += ["- torchattacks' AutoAttack runs its APGD for 10 steps instead of 100: it is a weaker attack, "
          "listed for its cost only.", "", "### Where the time goes (seconds per attack)", "",
          "Worker-process runs show each attack's time summed over the processes (core-seconds).", "",
          "| run | clean | APGD-CE | APGD-T | FAB-T | Square |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in aa["runs"].items():
        per = r.get("per_attack")
        if not per:
            continue
        cells = [f"{per[a]['seconds']:.1f}" if a in per else "–" for a in ("clean", *AA_COMPONENTS)]
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    L += ["", "Images through the model (forward / backward) per attack, our engines:", "",
          "| run | APGD-CE | APGD-T | FAB-T | Square |", "|---|---:|---:|---:|---:|"]
    for name, r in aa["runs"].items():
        per = r.get("per_attack", {})
        if "apgd-ce" not in per or "forward_images" not in per["apgd-ce"]:
            continue
        cells = [f"{per[a]['forward_images']:,} / {per[a]['backward_images']:,}" if a in per else "–"
                 for a in AA_COMPONENTS]
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _render_agreement(ag: dict[str, Any]) -> list[str]:
    L: list[str] = []
    L += [f"## The fast engine on {ag['n']} points: agreement with a committed exact result", "",
          f"`{ag['model']}`, standard AutoAttack Linf eps {ag['eps']:g}, the points, batch size and seed of "
          f"`{ag['reference']}` (engine `{ag['reference_engine']}`); fast engine searching in "
          f"{ag['search_dtype']} (APGD, FAB), every verdict that settles a point confirmed in float32.", "",
          "| | exact (committed) | fast (this run) |", "|---|---:|---:|",
          f"| robust accuracy (%) | {ag['reference_robust_acc']:.2f} | {ag['fast_robust_acc']:.2f} |", "",
          f"- clean flags identical: **{ag['clean_identical']}**; robust flags agree on "
          f"{100 * ag['flag_agreement']:.2f}% of points ({ag['disagreements']} differ: {ag['fast_only_robust']} "
          f"robust only under fast, {ag['fast_only_fooled']} fooled only under fast); accuracy difference "
          f"{ag['robust_acc_diff_points']:.2f} points → within the tolerance (≥ 99.8%, ≤ 0.1 point): "
          f"**{ag['within_tolerance']}**",
          f"- float32 checks of search verdicts (\"fooled\", or \"robust\" near the boundary): "
          f"{ag['confirmed']} misclassified, {ag['rejected']} not; rows escalated to float32 after such a "
          f"check: {ag.get('escalated_rows')}; attack-loop passes of escalated rows: "
          f"{ag.get('escalated_images')} of {(ag.get('escalated_images') or 0) + (ag.get('search_images') or 0)} "
          f"images (the checks themselves not counted); fast engine time {ag['fast_seconds']:.0f} s (the "
          f"speed-up is measured side by side above).",
          f"- points whose flags differ: {ag.get('disagreeing_indices')}", ""]
    return L


def _render_model(mo: dict[str, Any]) -> list[str]:
    L: list[str] = []
    L += [f"## The model's passes by batch size (ms per image, best of {mo['repeats']}; `{mo['model']}`, "
          f"{mo['images']} test images)", "",
          "Why the evaluation's model runner (`evaluation.fastpath`, compact and fast engines) splits model calls "
          "into chunks of at most 128 rows and runs no-grad passes through prepacked oneDNN convolutions "
          f"({mo['prepacked']}). The prepacked path is used for an input shape only after its logits equal "
          "the eager ones bit for bit there.", "",
          "| batch | " + " | ".join(mo["passes"]) + " | prepacked logits bit-identical |",
          "|---:|" + "---:|" * (len(mo["passes"]) + 1)]
    for r in mo["rows"]:
        same = r["prepacked_bit_identical"]
        L.append(f"| {r['batch_size']} | " + " | ".join(f"{r[p]:.3f}" for p in mo["passes"])
                 + f" | {'–' if same is None else same} |")
    L.append("")
    return L


def _render_scaling(sc: dict[str, Any]) -> list[str]:
    L: list[str] = []
    L += ["## Evaluation scaling (compact AutoAttack)", "", "| n | batch | seconds | s / point | robust acc. (%) |",
          "|---:|---:|---:|---:|---:|"]
    for r in sc["n"] + sc["batch_size"]:
        L.append(f"| {r['n']} | {r['batch_size']} | {r['seconds']:.1f} | {r['seconds'] / r['n']:.2f} | "
                 f"{r['robust_acc']:.2f} |")
    L.append("")
    return L


def _render_train(tr: dict[str, Any]) -> list[str]:
    L: list[str] = []
    L += [f"## Training: one epoch of {tr['images']} images (median of {tr['repeats']})", "", tr["setup"], "",
          "| run | time vs our PGD-AT epoch | images / s | seconds / epoch |", "|---|---:|---:|---:|"]
    for r in tr["rows"]:
        L.append(f"| {r['name']} | **{r['time_vs_our_pgd_at']:.2f}×** | {r['img_per_s']:.0f} | "
                 f"{r['seconds_per_epoch']:.1f} |")
    if tr.get("art_note"):
        L.append(f"\nART row missing: {tr['art_note']}")
    L.append("")
    return L


def _render_bf16(bf: dict[str, Any]) -> list[str]:
    L: list[str] = []
    L += [f"## bf16 autocast training (PGD-AT, {bf['epochs']} epochs on {bf['images']} images, same seed; test "
          f"accuracy on the first {bf['n_test']} test points, evaluated in fp32)", "",
          f"bf16 trains **{bf['speedup']:.2f}×** as fast; accuracy difference bf16 − fp32: clean "
          f"{bf['clean_diff']:+.1f} points, PGD-20 {bf['pgd20_diff']:+.1f} points.", "",
          "| run | images / s | clean (%) | PGD-20 (%) |", "|---|---:|---:|---:|"]
    for r in bf["rows"]:
        L.append(f"| {r['name']} | {r['img_per_s']:.0f} | {r['clean']:.1f} | {r['pgd20']:.1f} |")
    L.append("")
    return L


SECTIONS = (  # res key → its renderer, in page order
    ("aa", _render_aa),
    ("agreement", _render_agreement),
    ("model", _render_model),
    ("scaling", _render_scaling),
    ("train", _render_train),
    ("bf16", _render_bf16),
)


def render(res: dict[str, Any]) -> str:
    L: list[str] = ["# Benchmarks", "",
                    f"Regenerate: `{res['command']}` ({res['total_minutes']:.1f} min on this machine). "
                    "Every number below comes from that one run; timings are measurements, not tests.", ""]
    if res.get("models") or res.get("commit"):
        L += ["Measured at commit " + (f"`{res['commit'][:12]}`" if res.get("commit") else "(unknown)") + "".join(
            f"; `{name}` sha256 `{sha[:16]}…`" for name, sha in sorted((res.get("models") or {}).items())) + ".", ""]
    for key, section in SECTIONS:
        if res.get(key):
            L += section(res[key])
    hw, v = res["hardware"], res["versions"]
    L += ["## Machine and versions", "", f"- CPU: {hw.get('cpu')}, {hw.get('cpu_count')} cores, "
          f"{res['threads']} torch threads", "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val), ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m generalist_bench.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="zoo model (default: fmnist-smallcnn-pgd_at_seed0, else its quick "
                                                 "version)")
    p.add_argument("--n", type=int, default=100, help="AutoAttack test points (default 100)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--scaling-n", default="100,300", help="n values for the scaling table (default 100,300)")
    p.add_argument("--scaling-bs", default="100", help="batch sizes for the scaling table, at n=--n")
    p.add_argument("--images", type=int, default=2560, help="training images per timed epoch")
    p.add_argument("--repeats", type=int, default=3, help="training repeats, interleaved (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--sections", default="aa,agreement,model,scaling,train,bf16",
                   help="comma list of aa, agreement, model, scaling, train, bf16")
    p.add_argument("--agreement-model", default="fmnist-smallcnn-generalist_seed0",
                   help="zoo model for the agreement section (default fmnist-smallcnn-generalist_seed0)")
    p.add_argument("--agreement-result", default="runs/full/fmnist-smallcnn-generalist/seed0/eval_autoattack.json",
                   help="its committed exact AutoAttack result (EvalResult JSON) to compare the fast engine with")
    p.add_argument("--bf16-images", type=int, default=4000, help="training images for the bf16 accuracy comparison")
    p.add_argument("--bf16-epochs", type=int, default=3)
    p.add_argument("--skip-slow-baselines", action="store_true",
                   help="skip the frozen-parameter pyautoattack and engine=pyautoattack runs (no exactness check)")
    p.add_argument("--out", default="benchmarks", help="output directory (RESULTS.md, results.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    known_sections = ("aa", "agreement", "model", "scaling", "train", "bf16")
    unknown = sections - set(known_sections)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}: choose from {', '.join(known_sections)}")
    model = args.model or default_model()
    t0 = time.perf_counter()
    res: dict[str, Any] = {"command": "python -m generalist_bench.bench " + " ".join(argv if argv is not None
                                                                                     else sys.argv[1:]),
                           "threads": torch.get_num_threads(), "hardware": hardware(), "versions": library_versions()}
    res["command"] = res["command"].strip()
    from .utils.env import git_commit
    from .zoo.store import list_zoo

    # which weights were measured: a zoo name is retrained from time to time, its card's sha256 is not
    names = {model, args.agreement_model}
    res["commit"] = git_commit()
    res["models"] = {e.card.model_id: e.card.sha256 for e in list_zoo("model_zoo")
                     if e.card is not None and e.card.model_id in names}
    if "aa" in sections:
        res["aa"] = aa_section(model, args.n, args.batch_size, args.skip_slow_baselines)
    if "agreement" in sections:
        res["agreement"] = agreement_section(args.agreement_model, args.agreement_result)
    if "model" in sections:
        res["model"] = model_section(model, [32, 64, 128, 256, 512])
    if "scaling" in sections:
        known = {}
        if "aa" in sections:
            known[(args.n, args.batch_size)] = res["aa"]["runs"]["ours, engine=compact (default)"]
        res["scaling"] = scaling_section(model, [int(v) for v in args.scaling_n.split(",") if v],
                                         [int(v) for v in args.scaling_bs.split(",") if v], args.n, args.batch_size,
                                         known)
    if "train" in sections:
        res["train"] = train_section(args.images, args.repeats)
    if "bf16" in sections:
        res["bf16"] = bf16_section(args.bf16_images, args.bf16_epochs, 1000)
    res["total_minutes"] = (time.perf_counter() - t0) / 60
    from .utils.io import atomic_write_text

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(res, indent=1, default=str) + "\n")
    atomic_write_text(out / "RESULTS.md", render(res))
    log(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
