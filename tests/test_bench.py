"""The benchmark command runs end to end on a tiny budget and writes its files (timings themselves are not tested:
they are measurements). Slow: it runs AutoAttack six ways."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_writes_results_with_checks(tmp_path):
    from generalist_bench.bench import main

    assert main(["--n", "3", "--sections", "aa,train", "--skip-slow-baselines", "--images", "128",
                 "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    checks = res["aa"]["checks"]
    assert checks["workers_flags_identical_to_one_process"] is True
    assert set(res["aa"]["runs"]) >= {"pyautoattack", "ours, engine=compact (default)", "ours, engine=fast"}
    md = (tmp_path / "RESULTS.md").read_text()
    assert "speed-up vs pyautoattack" in md and "ART AdversarialTrainerMadryPGD" in md
    assert "python -m generalist_bench.bench --n 3" in md
    from generalist_bench.bench import default_model
    from generalist_bench.zoo.store import find_card

    name = default_model()  # the weights measured are named by their card's sha256, not only by the zoo name
    assert res["models"][name] == find_card(name, dataset="fashion_mnist")[0].sha256
    assert f"`{name}` sha256 `{res['models'][name][:16]}…`" in md


def test_bench_rejects_unknown_sections(capsys):
    from generalist_bench.bench import main

    with pytest.raises(SystemExit) as e:
        main(["--sections", "aa,nope"])
    assert e.value.code == 2 and "unknown section(s) nope" in capsys.readouterr().err


def test_model_section_times_the_runner_passes_and_checks_bit_identity():
    from generalist_bench.bench import default_model, model_section, render

    sec = model_section(default_model(), [4, 16], images=32, repeats=1)
    assert sec["passes"] == ["eager forward", "prepacked forward", "forward+input gradient"]
    assert [r["batch_size"] for r in sec["rows"]] == [4, 16]
    for r in sec["rows"]:
        assert all(r[p] > 0 for p in sec["passes"]) and isinstance(r["prepacked_bit_identical"], bool)
    md = render({"command": "x", "total_minutes": 0.1, "model": sec, "hardware": {}, "versions": {}, "threads": 1})
    assert "| 16 | " in md and "prepacked logits bit-identical" in md


def test_agreement_section_compares_the_fast_engine_with_a_saved_exact_result(tmp_path, one_thread):
    from generalist_bench.bench import agreement_section, default_model, render
    from generalist_bench.evaluation import evaluate
    from generalist_bench.zoo.store import load_model

    name = default_model()
    ref = evaluate(load_model(name, dataset="fashion_mnist"), n_examples=6, batch_size=6, progress=False)
    path = tmp_path / "ref.json"
    path.write_text(ref.to_json())
    sec = agreement_section(name, str(path))
    assert sec["n"] == 6 and sec["reference_engine"] == "compact" and sec["clean_identical"] is True
    assert sec["reference_robust_acc"] == ref.robust_acc
    assert sec["flag_agreement"] == pytest.approx(1 - sec["disagreements"] / 6)
    assert sec["disagreements"] == sec["fast_only_robust"] + sec["fast_only_fooled"]
    assert sec["within_tolerance"] == (sec["disagreements"] == 0)  # 6 points: one difference is 16.7 points
    md = render({"command": "x", "total_minutes": 0.1, "agreement": sec, "hardware": {}, "versions": {},
                 "threads": 1})
    assert "agreement with a committed exact result" in md and f"`{path}`" in md
    other = tmp_path / "other.json"  # a result of another model is refused, not compared
    other.write_text(ref.to_json().replace(ref.protocol["model_sha256"], "0" * 64))
    with pytest.raises(SystemExit, match="another model"):
        agreement_section(name, str(other))


def test_bench_train_kernel_suffix_sets_the_variable_for_one_entry_only(monkeypatch):
    """``PRESET@native`` times the epoch with GENERALIST_BENCH_BF16_KERNELS=native and restores the caller's
    environment after; a bad suffix, or one on a spec that does not train under bf16, fails before any timing; the
    spec's own overrides win over the bench's."""
    import os

    from generalist_bench import bench_train
    from generalist_bench.errors import ConfigError
    from generalist_bench.trainers.amp import BF16_KERNELS_ENV

    seen = []
    monkeypatch.setattr(bench_train.Trainer, "_train_epoch", lambda self, epoch: seen.append(
        (os.environ.get(BF16_KERNELS_ENV), self.cfg.train.amp)))
    monkeypatch.setenv(BF16_KERNELS_ENV, "auto")
    bench_train.time_epoch("fmnist-smallcnn-standard+train.amp=bf16@native", 64)
    bench_train.time_epoch("fmnist-smallcnn-standard+train.amp=off", 64)
    assert seen == [("native", "bf16"), ("auto", "off")] and os.environ[BF16_KERNELS_ENV] == "auto"
    for bad in ("fmnist-smallcnn-standard+train.amp=bf16@fp32", "fmnist-smallcnn-standard+train.amp=off@native"):
        with pytest.raises(ConfigError, match="the suffix is @native or @float32"):
            bench_train.time_epoch(bad, 64)
    assert len(seen) == 2 and os.environ[BF16_KERNELS_ENV] == "auto"
    cfg, kernels = bench_train.parse_spec("fmnist-smallcnn-standard+train.selection.n_val=32@float32",
                                          "train.selection.n_val=64")
    assert cfg.train.selection.n_val == 32 and kernels == "float32"
