"""One eps parser and one norm normaliser for config overrides, the eval CLI, cards and the API."""

from __future__ import annotations

import pytest

from generalist_bench.errors import UnknownNameError
from generalist_bench.threat import NORMS, Norm, normalize_norm, parse_eps


def test_parse_eps_and_norms():
    assert parse_eps("8/255") == 8 / 255 and parse_eps(" 0.1 ") == 0.1 and parse_eps(0.25) == 0.25
    for bad in ("", "a/b", "eight"):
        with pytest.raises(ValueError):
            parse_eps(bad)
    with pytest.raises(ZeroDivisionError):
        parse_eps("1/0")
    assert NORMS == ("Linf", "L2") and normalize_norm(Norm.L2) == "L2" and normalize_norm(" linf ") == "Linf"
    with pytest.raises(UnknownNameError, match="unknown threat model 'L1'"):
        normalize_norm("L1")


def test_every_boundary_uses_them():
    from generalist_bench.evaluation import cli
    from generalist_bench.presets import resolve_config
    from generalist_bench.zoo import card

    assert resolve_config("fmnist-smallcnn-pgd_at", ["threat.eps=8/255"]).threat.eps == parse_eps("8/255")
    assert cli._eps("8/255") == parse_eps("8/255")
    assert card.parse_eps is parse_eps and card.normalize_threat_model is normalize_norm and card.THREAT_MODELS is NORMS


def test_submit_takes_a_fractional_eps_like_eval():
    from generalist_bench.cli import build_subparser

    assert build_subparser("submit").parse_args(["--eps", "8/255"]).eps == 8 / 255
    assert build_subparser("eval").parse_args(["--eps", "8/255"]).eps == 8 / 255
