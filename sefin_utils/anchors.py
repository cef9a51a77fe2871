"""Anchors: what a user would pick instead of sefin's deep models (scikit-learn on the standardised 162-dim vector).

Three classifiers from scikit-learn, each behind a ``StandardScaler`` fitted on the train split:

- ``logreg``: multinomial logistic regression (``sklearn.linear_model.LogisticRegression``),
- ``svm_rbf``: an RBF-kernel support vector machine (``sklearn.svm.SVC``, Platt-scaled by ``CalibratedClassifierCV``),
- ``mlp``: a one-hidden-layer perceptron (``sklearn.neural_network.MLPClassifier``).

Each has a small grid of hyper-parameters; the value with the best *validation* macro-F1 is kept (ties: the first in
the grid, which is the simplest), so the test split is never looked at. Full-corpora reference numbers (no
augmentation, speaker/study protocol) are in :data:`sefin_utils.study.ANCHORS_FULL`.

The logistic regression and the MLP are exported as exact Keras equivalents (:func:`to_keras`: ``Normalization`` ->
``Dense`` layers with the fitted weights), so that an anchor can become a run's predict bundle with the same input as
the Kaggle baseline; the SVM cannot be exported and is scored only.

This module never imports Keras at import time (reports and tests of the anchors stay light).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["ANCHORS", "EXPORTABLE", "AnchorFit", "fit_anchor", "fit_anchors", "to_keras"]

ANCHORS: tuple[str, ...] = ("logreg", "svm_rbf", "mlp")
"""The anchor names, in the order they are trained and reported."""

EXPORTABLE: tuple[str, ...] = ("logreg", "mlp")
"""Anchors that :func:`to_keras` turns into an exactly equivalent Keras model (bundle candidates)."""

GRIDS: Mapping[str, Sequence[Mapping[str, Any]]] = {
    "logreg": ({"C": 0.1}, {"C": 1.0}, {"C": 0.01}, {"C": 10.0}),
    "svm_rbf": ({"C": 1.0}, {"C": 10.0}, {"C": 3.0}),
    "mlp": ({"alpha": 1e-2}, {"alpha": 1e-1}, {"alpha": 1.0}),
}
"""Hyper-parameter values tried per anchor, selected on validation macro-F1 (first = default when tied)."""

MLP_HIDDEN: tuple[int, ...] = (256,)
"""Hidden layer sizes of the MLP anchor."""
MLP_MAX_ITER: int = 200
"""Adam epochs of the MLP anchor (scikit-learn's ``max_iter``; it stops earlier when the train loss stops falling).
At 500 the sample's 687 train clips took 506 s for the grid of one seed on the loaded 2-core machine."""


@dataclass
class AnchorFit:
    """A fitted anchor: the scikit-learn pipeline, the chosen hyper-parameters and the validation scores of the grid.

    ``model.predict_proba(x)`` gives (n, n_classes) probabilities over ``classes`` (indices 0..n_classes-1; classes
    absent from the train split get probability 0).
    """

    name: str
    model: Pipeline
    params: dict[str, Any]
    n_classes: int
    val_macro_f1: float
    grid_scores: list[dict[str, Any]] = field(default_factory=list)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, n_classes) float64 class probabilities for (n, d) inputs."""
        p = self.model.predict_proba(np.asarray(x, dtype="float64"))
        out = np.zeros((len(p), self.n_classes))
        out[:, self.model.classes_.astype(int)] = p
        return out


def _estimator(name: str, params: Mapping[str, Any], *, seed: int, class_weight: str | None) -> Any:
    if name == "logreg":
        return LogisticRegression(max_iter=2000, class_weight=class_weight, random_state=seed, **params)
    if name == "svm_rbf":
        # Platt-scaled probabilities, as SVC(probability=True) gave (deprecated in scikit-learn 1.9)
        svc = SVC(kernel="rbf", gamma="scale", class_weight=class_weight, **params)
        return CalibratedClassifierCV(svc, method="sigmoid", ensemble=False)
    if name == "mlp":  # MLPClassifier has no class_weight: the balanced variant is not available for it
        # Trained to convergence, regularised by the alpha grid chosen on the run's validation split. Its own
        # early_stopping held out 10 % of the train clips (19 in the demo) and stopped at iteration ~30 whatever
        # alpha: demo val macro-F1 .262 against .50 without it (measured on the demo store, seed 0).
        return MLPClassifier(
            hidden_layer_sizes=MLP_HIDDEN,
            max_iter=MLP_MAX_ITER,
            early_stopping=False,
            random_state=seed,
            **params,
        )
    raise KeyError(f"unknown anchor {name!r}; known: {', '.join(ANCHORS)}")


def _check(x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype=int)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{what}: inputs (n, d) and labels (n,) expected, got {x.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError(f"{what}: no rows")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: inputs hold NaN or inf")
    return x, y


def fit_anchor(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_classes: int,
    seed: int = 0,
    class_weight: str | None = None,
) -> AnchorFit:
    """Fit one anchor over its grid (:data:`GRIDS`) and keep the value with the best validation macro-F1.

    Parameters
    ----------
    name : {"logreg", "svm_rbf", "mlp"}
    x_train, x_val : (n, d) float arrays (the 162-dim vectors; standardised inside the pipeline on train only).
    y_train, y_val : (n,) integer class indices in ``[0, n_classes)``.
    n_classes : the number of output classes (probabilities are returned over all of them).
    seed : random state of the estimators (same seed, same model).
    class_weight : None or "balanced" (logistic regression and SVM; the MLP has no class weights).

    Raises
    ------
    KeyError: unknown anchor name. ValueError: mismatched shapes, empty or non-finite inputs, or fewer than two
    classes in the train split.
    """
    if name not in ANCHORS:
        raise KeyError(f"unknown anchor {name!r}; known: {', '.join(ANCHORS)}")
    x_train, y_train = _check(x_train, y_train, "train")
    x_val, y_val = _check(x_val, y_val, "val")
    if len(np.unique(y_train)) < 2:
        raise ValueError("train split holds fewer than two classes: an anchor cannot be fitted")
    best: AnchorFit | None = None
    scores: list[dict[str, Any]] = []
    present = np.unique(y_val)
    for params in GRIDS[name]:
        model = make_pipeline(StandardScaler(), _estimator(name, params, seed=seed, class_weight=class_weight))
        with warnings.catch_warnings():
            # MLP_MAX_ITER is a deliberate budget (validation picks alpha): its "not converged" notice is not news
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            model.fit(x_train, y_train)
        f1 = float(f1_score(y_val, model.predict(x_val), labels=present, average="macro", zero_division=0))
        scores.append({**params, "val_macro_f1": f1})
        if best is None or f1 > best.val_macro_f1:
            best = AnchorFit(name, model, dict(params), n_classes, f1)
    assert best is not None
    best.grid_scores = scores
    return best


def fit_anchors(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_classes: int,
    names: Sequence[str] = ANCHORS,
    seed: int = 0,
    class_weight: str | None = None,
) -> dict[str, AnchorFit]:
    """:func:`fit_anchor` for each of ``names``; returns {name: AnchorFit} in that order."""
    return {
        n: fit_anchor(n, x_train, y_train, x_val, y_val, n_classes=n_classes, seed=seed, class_weight=class_weight)
        for n in names
    }


def to_keras(fit: AnchorFit, *, input_name: str = "summary") -> Any:
    """An exactly equivalent Keras model of a fitted ``logreg`` or ``mlp`` anchor: (n, d) -> (n, n_classes) softmax.

    The scaler becomes a ``Normalization`` layer (mean, variance of the train split; scikit-learn's zero-variance
    guard: a scale of 1), the estimator's weights become ``Dense`` layers (ReLU hidden layers for the MLP). Classes
    absent from the train split get a bias of -1e9 (probability 0, as :meth:`AnchorFit.predict_proba`).

    Raises
    ------
    ValueError: for an anchor that cannot be exported (``svm_rbf``).
    """
    if fit.name not in EXPORTABLE:
        raise ValueError(f"anchor {fit.name!r} cannot be exported to Keras; exportable: {', '.join(EXPORTABLE)}")
    import keras

    scaler: StandardScaler = fit.model.steps[0][1]
    est = fit.model.steps[-1][1]
    present = est.classes_.astype(int)
    d = int(scaler.mean_.shape[0])
    inp = keras.Input(shape=(d,), name=input_name)
    var = np.asarray(scaler.scale_, dtype="float64") ** 2
    x = keras.layers.Normalization(mean=scaler.mean_, variance=var, name="standardize")(inp)
    if fit.name == "logreg":
        coefs, intercepts = [est.coef_.T], [est.intercept_]
    else:
        coefs, intercepts = list(est.coefs_), list(est.intercepts_)
    for i, (w, b) in enumerate(zip(coefs[:-1], intercepts[:-1], strict=True)):
        layer = keras.layers.Dense(w.shape[1], activation="relu", name=f"hidden{i}")
        x = layer(x)
        layer.set_weights([w.astype("float32"), b.astype("float32")])
    w_last, b_last = coefs[-1], intercepts[-1]
    if w_last.shape[1] == 1:  # binary problem: scikit-learn keeps one logit (class 1 vs 0)
        w_last = np.concatenate([np.zeros_like(w_last), w_last], axis=1)
        b_last = np.concatenate([np.zeros(1), np.atleast_1d(b_last)])
    w = np.zeros((w_last.shape[0], fit.n_classes), dtype="float32")
    b = np.full(fit.n_classes, -1e9, dtype="float32")
    w[:, present] = w_last
    b[present] = b_last
    out_layer = keras.layers.Dense(fit.n_classes, activation="softmax", name="probabilities")
    out = out_layer(x)
    out_layer.set_weights([w, b])
    return keras.Model(inp, out, name=f"anchor_{fit.name}")
