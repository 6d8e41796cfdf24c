"""Shared fixtures: real Fashion-MNIST (from the Debian package or $GENERALIST_BENCH_DATA) and two small
SmallCNNs trained in-process (a clean one and a briefly PGD-trained one), cached for the session."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: when other jobs share the 2 cores, spinning threads made
# small attack batches up to 50x slower. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist (the README's test command runs one worker per core) each worker, and every process it starts,
# computes on one thread: two workers of two OpenMP threads each would oversubscribe the cores and wait on each other.
XDIST_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if XDIST_WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1 if XDIST_WORKER else min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fmnist_test():
    from generalist_bench.data import load_dataset

    return load_dataset("fashion_mnist", "test")


@pytest.fixture(scope="session")
def fmnist_train():
    from generalist_bench.data import load_dataset

    return load_dataset("fashion_mnist", "train")


def _train_small_cnn(x, y, epochs: int, adversarial: bool, seed: int = 0):
    from generalist_bench.attacks import PGD
    from generalist_bench.models import model_for_dataset

    torch.manual_seed(seed)
    model = model_for_dataset("small_cnn", "fashion_mnist")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    attack = PGD(eps=0.1, steps=3, step_size=0.04)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            idx = perm[i:i + 128]
            xb, yb = x[idx], y[idx]
            if adversarial:
                xb = attack(model, xb, yb, generator=g)
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def clean_small_cnn(fmnist_train):
    """SmallCNN, standard training, 2 epochs on 6,000 training images (~75% clean, not robust)."""
    return _train_small_cnn(fmnist_train.x[:6000], fmnist_train.y[:6000], epochs=2, adversarial=False)


@pytest.fixture(scope="session")
def robust_small_cnn(fmnist_train):
    """SmallCNN, PGD-3 adversarial training (eps 0.1), 2 epochs on 6,000 images: some robust points survive."""
    return _train_small_cnn(fmnist_train.x[:6000], fmnist_train.y[:6000], epochs=2, adversarial=True)


def tiny_mlp(train, seed: int = 0):
    """A 784-64-10 MLP trained for two epochs on 6,000 training images (~1 s): cheap to attack 10⁴ times."""
    from torch import nn

    from generalist_bench.models import Normalize

    torch.manual_seed(seed)
    model = nn.Sequential(Normalize((0.5,), (0.5,)), nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        for i in range(0, 6000, 128):
            loss = F.cross_entropy(model(train.x[i:i + 128]), train.y[i:i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def mlp(fmnist_train):
    """A fresh tiny MLP per test module (tests may change its mode or wrap it)."""
    return tiny_mlp(fmnist_train)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: on a shared 2-core machine two OpenMP threads spin-wait for each other
    and small attack batches run up to 50× slower (measured: 500 s vs 10 s for one AutoAttack run of the MLP)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
