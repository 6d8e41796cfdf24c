"""``generalist-bench`` / ``python -m generalist_bench``: one CLI, one subcommand module per stage.

Each stage module defines ``add_arguments(parser)`` and ``run(args) -> int``. User errors
(``GeneralistBenchError``) print one line and exit with code 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .errors import GeneralistBenchError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "train": ("generalist_bench.trainers.cli", "train a model from a preset or config file (resumable)"),
    "eval": ("generalist_bench.evaluation.cli", "evaluate a model with AutoAttack / torchattacks suites"),
    "submit": ("generalist_bench.train_and_submit", "train, evaluate and publish to the zoo and leaderboard"),
    "leaderboard": ("generalist_bench.leaderboard.cli", "regenerate leaderboard/ from the model cards"),
    "zoo": ("generalist_bench.zoo.cli", "list, show and verify models in model_zoo/"),
    "presets": ("generalist_bench.presets_cli", "list presets or print one resolved config"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="generalist-bench",
        description="Train Generalist / PGD-AT / TRADES, evaluate with official AutoAttack and torchattacks, "
                    "publish RobustBench-compatible checkpoints and a leaderboard.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not args.command:
        parser.print_help()
        return 0
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except GeneralistBenchError as e:
        if args.verbose:
            raise
        print(f"generalist-bench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"generalist-bench {args.command}: interrupted; outputs written so far are complete "
              "(re-run with --resume to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
