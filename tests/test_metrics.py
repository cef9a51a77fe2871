"""Metric functions against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from sefin_utils.metrics import classification_report, r2_scores


def test_r2_hand_computed() -> None:
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    p = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [5.0, 40.0]])  # dim 0 off by 1 once, dim 1 exact
    # dim 0: SS_res = 1, SS_tot = 5 -> R² = 0.8; dim 1: R² = 1.
    r = r2_scores(y, p)
    assert r["r2"] == pytest.approx(0.9)
    # variance-weighted: 1 - sum(SS_res) / sum(SS_tot) = 1 - 1 / (5 + 500)
    assert r["r2_vw"] == pytest.approx(1 - 1 / 505)


def test_r2_constant_dims_are_left_out() -> None:
    y = np.array([[1.0, 7.0], [2.0, 7.0], [3.0, 7.0]])
    p = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    assert r2_scores(y, p) == {"r2": 1.0, "r2_vw": 1.0}
    assert r2_scores(y[:, 0], p[:, 0])["r2"] == 1.0  # 1-d input
    with pytest.raises(ValueError, match="constant"):
        r2_scores(y[:, 1:], p[:, 1:])
    with pytest.raises(ValueError, match="shape"):
        r2_scores(y, p[:, :1])


def test_classification_report_hand_computed() -> None:
    classes = ["a", "b", "c"]
    t = [0, 0, 0, 1, 1, 2]
    p = [0, 0, 1, 1, 0, 2]
    r = classification_report(t, p, classes)
    assert r["accuracy"] == pytest.approx(4 / 6)
    # a: precision 2/3, recall 2/3 -> F1 2/3; b: precision 1/2, recall 1/2 -> 1/2; c: 1.
    assert r["per_class_f1"] == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 1.0})
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert r["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1) / 6)
    assert r["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert r["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_classes_absent_from_truth_do_not_count() -> None:
    r = classification_report([0, 0, 1], [0, 2, 1], ["a", "b", "c"])
    assert set(r["per_class_f1"]) == {"a", "b"}
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    with pytest.raises(ValueError, match="no samples"):
        classification_report([], [], ["a"])
