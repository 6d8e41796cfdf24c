"""``generalist-bench leaderboard [--model-dir model_zoo] [--out leaderboard]``: regenerate the leaderboard."""

from __future__ import annotations

import argparse


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
    files = render_leaderboard(args.model_dir, args.out, literature=literature, strict=not args.skip_bad_cards,
                               png=not args.no_png)
    tables = sorted({f.stem for f in files if f.suffix == ".md" and f.name != "README.md"})
    print(f"wrote {len(files)} files to {args.out}/ ({len(tables)} table(s): {', '.join(tables) or 'none'})")
    if args.readme:
        from pathlib import Path

        from ..utils.io import atomic_write_text
        from .seeds import sync_readme_block, verdict_block

        readme = Path(args.readme)
        text = original = readme.read_text()
        for f in files:
            if f.suffix == ".md" and f.name != "README.md" and f"<!-- verdict:{f.stem} -->" in text:
                text = sync_readme_block(text, f.stem, verdict_block(f.read_text()))
        if text != original:
            atomic_write_text(readme, text)
            print(f"updated the verdict block(s) in {readme}")
    return 0
