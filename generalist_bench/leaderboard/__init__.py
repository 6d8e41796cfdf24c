"""Leaderboard: regenerated from the model cards (and a committed literature file) by
``generalist-bench leaderboard``; see ``render.render_leaderboard``."""

from __future__ import annotations

from ..utils.lazy import lazy_getattr

_LAZY = {
    "render_leaderboard": "generalist_bench.leaderboard.render",
    "wilson_interval": "generalist_bench.leaderboard.stats",
    "load_literature": "generalist_bench.leaderboard.rows",
    "rows_from_zoo": "generalist_bench.leaderboard.rows",
    "rows_from_literature": "generalist_bench.leaderboard.rows",
    "group_rows": "generalist_bench.leaderboard.rows",
    "Row": "generalist_bench.leaderboard.rows",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
