"""Metrics: R² for the FINs, classification metrics for the emotion models.

All functions take ``(y_true, y_pred, ...)`` as scikit-learn does and wrap its implementations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm


def _as_2d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"expected (n,) or (n, dim) targets, got shape {y.shape}")
    return y


def r2_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R² averaged uniformly over output dimensions and weighted by each dimension's variance.

    Dimensions with zero variance in ``y_true`` are left out of the uniform average (scikit-learn would score
    them 1.0 or 0.0 arbitrarily) and carry no weight in the variance-weighted one.
    """
    t, p = _as_2d(y_true), _as_2d(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    if len(t) < 2:
        raise ValueError("R² needs at least two samples")
    var = t.var(axis=0)
    keep = var > 0
    if not keep.any():
        raise ValueError("every target dimension is constant: R² is undefined")
    per_dim = skm.r2_score(t[:, keep], p[:, keep], multioutput="raw_values")
    return {
        "r2": float(np.mean(per_dim)),
        "r2_vw": float(skm.r2_score(t[:, keep], p[:, keep], multioutput="variance_weighted")),
    }


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    classes: Sequence[str],
) -> dict[str, object]:
    """Accuracy, macro-F1, weighted-F1, UAR, per-class F1 and the confusion matrix (rows = true).

    ``y_true``/``y_pred`` are integer class indices into ``classes``. Classes absent from ``y_true`` are left out
    of the macro averages (they would count as F1 = 0 otherwise).
    """
    t = np.asarray(y_true, dtype=int)
    p = np.asarray(y_pred, dtype=int)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be equal 1-d shapes")
    if len(t) == 0:
        raise ValueError("no samples to score")
    present = np.unique(t)
    labels = np.arange(len(classes))
    f1 = skm.f1_score(t, p, labels=labels, average=None, zero_division=0)
    return {
        "n": int(len(t)),
        "accuracy": float(skm.accuracy_score(t, p)),
        "macro_f1": float(skm.f1_score(t, p, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(skm.f1_score(t, p, labels=present, average="weighted", zero_division=0)),
        "uar": float(skm.recall_score(t, p, labels=present, average="macro", zero_division=0)),
        "per_class_f1": {c: float(f1[i]) for i, c in enumerate(classes) if i in present},
        "confusion": skm.confusion_matrix(t, p, labels=labels).tolist(),
        "classes": list(classes),
    }
