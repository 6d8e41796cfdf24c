"""``generalist-bench eval``: evaluate a zoo model, a checkpoint or a RobustBench model; merge shard results.

    generalist-bench eval --model zoo:NAME --dataset fashion_mnist --eps 0.1 --out result.json
    generalist-bench eval --checkpoint best.pt --arch small_cnn --attacks pgd-20,cw --n-examples 200
    generalist-bench eval --model zoo:NAME --shard 0/4 --out part0.json     # then:
    generalist-bench eval --merge part0.json part1.json part2.json part3.json --out result.json

With ``--out`` the per-sample progress is saved to ``<out>.state.json`` after every batch; ``--resume``
continues from it (a run without ``--resume`` starts over).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..threat import eps_arg

_eps = eps_arg


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like k/K (0-based k), got {text!r}") from None
    return k, n


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("model (one of)")
    src.add_argument("--model", metavar="zoo:NAME", help="a model of the zoo (--model-dir)")
    src.add_argument("--checkpoint", metavar="PATH", help="a state dict (raw or {'state_dict': ...}); needs --arch")
    src.add_argument("--robustbench", metavar="NAME", help="a RobustBench model (cifar10 / cifar100)")
    src.add_argument("--arch", help="architecture of --checkpoint (e.g. small_cnn)")
    src.add_argument("--model-dir", default="model_zoo", help="zoo / RobustBench model directory (default: model_zoo)")
    th = p.add_argument_group("threat model and protocol")
    th.add_argument("--dataset", default="fashion_mnist")
    th.add_argument("--threat-model", default="Linf", help="Linf or L2")
    th.add_argument("--eps", type=_eps, default=None, help="radius in [0,1] pixel units, e.g. 0.1 or 8/255 "
                                                            "(default: the data set's Linf default; required for L2)")
    how = th.add_mutually_exclusive_group()
    how.add_argument("--suite", default=None, help="autoattack (default), paper or quick")
    how.add_argument("--attacks", help="comma-separated attack names, e.g. pgd-20,mim,cw,apgd-ce")
    th.add_argument("--n-examples", type=int, default=1000, help="first n points of the split (default 1000)")
    th.add_argument("--index-rule", default="first_n", choices=("first_n", "random"))
    th.add_argument("--sample-seed", type=int, default=None, help="seed of --index-rule random (default: --seed)")
    th.add_argument("--split", default="test")
    th.add_argument("--data-dir", default=None)
    th.add_argument("--batch-size", type=int, default=500)
    th.add_argument("--seed", type=int, default=0)
    th.add_argument("--device", default="cpu")
    th.add_argument("--workers", type=int, default=1,
                    help="evaluate in this many processes (shards merged; exact), threads split between them")
    th.add_argument("--engine", default="compact", choices=("compact", "pyautoattack", "fast"),
                    help="compact (default; robust flags identical to pyautoattack's, without its wasted work), "
                         "pyautoattack (upstream's loops) or fast (compact whose iterations search in bfloat16, every "
                         "fooled verdict confirmed in float32; not exact)")
    th.add_argument("--check-eps0", action="store_true", help="sanity run: PGD at eps 0 must leave clean accuracy")
    th.add_argument("--check-large-eps", action="store_true", help="sanity run: PGD at eps 0.5 must reach ~0%%")
    th.add_argument("--strict", action="store_true", help="fail (exit 2) when a sanity check fails")
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="result.json", help="write the result JSON here")
    out.add_argument("--state", metavar="PATH", help="state file (default: <out>.state.json)")
    out.add_argument("--resume", action="store_true", help="continue from the state file of an interrupted run")
    out.add_argument("--shard", type=_shard, default=None, metavar="k/K", help="evaluate the k-th of K blocks")
    out.add_argument("--merge", nargs="+", metavar="JSON", help="merge shard results into --out (no evaluation)")
    out.add_argument("--no-progress", action="store_true", help="no progress bars / lines")


def load_model_from_args(args: argparse.Namespace):
    from .loading import load_checkpoint, load_robustbench_model, load_zoo_model

    given = [o for o in ("model", "checkpoint", "robustbench") if getattr(args, o)]
    if len(given) != 1:
        raise ConfigError("give exactly one of --model zoo:NAME, --checkpoint PATH --arch ARCH, --robustbench NAME")
    if args.checkpoint:
        if not args.arch:
            raise ConfigError("--checkpoint needs --arch (e.g. --arch small_cnn)")
        return load_checkpoint(args.checkpoint, args.arch, args.dataset)
    if args.arch:
        raise ConfigError("--arch is used with --checkpoint only")
    if args.robustbench:
        return load_robustbench_model(args.robustbench, args.dataset, args.threat_model, args.model_dir)
    name = args.model[len("zoo:"):] if args.model.startswith("zoo:") else args.model
    return load_zoo_model(name, args.dataset, args.threat_model, args.model_dir)


def _summary(result) -> str:
    p = result.protocol
    rule = "first" if p["index_rule"] == "first_n" else "random"
    shard = f", shard {p['shard'][0]}/{p['shard'][1]}" if p.get("shard") else ""
    lines = [f"{p['dataset']} {p['split']}, {rule} {p['n_examples']} points{shard}, {p['norm']} eps {p['eps']:g}, "
             f"suite {p['suite']} ({result.per_attack_mode})",
             f"  clean {result.clean_acc:6.2f}%   robust {result.robust_acc:6.2f}%   ({result.wall_time_s:.0f} s)"]
    for name, acc in result.per_attack.items():
        lines.append(f"  {name:<12} {acc:6.2f}%")
    if not result.sanity.get("ok", True):
        lines.append("  SANITY CHECKS FAILED: " + "; ".join(result.sanity["violations"]))
    for m in result.sanity.get("autoattack_checks", []):
        lines.append(f"  AutoAttack check: {m['message']} (×{m['count']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..utils.io import atomic_write_text
    from .api import evaluate
    from .result import EvalResult, merge_results

    if args.merge:
        if not args.out:
            raise ConfigError("--merge needs --out")
        parts = []
        for f in args.merge:
            try:
                parts.append(EvalResult.from_dict(json.loads(Path(f).read_text())))
            except (OSError, ValueError) as e:
                raise ConfigError(f"cannot read shard result {f}: {e}") from None
        result = merge_results(parts, strict=args.strict)
    else:
        state = Path(args.state) if args.state else (Path(args.out + ".state.json") if args.out else None)
        if args.resume and state is None:
            raise ConfigError("--resume needs --out or --state (where the interrupted run saved its state)")
        if state is not None and state.exists() and not args.resume:
            state.unlink()  # a fresh run
        from ..trainers.distributed import init_distributed

        dist_info = init_distributed()  # torchrun: one per-sample shard per rank, rank 0 merges and writes
        shard, device, progress = args.shard, args.device, not args.no_progress
        if dist_info.enabled:
            if args.shard is not None or args.workers > 1:
                raise ConfigError("under torchrun every rank evaluates one shard: do not pass --shard or --workers")
            shard = (dist_info.rank, dist_info.world_size)
            if state is not None:
                state = state.with_name(f"{state.name}.rank{dist_info.rank}of{dist_info.world_size}")
            if str(device).startswith("cuda"):
                device = f"cuda:{dist_info.local_rank}"
            progress = progress and dist_info.is_primary
        model = load_model_from_args(args)
        suite = args.suite or "autoattack"
        result = evaluate(model, dataset=args.dataset, threat_model=args.threat_model, eps=args.eps, suite=suite,
                          n_examples=args.n_examples, batch_size=args.batch_size, seed=args.seed, split=args.split,
                          data_dir=args.data_dir, attacks=args.attacks, state_path=state, shard=shard,
                          progress=progress, device=device, index_rule=args.index_rule,
                          sample_seed=args.sample_seed, check_eps0=args.check_eps0,
                          check_large_eps=args.check_large_eps, strict=args.strict, engine=args.engine,
                          workers=args.workers)
        if dist_info.enabled:
            result = gather_shards(result, dist_info, strict=args.strict)
            if result is None:  # not rank 0: rank 0 prints and writes
                return 0
    print(_summary(result))
    if args.out:
        atomic_write_text(args.out, result.to_json() + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def gather_shards(result, dist_info, *, strict: bool = False):
    """Every rank's shard result → rank 0, merged (exact: every point's random numbers come from its index);
    other ranks get None. Ends the process group."""
    import torch.distributed as dist

    from .result import EvalResult, merge_results

    parts: list = [None] * dist_info.world_size if dist_info.is_primary else None
    dist.gather_object(result.to_dict(), parts, dst=0)
    merged = None
    if dist_info.is_primary:
        merged = merge_results([EvalResult.from_dict(p) for p in parts], strict=strict)
        merged.protocol["distributed"] = {"world_size": dist_info.world_size, "backend": dist_info.backend}
    dist.barrier()
    dist.destroy_process_group()
    return merged
