"""Leaderboard: golden Markdown/CSV from fixed fabricated cards, HTML rows and links, PNG validity, Wilson
intervals, stale-file cleanup, the CLI, and that the committed leaderboard/ is what the generator produces."""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_zoo_helpers import fabricate_leaderboard_zoo

from generalist_bench.errors import ConfigError
from generalist_bench.leaderboard import cli as lb_cli
from generalist_bench.leaderboard.render import render_leaderboard, to_csv, to_markdown
from generalist_bench.leaderboard.rows import (
    group_rows,
    load_literature,
    rows_from_literature,
    rows_from_zoo,
    table_slug,
)
from generalist_bench.leaderboard.stats import wilson_interval

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "leaderboard"
TABLES = ("fashion_mnist_Linf_0.1", "cifar10_Linf_8-255")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    cards = fabricate_leaderboard_zoo(root / "model_zoo")
    files = render_leaderboard(root / "model_zoo", root / "leaderboard")
    return root, cards, files


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("ext", ["md", "csv"])
def test_golden(board, table, ext):
    """Exact output. After an intended change: UPDATE_GOLDEN=1 pytest tests/test_leaderboard.py, review the diff."""
    root = board[0]
    got = (root / "leaderboard" / f"{table}.{ext}").read_text()
    golden = GOLDEN / f"{table}.{ext}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(got)
    assert golden.exists(), f"missing {golden}; run with UPDATE_GOLDEN=1 once"
    assert got == golden.read_text()


def test_rows_sorted_and_labelled(board):
    root = board[0]
    rows = list(csv.DictReader(io.StringIO((root / "leaderboard" / "fashion_mnist_Linf_0.1.csv").read_text())))
    full = [float(r["autoattack_acc"]) for r in rows if r["quick"] != "true"]
    assert full == sorted(full, reverse=True)
    assert [r["trainer"] for r in rows] == ["TRADES", "Generalist", "PGD-AT", "Standard", "Generalist"]
    quick = [r for r in rows if r["quick"] == "true"]
    assert rows[-1] == quick[0]  # quick rows after every full one, whatever their accuracy
    assert len(quick) == 1 and quick[0]["model_id"].endswith("_quick") and quick[0]["n_examples"] == "200"
    md = (root / "leaderboard" / "fashion_mnist_Linf_0.1.md").read_text()
    table, quick_table = md.split("### Quick entries (reduced budget; not comparable with the rows above)")
    assert "_quick" not in table.split("## Methods over seeds")[0]
    assert "| 1 | [fmnist-smallcnn-generalist_seed0_quick]" in quick_table
    for r in rows:  # every accuracy has its interval, and the interval contains it
        for k in ("clean", "autoattack"):
            lo, v, hi = (float(r[f"{k}_ci_low"]), float(r[f"{k}_acc" if k == "clean" else "autoattack_acc"]),
                         float(r[f"{k}_ci_high"]))
            assert lo <= v <= hi
        assert (root / "leaderboard" / r["link"]).resolve().is_file()  # links reach the cards
    cifar = list(csv.DictReader(io.StringIO((root / "leaderboard" / "cifar10_Linf_8-255.csv").read_text())))
    lit = [r for r in cifar if r["source"] == "literature"]
    assert {r["model_id"] for r in lit} >= {"Wang2023Generalist", "Zhang2019Theoretically", "Madry2018Towards",
                                           "Rice2020Overfitting"}
    assert all("reported, not reproduced" in r["notes"] and r["n_examples"] == "10000" for r in lit)
    assert all(r["link"].startswith("https://") for r in lit)


class _Table(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.links, self.imgs, self.stack = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("id", "").startswith("row-"):
            self.rows.append((a["id"][4:], a.get("class")))
        if tag == "a":
            self.links.append(a.get("href"))
        if tag == "img":
            self.imgs.append(a.get("src", ""))


def test_html_page(board):
    root, cards = board[0], board[1]
    page = (root / "leaderboard" / "fashion_mnist_Linf_0.1.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    parsed = _Table()
    parsed.feed(page)
    fm = [c for c in cards if c.dataset == "fashion_mnist"]
    assert sorted(r for r, _ in parsed.rows) == sorted(c.model_id for c in fm)
    for c in fm:
        assert f"../model_zoo/fashion_mnist/Linf/{c.model_id}.json" in parsed.links
    assert 'class="badge b-quick">quick' in page and "Wilson score interval" in page
    assert parsed.imgs and parsed.imgs[0].startswith("data:image/png;base64,")  # self-contained plot
    assert 'href="#fn-1"' in page and 'id="fn-1"' in page
    cifar = (root / "leaderboard" / "cifar10_Linf_8-255.html").read_text()
    t = _Table()
    t.feed(cifar)
    assert ("Rice2020Overfitting", "lit") in t.rows and ("cifar10-smallcnn-generalist_seed0", "ours") in t.rows
    assert "reported, not reproduced" in cifar and "https://arxiv.org/abs/2303.13813" in cifar
    index = (root / "leaderboard" / "index.html").read_text()
    assert all(f'href="{s}.html"' in index for s in TABLES)


def test_png_files(board):
    root = board[0]
    from PIL import Image

    for table in TABLES:
        data = (root / "leaderboard" / f"{table}.png").read_bytes()
        assert data.startswith(PNG_MAGIC)
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            assert im.size[0] > 600 and im.size[1] > 400


def test_readme_and_outputs_are_deterministic(board, tmp_path):
    root = board[0]
    readme = (root / "leaderboard" / "README.md").read_text()
    assert "generalist-bench leaderboard --model-dir model_zoo --out leaderboard" in readme
    assert "Wilson" in readme and "reported, not reproduced" in readme
    again = tmp_path / "leaderboard"
    shutil.copytree(root / "model_zoo", tmp_path / "model_zoo")
    render_leaderboard(tmp_path / "model_zoo", again, png=False)
    for table in TABLES:
        for ext in ("md", "csv", "html"):
            a = (root / "leaderboard" / f"{table}.{ext}").read_text()
            b = (again / f"{table}.{ext}").read_text()
            no_plot = re.compile(r"<figure>.*?</figure>", re.S)  # the second run has no embedded plot
            assert no_plot.sub("", a) == b


def test_stale_tables_removed_and_other_files_kept(tmp_path):
    fabricate_leaderboard_zoo(tmp_path / "model_zoo")
    out = tmp_path / "leaderboard"
    render_leaderboard(tmp_path / "model_zoo", out, literature=None, png=False)
    (out / "notes.txt").write_text("mine")
    assert (out / "cifar10_Linf_8-255.md").exists()
    shutil.rmtree(tmp_path / "model_zoo" / "cifar10")
    render_leaderboard(tmp_path / "model_zoo", out, literature=None, png=False)
    assert not (out / "cifar10_Linf_8-255.md").exists() and not (out / "cifar10_Linf_8-255.csv").exists()
    assert (out / "fashion_mnist_Linf_0.1.md").exists() and (out / "notes.txt").read_text() == "mine"


def test_bad_card_fails_or_is_skipped(tmp_path):
    fabricate_leaderboard_zoo(tmp_path / "model_zoo")
    (tmp_path / "model_zoo" / "fashion_mnist" / "Linf" / "Bad.json").write_text('{"model_id": "Bad"}')
    with pytest.raises(ConfigError, match="Bad.json"):
        render_leaderboard(tmp_path / "model_zoo", tmp_path / "lb", png=False)
    with pytest.warns(UserWarning, match="Bad.json"):
        render_leaderboard(tmp_path / "model_zoo", tmp_path / "lb", png=False, strict=False)


def test_wilson_interval():
    lo, hi = wilson_interval(50.0, 100)
    assert (round(lo, 2), round(hi, 2)) == (40.38, 59.62)
    assert wilson_interval(0.0, 8)[0] == 0.0 and wilson_interval(100.0, 8)[1] == 100.0
    lo, hi = wilson_interval(46.07, 10000)
    assert lo < 46.07 < hi and hi - lo < 2.0
    with pytest.raises(ValueError):
        wilson_interval(50.0, 0)


def test_literature_file_is_valid(tmp_path):
    entries = load_literature()
    assert {e["model_id"] for e in entries} >= {"Wang2023Generalist", "Zhang2019Theoretically", "Madry2018Towards",
                                                "Rice2020Overfitting"}
    gen = next(e for e in entries if e["model_id"] == "Wang2023Generalist")
    assert (gen["clean_acc"], gen["autoattack_acc"], gen["architecture"]) == (89.09, 46.07, "ResNet-18")
    assert all(e["source_url"].startswith("https://") and e["link"].startswith("https://") for e in entries)
    bad = tmp_path / "lit.json"
    bad.write_text('{"entries": [{"model_id": "X"}]}')
    with pytest.raises(ConfigError, match="missing field"):
        load_literature(bad)


def test_cli_through_main_dispatcher(tmp_path, capsys):
    fabricate_leaderboard_zoo(tmp_path / "model_zoo")
    try:
        from generalist_bench.cli import main
    except ImportError as e:  # pragma: no cover - another stage's module is missing
        pytest.skip(f"CLI dispatcher not importable: {e}")
    code = main(["leaderboard", "--model-dir", str(tmp_path / "model_zoo"), "--out", str(tmp_path / "out"),
                 "--no-png"])
    assert code == 0 and "fashion_mnist_Linf_0.1" in capsys.readouterr().out
    assert (tmp_path / "out" / "fashion_mnist_Linf_0.1.md").exists()
    (tmp_path / "model_zoo" / "fashion_mnist" / "Linf" / "Bad.json").write_text("{}")
    assert main(["leaderboard", "--model-dir", str(tmp_path / "model_zoo"), "--out", str(tmp_path / "out")]) == 2


def test_cli_module_directly(tmp_path):
    fabricate_leaderboard_zoo(tmp_path / "model_zoo")
    p = argparse.ArgumentParser()
    lb_cli.add_arguments(p)
    args = p.parse_args(["--model-dir", str(tmp_path / "model_zoo"), "--out", str(tmp_path / "o"), "--no-literature",
                         "--no-png"])
    assert lb_cli.run(args) == 0
    assert "Rice2020Overfitting" not in (tmp_path / "o" / "cifar10_Linf_8-255.md").read_text()


def test_committed_leaderboard_is_up_to_date():
    """leaderboard/ in the repository is exactly what the generator makes from model_zoo/ + literature.json."""
    out = REPO / "leaderboard"
    rows = rows_from_zoo(REPO / "model_zoo", out) + rows_from_literature(load_literature())
    tables = group_rows(rows)
    assert tables, "no rows at all"
    from generalist_bench.leaderboard import seeds
    from generalist_bench.leaderboard.render import _cards_by_table, _dict_csv

    cards = _cards_by_table(REPO / "model_zoo", True)
    for key, trows in tables.items():
        slug = table_slug(key)
        stats, pairs = seeds.method_stats(cards.get(key, [])), seeds.paired(cards.get(key, []))
        lines = seeds.markdown(stats, pairs, seeds.budget_check_of(stats, REPO, out))
        assert (out / f"{slug}.md").read_text() == to_markdown(key, trows, slug, lines), f"regenerate {slug}.md"
        assert (out / f"{slug}.csv").read_text() == to_csv(trows), f"regenerate {slug}.csv"
        if stats:
            ms, ps = seeds.csv_rows(stats, pairs)
            assert (out / f"{slug}_methods.csv").read_text() == _dict_csv(ms), f"regenerate {slug}_methods.csv"
            assert not ps or (out / f"{slug}_paired.csv").read_text() == _dict_csv(ps)
        assert (out / f"{slug}.png").read_bytes().startswith(PNG_MAGIC)


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine")
def test_html_renders_in_headless_chromium(board, tmp_path):
    root = board[0]
    shot = tmp_path / "shot.png"
    page = (root / "leaderboard" / "fashion_mnist_Linf_0.1.html").resolve()
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
           "--window-size=1400,1200", f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=180)
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1400, 1200)
        colours = im.convert("RGB").resize((140, 120)).getcolors(maxcolors=100000)
        assert colours is not None and len(colours) > 50  # a rendered page, not a blank one


def test_a_result_of_the_inexact_engine_says_so_in_its_protocol_footnote():
    from test_zoo_helpers import fmnist_card

    from generalist_bench.leaderboard.rows import _protocol_text

    card = fmnist_card("pgd_at", 821, (735, 722, 720, 719))
    assert "not exact" not in _protocol_text(card)
    card.evaluations["autoattack"]["protocol"].update({"engine": "fast", "exact": False, "search_dtype": "bfloat16"})
    assert "engine 'fast' (not exact: bfloat16 search, every fooled verdict confirmed in float32)" in \
        _protocol_text(card)


def test_methods_over_seeds_and_paired_mcnemar():
    """Means ± std over seeds; per-seed and pooled exact McNemar counts and p-values on the per-point flags;
    different points are not compared."""
    from types import SimpleNamespace

    from generalist_bench.leaderboard import seeds

    def card(trainer, seed, clean, robust, indices="[[0, 10]]"):
        ev = {"protocol": {"eps": 0.1, "norm": "Linf", "attacks": ["aa"], "seed": 0, "split": "test",
                           "dataset": "fashion_mnist"}, "n_examples": len(clean),
              "samples": {"indices": indices, "clean": clean, "robust": robust}}
        return SimpleNamespace(trainer=trainer, seed=seed, quick=False, primary_evaluation=ev, n_examples=len(clean),
                               clean_acc=100 * clean.count("1") / len(clean),
                               autoattack_acc=100 * robust.count("1") / len(robust))

    cards = [card("generalist", 0, "1111111110", "1111100000"), card("generalist", 1, "1111111111", "1111110000"),
             card("pgd_at", 0, "1111100000", "1110000000"), card("pgd_at", 1, "1111111100", "1111100000"),
             card("trades", 0, "1111111111", "1111111111", indices="[[5, 15]]")]
    stats = {m.trainer: m for m in seeds.method_stats(cards)}
    assert stats["generalist"].clean_mean_std == pytest.approx((95.0, 7.0710678))
    assert stats["pgd_at"].robust_mean_std == pytest.approx((40.0, 14.142136))
    assert stats["trades"].robust_mean_std == (100.0, None)
    pairs = {(q.b, q.seed, q.what): q for q in seeds.paired(cards)}
    q = pairs[("pgd_at", 0, "clean")]
    assert (q.a_only, q.b_only) == (4, 0) and q.p_value == pytest.approx(0.125)  # 2 · 0.5^4
    pooled = pairs[("pgd_at", None, "robust")]
    assert (pooled.a_only, pooled.b_only, pooled.seeds) == (3, 0, (0, 1)) and pooled.p_value == pytest.approx(0.25)
    assert pairs[("trades", 0, "clean")].note == "different points" and pairs[("trades", 0, "clean")].p_value is None
    md = "\n".join(seeds.markdown(seeds.method_stats(cards), seeds.paired(cards)))
    assert "| Generalist | 2 | 95.00 ± 7.07 |" in md and "not comparable: different points" in md
    # seed 0 of PGD-AT retrained under a new shared budget: that pair is not compared, nor pooled
    cards[2].budget = "30 epochs"
    for c in cards[:2] + cards[3:]:
        c.budget = "10 epochs"
    pairs = {(q.b, q.seed, q.what): q for q in seeds.paired(cards)}
    assert pairs[("pgd_at", 0, "robust")].note == "different budget" and pairs[("pgd_at", 0, "robust")].p_value is None
    assert pairs[("pgd_at", 1, "robust")].note == "" and ("pgd_at", None, "robust") not in pairs  # one pair: no pool
    # the transition's state: seed 0 retrained on both sides under the new budget, seeds 1 and 2 still under the old
    # one. Each pair is compared; only pairs of one budget are pooled (seeds 1 and 2), and the pooled row says which
    cards[2].budget = "55,000 training images, 30 epochs, batch 128"
    cards[0].budget = cards[2].budget
    for c in cards[:2] + cards[3:]:
        c.budget = c.budget if c is cards[0] else "55,000 training images, 10 epochs, batch 128"
    cards += [card("generalist", 2, "1111111000", "1111000000"), card("pgd_at", 2, "1111110000", "1100000000")]
    cards[-2].budget = cards[-1].budget = cards[1].budget
    qs = seeds.paired(cards)
    pairs = {(q.b, q.seed, q.what): q for q in qs}
    assert all(pairs[("pgd_at", s, "robust")].note == "" for s in (0, 1, 2))
    pooled = [q for q in qs if q.b == "pgd_at" and q.seed is None and q.what == "robust"]
    assert [(q.seeds, q.budget, q.a_only, q.b_only) for q in pooled] == [((1, 2), "10 epochs", 3, 0)]
    md = "\n".join(seeds.markdown(seeds.method_stats(cards), qs))
    assert "| Generalist vs PGD-AT | pooled 1,2 (10 epochs) | robust | 10 | 3 | 0 |" in md
    assert "pooled 0" not in md
    # the methods table: one row per budget where a method's seeds span two, no mean across them
    assert "| Generalist (30 epochs) | 1 | 90.00 (one seed) |" in md and "| Generalist (10 epochs) | 2 | " in md
    assert "| Generalist | " not in md
    ms, _ = seeds.csv_rows(seeds.method_stats(cards), qs)
    assert [(r["trainer"], r["budget"], r["seeds"]) for r in ms if r["trainer"] == "generalist"] == \
        [("generalist", "30 epochs", "0"), ("generalist", "10 epochs", "1 2")]
    assert seeds._budget_label("b, 10 epochs", {"b, 10 epochs": 0, "c, 10 epochs": 0}) == "b, 10 epochs"


def test_pooled_seeds_count_each_point_once():
    """Pooling seeds scored on the same points sums each point's differences over the seeds and tests the sums
    (sign-flip): three points that favour Generalist under both seeds are 3 points (p = 2/8), not 6 independent
    discordant pairs (the added-counts McNemar's 2·0.5^6); seeds on different points are not pooled."""
    from types import SimpleNamespace

    from generalist_bench.leaderboard import seeds

    def card(trainer, seed, robust, indices="[[0, 6]]"):
        ev = {"protocol": {"eps": 0.1, "norm": "Linf", "attacks": ["aa"], "seed": 0, "split": "test",
                           "dataset": "fashion_mnist"}, "n_examples": 6,
              "samples": {"indices": indices, "clean": "111111", "robust": robust}}
        return SimpleNamespace(trainer=trainer, seed=seed, quick=False, primary_evaluation=ev, n_examples=6,
                               clean_acc=100.0, autoattack_acc=100 * robust.count("1") / 6, budget="B")

    cards = [card("generalist", s, "111100") for s in (0, 1)] + [card("pgd_at", s, "000100") for s in (0, 1)]
    qs = {(q.seed, q.what): q for q in seeds.paired(cards, baselines=("pgd_at",))}
    assert (qs[(0, "robust")].a_only, qs[(0, "robust")].p_value) == (3, pytest.approx(0.25))
    pooled = qs[(None, "robust")]
    assert (pooled.a_only, pooled.b_only, pooled.n, pooled.diffs) == (3, 0, 6, (2, 2, 2, 0, 0, 0))
    assert pooled.p_value == pytest.approx(0.25) and pooled.test == "exact sign-flip test"
    assert qs[(None, "clean")].p_value == 1.0  # no point differs
    # a point won by each side under the two seeds sums to 0: it counts for neither
    cards[3] = card("pgd_at", 1, "100111")
    pooled = {(q.seed, q.what): q for q in seeds.paired(cards, baselines=("pgd_at",))}[(None, "robust")]
    assert pooled.diffs == (1, 2, 2, 0, -1, -1) and (pooled.a_only, pooled.b_only) == (3, 2)
    ms, ps = seeds.csv_rows(seeds.method_stats(cards), seeds.paired(cards, baselines=("pgd_at",)))
    assert {r["test"] for r in ps} == {"exact McNemar test", "exact sign-flip test"} and "p_value" in ps[0]
    # seed 1 scored on other points: per-seed rows stay, the pooled ones say why they are missing
    cards[1] = card("generalist", 1, "111100", indices="[[6, 12]]")
    cards[3] = card("pgd_at", 1, "000100", indices="[[6, 12]]")
    qs = {(q.seed, q.what): q for q in seeds.paired(cards, baselines=("pgd_at",))}
    assert qs[(1, "robust")].note == "" and qs[(None, "robust")].note == "different points across seeds"
    assert qs[(None, "robust")].p_value is None


def test_sign_flip_test_is_exact_and_is_mcnemar_for_one_seed():
    """Against all 2^m sign assignments on random small cases; equal to scipy's exact McNemar (binomial) test when
    every difference is ±1; a p-value below a float's range prints as <1e-300, not 0."""
    import itertools
    import random

    from scipy.stats import binomtest

    from generalist_bench.leaderboard.stats import format_p, sign_flip_p

    def brute(d):
        nz = [x for x in d if x]
        hits = sum(abs(sum(e * x for e, x in zip(signs, nz, strict=True))) >= abs(sum(d))
                   for signs in itertools.product((1, -1), repeat=len(nz)))
        return hits / 2 ** len(nz)

    rng = random.Random(0)
    for _ in range(200):
        d = [rng.choice((-3, -2, -1, 0, 0, 1, 2, 3)) for _ in range(rng.randint(1, 11))]
        assert sign_flip_p(d) == pytest.approx(brute(d), abs=1e-12)
    for a, b in ((8, 18), (13, 36), (0, 1), (40, 52), (763, 0)):
        assert sign_flip_p([1] * a + [-1] * b + [0] * 5) == pytest.approx(binomtest(a, a + b, 0.5).pvalue, rel=1e-9)
    assert sign_flip_p([0, 0]) == sign_flip_p([]) == 1.0 and sign_flip_p([3, -3]) == pytest.approx(1.0)
    assert sign_flip_p([1] * 1466) == 0.0 and format_p(sign_flip_p([1] * 1466)) == "<1e-300"  # underflow
    assert format_p(sign_flip_p([1] * 1000)) == "1.87e-301"  # representable: printed as it is
    assert format_p(0.0755187) == "0.0755" and format_p(None) == "–"
    # the CSV keeps 6 digits and leaves a missing p empty, through the same function
    assert format_p(0.0755187, digits=6, missing="") == "0.0755187" and format_p(None, digits=6, missing="") == ""
    assert format_p(0.0, digits=6) == "<1e-300"
    with pytest.raises(ValueError, match="integer differences"):
        sign_flip_p([0.5, 0.5, 0.9])


def test_verdict_tests_exactly_its_common_seeds_when_the_best_baseline_has_fewer():
    """TRADES (the best baseline in AA) has seeds 0 and 1 only, PGD-AT 0, 1 and 2: the verdict's seeds are 0 and 1,
    and its clean test pools PGD-AT's per-seed rows of exactly those seeds (not the table's pooled 0, 1, 2 row)."""
    from types import SimpleNamespace

    from generalist_bench.leaderboard import seeds

    def card(trainer, seed, clean, robust):
        ev = {"protocol": {"eps": 0.1, "norm": "Linf", "attacks": ["aa"], "seed": 0, "split": "test",
                           "dataset": "fashion_mnist"}, "n_examples": 8,
              "samples": {"indices": "[[0, 8]]", "clean": clean, "robust": robust}}
        return SimpleNamespace(trainer=trainer, seed=seed, quick=False, primary_evaluation=ev, n_examples=8,
                               clean_acc=100 * clean.count("1") / 8, autoattack_acc=100 * robust.count("1") / 8,
                               budget="B")

    cards = [card("generalist", s, "11111111", "11110000") for s in (0, 1, 2)]
    cards += [card("pgd_at", s, "11111100", "11100000") for s in (0, 1)] + [card("pgd_at", 2, "00000000", "0" * 8)]
    cards += [card("trades", s, "11111111", "11111000") for s in (0, 1)]
    pairs = seeds.paired(cards)
    assert {q.seeds for q in pairs if q.b == "pgd_at" and q.seed is None} == {(0, 1, 2)}  # the table pools all 3
    text = "\n".join(seeds.verdict(seeds.method_stats(cards), pairs))
    assert "2 common seed(s) (0, 1)" in text and "no paired" not in text
    # seeds 0 and 1: the same 2 points favour Generalist under both (sums 2, 2): p = 2/4; with seed 2: 8 points
    assert "p = 0.5; 2 points favour Generalist, 0 the baseline" in text


def test_html_templates_escape_every_value_and_keep_markup():
    """The jinja2 pages escape what a card or the literature file says (as html.escape does) and leave the
    generator's own markup (CSS, accuracy cells) alone."""
    from generalist_bench.leaderboard.render import to_html, to_index
    from generalist_bench.leaderboard.rows import Accuracy, Row

    acc = Accuracy(value=50.0, n=100)
    lo, hi = acc.ci
    row = Row(model_id="m<1>", title='A "quoted" <script>x</script> & more', source="ours", trainer="PGD-AT",
              dataset="fashion_mnist", threat_model="Linf", eps_str="0.1", clean=acc, autoattack=None,
              per_attack=(("apgd-ce", acc),), architecture="SmallCNN", n_examples=100, link="a.json?x=1&y=2",
              notes=("it's noted",), protocol="p")
    page = to_html(("fashion_mnist", "Linf", "0.1"), [row], "fm", None)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "A &quot;quoted&quot;" in page and 'id="row-m&lt;1&gt;"' in page and 'href="a.json?x=1&amp;y=2"' in page
    assert "it&#x27;s noted" in page
    assert f'50.00<span class="ci">[{lo:.2f}, {hi:.2f}]</span>' in page  # the generator's markup: not escaped
    assert '"Segoe UI"' in page and "<figure>" not in page  # raw CSS; no plot without a PNG
    assert "apgd-ce 50.00 <span" in page and "<td class=\"num\"><strong>—</strong></td>" in page
    index = to_index({("fashion_mnist", "Linf", "0.1"): [row]})
    assert "1 of ours, 0 from the literature" in index and index.endswith("</html>\n")


def _seed_stats(per_method, seeds=None):
    from generalist_bench.leaderboard import seeds as S

    return [S.MethodStats(t, tuple(seeds.get(t, range(len(v))) if seeds else range(len(v))), tuple(c for c, _ in v),
                          tuple(r for _, r in v), 1000, budgets=b, tuning_logs=("docs/tuning/x.md",) * len(v))
            for t, (v, b) in per_method.items()]


def test_verdict_answers_the_question_on_paired_seed_means_with_intervals():
    """Yes needs mean clean ≥ PGD-AT's + 3 and mean AA ≥ the best baseline's − 1, paired by seed over the seeds all
    three share; the t-interval says whether the seeds agree; the McNemar line is a test of no difference; one
    common seed is 'not established'; different budgets are 'not comparable'."""
    from generalist_bench.leaderboard import seeds

    b = ("B",) * 3
    yes = _seed_stats({"generalist": ([(86.0, 72.5), (87.0, 72.0), (86.5, 72.4)], b),
                       "pgd_at": ([(82.0, 73.0), (82.5, 73.2), (82.2, 72.9)], b),
                       "trades": ([(84.0, 70.0), (84.2, 70.1), (84.1, 69.9)], b)})
    pairs = [seeds.Paired("generalist", "pgd_at", None, "clean", 1000, 60, 10, seeds=(0, 1, 2), trained="B"),
             seeds.Paired("generalist", "pgd_at", 0, "clean", 1000, 20, 3, trained="B")]
    text = "\n".join(seeds.verdict(yes, pairs))
    assert "? **Yes**, on the means over 3 common seed(s) (0, 1, 2)." in text
    assert "Δ = +4.27 points (95% t-interval over seeds [" in text and "the interval lies entirely on that side" in text
    assert "exact sign-flip test over the points, seeds summed per point: p = " in text
    assert "60 points favour Generalist, 10 the baseline" in text
    assert "the best baseline, PGD-AT, 73.03 ± 0.15: Δ = -0.73 points" in text and "no paired per-point flags" in text
    d = seeds.difference(yes, "pgd_at", "clean")
    lo, hi = d.interval
    assert lo < d.mean < hi and hi - lo == pytest.approx(2 * 4.302653 * statistics.stdev(d.diffs) / 3 ** 0.5)
    no = _seed_stats({"generalist": ([(84.0, 73.0), (85.0, 73.0), (84.0, 73.0)], b),
                      "pgd_at": ([(82.0, 73.0), (82.0, 73.0), (82.0, 73.0)], b)})
    text = "\n".join(seeds.verdict(no, []))
    assert "? **No**, on the means over 3" in text and "target ≥ +3: not met" in text and "target ≥ -1: met" in text
    # the best baseline is judged on the seeds it shares with Generalist; means and Δ over the common seeds only
    mixed = _seed_stats({"generalist": ([(86.0, 72.0), (86.0, 72.0)], ("B",) * 2),
                         "pgd_at": ([(82.0, 71.0), (82.0, 71.0), (99.0, 99.0)], b),
                         "trades": ([(84.0, 73.0), (84.0, 73.0), (10.0, 10.0)], b)}, seeds={"pgd_at": (0, 1, 7)})
    text = "\n".join(seeds.verdict(mixed, []))
    assert "2 common seed(s) (0, 1)" in text and "vs PGD-AT 82.00 ± 0.00" in text and "TRADES, 73.00 ± 0.00" in text
    one = _seed_stats({"generalist": ([(90.0, 80.0)], ("B",)), "pgd_at": ([(80.0, 70.0)], ("B",))})
    text = "\n".join(seeds.verdict(one, pairs))
    assert "**Not established**: 1 common seed(s) (0)" in text
    assert "exact McNemar test: p = 0.000488, 20 vs 3 discordant points" in text  # the seed's own test
    assert seeds.verdict(_seed_stats({"pgd_at": ([(80.0, 70.0)], ("B",))}), []) == []
    apart = _seed_stats({"generalist": ([(90.0, 80.0)] * 2, ("8 epochs", "8 epochs")),
                         "pgd_at": ([(80.0, 70.0)] * 2, ("10 epochs", "10 epochs"))})
    text = "\n".join(seeds.verdict(apart, []))
    assert "**Not comparable**: Generalist and PGD-AT were not trained under one budget on any seed" in text
    assert "Δ" not in text


def test_verdict_judges_each_budget_on_its_own_seeds_and_tests():
    """Mid-transition (seed 0 retrained under 30 epochs, seeds 1-2 still under 10): each budget gets its own answer,
    the longest first, with the paired test of its own seeds; a seed whose Generalist and PGD-AT entries were trained
    under different budgets is left out and named."""
    from generalist_bench.leaderboard import seeds

    new, old = "55,000 images, 30 epochs", "55,000 images, 10 epochs"
    stats = _seed_stats({"generalist": ([(84.7, 76.3), (83.4, 72.7), (81.4, 73.9)], (new, old, old)),
                         "pgd_at": ([(85.7, 76.6), (83.6, 73.7), (83.7, 74.1)], (new, old, old)),
                         "trades": ([(88.5, 72.7), (86.9, 68.1), (86.8, 68.4)], (new, old, old))})
    # pooled rows of another seed set or budget must not be cited (they point the other way here)
    pairs = [seeds.Paired("generalist", "pgd_at", None, "clean", 1000, 29, 54, seeds=(1, 2), trained=old),
             seeds.Paired("generalist", "pgd_at", None, "clean", 1000, 80, 0, seeds=(0, 1), trained=new),
             seeds.Paired("generalist", "pgd_at", 0, "clean", 1000, 8, 18, trained=new)]
    text = "\n".join(seeds.verdict(stats, pairs))
    assert "entries span 2 budgets; each budget is judged on the seeds both were trained under it" in text
    assert "Not comparable" not in text
    at30, at10 = text.index("**At 30 epochs**: **Not established**: 1 common seed(s) (0)"), \
        text.index("**At 10 epochs**: **No**, on the means over 2 common seed(s) (1, 2)")
    assert at30 < at10
    assert "8 vs 18 discordant points" in text and "29 points favour Generalist, 54 the baseline" in text
    assert "80 points" not in text
    assert "Δ = -1.25 points (95% t-interval over seeds [-14.59, +12.09]" in text  # 10 epochs: seeds 1, 2 only
    # PGD-AT's seed 1 retrained under 30 epochs before Generalist's: seed 1 left out, named
    stats[1] = _seed_stats({"pgd_at": ([(85.7, 76.6), (85.0, 76.0), (83.7, 74.1)], (new, new, old))})[0]
    text = "\n".join(seeds.verdict(stats, pairs))
    assert "Seed(s) 1: Generalist and PGD-AT trained under different budgets, left out." in text
    assert "**At 10 epochs**: **Not established**: 1 common seed(s) (2)" in text
    # one budget left on the common seeds, another on the left-out one: still two budgets spanned
    stats[0] = _seed_stats({"generalist": ([(84.7, 76.3), (83.4, 72.7), (81.4, 73.9)], (new, old, new))})[0]
    stats[1] = _seed_stats({"pgd_at": ([(85.7, 76.6), (83.6, 73.7), (83.7, 74.1)], (new, new, new))})[0]
    text = "\n".join(seeds.verdict(stats, pairs))
    assert "entries span 2 budgets" in text and "Seed(s) 1: Generalist and PGD-AT" in text


def test_budget_line_links_the_budget_check_beside_the_shared_tuning_log(tmp_path):
    from generalist_bench.leaderboard import seeds

    same = _seed_stats({"generalist": ([(86.0, 72.0)], ("10 epochs",)), "pgd_at": ([(82.0, 73.0)], ("10 epochs",))})
    out = tmp_path / "leaderboard"
    assert seeds.budget_check_of(same, tmp_path, out) is None  # no budget check written: no link
    (tmp_path / "docs" / "tuning").mkdir(parents=True)
    (tmp_path / "docs" / "tuning" / "x_budget.md").write_text("# Budget check\n")
    check = seeds.budget_check_of(same, tmp_path, out)
    assert check == ("docs/tuning/x_budget.md", "../docs/tuning/x_budget.md")
    assert seeds.budget_lines(same, check)[0].endswith(
        "Whether that budget is long enough for each method (validation curves, longer-budget probes): "
        "[docs/tuning/x_budget.md](../docs/tuning/x_budget.md).")
    differ = _seed_stats({"generalist": ([(86.0, 72.0)], ("12 epochs",)), "pgd_at": ([(82.0, 73.0)], ("8 epochs",))})
    assert "long enough" not in seeds.budget_lines(differ, check)[0]  # budgets differ: that warning instead


def test_budget_line_states_the_shared_budget_or_warns_when_budgets_differ():
    from generalist_bench.leaderboard import seeds

    same = _seed_stats({"generalist": ([(86.0, 72.0)], ("10 epochs",)), "pgd_at": ([(82.0, 73.0)], ("10 epochs",))})
    assert seeds.budget_lines(same)[0] == ("Budget of every full entry: 10 epochs. Hyperparameters of every method "
                                           "tuned on the validation split only: `docs/tuning/x.md`.")
    differ = _seed_stats({"generalist": ([(86.0, 72.0)], ("12 epochs",)), "pgd_at": ([(82.0, 73.0)], ("8 epochs",))})
    assert seeds.budget_lines(differ)[0].startswith("**The full entries were not trained under one budget**")
    assert "Generalist: 12 epochs; PGD-AT: 8 epochs" in seeds.budget_lines(differ)[0]
    old = _seed_stats({"generalist": ([(86.0, 72.0)] * 2, ("", "12 epochs")), "pgd_at": ([(82.0, 73.0)], ("",))})
    assert "Generalist: 12 epochs / not recorded; PGD-AT: not recorded" in seeds.budget_lines(old)[0]


def test_readme_verdict_is_the_committed_leaderboards():
    """The README quotes the leaderboard's verdict verbatim (regenerate with `generalist-bench leaderboard
    --readme README.md`); the leaderboard itself is checked against the zoo above."""
    from generalist_bench.leaderboard.seeds import sync_readme_block, verdict_block

    readme = (REPO / "README.md").read_text()
    slug = "fashion_mnist_Linf_0.1"
    block = verdict_block((REPO / "leaderboard" / f"{slug}.md").read_text())
    assert block.startswith("Does Generalist reach PGD-AT's clean accuracy + 3 points")
    assert sync_readme_block(readme, slug, block) == readme, "run: generalist-bench leaderboard --readme README.md"
    with pytest.raises(ValueError, match="no <!-- verdict:nope -->"):
        sync_readme_block(readme, "nope", block)


def test_cli_readme_option_errors_are_one_message_and_write_nothing(tmp_path, capsys):
    from generalist_bench.cli import main

    fabricate_leaderboard_zoo(tmp_path / "model_zoo")
    base = ["leaderboard", "--model-dir", str(tmp_path / "model_zoo"), "--no-png"]
    readme = tmp_path / "README.md"
    assert main([*base, "--out", str(tmp_path / "a"), "--readme", str(readme)]) == 2  # missing file
    assert "cannot read it" in capsys.readouterr().err and not (tmp_path / "a").exists()
    readme.write_text("no block here\n")
    assert main([*base, "--out", str(tmp_path / "b"), "--readme", str(readme)]) == 2
    assert "no <!-- verdict:<table> -->" in capsys.readouterr().err and not (tmp_path / "b").exists()
    readme.write_text("x\n<!-- verdict:fashion_mnist_Linf_0.1 -->\nold\n")  # no end marker
    assert main([*base, "--out", str(tmp_path / "c"), "--readme", str(readme)]) == 2
    assert "<!-- /verdict --> block" in capsys.readouterr().err and readme.read_text().endswith("old\n")
    readme.write_text("x\n<!-- verdict:nope -->\n<!-- /verdict -->\n")
    assert main([*base, "--out", str(tmp_path / "d"), "--readme", str(readme)]) == 2
    assert "name no table that was written" in capsys.readouterr().err
    readme.write_text("x\n<!-- verdict:fashion_mnist_Linf_0.1 -->\nold\n<!-- /verdict -->\ny\n")
    assert main([*base, "--out", str(tmp_path / "e"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "## Verdict" not in text and "Does Generalist reach" in text and text.endswith("y\n")
