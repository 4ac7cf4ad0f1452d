"""Metrics: regression (guards for zero targets), MASE and the naive forecast, classification."""

from __future__ import annotations

import math

import pytest
import torch

from lstmctl import metrics
from lstmctl.data.base import IGNORE_INDEX


def test_regression_values():
    t = torch.tensor([1.0, 2.0, 4.0, 0.0])
    p = torch.tensor([1.5, 2.0, 3.0, 0.5])
    m = metrics.regression(p, t)
    assert m["mse"] == pytest.approx((0.25 + 0 + 1 + 0.25) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
    assert m["mae"] == pytest.approx(0.5)
    assert m["mape"] == pytest.approx((0.5 / 1 + 0 + 1 / 4) / 3 * 100)  # the zero target is left out
    assert m["smape"] == pytest.approx((2 * 0.5 / 2.5 + 0 + 2 * 1 / 7 + 2 * 0.5 / 0.5) / 4 * 100)
    assert m["r2"] == pytest.approx(1 - 1.5 / float(((t - t.mean()) ** 2).sum()))


def test_regression_guards():
    z = torch.zeros(5)
    m = metrics.regression(z, z)
    assert m["mape"] is None and m["smape"] is None and m["r2"] is None and m["mse"] == 0


def test_mase_and_forecast():
    target = torch.tensor([[10.0], [12.0], [11.0]])
    pred = torch.tensor([[10.5], [11.0], [11.0]])
    naive = torch.tensor([[9.0], [10.0], [12.0]])
    assert metrics.mase(pred, target, 2.0) == pytest.approx(0.5 / 2)
    assert metrics.mase(pred, target, 0.0) is None and metrics.mase(pred, target, None) is None
    m = metrics.forecast(pred, target, naive, 2.0)
    assert m["mae"] == pytest.approx(0.5) and m["naive_mae"] == pytest.approx(4 / 3)
    assert m["mase"] == pytest.approx(0.25) and m["naive_mase"] == pytest.approx(2 / 3)
    assert m["mae_vs_naive"] == pytest.approx(0.5 / (4 / 3))
    assert m["naive_mse"] == pytest.approx(2.0)


def test_classification_ignores_ignore_index_and_unused_classes():
    logits = torch.tensor([[[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0]]])  # predicts 0, 1, 0
    target = torch.tensor([[0, 1, IGNORE_INDEX]])
    m = metrics.classification(logits, target, 3)
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == 1.0  # class 2 never occurs: not averaged in as a zero
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    wrong = metrics.classification(torch.tensor([[0.0, 9.0], [0.0, 9.0]]), torch.tensor([0, 1]), 2)
    assert wrong["accuracy"] == 0.5 and wrong["per_class"]["recall"] == [0.0, 1.0]


def test_the_per_epoch_headline_is_evals_accuracy_and_f1():
    """Training's val_accuracy/val_macro_f1 (classification_headline, from predicted classes) are eval's numbers."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, 5, generator=g)
    target = torch.randint(0, 5, (50, 7), generator=g)
    target[::3, 2] = IGNORE_INDEX
    full = metrics.classification(logits, target, 5)
    head = metrics.classification_headline(logits.argmax(-1), target, 5)
    assert head == {"accuracy": full["accuracy"], "macro_f1": full["macro_f1"]}
    cm = torch.tensor(full["confusion_matrix"])
    keep = target != IGNORE_INDEX
    assert cm.sum() == keep.sum() and cm.diag().sum() / cm.sum() == pytest.approx(full["accuracy"])
    assert metrics.classification_headline(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), 3) == {
        "accuracy": None, "macro_f1": None}


def test_mode_for_names():
    assert metrics.mode_for("val_accuracy") == metrics.mode_for("macro_f1") == metrics.mode_for("val_r2") == "max"
    assert metrics.mode_for("val_loss") == metrics.mode_for("val_mae") == metrics.mode_for("val_mase") == "min"
