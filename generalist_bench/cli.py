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
    "tune": ("generalist_bench.tuning", "tune hyperparameters on the validation split; writes the tuning log"),
    "leaderboard": ("generalist_bench.leaderboard.cli", "regenerate leaderboard/ from the model cards"),
    "zoo": ("generalist_bench.zoo.cli", "list, show and verify models in model_zoo/"),
    "presets": ("generalist_bench.presets_cli", "list presets or print one resolved config"),
    "plugins": ("generalist_bench.plugins", "list attacks, models, data sets and suites, installed plugins included"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand's own arguments are built only when it is used."""
    epilog = "subcommands:\n" + "\n".join(f"  {n:<12} {h}" for n, (_, h) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="generalist-bench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog +
        "\n\n`generalist-bench COMMAND --help` shows a subcommand's options.",
        description="Train Generalist / PGD-AT / TRADES, evaluate with official AutoAttack and torchattacks, "
                    "publish RobustBench-compatible checkpoints and a leaderboard.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    parser.add_argument("command", nargs="?", choices=list(SUBCOMMANDS), metavar="{" + ",".join(SUBCOMMANDS) + "}",
                        help="one of the subcommands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def build_subparser(name: str) -> argparse.ArgumentParser:
    module, help_ = SUBCOMMANDS[name]
    p = argparse.ArgumentParser(prog=f"generalist-bench {name}", description=help_)
    importlib.import_module(module).add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    top = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if top.verbose else logging.INFO, format="%(message)s")
    if not top.command:
        parser.print_help()
        return 0
    args = build_subparser(top.command).parse_args(top.args)
    args.command, args.verbose, args._argv = top.command, top.verbose, list(top.args)
    try:
        return int(importlib.import_module(SUBCOMMANDS[top.command][0]).run(args) or 0)
    except GeneralistBenchError as e:
        if top.verbose:
            raise
        print(f"generalist-bench {top.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"generalist-bench {top.command}: interrupted; outputs written so far are complete "
              "(re-run with --resume to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
