"""ModelCard: JSON round trip, typed fields, clear errors naming the field, RobustBench export."""

from __future__ import annotations

import json

import pytest
from test_zoo_helpers import COMMIT, cifar_card, fmnist_card

from generalist_bench.errors import CheckpointError, ConfigError, GeneralistBenchError
from generalist_bench.zoo.card import ModelCard, ModelCardError, format_eps, make_card, parse_eps


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return fmnist_card("generalist", 858, (742, 731, 729, 728), extra_suite=True)


def test_round_trip_json_and_file(card, tmp_path):
    again = ModelCard.from_json(card.to_json())
    assert again == card
    path = card.save(tmp_path / "c.json")
    assert ModelCard.load(path) == card
    assert json.loads(path.read_text())["eps"] == pytest.approx(0.1)  # numbers are numbers


def test_make_card_fills_fields_from_config_and_evaluation(card):
    assert (card.model_id, card.dataset, card.threat_model, card.arch, card.trainer) == (
        "fmnist-smallcnn-generalist_seed0", "fashion_mnist", "Linf", "small_cnn", "generalist")
    assert card.eps == 0.1 and card.eps_str == "0.1" and card.num_classes == 10
    assert card.clean_acc == pytest.approx(85.8) and card.autoattack_acc == pytest.approx(72.8)
    assert card.n_examples == 1000 and card.primary_suite == "autoattack"
    assert card.recipe["train"]["trainer"] == "generalist" and card.recipe["train"]["epochs"] == card.epochs
    assert "validation split" in card.selection_rule and "test set never used" in card.selection_rule
    assert set(card.evaluations) == {"autoattack", "paper"}
    assert card.evaluations["autoattack"]["protocol"]["attacks"][0]["name"] == "autoattack"
    assert card.commit == COMMIT and card.versions["pyautoattack"] == "0.2.0" and card.sha256 == ""
    assert not card.quick and isinstance(card.date, str)


def test_quick_card_is_named_quick():
    quick = fmnist_card("pgd_at", 158, (131, 128, 128, 127), n=200, quick=True)
    assert quick.quick and quick.model_id.endswith("_quick")
    with pytest.raises(ModelCardError, match="model_id"):
        quick.replace(quick=False)


def test_eps_formatting():
    assert format_eps(8 / 255) == "8/255" and format_eps(0.1) == "0.1" and format_eps(0.3) == "0.3"
    assert format_eps(2 / 255) == "2/255" and format_eps(0.5) == "0.5" and format_eps(0.0) == "0"
    assert parse_eps("8/255") == 8 / 255 and cifar_card().eps_str == "8/255"


def _mutated(card: ModelCard, **changes) -> dict:
    d = card.to_dict()
    for k, v in changes.items():
        if v is KeyError:
            del d[k]
        else:
            d[k] = v
    return d


@pytest.mark.parametrize("field, value, message", [
    ("sha256", KeyError, None),  # has a default: not required
    ("arch", KeyError, "missing required field.*'arch'"),
    ("evaluations", KeyError, "missing required field.*'evaluations'"),
    ("eps", "8/255", "'eps' must be a number"),
    ("epochs", 12.5, "'epochs' must be an integer"),
    ("epochs", True, "'epochs' must be an integer"),
    ("quick", "no", "'quick' must be true/false"),
    ("clean_acc", 0.858, "'clean_acc'"),            # a fraction, not the percentage of the evaluation
    ("autoattack_acc", 172.8, "percentage"),
    ("recipe", [1, 2], "'recipe' must be an object"),
    ("threat_model", "Linfinity", "'threat_model'"),
    ("arch", "resnet1000", "'arch'"),
    ("dataset", "imagenet21k", "'dataset'"),
    ("eps_str", "4/255", "'eps_str'"),
    ("sha256", "abc", "'sha256'"),
    ("date", "yesterday", "'date'"),
    ("num_classes", 100, "'num_classes'"),
    ("chosen_epoch", 99, "'chosen_epoch'"),
    ("bogus_field", 1, "unknown field.*'bogus_field'"),
])
def test_bad_fields_are_named(card, field, value, message):
    data = _mutated(card, **{field: value})
    if message is None:
        ModelCard.from_dict(data, source="x.json")
        return
    with pytest.raises(ModelCardError, match=message) as info:
        ModelCard.from_dict(data, source="x.json")
    assert "x.json" in str(info.value)
    assert isinstance(info.value, GeneralistBenchError)
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, ConfigError)


def test_bad_evaluation_is_named(card):
    d = card.to_dict()
    d["evaluations"]["paper"]["per_attack"]["cw"] = "71.2"
    with pytest.raises(ModelCardError, match="evaluations.paper.per_attack.cw"):
        ModelCard.from_dict(d)
    d = card.to_dict()
    del d["evaluations"]["autoattack"]["n_examples"]
    with pytest.raises(ModelCardError, match="evaluations.autoattack.*n_examples"):
        ModelCard.from_dict(d)


def test_headline_numbers_must_match_primary_suite(card):
    with pytest.raises(ModelCardError, match="autoattack_acc.*evaluations.autoattack.robust_acc"):
        ModelCard.from_dict(_mutated(card, autoattack_acc=80.0))
    with pytest.raises(ModelCardError, match="primary_suite"):
        ModelCard.from_dict(_mutated(card, primary_suite="aa-plus"))


def test_invalid_json_and_missing_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        ModelCard.load(p)
    with pytest.raises(ModelCardError, match="does not exist"):
        ModelCard.load(tmp_path / "none.json")
    p.write_text("[1, 2]")
    with pytest.raises(ModelCardError, match="JSON object"):
        ModelCard.load(p)


def test_card_without_autoattack():
    cfg = fmnist_card("standard", 900, (0, 0, 0, 0)).recipe
    ev = {"paper": fmnist_card("standard", 900, (0, 0, 0, 0)).evaluations["autoattack"]}
    from generalist_bench.config import config_from_dict
    from generalist_bench.zoo.card import Provenance

    c = make_card(config_from_dict(cfg), ev, provenance=Provenance("2026-01-01", "x", None, {}))
    assert c.primary_suite is None and c.autoattack_acc is None and c.clean_acc is None
    assert ModelCard.from_json(c.to_json()) == c


def test_robustbench_model_info_conventions(card):
    info = cifar_card(name="Generalist reproduction", link="https://example.org/x", authors="A. B.",
                      venue="generalist-bench").to_robustbench_model_info()
    assert list(info) == ["link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                          "architecture", "eps", "clean_acc", "reported", "autoattack_acc", "footnote", "unreliable"]
    assert info["eps"] == "8/255" and info["clean_acc"] == "80.12" and info["autoattack_acc"] == "43.98"
    assert info["reported"] == "43.98" and info["dataset"] == "cifar10" and info["architecture"] == "ResNet-18"
    assert info["additional_data"] is False and info["number_forward_passes"] == 1 and info["footnote"] is None
    small = card.to_robustbench_model_info()
    assert small["eps"] == "0.1" and "first 1000 test points" in small["footnote"]
