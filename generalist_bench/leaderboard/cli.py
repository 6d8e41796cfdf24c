"""``generalist-bench leaderboard [--model-dir model_zoo] [--out leaderboard]``: regenerate the leaderboard."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", default="model_zoo", help="zoo root with <dataset>/<threat>/<name>.json cards")
    p.add_argument("--out", default="leaderboard", help="output folder (generated files are replaced)")
    p.add_argument("--literature", default=None,
                   help="literature rows file (default: the committed generalist_bench/leaderboard/literature.json)")
    p.add_argument("--no-literature", action="store_true", help="only our rows")
    p.add_argument("--skip-bad-cards", action="store_true",
                   help="warn about unreadable cards instead of failing")
    p.add_argument("--no-png", action="store_true", help="skip the matplotlib plots")
    p.add_argument("--readme", default=None, metavar="README.md",
                   help="also copy each table's verdict into this file's <!-- verdict:<table> --> block, where it "
                        "has one (atomic write)")


def run(args: argparse.Namespace) -> int:
    from .render import render_leaderboard
    from .rows import LITERATURE_PATH

    literature = None if args.no_literature else (args.literature or LITERATURE_PATH)
    readme_text = None
    if args.readme:  # checked before anything is written
        try:
            readme_text = Path(args.readme).read_text()
        except OSError as e:
            raise ConfigError(f"--readme {args.readme}: cannot read it ({e.strerror or e})") from None
        if "<!-- verdict:" not in readme_text:
            raise ConfigError(f"--readme {args.readme}: no <!-- verdict:<table> --> … <!-- /verdict --> block")
    files = render_leaderboard(args.model_dir, args.out, literature=literature, strict=not args.skip_bad_cards,
                               png=not args.no_png)
    tables = sorted({f.stem for f in files if f.suffix == ".md" and f.name != "README.md"})
    print(f"wrote {len(files)} files to {args.out}/ ({len(tables)} table(s): {', '.join(tables) or 'none'})")
    if readme_text is not None:
        from ..utils.io import atomic_write_text
        from .seeds import sync_readme_block, verdict_block

        text, matched = readme_text, []
        for f in files:
            if f.suffix == ".md" and f.name != "README.md" and f"<!-- verdict:{f.stem} -->" in text:
                try:
                    text = sync_readme_block(text, f.stem, verdict_block(f.read_text()))
                except ValueError as e:
                    raise ConfigError(f"--readme {args.readme}: {e}") from None
                matched.append(f.stem)
        if not matched:
            raise ConfigError(f"--readme {args.readme}: its verdict block(s) name no table that was written "
                              f"({', '.join(tables) or 'none'})")
        if text != readme_text:
            atomic_write_text(args.readme, text)
        state = "updated" if text != readme_text else "unchanged"
        print(f"verdict block(s) in {args.readme}: {', '.join(matched)} ({state})")
    return 0
