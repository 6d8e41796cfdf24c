"""``evaluate(model, ...) -> EvalResult`` and ``quick_eval(model, x, y, eps) -> (clean %, robust %)``.

Protocol as RobustBench: the first ``n_examples`` points of the split (or a seeded random sample), the model in
eval mode (restored afterwards), float32, a point counts as robust iff it is classified correctly clean and
under the attack(s). Every random number an attack draws for a point comes from a generator seeded by
(seed, the point's index in its split), so results do not depend on batch size, batch composition or
sharding (up to floating-point kernel effects; see ``sanity.batch_invariance``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..attacks.model_call import ModelCall
from ..attacks.registry import build_attack
from ..errors import ConfigError, GeneralistBenchError, UnknownNameError
from ..threat import NORMS, normalize_norm  # noqa: F401  (normalize_norm: part of this module's API)
from ..utils.env import git_commit, hardware, library_versions
from . import fastpath
from .checks import (
    autoattack_precheck,
    batch_invariance,
    capture_autoattack_warnings,
    check_images,
    square_check,
    validate_outputs,
)
from .loop import AttackLoop, EvalState, prepared
from .result import (
    AA_COMPONENTS,
    IDENTITY_KEYS,
    EvalResult,
    compute_result,
    merge_runner_reports,
    pct,
    report_violations,
)
from .suites import resolve_plan

INDEX_RULES = ("first_n", "random")
ENGINES = ("compact", "pyautoattack", "fast")  # defined in docs/PROTOCOL.md (result files name that file)
PROTOCOL_DOC = "docs/PROTOCOL.md"
LARGE_EPS = {"Linf": 0.5, "L2": 10.0}


def check_eps(eps: float, norm: str) -> float:
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ConfigError(f"eps must be a number, got {eps!r}") from None
    if math.isnan(eps) or eps < 0:
        raise ConfigError(f"eps must be ≥ 0, got {eps}")
    if norm == "Linf" and eps > 1:
        raise ConfigError(f"Linf eps must be ≤ 1 (pixel units of [0, 1] images), got {eps}")
    if not math.isfinite(eps):
        raise ConfigError(f"eps must be finite, got {eps}")
    return eps


def resolve_eps(eps: float | None, norm: str, dataset: str) -> float:
    if eps is None:
        if norm != "Linf":
            raise ConfigError(f"{norm} evaluation needs an explicit eps (the data sets define a default for Linf only)")
        from ..data import get_dataset_info

        eps = get_dataset_info(dataset).default_eps_linf
    return check_eps(eps, norm)


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over the state dict (names, dtypes, shapes, values): a resumed run must attack the same weights."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        if torch.is_tensor(v):
            t = v.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _check_model(model: nn.Module, device: torch.device) -> None:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module mapping [0,1] NCHW images to logits, got "
                          f"{type(model).__name__}")
    bad = sorted({str(t.dtype) for t in list(model.parameters()) + list(model.buffers())
                  if t.is_floating_point() and t.dtype != torch.float32})
    if bad:
        raise ConfigError(f"evaluation runs in float32; the model has {', '.join(bad)} tensors (call model.float())")
    devs = {t.device for t in model.parameters()}
    if devs and devs != {device}:
        raise ConfigError(f"the model is on {', '.join(sorted(map(str, devs)))} but device={str(device)!r}; "
                          "move it with model.to(device)")


def select_indices(n_total: int, n_examples: int | None, rule: str, sample_seed: int) -> torch.Tensor:
    if rule not in INDEX_RULES:
        raise UnknownNameError("index rule", rule, INDEX_RULES)
    n = n_total if n_examples is None else min(int(n_examples), n_total)
    if n < 1:
        raise ConfigError(f"n_examples must be ≥ 1, got {n_examples}")
    if rule == "first_n":
        return torch.arange(n)
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(int(sample_seed)))
    return perm[:n].sort().values


def shard_block(n: int, shard: Sequence[int] | None) -> slice:
    """The k-th of K contiguous blocks of ``range(n)`` (sizes differ by at most one)."""
    if shard is None:
        return slice(0, n)
    try:
        k, count = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be (k, K) with 0 ≤ k < K, got {shard!r}") from None
    if not 0 <= k < count:
        raise ConfigError(f"shard must be (k, K) with 0 ≤ k < K, got {shard!r}")
    if count > n:
        raise ConfigError(f"cannot split {n} points into {count} shards")
    return slice(k * n // count, (k + 1) * n // count)


def tensor_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """Caller-given tensors as a ``DatasetSplit`` named ``tensors`` (split ``given``), identified by their sha256;
    the class count is the model's output width."""
    from ..attacks import model_mode
    from ..data.registry import DatasetInfo
    from ..data.splits import DatasetSplit

    if not (torch.is_tensor(x) and torch.is_tensor(y)):
        raise ConfigError("x and y must both be tensors (images N×C×H×W in [0, 1], labels N)")
    if x.dim() != 4 or y.dim() != 1 or len(x) != len(y) or len(y) == 0:
        raise ConfigError(f"x must be N×C×H×W and y of length N (N ≥ 1); got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ConfigError(f"y must hold integer class labels, got dtype {y.dtype}")
    x, y = x.detach().to("cpu", torch.float32).contiguous(), y.detach().to("cpu", torch.int64).contiguous()
    with torch.no_grad(), model_mode(model, False):
        num_classes = int(model(x[:1].to(device)).shape[-1])
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ConfigError(f"labels must be in [0, {num_classes}) for a model with {num_classes} outputs")
    digest = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
    info = DatasetInfo("tensors", num_classes, tuple(x.shape[1:]), (), (), float("nan"), loader=None)
    return DatasetSplit("tensors", "given", x, y, torch.arange(len(y)), info, f"tensors sha256:{digest}")


@dataclass(frozen=True, eq=False)
class EvalSpec:
    """What to evaluate, validated once: the protocol of an evaluation (see ``evaluate`` for each field)."""

    dataset: str = "fashion_mnist"
    threat_model: str = "Linf"
    eps: float | None = None
    suite: str = "autoattack"
    attacks: str | Sequence[Any] | None = None
    attack_params: Mapping[str, Mapping[str, Any]] | None = None
    n_examples: int | None = 1000
    split: str = "test"
    data_dir: str | Path | None = None
    index_rule: str = "first_n"
    sample_seed: int | None = None
    seed: int = 0
    batch_size: int = 500
    shard: Sequence[int] | None = None
    device: str | torch.device = "cpu"
    engine: str = "compact"
    check_eps0: bool = False
    check_large_eps: bool = False
    strict: bool = False
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if self.engine not in ENGINES:
            raise UnknownNameError("evaluation engine", str(self.engine), ENGINES)
        if (self.x is not None or self.y is not None) and self.eps is None:
            raise ConfigError("eps is required when evaluating tensors x, y")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "seed", int(self.seed))


@dataclass
class EvalPlan:
    """A spec resolved against a model and its data: the points, the attacks and the protocol record."""

    spec: EvalSpec
    norm: str
    eps: float
    info: Any
    attacks: Any                 # suites.Plan
    x: torch.Tensor
    y: torch.Tensor
    split_indices: torch.Tensor  # the points' indices in their split (seeds are drawn from these)
    device: torch.device
    protocol: dict[str, Any]
    key: dict[str, Any]          # what a resumable state must match


def evaluate(model: nn.Module, dataset: str | EvalSpec = "fashion_mnist", threat_model: str = "Linf",
             eps: float | None = None, suite: str = "autoattack", n_examples: int | None = 1000,
             batch_size: int = 500, seed: int = 0, split: str = "test", data_dir: str | Path | None = None,
             attacks: str | Sequence[Any] | None = None, state_path: str | Path | None = None,
             shard: Sequence[int] | None = None, progress: bool = True, device: str | torch.device = "cpu", *,
             attack_params: Mapping[str, Mapping[str, Any]] | None = None, index_rule: str = "first_n",
             sample_seed: int | None = None, check_eps0: bool = False, check_large_eps: bool = False,
             strict: bool = False, engine: str = "compact", workers: int = 1,
             callback: Callable[[dict[str, Any]], None] | None = None, x: torch.Tensor | None = None,
             y: torch.Tensor | None = None) -> EvalResult:
    """Evaluate ``model`` (any ``nn.Module`` mapping [0,1] NCHW pixels to logits) under a suite of attacks.

    suite: ``autoattack`` (official standard AutoAttack, cumulative), ``paper`` or ``quick``; or ``attacks``: a
        comma-separated string or list of attack names (``(name, params)`` pairs allowed), reported individually.
    eps: None → the data set's default Linf eps; required for L2.
    n_examples: the first n points of ``split`` (``index_rule="random"``: a random sample seeded by
        ``sample_seed``, default ``seed``); None → all.
    state_path: JSON file the per-sample results are saved to after every batch; if it exists (same
        arguments), the run resumes from it.
    shard: ``(k, K)`` evaluates the k-th of K contiguous blocks of the selected points; combine the K results
        with ``merge_results``.
    attack_params: ``{attack: {param: value}}`` overrides (the suite is then reported as ``<suite>-custom``).
    check_eps0 / check_large_eps: extra sanity runs (PGD at eps 0 must leave clean accuracy; at eps 0.5 Linf it
        must bring accuracy to ~0). strict: raise ``SanityCheckError`` instead of warning on a violated invariant.
    engine: ``compact`` (default: pyautoattack's per-point computation without the work that cannot change a
        flag; flags identical to ``pyautoattack``), ``pyautoattack`` (upstream's loops) or ``fast`` (compact
        whose attack iterations search in bfloat16, every fooled verdict confirmed in float32; not exact, see
        ``generalist_bench.bench``).
    workers: evaluate in this many processes at once, each on one shard with ``torch threads // workers``
        threads, then merge (exact: every point's random numbers come from its index). On a small CPU, two
        one-thread processes keep both cores busier than one two-thread process. ``state_path`` gets one state
        file per worker (``<state_path>.w<k>of<K>``), so an interrupted parallel run resumes.
    callback: called with a dict after every attacked batch (not with ``workers`` > 1).
    x, y: evaluate on these tensors (pixels in [0, 1], NCHW; int64 labels) instead of a data set's split; ``eps``
        is then required, the class count is the model's, and the protocol names the data by its sha256
        (``dataset="tensors"``, ``split="given"``).
    """
    spec = dataset if isinstance(dataset, EvalSpec) else EvalSpec(
        dataset=dataset, threat_model=threat_model, eps=eps, suite=suite, attacks=attacks,
        attack_params=attack_params, n_examples=n_examples, split=split, data_dir=data_dir, index_rule=index_rule,
        sample_seed=sample_seed, seed=seed, batch_size=batch_size, shard=shard, device=device, engine=engine,
        check_eps0=check_eps0, check_large_eps=check_large_eps, strict=strict, x=x, y=y)
    if int(workers) > 1:
        if spec.x is not None or spec.y is not None:
            raise ConfigError("workers > 1 needs a data set name; evaluate tensors x, y in one process")
        if spec.shard is not None:
            raise ConfigError("workers > 1 shards the evaluation itself: do not pass shard as well")
        return _evaluate_parallel(int(workers), model, {**_spec_kwargs(spec), "progress": progress}, state_path)
    if int(workers) < 1:
        raise ConfigError(f"workers must be ≥ 1, got {workers}")
    t_start = time.perf_counter()
    plan = plan_evaluation(model, spec)
    state = EvalState.load_or_new(state_path, plan.key, plan.split_indices, plan.attacks.atoms)
    before, sessions_before, extra_before = state.progress(), state.sessions, copy.deepcopy(state.extra)
    state.sessions += 1  # saved with every batch, as is the provenance: a killed session still counts
    state.extra["provenance"] = _provenance()
    try:
        run_plan(model, plan, state, progress=progress, callback=callback)
    finally:
        if before[0] and state.progress() == before:  # a state reloaded with nothing left to attack: its
            state.sessions, state.extra = sessions_before, extra_before  # result stays the recorded sessions'
        else:
            state.elapsed_s += time.perf_counter() - t_start
        state.save()
    result = report(plan, state)
    report_violations(result, spec.strict)
    return result


def _provenance() -> dict[str, Any]:
    return {"versions": library_versions(), "git_commit": git_commit(), "hardware": hardware()}


def _spec_kwargs(spec: EvalSpec) -> dict[str, Any]:
    return {f: getattr(spec, f) for f in ("dataset", "threat_model", "eps", "suite", "n_examples", "batch_size",
                                          "seed", "split", "data_dir", "attacks", "device", "attack_params",
                                          "index_rule", "sample_seed", "check_eps0", "check_large_eps", "strict",
                                          "engine")}


def plan_evaluation(model: nn.Module, spec: EvalSpec) -> EvalPlan:
    """Resolve ``spec`` for ``model``: threat model, data points, attack plan and the protocol record."""
    from ..data import get_dataset_info, load_dataset

    norm = normalize_norm(spec.threat_model)
    device = torch.device(spec.device)
    if spec.x is not None or spec.y is not None:
        data = tensor_split(model, spec.x, spec.y, device)
        info = data.info
    else:
        info, data = get_dataset_info(spec.dataset), None
    eps = resolve_eps(spec.eps, norm, info.name)
    _check_model(model, device)
    attacks = resolve_plan(spec.suite, spec.attacks, norm=norm, eps=eps, num_classes=info.num_classes,
                           attack_params=spec.attack_params,
                           impl="pyautoattack" if spec.engine == "pyautoattack" else "compact")
    if data is None:
        data = load_dataset(info.name, spec.split, spec.data_dir)
    s_seed = spec.seed if spec.sample_seed is None else int(spec.sample_seed)
    sel = select_indices(len(data), spec.n_examples, spec.index_rule, s_seed)
    n_total = len(sel)
    sel = sel[shard_block(n_total, spec.shard)]
    x, y = data.x[sel], data.y[sel]
    check_images(x, f"{info.name} {spec.split} images")
    protocol = _protocol(spec, model, attacks, info, data, norm, eps, n_total, s_seed, device)
    versions = library_versions()
    key = {k: protocol[k] for k in IDENTITY_KEYS}
    key.update({"shard": protocol["shard"], "batch_size": spec.batch_size,
                "versions": {k: versions.get(k) for k in ("torch", "torchattacks", "pyautoattack")}})
    return EvalPlan(spec, norm, eps, info, attacks, x, y, data.indices[sel], device, protocol, key)


def _protocol(spec: EvalSpec, model: nn.Module, attacks, info, data, norm: str, eps: float, n_total: int,
              s_seed: int, device: torch.device) -> dict[str, Any]:
    engine = spec.engine
    return {
        "suite": attacks.suite, "mode": attacks.mode, "dataset": info.name, "split": data.split,
        "data_source": data.source, "index_rule": spec.index_rule,
        "sample_seed": s_seed if spec.index_rule == "random" else None,
        "n_examples": n_total, "shard": None if spec.shard is None else [int(v) for v in spec.shard],
        "norm": norm, "eps": eps, "attacks": list(attacks.protocol_attacks), "skipped_attacks": list(attacks.skipped),
        "seed": spec.seed, "batch_size": spec.batch_size, "device": str(device), "dtype": "float32",
        "model_class": type(model).__name__, "model_sha256": model_fingerprint(model),
        "engine": engine, "exact": engine != "fast",
        "search_dtype": ("bfloat16" if fastpath.bf16_native() else "float32") if _searches(engine, device) else None,
        "protocol_doc": PROTOCOL_DOC,  # robust, per-attack accuracy, per-sample seeding, engines: defined there
    }


def run_plan(model: nn.Module, plan: EvalPlan, state: EvalState, *, progress: bool = True,
             callback: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Attack the plan's points, recording per-point results in ``state`` (resumes what it already holds)."""
    spec, device, x, y = plan.spec, plan.device, plan.x, plan.y
    atk = plan.attacks
    captured = call = None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(prepared(model))
            call = model_call(model, spec.engine, device)
            stack.enter_context(torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]))
            captured = stack.enter_context(capture_autoattack_warnings())
            m = min(spec.batch_size, len(y))
            x0, y0 = x[:m].to(device), y[:m].to(device)
            validate_outputs(model, x0, plan.info.num_classes, plan.info.name)
            if "aa_precheck" not in state.extra:
                autoattack_precheck(model, x0, y0, atk.atoms, min(9, plan.info.num_classes - 1))
                state.extra["aa_precheck"] = True
                state.extra["batch_invariance"] = batch_invariance(model, x0)
            loop = AttackLoop(call, x, y, state, attacks=atk.attacks, seed=spec.seed, batch_size=spec.batch_size,
                            device=device, norm=plan.norm, eps=plan.eps, progress=progress, callback=callback)
            loop.run(atk.mode, atk.entries, atk.atoms, AA_COMPONENTS)
            for flag, key, eps in ((spec.check_eps0, "eps0", 0.0), (spec.check_large_eps, "large_eps",
                                                                     LARGE_EPS[plan.norm])):
                if flag and key not in state.extra:
                    state.extra[key] = _eps_check(call, x, y, state.clean, plan.norm, eps, spec.batch_size,
                                                  device, spec.seed)
            if atk.mode == "cumulative" or "autoattack" in atk.entries:
                # pyautoattack's Square success-rate check on the cumulative accuracies
                square_check(_cumulative(state, atk.atoms if atk.mode == "cumulative" else AA_COMPONENTS))
    finally:
        if isinstance(call, fastpath.ModelRunner):
            _add_runner_report(state, call.report)
        if captured is not None:
            for msg, c in captured.messages.items():
                state.aa_messages[msg] = state.aa_messages.get(msg, 0) + c


def report(plan: EvalPlan, state: EvalState) -> EvalResult:
    """The result of a finished ``state``: accuracies, per-point flags, sanity checks and the protocol."""
    norm, eps = plan.norm, plan.eps
    run_violations: list[str] = []
    for name, st in state.atoms.items():
        p = st.perturbation
        if p.get("n_outside_ball") or p.get("n_outside_box") or p.get("n_nonfinite"):
            run_violations.append(f"{name}: {p['n_outside_ball']} adversarial example(s) outside the {norm} ball of "
                                  f"radius {eps:g} (+1e-6), {p['n_outside_box']} outside [0, 1], "
                                  f"{p['n_nonfinite']} not finite")
    mr = state.extra.get("model_runner") or {}
    if mr.get("mismatches") and mr.get("used"):
        run_violations.append("the prepacked no-grad forward pass was used and later gave logits different from "
                              "the eager model's: the result may differ from the exact engine's")
    bad_mode = sum(int(s.stats.get("train_mode_forwards", 0)) for s in state.atoms.values())
    if bad_mode:
        run_violations.append(f"{bad_mode} forward pass(es) ran with the model in train mode")
    for check in (state.extra.get("eps0"), state.extra.get("large_eps")):
        if check and not check["ok"]:
            run_violations.append(check["message"])
    sanity_extra: dict[str, Any] = {
        "run_violations": run_violations,
        "autoattack_checks": [{"message": k, "count": v} for k, v in state.aa_messages.items()],
        "perturbation": {a: dict(s.perturbation) for a, s in state.atoms.items()},
        "batch_invariance": state.extra.get("batch_invariance"),
        "model_runner": state.extra.get("model_runner"),
    }
    for k in ("eps0", "large_eps"):
        if k in state.extra:
            sanity_extra[k] = state.extra[k]
    stats = {"clean": dict(state.clean_stats)}
    stats.update({a: dict(s.stats) for a, s in state.atoms.items()})
    protocol = dict(plan.protocol)
    # the code and machine of the last session that attacked something, not of a later reload
    protocol.update({**(state.extra.get("provenance") or _provenance()), "sessions": state.sessions})
    atoms = {a: (s.done, s.robust) for a, s in state.atoms.items()}
    return compute_result(protocol, plan.split_indices, state.clean, atoms, stats, sanity_extra, state.elapsed_s)


def _worker(model: nn.Module, kwargs: dict[str, Any], threads: int, queue) -> None:
    torch.set_num_threads(threads)
    try:
        queue.put(("ok", kwargs["shard"][0], evaluate(model, **kwargs).to_dict()))
    except BaseException as e:  # noqa: BLE001  (reported to the parent, which raises it)
        queue.put(("error", kwargs["shard"][0], e if isinstance(e, Exception) else RuntimeError(repr(e))))


def _evaluate_parallel(workers: int, model: nn.Module, kwargs: dict[str, Any], state_path) -> EvalResult:
    """``workers`` spawned processes, shard k of K each; the merged result equals the unsharded one."""
    import multiprocessing
    import queue as queue_mod

    from .result import merge_results

    t0 = time.perf_counter()
    threads = max(1, torch.get_num_threads() // workers)
    ctx = multiprocessing.get_context("spawn")  # fork after OpenMP has started can hang the children
    q = ctx.Queue()
    procs = []
    for k in range(workers):
        kw = dict(kwargs, shard=(k, workers),
                  state_path=None if state_path is None else f"{state_path}.w{k}of{workers}")
        p = ctx.Process(target=_worker, args=(model, kw, threads, q), daemon=True)
        p.start()
        procs.append(p)
    results: dict[int, dict[str, Any]] = {}
    try:
        while len(results) < workers:
            try:
                status, k, payload = q.get(timeout=5)
            except queue_mod.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise GeneralistBenchError(f"an evaluation worker died (exit code {dead[0].exitcode})") from None
                continue
            if status == "error":
                raise payload
            results[k] = payload
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(10)
    merged = merge_results([results[k] for k in range(workers)], strict=bool(kwargs.get("strict")))
    merged.protocol["workers"] = {"processes": workers, "threads_each": threads}
    merged.wall_time_s = time.perf_counter() - t0
    return merged


def model_call(model: nn.Module, engine: str, device: torch.device | str = "cpu") -> ModelCall:
    """What the attacks call: for ``pyautoattack`` a plain ``ModelCall`` (the model's own forward, as upstream
    calls it); for ``compact`` and ``fast`` a ``ModelRunner`` (row chunks, prepacked no-grad passes; ``fast`` on a
    CPU: plus the search precision that the compacting loops search with, every settling verdict confirmed in
    float32)."""
    if engine == "pyautoattack":
        return ModelCall(model)
    # the chunk sizes are read here, not bound at import: a benchmark may set them (benchmarks/chunk_sizes.py)
    return fastpath.ModelRunner(model, chunk_rows=fastpath.DEFAULT_CHUNK_ROWS,
                                grad_chunk_rows=fastpath.DEFAULT_GRAD_CHUNK_ROWS,
                                search_model=fastpath.SearchModel(model) if _searches(engine, device) else None)


def _searches(engine: str, device: torch.device | str) -> bool:
    """The ``fast`` engine searches on the CPU only (elsewhere it runs as ``compact``)."""
    return engine == "fast" and torch.device(device).type == "cpu"


def _add_runner_report(state: EvalState, report: dict[str, Any]) -> None:
    """Accumulate the model runner's report over the sessions of a resumed evaluation."""
    old = state.extra.get("model_runner")
    state.extra["model_runner"] = merge_runner_reports([old, report] if old else [report])


def _cumulative(state: EvalState, names: Sequence[str]) -> dict[str, float]:
    n = len(state.clean)
    cur = state.clean.clone()
    out = {"clean": pct(int(cur.sum()), n)}
    for c in names:
        cur = cur & state.atoms[c].robust
        out[c] = pct(int(cur.sum()), n)
    return out


def _eps_check(model: nn.Module, x, y, clean: torch.Tensor, norm: str, eps: float, batch_size: int, device,
               seed: int) -> dict[str, Any]:
    """PGD-10 (step eps/4) at eps 0 must keep exactly the clean flags; at a large eps it must fool (almost) all."""
    attack = build_attack("pgd-10", norm=norm, eps=eps)
    robust = torch.zeros(len(y), dtype=torch.bool)
    for b in range(0, len(y), batch_size):
        xb, yb = x[b:b + batch_size].to(device), y[b:b + batch_size].to(device)
        xa = attack(model, xb, yb, indices=torch.arange(b, b + len(yb)), seed=seed)
        with torch.no_grad():
            robust[b:b + len(yb)] = (model(xa).max(1)[1] == yb).cpu()
    robust &= clean
    acc = pct(int(robust.sum()), len(y))
    if eps == 0:
        ok = bool(torch.equal(robust, clean))
        msg = "" if ok else f"PGD at eps=0 changed {int((robust != clean).sum())} prediction(s): robust ≠ clean"
    else:
        ok = acc <= 5.0
        msg = "" if ok else (f"PGD-10 at {norm} eps={eps:g} leaves {acc:.2f}% accuracy (expected ~0): gradient "
                             "masking, or a model/attack problem")
    return {"eps": eps, "attack": "pgd-10", "robust_acc": acc, "ok": ok, "message": msg}


def quick_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf", steps: int = 20,
               step_size: float | None = None, seed: int = 0, *, indices: torch.Tensor | None = None,
               batch_size: int = 500) -> tuple[float, float]:
    """Clean and PGD-``steps`` accuracy in PERCENT (0–100), model in eval mode (restored afterwards).

    PGD: step ``step_size`` (default eps/4), uniform random start drawn per sample from (seed, index) with
    ``indices`` (default 0..n-1), exactly as the ``quick`` suite's ``pgd-20``; a point counts as robust iff it is
    classified correctly clean and adversarially.
    """
    norm = normalize_norm(norm)
    eps = check_eps(eps, norm)
    n = len(y)
    if n == 0:
        raise ConfigError("quick_eval needs at least one point")
    check_images(x)
    if len(x) != n:
        raise ConfigError(f"quick_eval: {len(x)} images but {n} labels")
    idx = torch.arange(n) if indices is None else torch.as_tensor(indices)
    attack = None
    if steps > 0 and eps > 0:
        attack = build_attack(f"pgd-{int(steps)}", norm=norm, eps=eps,
                              params=None if step_size is None else {"step_size": float(step_size)})
    clean = robust = 0
    dev = next((p.device for p in model.parameters()), x.device)
    with prepared(model), torch.random.fork_rng(devices=[] if dev.type == "cpu" else [dev]):
        for b in range(0, n, batch_size):
            xb, yb = x[b:b + batch_size].to(dev), y[b:b + batch_size].to(dev)
            with torch.no_grad():
                ok = model(xb).max(1)[1] == yb
            clean += int(ok.sum())
            if attack is None:
                robust += int(ok.sum())
                continue
            xa = attack(model, xb, yb, indices=idx[b:b + batch_size], seed=seed)
            with torch.no_grad():
                robust += int((ok & (model(xa).max(1)[1] == yb)).sum())
    return pct(clean, n), pct(robust, n)
