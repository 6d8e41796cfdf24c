"""Zoo store: save/load round trip, sha256 checked before deserialising, quick never replaces full, clear errors,
concurrent writers under the lock, and the ``zoo`` CLI."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp

import pytest
import torch
from test_zoo_helpers import cifar_card, fmnist_card, small_cnn_state

import generalist_bench
from generalist_bench.errors import CheckpointError, IntegrityError, UnknownNameError
from generalist_bench.models import model_for_dataset
from generalist_bench.zoo import cli as zoo_cli
from generalist_bench.zoo.card import ModelCard, ModelCardError
from generalist_bench.zoo.store import list_zoo, load_model, save_to_zoo, unchanged_entry, verify_zoo


@pytest.fixture()
def saved(tmp_path):
    card = cifar_card(arch="small_cnn", model_id="TinyCNN")
    sd = small_cnn_state("cifar10")
    pt, js = save_to_zoo(sd, card, tmp_path)
    return tmp_path, card, sd, pt, js


def test_save_layout_and_card(saved):
    root, card, sd, pt, js = saved
    assert pt == root / "cifar10" / "Linf" / "TinyCNN.pt" and js == pt.with_suffix(".json")
    stored = ModelCard.load(js)
    assert stored.sha256 and stored.replace(sha256="") == card
    raw = torch.load(pt, weights_only=True)  # a plain state dict
    assert set(raw) == set(sd) and not any("model." in k or "module." in k for k in raw)
    assert not [p for p in pt.parent.iterdir() if p.name.endswith(".tmp")]


def test_unchanged_entry_ignores_provenance_only(saved):
    root, card, sd, pt, js = saved
    later = card.replace(date="2027-01-01T00:00:00+00:00", command="python -m elsewhere", commit="f" * 40,
                         train_wall_time_s=123.0)
    assert unchanged_entry(sd, later, root) == js  # when and how it was made is not what the entry is
    other = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    assert unchanged_entry(other, card, root) is None  # other weights
    assert unchanged_entry(sd, card.replace(footnote="another footnote"), root) is None  # another card
    assert unchanged_entry(sd, card.replace(model_id="Other"), root) is None  # not published
    pt.write_bytes(pt.read_bytes() + b"x")  # the file on disk is no longer the card's
    assert unchanged_entry(sd, card, root) is None


def test_load_through_package_api(saved):
    root, card, sd, _, _ = saved
    model = generalist_bench.load_model("TinyCNN", dataset="cifar10", threat_model="Linf", model_dir=root)
    assert not model.training
    ref = model_for_dataset("small_cnn", "cifar10")
    ref.load_state_dict(sd)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), ref.eval()(x))
    assert load_model("TinyCNN", model_dir=root).__class__ is model.__class__  # dataset found by search
    assert load_model("TinyCNN", dataset="cifar10", threat_model="linf", model_dir=root) is not None


def test_sha256_mismatch_refused_before_unpickling(saved, monkeypatch):
    root, _, _, pt, _ = saved
    data = bytearray(pt.read_bytes())
    data[-100] ^= 0xFF
    pt.write_bytes(bytes(data))

    def boom(*a, **k):
        raise AssertionError("torch.load must not run on an unverified file")

    monkeypatch.setattr(torch, "load", boom)
    with pytest.raises(IntegrityError, match="sha256"):
        load_model("TinyCNN", dataset="cifar10", model_dir=root)
    assert [ok for _, ok, _ in verify_zoo(root)] == [False]


def test_unknown_name_lists_available(saved):
    root = saved[0]
    with pytest.raises(UnknownNameError, match="unknown zoo model 'Nope'.*TinyCNN"):
        load_model("Nope", dataset="cifar10", model_dir=root)
    with pytest.raises(UnknownNameError, match="cifar10/Linf/TinyCNN"):
        load_model("Nope", model_dir=root)


def test_missing_pt_and_bad_card(saved):
    root, _, _, pt, js = saved
    pt.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model("TinyCNN", dataset="cifar10", model_dir=root)
    d = json.loads(js.read_text())
    d["epochs"] = "many"
    js.write_text(json.dumps(d))
    with pytest.raises(ModelCardError, match="'epochs'"):
        load_model("TinyCNN", dataset="cifar10", model_dir=root)


def test_state_dict_checked_before_writing(tmp_path):
    card = cifar_card(arch="small_cnn", model_id="Wrong")
    with pytest.raises(CheckpointError, match="does not fit"):
        save_to_zoo(model_for_dataset("small_cnn", "fashion_mnist").state_dict(), card, tmp_path)
    sd = {("module." + k): v for k, v in small_cnn_state().items()}
    with pytest.raises(CheckpointError, match="module"):
        save_to_zoo(sd, card, tmp_path)
    assert list_zoo(tmp_path) == []


def test_quick_never_overwrites_full(tmp_path):
    torch.manual_seed(0)
    full_sd = model_for_dataset("small_cnn", "fashion_mnist").state_dict()
    full = fmnist_card("pgd_at", 821, (735, 722, 720, 719))
    _, full_json = save_to_zoo(full_sd, full, tmp_path)
    before = full_json.read_bytes()
    quick = fmnist_card("pgd_at", 158, (131, 128, 128, 127), n=200, quick=True)
    assert quick.model_id == full.model_id + "_quick"
    _, quick_json = save_to_zoo(model_for_dataset("small_cnn", "fashion_mnist").state_dict(), quick, tmp_path)
    assert quick_json != full_json and full_json.read_bytes() == before
    assert ModelCard.load(quick_json).quick and not ModelCard.load(full_json).quick
    # a quick card cannot take the full name, a full card cannot take a _quick name
    with pytest.raises(ModelCardError, match="quick"):
        quick.replace(model_id=full.model_id)
    with pytest.raises(ModelCardError, match="quick"):
        full.replace(model_id=full.model_id + "_quick")
    with pytest.raises(CheckpointError, match="exists"):
        save_to_zoo(full_sd, full, tmp_path, overwrite=False)
    assert sorted(e.model_id for e in list_zoo(tmp_path)) == [full.model_id, quick.model_id]
    assert all(ok for _, ok, _ in verify_zoo(tmp_path))


def test_quick_suffix_added_automatically(tmp_path):
    quick = fmnist_card("trades", 158, (131, 128, 128, 127), n=200, quick=True)
    object.__setattr__(quick, "model_id", "fmnist-trades")  # bypass validation: a caller's unsuffixed quick card
    pt, js = save_to_zoo(model_for_dataset("small_cnn", "fashion_mnist").state_dict(), quick, tmp_path)
    assert js.stem == "fmnist-trades_quick" and ModelCard.load(js).quick


def _writer(model_dir: str, worker: int, rounds: int) -> None:
    torch.set_num_threads(1)
    from test_zoo_helpers import cifar_card, small_cnn_state

    from generalist_bench.zoo.store import save_to_zoo

    for i in range(rounds):
        sd = small_cnn_state("cifar10", seed=100 * worker + i)
        save_to_zoo(sd, cifar_card(arch="small_cnn", model_id="Shared"), model_dir)  # both write the same entry
        save_to_zoo(sd, cifar_card(arch="small_cnn", model_id=f"Own{worker}"), model_dir)


def test_concurrent_writers_leave_a_valid_zoo(tmp_path):
    ctx = mp.get_context("fork")  # children set 1 torch thread first (no OpenMP pool use after fork)
    _writer(str(tmp_path), 9, 1)  # warm the lazy imports once in the parent, so the forked writers start fast
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 4)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0]
    results = verify_zoo(tmp_path)
    assert sorted(e.model_id for e, _, _ in results) == ["Own0", "Own1", "Own9", "Shared"]
    assert all(ok for _, ok, _ in results), results
    load_model("Shared", dataset="cifar10", model_dir=tmp_path)
    leftovers = [p.name for p in (tmp_path / "cifar10" / "Linf").iterdir() if p.suffix not in (".pt", ".json")]
    assert leftovers == []


def test_list_and_verify_report_problems(saved):
    root, _, _, pt, js = saved
    (pt.parent / "Orphan.pt").write_bytes(pt.read_bytes())
    moved = root / "cifar10" / "Linf" / "Moved.json"
    moved.write_text(js.read_text())
    entries = {e.model_id: e for e in list_zoo(root)}
    assert entries["TinyCNN"].error is None and entries["TinyCNN"].card is not None
    assert "no model card" in entries["Orphan"].error
    assert "must live at" in entries["Moved"].error
    status = {e.model_id: ok for e, ok, _ in verify_zoo(root)}
    assert status == {"TinyCNN": True, "Orphan": False, "Moved": False}


def _zoo_cli(*argv) -> int:
    p = argparse.ArgumentParser()
    zoo_cli.add_arguments(p)
    return zoo_cli.run(p.parse_args(list(argv)))


def test_zoo_cli(saved, capsys):
    root, card, _, pt, _ = saved
    assert _zoo_cli("--model-dir", str(root), "list") == 0
    assert "cifar10/Linf/TinyCNN" in capsys.readouterr().out
    assert _zoo_cli("--model-dir", str(root), "show", "TinyCNN") == 0
    assert ModelCard.from_json(capsys.readouterr().out).model_id == "TinyCNN"
    assert _zoo_cli("--model-dir", str(root), "show", "TinyCNN", "--robustbench") == 0
    assert json.loads(capsys.readouterr().out)["eps"] == "8/255"
    assert _zoo_cli("--model-dir", str(root), "verify") == 0
    assert "OK   cifar10/Linf/TinyCNN" in capsys.readouterr().out
    pt.write_bytes(pt.read_bytes()[:-10])
    assert _zoo_cli("--model-dir", str(root), "verify") == 1
    assert "FAIL" in capsys.readouterr().out


def test_card_from_a_real_evaluation(tmp_path):
    """The harness's EvalResult goes into a card unchanged, survives the round trip and gives a leaderboard row."""
    evaluation = pytest.importorskip("generalist_bench.evaluation")
    from test_zoo_helpers import COMMIT, VERSIONS

    from generalist_bench.leaderboard.rows import rows_from_zoo
    from generalist_bench.presets import get_preset
    from generalist_bench.zoo.card import make_card

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sd = small_cnn_state("fashion_mnist")
        model = model_for_dataset("small_cnn", "fashion_mnist")
        model.load_state_dict(sd)
        result = evaluation.evaluate(model.eval(), dataset="fashion_mnist", suite="quick", n_examples=16,
                                     batch_size=16, progress=False)
    finally:
        torch.set_num_threads(threads)
    from generalist_bench.zoo.card import Provenance

    card = make_card(get_preset("fmnist-smallcnn-standard"), {"quick": result}, quick=True,
                     provenance=Provenance("2026-01-01T00:00:00+00:00", "pytest", COMMIT, VERSIONS))
    assert card.primary_suite is None and card.autoattack_acc is None  # no AutoAttack run: no AA headline
    assert card.evaluations["quick"] == json.loads(result.to_json())
    _, js = save_to_zoo(sd, card, tmp_path)
    assert ModelCard.load(js).evaluations == card.evaluations
    (row,) = rows_from_zoo(tmp_path)
    assert row.autoattack is None and row.quick
    # labelled with their own n (no headline suite here) and "clean" for the natural pass
    assert [n for n, _ in row.per_attack] == [f"quick/{'clean' if a == 'natural' else a} (n = 16)"
                                              for a in result.per_attack]


def test_zoo_cli_through_main_dispatcher(saved, capsys):
    from generalist_bench.cli import main

    root = saved[0]
    assert main(["zoo", "--model-dir", str(root), "verify"]) == 0
    assert "1 entry checked, 0 problem(s)" in capsys.readouterr().out
    assert main(["zoo", "--model-dir", str(root), "show", "Missing"]) == 2
    assert "unknown zoo model 'Missing'" in capsys.readouterr().err
