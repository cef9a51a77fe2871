"""Figures of the FIN stage: predicted vs true scatter per FIN, and librosa vs FIN over one utterance.

Every function returns a matplotlib Figure and saves it as PNG when given ``path``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..constants import FRAME_LENGTH, HOP_LENGTH, SR

AMIN = 1e-10


def _save(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def _db(y: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(np.asarray(y, dtype=np.float64), AMIN))


def _ordered(names: Any) -> list[str]:
    """``names`` in registry order (``features.FEATURES``); an unknown name raises."""
    from ..features import FEATURES, get_feature

    names = list(names)
    for n in names:
        get_feature(n)
    return [n for n in FEATURES if n in names]


def _plot_kind(name: str) -> str:
    from ..features import get_feature

    return get_feature(name).plot


def pred_vs_true(
    results: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    max_points: int = 4000,
    seed: int = 0,
    title: str | None = None,
    path: str | Path | None = None,
) -> plt.Figure:
    """Scatter of FIN output against the librosa label, one panel per FIN (all dimensions pooled, subsampled).

    Parameters
    ----------
    results : mapping name -> (y_true, y_pred)
        Arrays ``(n_frames, dim)`` in librosa units (e.g. from ``experiments.predict_store``). Mel is drawn in dB.
    max_points : int
        Points drawn per panel (a random subsample; ``seed`` picks it).
    """
    from ..metrics import r2_scores

    names = _ordered(list(results))
    if not names:
        raise ValueError("pred_vs_true needs at least one FIN's (y_true, y_pred)")
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        t, p = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in results[name])
        r2 = r2_scores(t, p)
        db = _plot_kind(name) == "image_db"
        if db:
            t, p = _db(t), _db(p)
        t, p = t.ravel(), p.ravel()
        idx = rng.choice(len(t), size=min(max_points, len(t)), replace=False)
        ax.scatter(t[idx], p[idx], s=3, alpha=0.35, color="tab:blue", linewidths=0)
        lo, hi = float(np.min(t[idx])), float(np.max(t[idx]))
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
        unit = " (dB)" if db else ""
        ax.set(title=f"{name}: R² {r2['r2']:.3f} / vw {r2['r2_vw']:.3f}", xlabel=f"librosa{unit}", ylabel=f"FIN{unit}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _frames(y: np.ndarray) -> np.ndarray:
    from sefin_utils import features

    return features.frame(np.asarray(y, dtype=np.float32))


def utterance(
    y: np.ndarray,
    models: Mapping[str, Any],
    *,
    labels: Mapping[str, np.ndarray] | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> plt.Figure:
    """The librosa feature and each FIN's output over one utterance, side by side.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        The clip (22,050 Hz), framed ``center=False`` with hop 512.
    models : mapping name -> keras.Model
        FINs (``fins.load_fins``); each gets all frames of ``y``.
    labels : mapping name -> (n_frames, dim), optional
        Reference labels; default ``features.frame_labels(y)``.

    RMS and ZCR are line plots (librosa and FIN on one axis); chroma, MFCC and mel (in dB, ``ref=1``) are images,
    librosa left and FIN right, with a shared colour scale.
    """
    names = _ordered(list(models))
    if not names:
        raise ValueError("utterance needs at least one FIN")
    frames = _frames(y)
    if labels is None:
        from ..features import frame_labels

        labels = frame_labels(np.asarray(y, dtype=np.float32), names=names)
    t = (np.arange(len(frames)) * HOP_LENGTH + FRAME_LENGTH / 2) / SR
    heights = [1.0 if _plot_kind(n) == "line" else 1.6 for n in names]
    fig = plt.figure(figsize=(11, 2.0 * sum(heights)))
    grid = fig.add_gridspec(len(names), 2, height_ratios=heights)
    bottom = []
    for row, name in enumerate(names):
        pred = np.asarray(models[name].predict(frames, verbose=0), dtype=np.float64).reshape(len(frames), -1)
        true = np.asarray(labels[name], dtype=np.float64).reshape(len(frames), -1)
        kind = _plot_kind(name)
        if kind == "line":
            ax = fig.add_subplot(grid[row, :])
            ax.plot(t, true[:, 0], label="librosa", color="black", lw=1.2)
            ax.plot(t, pred[:, 0], label="FIN", color="tab:orange", lw=1.0, ls="--")
            ax.set(ylabel=name, xlim=(t[0], t[-1]))
            ax.legend(loc="upper right", fontsize=8)
            bottom = [ax]
            continue
        if kind == "image_db":
            true, pred = _db(true), _db(pred)
        lo, hi = np.percentile(true, [1, 99.5])
        bottom = []
        for col, (label, values) in enumerate((("librosa", true), ("FIN", pred))):
            ax = fig.add_subplot(grid[row, col])
            img = ax.imshow(
                values.T,
                origin="lower",
                aspect="auto",
                extent=(t[0], t[-1], -0.5, values.shape[1] - 0.5),
                vmin=lo,
                vmax=hi,
                cmap="magma" if kind == "image_db" else "viridis",
                interpolation="nearest",
            )
            unit = " (dB)" if kind == "image_db" else ""
            ax.set(title=f"{name}{unit}: {label}", ylabel="bin")
            fig.colorbar(img, ax=ax, pad=0.01)
            bottom.append(ax)
    for ax in bottom:
        ax.set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
