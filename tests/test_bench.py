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
