"""``generalist-bench zoo list|show NAME|verify [--model-dir model_zoo]``."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", default="model_zoo", help="zoo root (<dataset>/<threat_model>/<name>.{pt,json})")
    sub = p.add_subparsers(dest="zoo_command", metavar="{list,show,verify}")
    sub.required = True
    ls = sub.add_parser("list", help="one line per entry: dataset, threat model, name, clean / AA accuracy")
    ls.add_argument("--dataset", default=None)
    show = sub.add_parser("show", help="print one model card")
    show.add_argument("name")
    show.add_argument("--dataset", default=None, help="needed only if the name exists for several datasets")
    show.add_argument("--threat-model", default="Linf")
    show.add_argument("--robustbench", action="store_true", help="print the RobustBench model_info export instead")
    sub.add_parser("verify", help="recompute the sha256 of every entry; exit 1 on any problem")


def _pct(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def run(args: argparse.Namespace) -> int:
    from .store import find_card, list_zoo, verify_zoo

    if args.zoo_command == "list":
        entries = list_zoo(args.model_dir, dataset=args.dataset)
        if not entries:
            print(f"no entries in {args.model_dir}")
        for e in entries:
            c = e.card
            if c is None or e.error:
                print(f"{e.dataset}/{e.threat_model}/{e.model_id}  ERROR: {e.error}")
                continue
            print(f"{e.dataset}/{e.threat_model}/{e.model_id}  {c.trainer}  {c.architecture}  eps {c.eps_str}  "
                  f"clean {_pct(c.clean_acc)}  AA {_pct(c.autoattack_acc)}  n {c.n_examples or '—'}"
                  + ("  [quick]" if c.quick else ""))
        return 0
    if args.zoo_command == "show":
        card, _, _ = find_card(args.name, args.dataset, args.threat_model, args.model_dir)
        if args.robustbench:
            print(json.dumps(card.to_robustbench_model_info(), indent=2))
        else:
            print(card.to_json(), end="")
        return 0
    if args.zoo_command == "verify":
        results = verify_zoo(args.model_dir)
        for entry, ok, message in results:
            print(f"{'OK  ' if ok else 'FAIL'} {entry.dataset}/{entry.threat_model}/{entry.model_id}: {message}")
        bad = sum(not ok for _, ok, _ in results)
        print(f"{len(results)} entr{'y' if len(results) == 1 else 'ies'} checked, {bad} problem(s)")
        return 1 if bad else 0
    raise AssertionError(args.zoo_command)  # argparse enforces the choices
