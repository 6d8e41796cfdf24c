"""robustbench 1.1.1 compatibility: the autoattack shim, zoo registration, robustbench.utils.load_model on our
files (no download), robustbench.eval.benchmark on fabricated CIFAR-10 files in torchvision's exact format."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_zoo_helpers import cifar_card, small_cnn_state

import generalist_bench
from generalist_bench.errors import CheckpointError, ConfigError, DataIntegrityError, IntegrityError
from generalist_bench.zoo import robustbench_compat as compat
from generalist_bench.zoo.store import save_to_zoo

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny batches: one torch thread is several times faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rb():
    """robustbench, imported after the compatibility was switched on."""
    generalist_bench.enable_robustbench_compat()
    import robustbench
    import robustbench.eval
    import robustbench.utils

    return robustbench


@pytest.fixture()
def zoo(tmp_path, rb, monkeypatch):
    def no_download(*a, **k):
        raise AssertionError("robustbench tried to download a zoo model")

    monkeypatch.setattr(rb.utils, "download_gdrive_new", no_download)
    sd = small_cnn_state("cifar10")
    save_to_zoo(sd, cifar_card(arch="small_cnn", model_id="TinyCNN"), tmp_path)
    return tmp_path, sd


def test_shim_modules(rb):
    import autoattack
    import autoattack.state

    from generalist_bench.zoo import autoattack_shim

    assert autoattack.AutoAttack is autoattack_shim.AutoAttack
    assert autoattack.state.EvaluationState is autoattack_shim.EvaluationState
    assert rb.eval.AutoAttack is autoattack_shim.AutoAttack
    import autoattack.autopgd_base
    import pyautoattack.autopgd_base

    assert autoattack.autopgd_base.APGDAttack is pyautoattack.autopgd_base.APGDAttack


def test_load_model_through_robustbench(zoo, rb):
    root, sd = zoo
    model = rb.utils.load_model("TinyCNN", model_dir=str(root), dataset="cifar10", threat_model="Linf")
    ours = generalist_bench.load_model("TinyCNN", dataset="cifar10", model_dir=root)
    assert not model.training and type(model) is type(ours)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), ours(x))
    entry = rb.model_zoo.model_dicts[rb.model_zoo.enums.BenchmarkDataset.cifar_10][
        rb.model_zoo.enums.ThreatModel.Linf]["TinyCNN"]
    assert entry["gdrive_id"] == compat.PLACEHOLDER_GDRIVE_ID and callable(entry["model"])
    assert rb.load_model is rb.utils.load_model  # the package-level name is the wrapped loader too


def test_robustbench_path_checks_sha256_and_missing_files(zoo, rb):
    root, _ = zoo
    pt = root / "cifar10" / "Linf" / "TinyCNN.pt"
    pt.write_bytes(pt.read_bytes()[:-7] + b"\x00" * 7)
    with pytest.raises(IntegrityError):
        rb.utils.load_model("TinyCNN", model_dir=str(root), dataset="cifar10", threat_model="Linf")
    pt.unlink()
    with pytest.raises(CheckpointError, match="missing"):  # and no attempt at the placeholder download
        rb.utils.load_model("TinyCNN", model_dir=str(root), dataset="cifar10", threat_model="Linf")


def test_robustbench_names_are_never_replaced(tmp_path, rb):
    save_to_zoo(small_cnn_state("cifar10"), cifar_card(arch="small_cnn", model_id="Standard"), tmp_path)
    with pytest.raises(ConfigError, match="name of a RobustBench model"):
        rb.utils.load_model("Standard", model_dir=str(tmp_path), dataset="cifar10", threat_model="Linf")
    with pytest.warns(UserWarning, match="not registered"):
        assert compat.register_zoo(tmp_path) == []


def test_register_zoo_cifar100(tmp_path, rb):
    from test_zoo_helpers import COMMIT, VERSIONS, eval_result

    from generalist_bench.presets import get_preset
    from generalist_bench.zoo.card import Provenance, make_card

    cfg = get_preset("cifar10-resnet18-trades").with_overrides(["data.dataset=cifar100", "model.arch=small_cnn"])
    card = make_card(cfg, {"autoattack": eval_result("cifar100", 8 / 255, 100, 60, {"apgd-ce": 30, "apgd-t": 25})},
                     model_id="Tiny100", provenance=Provenance("2026-01-01T00:00:00+00:00", "x", COMMIT, VERSIONS))
    from generalist_bench.models import model_for_dataset

    save_to_zoo(model_for_dataset("small_cnn", "cifar100").state_dict(), card, tmp_path)
    assert compat.register_zoo(tmp_path) == ["cifar100/Linf/Tiny100"]
    model = rb.utils.load_model("Tiny100", model_dir=str(tmp_path), dataset="cifar100", threat_model="Linf")
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 100)


# ---------------------------------------------------------------------------------------------- data
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_fake_cifar10(root: Path, test_x: np.ndarray, test_y: list[int], n_train: int = 4) -> Path:
    """torchvision's on-disk layout: cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} pickles with
    ``data`` uint8 N×3072 (channel-major rows) and ``labels``. The MD5s are, of course, not the official ones."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {"batch_label": f"training batch {i} of 5", "labels": g.integers(0, 10, n_train).tolist(),
                 "data": g.integers(0, 256, (n_train, 3072), dtype=np.uint8),
                 "filenames": [f"train_{i}_{j}.png" for j in range(n_train)]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {"batch_label": "testing batch 1 of 1", "data": test_x, "labels": list(test_y),
            "filenames": [f"test_{j}.png" for j in range(len(test_y))]}
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    meta = {"label_names": CLASSES, "num_cases_per_batch": n_train, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


@pytest.fixture()
def fake_cifar(tmp_path, zoo, rb):
    """Fabricated CIFAR-10 whose 16 test labels are the zoo model's own predictions (clean accuracy 100%)."""
    root, _ = zoo
    model = rb.utils.load_model("TinyCNN", model_dir=str(root), dataset="cifar10", threat_model="Linf")
    x = np.random.default_rng(1).integers(0, 256, (16, 3072), dtype=np.uint8)
    with torch.no_grad():
        y = model(torch.from_numpy(x).float().div(255).view(-1, 3, 32, 32)).argmax(1).tolist()
    return model, write_fake_cifar10(tmp_path / "data", x, y), x, y


def test_robustbench_cifar_loader_goes_through_ours(fake_cifar, rb):
    import torchvision.transforms as T

    _, data_dir, x, y = fake_cifar
    with pytest.raises(DataIntegrityError, match="MD5"):
        rb.data.load_cifar10(n_examples=4, data_dir=str(data_dir))
    with compat.allow_unverified_data():
        xt, yt = rb.data.load_cifar10(n_examples=5, data_dir=str(data_dir))
        assert xt.shape == (5, 3, 32, 32) and yt.tolist() == y[:5]
        assert torch.equal(xt[0], torch.from_numpy(x[0]).float().div(255).view(3, 32, 32))
        flipped, _ = rb.data.load_cifar10(n_examples=2, data_dir=str(data_dir),
                                          transforms_test=T.Compose([T.RandomHorizontalFlip(p=1.0), T.ToTensor()]))
        assert torch.allclose(flipped, xt[:2].flip(-1))
    assert compat._state["verify"] is True  # the escape hatch does not leak


def test_benchmark_on_fabricated_cifar10(fake_cifar, rb, tmp_path):
    model, data_dir, _, _ = fake_cifar
    with pytest.raises(DataIntegrityError):  # robustbench's download=True never papers over bad files
        rb.eval.benchmark(model, dataset="cifar10", threat_model="Linf", eps=8 / 255, n_examples=8,
                          data_dir=str(data_dir))
    with compat.allow_unverified_data():
        clean, robust = rb.eval.benchmark(model, dataset="cifar10", threat_model="Linf", eps=8 / 255,
                                          n_examples=8, data_dir=str(data_dir), batch_size=8)
        assert clean == 1.0 and 0.0 <= robust <= clean
        # with aa_state_path: robustbench calls robust_flags.mean() (fails on bool tensors upstream)
        state = tmp_path / "aa_state.json"
        clean2, robust2 = rb.eval.benchmark(model, dataset="cifar10", threat_model="Linf", eps=8 / 255,
                                            n_examples=8, data_dir=str(data_dir), batch_size=8,
                                            aa_state_path=state)
        assert clean2 == 1.0 and 0.0 <= robust2 <= 1.0 and state.exists()


# ---------------------------------------------------------------------------------------------- shim API
def test_shim_upstream_api(tmp_path):
    from autoattack import AutoAttack
    from autoattack.state import EvaluationState

    model = generalist_bench.create_model("small_cnn", num_classes=10, in_channels=3, input_size=32)
    torch.nn.init.normal_(model.classifier[-1].weight, std=0.3)
    model.eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        y = model(x).argmax(1)
    with pytest.raises(ValueError, match="custom"):
        AutoAttack(model, norm="Linf", eps=8 / 255, version="standard", attacks_to_run=["apgd-ce"], device="cpu")
    log = tmp_path / "aa.log"
    aa = AutoAttack(model, "Linf", 8 / 255, version="custom", attacks_to_run=["apgd-ce"], device="cpu",
                    log_path=str(log), verbose=True, seed=0)
    aa.apgd.n_iter, aa.apgd.n_restarts = 5, 1  # speed: the API is under test, not the attack
    x_adv = aa.run_standard_evaluation(x, y, bs=4)
    assert isinstance(x_adv, torch.Tensor) and x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert "apgd-ce" in log.read_text()
    x_adv2, y_adv = aa.run_standard_evaluation(x, y, bs=4, return_labels=True)
    assert y_adv.shape == y.shape
    indiv = aa.run_standard_evaluation_individual(x, y, bs=4)
    assert set(indiv) == {"apgd-ce"} and aa.attacks_to_run == ["apgd-ce"]
    state = tmp_path / "state.json"
    aa.run_standard_evaluation(x, y, bs=4, state_path=state)
    loaded = EvaluationState.from_disk(state)
    assert loaded.attacks_to_run == {"apgd-ce"} and loaded.run_attacks == {"apgd-ce"}
    assert loaded.robust_flags.dtype == torch.float32 and 0.0 <= loaded.robust_flags.mean().item() <= 1.0
    with pytest.raises(ConfigError, match="cannot resume"):
        aa.run_standard_evaluation(x, y, bs=4, state_path=state)


# ------------------------------------------------------------------------------------ fresh interpreter
def _run(code: str, *args: str, cwd=None, **env) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_import_is_cheap_and_survives_missing_robustbench():
    out = _run("""
        import sys
        sys.modules["robustbench"] = None  # robustbench absent
        import generalist_bench
        assert "torch" not in sys.modules and "pyautoattack" not in sys.modules, "import is not cheap"
        generalist_bench.enable_robustbench_compat()
        try:
            import robustbench
        except ImportError:
            print("robustbench absent, package fine")
    """)
    assert out.returncode == 0 and "package fine" in out.stdout, out.stderr[-3000:]


def test_import_has_no_side_effects_and_compat_is_switched_on_explicitly():
    """Importing every part of the package leaves sys.meta_path alone and robustbench unimportable (as it is on
    the PyPI stack); the explicit call switches the compatibility on, and is idempotent."""
    out = _run("""
        import sys
        before = list(sys.meta_path)
        import generalist_bench, generalist_bench.evaluation, generalist_bench.zoo.store, generalist_bench.cli
        import generalist_bench.leaderboard, generalist_bench.train_and_submit
        import generalist_bench.zoo.robustbench_compat
        assert sys.meta_path == before, sys.meta_path
        assert "autoattack" not in sys.modules
        try:
            import robustbench
            raise SystemExit("robustbench imported without the compatibility")
        except ImportError as e:
            print("unpatched:", e.name)
        for name in [m for m in sys.modules if m.startswith(("robustbench", "autoattack"))]:
            del sys.modules[name]
        from generalist_bench.zoo import robustbench_compat as compat
        generalist_bench.enable_robustbench_compat()
        generalist_bench.enable_robustbench_compat()
        ours = [f for f in sys.meta_path if f in (compat._HOOK_FINDER, compat._SHIM_FINDER)]
        assert len(ours) == 2, sys.meta_path
        import robustbench.utils
        assert getattr(robustbench.model_zoo.models, compat._MARK) is True
        print("OK")
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "unpatched: autoattack" in out.stdout and "OK" in out.stdout


def test_hooks_ran_in_this_process(rb, tmp_path, monkeypatch):
    assert getattr(rb.model_zoo.models, compat._MARK) is True
    assert rb.data._clean_dataset_loaders[rb.model_zoo.enums.BenchmarkDataset.cifar_10] is compat.load_cifar10
    (tmp_path / "zoo").mkdir()
    monkeypatch.setenv(compat.ZOO_ENV, str(tmp_path / "zoo"))
    dirs = [d.resolve() for d in compat.default_zoo_dirs()]
    assert dirs[0] == (tmp_path / "zoo").resolve()


@pytest.mark.slow
def test_default_zoos_register_when_robustbench_is_imported(tmp_path):
    """Fresh interpreter: ``import robustbench`` after ``import generalist_bench`` registers the cards of
    $GENERALIST_BENCH_ZOO (a bad card only warns) and loads them with no model_dir-specific help."""
    save_to_zoo(small_cnn_state("cifar10"), cifar_card(arch="small_cnn", model_id="EnvCNN"), tmp_path)
    (tmp_path / "cifar10" / "Linf" / "Broken.json").write_text(json.dumps({"model_id": "Broken"}))
    out = _run("""
        import sys, warnings
        import generalist_bench
        generalist_bench.enable_robustbench_compat()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import robustbench
            from robustbench.model_zoo import model_dicts
            from robustbench.model_zoo.enums import BenchmarkDataset as D, ThreatModel as T
        assert "EnvCNN" in model_dicts[D.cifar_10][T.Linf], "not registered"
        assert "Broken" not in model_dicts[D.cifar_10][T.Linf]
        assert any("Broken" in str(w.message) for w in caught), [str(w.message) for w in caught]
        from robustbench.utils import load_model
        m = load_model("EnvCNN", model_dir=sys.argv[1], dataset="cifar10", threat_model="Linf")
        print("OK", type(m).__name__)
    """, str(tmp_path), cwd=tmp_path, GENERALIST_BENCH_ZOO=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK SmallCNN" in out.stdout
