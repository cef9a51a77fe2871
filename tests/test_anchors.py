"""Anchors: scikit-learn classifiers on the 162-dim vector, selected on validation, exportable to Keras."""

from __future__ import annotations

import numpy as np
import pytest

from sefin_utils import anchors


def _blobs(n: int, seed: int, *, n_classes: int = 4, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, (n_classes, d)) * np.linspace(1, 50, d)  # unscaled features
    y = rng.integers(0, n_classes, n)
    x = centres[y] + rng.normal(0, 1, (n, d)) * np.linspace(1, 50, d)
    return x, y


@pytest.fixture(scope="module")
def fitted() -> dict[str, anchors.AnchorFit]:
    xt, yt = _blobs(300, 0)
    xv, yv = _blobs(80, 1)
    return anchors.fit_anchors(xt, yt, xv, yv, n_classes=5, seed=0)  # class 4 never occurs


def test_every_anchor_learns_a_learnable_set(fitted: dict[str, anchors.AnchorFit]) -> None:
    xs, ys = _blobs(200, 2)
    assert list(fitted) == list(anchors.ANCHORS)
    for name, fit in fitted.items():
        p = fit.predict_proba(xs)
        assert p.shape == (200, 5)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
        assert np.all(p[:, 4] == 0.0), name  # a class absent from train gets no probability
        acc = float(np.mean(p.argmax(axis=1) == ys))
        assert acc > 0.8, (name, acc)  # chance is .25
        assert len(fit.grid_scores) == len(anchors.GRIDS[name])
        assert fit.val_macro_f1 == max(s["val_macro_f1"] for s in fit.grid_scores)


def test_same_seed_same_anchor() -> None:
    xt, yt = _blobs(150, 0)
    xv, yv = _blobs(40, 1)
    a = anchors.fit_anchor("mlp", xt, yt, xv, yv, n_classes=4, seed=3)
    b = anchors.fit_anchor("mlp", xt, yt, xv, yv, n_classes=4, seed=3)
    np.testing.assert_array_equal(a.predict_proba(xv), b.predict_proba(xv))


@pytest.mark.parametrize("name", anchors.EXPORTABLE)
def test_keras_export_equals_scikit_learn(fitted: dict[str, anchors.AnchorFit], name: str) -> None:
    xs, _ = _blobs(64, 3)
    model = anchors.to_keras(fitted[name])
    got = np.asarray(model.predict(xs.astype("float32"), verbose=0))
    np.testing.assert_allclose(got, fitted[name].predict_proba(xs), atol=2e-4)


def test_svm_is_not_exportable_and_bad_input_is_named(fitted: dict[str, anchors.AnchorFit]) -> None:
    with pytest.raises(ValueError, match="cannot be exported"):
        anchors.to_keras(fitted["svm_rbf"])
    x, y = _blobs(20, 0)
    with pytest.raises(KeyError, match="known: logreg"):
        anchors.fit_anchor("forest", x, y, x, y, n_classes=4)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="train: inputs hold NaN"):
        anchors.fit_anchor("logreg", bad, y, x, y, n_classes=4)
    with pytest.raises(ValueError, match="fewer than two classes"):
        anchors.fit_anchor("logreg", x, np.zeros(20, int), x, y, n_classes=4)
