"""Figures for predictions on new audio (the report notebook's "your own recordings" cell)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sefin_utils.audio import display_path

TOP_COLOR = "tab:red"
OTHER_COLOR = "tab:blue"


def plot_probabilities(
    predictions: Sequence[Any],
    *,
    path: str | Path | None = None,
    classes: Sequence[str] | None = None,
    ncols: int = 3,
    max_files: int = 12,
    title: str | None = "Emotion probabilities per file",
) -> Figure:
    """Bar chart of the class probabilities of each file, the top class highlighted.

    Parameters
    ----------
    predictions : sequence of Prediction
        From :func:`sefin_utils.predict.predict_paths` or ``EmotionClassifier.classify_file``; failed ones are
        shown as their error message, skipped files as their reason; a warning (bundle trained on generated data) goes
        into the title.
    path : str or Path, optional
        Save the figure there as PNG.
    classes : sequence of str, optional
        Class order of the bars (default: the order of the first successful prediction).
    ncols : int
        Panels per row.
    max_files : int
        At most this many panels (the first ones).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    preds = list(predictions)[:max_files]
    if not preds:
        raise ValueError("plot_probabilities needs at least one prediction")
    if classes is None:
        classes = next((list(p.probabilities) for p in preds if p.probabilities), [])
    ncols = max(1, min(ncols, len(preds)))
    nrows = -(-len(preds) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 0.28 * len(classes) * nrows + 1.2 * nrows + 0.4), squeeze=False, sharex=True
    )
    for ax, p in zip(axes.flat, preds, strict=False):
        name = display_path(Path(p.path).name) if p.path else "<signal>"
        if p.error is not None or not p.probabilities:
            skipped = getattr(p, "skipped", None)
            text = f"skipped:\n{skipped}" if skipped else f"error:\n{p.error}"
            ax.text(
                0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=8, color="tab:red", transform=ax.transAxes
            )
            ax.set_yticks([])
            ax.set_title(name, fontsize=9)
            continue
        values = [p.probabilities.get(c, 0.0) for c in classes]
        colors = [TOP_COLOR if c == p.emotion else OTHER_COLOR for c in classes]
        ax.barh(range(len(classes)), values, color=colors)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        n_win = len(getattr(p, "windows", []) or [])
        n_skip = int(getattr(p, "n_skipped", 0) or 0)
        suffix = ""
        if n_win > 1 or n_skip:
            suffix = f" ({n_win} windows" + (f", {n_skip} silent skipped)" if n_skip else ")")
        ax.set_title(f"{name}: {p.emotion}{suffix}", fontsize=9)
    for ax in list(axes.flat)[len(preds) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("probability")
    warning = next((w for w in (getattr(p, "warning", None) for p in preds) if w), None)
    if warning:  # a bundle trained on generated data: its answers say nothing about real speech
        title = f"{title or ''}\nWARNING: {warning}".strip()
    if title:
        fig.suptitle(title, color="tab:red" if warning else None, fontsize=10 if warning else None)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
