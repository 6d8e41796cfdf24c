"""The issue's literal protocol check: the same numbers for batch size 50 and 500 (500 test points)."""

from __future__ import annotations

import torch

from generalist_bench.evaluation.api import evaluate


def test_batch_size_50_and_500_give_the_same_numbers(robust_small_cnn):
    kw = dict(dataset="fashion_mnist", eps=0.1, attacks=["pgd-20", "mim", "cw"], n_examples=500, progress=False)
    a = evaluate(robust_small_cnn, batch_size=50, **kw)
    b = evaluate(robust_small_cnn, batch_size=500, **kw)
    assert a.per_attack == b.per_attack and a.clean_acc == b.clean_acc and a.robust_acc == b.robust_acc
    assert a.samples["attacks"] == b.samples["attacks"]  # every sample's flag, not only the totals
    for name in ("clean", "robust"):
        assert torch.equal(a.flags(name), b.flags(name))
    assert 0 < a.robust_acc < a.clean_acc  # a real fight: some points fall, some survive
