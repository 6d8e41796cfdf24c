"""Our zoo guarded by our own pytest plugin: every full (not quick) zoo entry, loaded through ``load_model``
(sha256-verified), keeps its clean accuracy on the whole test set and its robust accuracy under APGD-CE + APGD-T on
the first ``N_ROBUST`` test points; the committed baselines (tests/test_zoo_regression/) agree with the cards.

``tox -e regression`` runs this module alone; ``pytest --robust-update tests/test_zoo_regression.py`` re-records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generalist_bench.evaluation.result import decode_flags

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "model_zoo"
N_ROBUST = 100
BASELINES = Path(__file__).with_suffix("")


def full_entries() -> list[Path]:
    return sorted(p for p in ZOO.glob("*/*/*.json") if not json.loads(p.read_text()).get("quick"))


def _card(path: Path) -> dict:
    return json.loads(path.read_text())


def _load(card_path: Path):
    from generalist_bench.zoo.store import load_model

    c = _card(card_path)
    return load_model(c["model_id"], dataset=c["dataset"], threat_model=c["threat_model"], model_dir=ZOO)


ENTRIES = full_entries()
IDS = [p.stem for p in ENTRIES]


@pytest.mark.parametrize("card_path", ENTRIES, ids=IDS)
def test_zoo_entry_keeps_its_clean_accuracy(card_path, robust_regression, one_thread):
    c = _card(card_path)
    robust_regression(_load(card_path), dataset=c["dataset"], eps=c["eps"], norm=c["threat_model"],
                      attacks="natural", n=None, basename=f"{c['model_id']}-clean", tolerance_flips=0)


@pytest.mark.parametrize("card_path", ENTRIES, ids=IDS)
def test_zoo_entry_keeps_its_robust_accuracy(card_path, robust_regression, one_thread):
    c = _card(card_path)
    robust_regression(_load(card_path), dataset=c["dataset"], eps=c["eps"], norm=c["threat_model"],
                      attacks="apgd-ce,apgd-t", n=N_ROBUST, basename=f"{c['model_id']}-apgd")


@pytest.mark.parametrize("card_path", ENTRIES, ids=IDS)
def test_committed_baselines_agree_with_the_card(card_path):
    """The clean flags on all test points equal the card's full-set evaluation; the APGD-CE + APGD-T robust flags
    on the first N_ROBUST points equal the card's AutoAttack flags after its first two components (same per-point
    seeds, same code)."""
    from generalist_bench.regression import read_baseline

    c = _card(card_path)
    clean = read_baseline(BASELINES / f"{c['model_id']}-clean.json")
    full = c["evaluations"]["quick"]
    assert clean["protocol"]["n"] == full["n_examples"] == 10000
    assert clean["flags"]["clean"] == full["samples"]["clean"]
    assert clean["clean_acc"] == pytest.approx(full["clean_acc"])
    robust = read_baseline(BASELINES / f"{c['model_id']}-apgd.json")
    aa = c["evaluations"]["autoattack"]
    assert aa["protocol"]["seed"] == robust["protocol"]["seed"] and aa["protocol"]["eps"] == robust["protocol"]["eps"]
    after_apgd_t = decode_flags(aa["samples"]["attacks"]["apgd-t"])[1][:N_ROBUST]
    assert robust["flags"]["robust"] == "".join("1" if f else "0" for f in after_apgd_t.tolist())
    assert robust["flags"]["clean"] == aa["samples"]["clean"][:N_ROBUST]


def test_every_full_entry_is_guarded():
    assert ENTRIES, "no full zoo entries found"
    for p in ENTRIES:
        mid = _card(p)["model_id"]
        for kind in ("clean", "apgd"):
            assert (BASELINES / f"{mid}-{kind}.json").exists(), f"{mid}: no committed {kind} baseline"


def test_a_degraded_zoo_model_fails_against_its_committed_baseline(one_thread):
    """The committed baselines catch a regression: the first full entry with its weights perturbed fails its clean
    check, with the report."""
    import torch

    from generalist_bench.regression import compare, measure, read_baseline

    card_path = ENTRIES[0]
    c = _card(card_path)
    model = _load(card_path)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * p.std() * torch.randn(p.shape, generator=g))
    base = read_baseline(BASELINES / f"{c['model_id']}-clean.json")
    now = measure(model, dataset=c["dataset"], eps=c["eps"], norm=c["threat_model"], attacks="natural", n=None)
    outcome = compare(base, now, tolerance_flips=0)
    assert not outcome.passed and outcome.report.startswith("ROBUST ACCURACY REGRESSION")
    assert "exact McNemar p =" in outcome.report and "clean points lost" in outcome.report
