"""Models: every registered architecture runs forward and backward on both input shapes, normalises first,
has RobustBench-safe state-dict keys; the registry rejects duplicates and unknown names."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from generalist_bench.data import get_dataset_info
from generalist_bench.errors import UnknownNameError
from generalist_bench.models import Normalize, create_model, list_models, model_for_dataset, register_model
from generalist_bench.models import registry as model_registry

BIG = {"wrn34_10", "wrn32_10"}  # 46M parameters: batch 1 keeps them at about a second each on CPU
DATASETS = ("fashion_mnist", "cifar10")  # 1×28×28 and 3×32×32


@pytest.fixture(autouse=True)
def one_thread():
    """Batches of 1–2 gain nothing from intra-op threads, and when another job shares the 2 cores, OpenMP barriers
    make 2 threads about 10× slower than 1 (a WRN forward+backward: 7 s instead of 0.7 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_registry_lists_the_architectures():
    assert {"small_cnn", "resnet18", "preact_resnet18", "wrn34_10", "wrn32_10"} <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("arch", list_models())
def test_forward_backward(arch, dataset):
    info = get_dataset_info(dataset)
    torch.manual_seed(0)
    model = model_for_dataset(arch, dataset).train()
    # normalisation is the first layer: the first convolution sees (x - mean) / std of the data set
    names = [name for name, _ in model.named_children()]
    assert names[0] == "normalize" and isinstance(model.normalize, Normalize)
    assert model.normalize.mean.flatten().tolist() == pytest.approx(info.mean)
    assert model.normalize.std.flatten().tolist() == pytest.approx(info.std)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == info.shape[0]
    seen = {}

    def record(module, inputs):  # returns None: a pre-hook's return value would replace the input
        seen["x"] = inputs[0].detach()

    hook = first_conv.register_forward_pre_hook(record)

    n = 1 if arch in BIG else 2
    x = torch.rand(n, *info.shape, requires_grad=True)
    y = torch.arange(n) % info.num_classes
    out = model(x)
    hook.remove()
    assert out.shape == (n, info.num_classes) and out.dtype == torch.float32 and torch.isfinite(out).all()
    mean, std = torch.tensor(info.mean).view(1, -1, 1, 1), torch.tensor(info.std).view(1, -1, 1, 1)
    torch.testing.assert_close(seen["x"], (x.detach() - mean) / std)

    F.cross_entropy(out, y).backward()
    assert x.grad is not None and x.grad.shape == x.shape and torch.isfinite(x.grad).all()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    keys = list(model.state_dict())
    assert not [k for k in keys if "model." in k or "module." in k]  # robustbench strips these anywhere in a key
    assert "normalize.mean" in keys and "normalize.std" in keys  # the normalisation travels with the checkpoint


@pytest.mark.parametrize("arch", sorted(set(list_models()) - BIG))
def test_normalize_then_architecture(arch):
    """model(x) for x in [0,1] equals the same network without its Normalize applied to (x - mean) / std."""
    info = get_dataset_info("cifar10")
    torch.manual_seed(0)
    model = model_for_dataset(arch, "cifar10").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        model.normalize = nn.Identity()
        bare = model((x - torch.tensor(info.mean).view(1, 3, 1, 1)) / torch.tensor(info.std).view(1, 3, 1, 1))
    torch.testing.assert_close(out, bare)


def test_class_count_and_channels_follow_the_dataset():
    model = model_for_dataset("resnet18", "cifar100")
    assert model.linear.out_features == 100
    assert model_for_dataset("small_cnn", "cifar10")(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert create_model("small_cnn", num_classes=7)(torch.rand(1, 1, 28, 28)).shape == (1, 7)
    with pytest.raises(ValueError, match="mean/std need 3 entries"):
        create_model("resnet18", in_channels=3, mean=(0.5,), std=(0.5,))


def test_state_dict_loads_into_a_fresh_model():
    a, b = model_for_dataset("small_cnn", "fashion_mnist"), model_for_dataset("small_cnn", "fashion_mnist")
    torch.nn.init.normal_(a.classifier[-1].weight)
    b.load_state_dict(a.state_dict())
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))


def test_register_model_rejects_duplicates(monkeypatch):
    # leave the real registry alone
    monkeypatch.setattr(model_registry.MODELS, "_entries", dict(model_registry.MODELS._entries))

    def tiny_test_net(num_classes=10, in_channels=1, mean=None, std=None):
        return nn.Sequential(Normalize((0.5,), (0.5,)), nn.Flatten(), nn.Linear(784, num_classes))

    assert register_model(tiny_test_net) is tiny_test_net
    assert "tiny_test_net" in list_models()
    assert create_model("tiny_test_net", num_classes=3)(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    assert register_model(tiny_test_net) is tiny_test_net  # the same definition again (a module re-imported)

    def other():
        def tiny_test_net(num_classes=10, **kw):  # another definition under the taken name
            return nn.Identity()
        return tiny_test_net

    with pytest.raises(ValueError, match="already registered"):
        register_model(other())

    def small_cnn(num_classes=10, **kw):
        return nn.Linear(1, num_classes)

    with pytest.raises(ValueError, match="'small_cnn' is already registered"):
        register_model(small_cnn)


def test_create_model_checks_state_dict_keys(monkeypatch):
    monkeypatch.setattr(model_registry.MODELS, "_entries", dict(model_registry.MODELS._entries))

    class Wrapped(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.model = nn.Linear(4, num_classes)

    @register_model
    def wrapped_test_net(num_classes=10):
        return Wrapped(num_classes)

    with pytest.raises(AssertionError, match="must not contain"):
        create_model("wrapped_test_net")


def test_unknown_architecture():
    with pytest.raises(UnknownNameError) as e:
        create_model("nope")
    for name in list_models():
        assert name in str(e.value)
    assert "unknown architecture 'nope'" in str(e.value)
    with pytest.raises(UnknownNameError):
        model_for_dataset("nope", "fashion_mnist")


def test_model_for_dataset_passes_input_size_only_to_builders_that_declare_it(monkeypatch):
    """A builder that forwards **kwargs to another architecture must not receive input_size it cannot take."""
    from generalist_bench.models import model_for_dataset

    monkeypatch.setattr(model_registry.MODELS, "_entries", dict(model_registry.MODELS._entries))

    def forwarding_resnet(num_classes=10, **kw):
        return create_model("resnet18", num_classes=num_classes, **kw)

    register_model(forwarding_resnet)
    assert model_for_dataset("forwarding_resnet", "cifar10")(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert model_registry.accepts("small_cnn", "input_size") and not model_registry.accepts("resnet18", "input_size")
    assert model_for_dataset("small_cnn", "cifar10")(torch.rand(2, 3, 32, 32)).shape == (2, 10)  # 32×32 side
