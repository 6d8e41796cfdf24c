"""External submissions: a model trained elsewhere is evaluated under the leaderboard protocol, published with a card
that says it was submitted, and shown on the leaderboard; bad submissions are one error and change nothing."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from generalist_bench.cli import main as cli_main
from generalist_bench.zoo import external


def _snapshot(*dirs):
    return {str(p): p.read_bytes() for d in dirs for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(external, "QUICK_N", 300)  # clean + PGD-20 on 300 points instead of all 10,000 (test time)
    return {k: tmp_path / k for k in ("zoo", "lb", "runs")}


def _argv(dirs, ck, name, arch="small_cnn", *extra):
    return ["submit", "--checkpoint", str(ck), "--arch", arch, "--name", name, "--n-examples", "12",
            "--model-dir", str(dirs["zoo"]), "--leaderboard-dir", str(dirs["lb"]), "--runs-dir", str(dirs["runs"]),
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def ck(tmp_path_factory, clean_small_cnn):
    path = tmp_path_factory.mktemp("ext") / "theirs.pt"
    torch.save(clean_small_cnn.state_dict(), path)
    return path


def test_submission_is_evaluated_published_and_labelled(dirs, ck, capsys, one_thread):
    assert cli_main(_argv(dirs, ck, "TheirCNN", "small_cnn", "--link", "https://example.org/paper",
                          "--authors", "A. Author", "--venue", "Workshop 2026")) == 0
    card = json.loads((dirs["zoo"] / "fashion_mnist" / "Linf" / "TheirCNN.json").read_text())
    assert card["trainer"] == "submitted" and card["epochs"] == 0 and card["quick"] is False
    assert card["footnote"].startswith("submitted: trained elsewhere")
    assert card["link"] == "https://example.org/paper" and card["authors"] == "A. Author"
    assert card["n_examples"] == 12 and card["evaluations"]["autoattack"]["protocol"]["suite"] == "autoattack"
    assert card["recipe"]["submitted"]["checkpoint_sha256"] and card["evaluations"]["quick"]["n_examples"] == 300
    md = (dirs["lb"] / "fashion_mnist_Linf_0.1.md").read_text()
    assert "TheirCNN" in md and "Submitted (trained elsewhere)" in md and "submitted: trained elsewhere" in md
    from generalist_bench.zoo.store import load_model

    m = load_model("TheirCNN", dataset="fashion_mnist", threat_model="Linf", model_dir=dirs["zoo"])  # sha256-checked
    assert isinstance(m, nn.Module)


class _Probabilities(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).softmax(1)


def test_bad_submissions_are_one_error_and_change_nothing(dirs, ck, tmp_path, capsys, clean_small_cnn, one_thread):
    from generalist_bench.models import create_model, list_models, register_model

    assert cli_main(_argv(dirs, ck, "First")) == 0
    before = _snapshot(dirs["zoo"], dirs["lb"])
    capsys.readouterr()

    def fails(argv, message):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert _snapshot(dirs["zoo"], dirs["lb"]) == before

    fails(_argv(dirs, ck, "First"), "--name 'First' exists in the zoo")
    fails(_argv(dirs, ck, "Other", "resnet18"), "does not fit architecture 'resnet18'")
    pickled = tmp_path / "module.pt"
    torch.save(clean_small_cnn, pickled)
    fails(_argv(dirs, pickled, "Pickled"), "contains pickled Python objects")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(ck.read_bytes()[:1000])
    fails(_argv(dirs, truncated, "Trunc"), "truncated or corrupted")
    if "prob_small_cnn" not in list_models():
        @register_model
        def prob_small_cnn(num_classes=10, **kw):
            return _Probabilities(create_model("small_cnn", num_classes=num_classes, **kw))
    probs = tmp_path / "probs.pt"
    torch.save({f"inner.{k}": v for k, v in clean_small_cnn.state_dict().items()}, probs)
    fails(_argv(dirs, probs, "Probs", "prob_small_cnn"), "probabilities")
    fails(_argv(dirs, ck, "bad name!"), "--name 'bad name!'")
    fails(_argv(dirs, ck, "X_quick"), "not ending in '_quick'")
    fails(["submit", "--checkpoint", str(ck), "--model-dir", str(dirs["zoo"])], "missing: --arch, --name")
