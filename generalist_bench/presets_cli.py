"""``generalist-bench presets [NAME] [--set k=v ...]``: list presets or print one resolved config."""

from __future__ import annotations

import argparse

from .presets import list_presets, resolve_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="preset name or a .toml/.yaml config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. train.epochs=3 (repeatable)")


def run(args: argparse.Namespace) -> int:
    if not args.name:
        for name in list_presets():
            print(name)
        return 0
    print(resolve_config(args.name, args.overrides).to_json())
    return 0
