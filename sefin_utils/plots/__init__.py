"""Figures, one module per stage: ``plots.data``, ``plots.fins``, ``plots.ser``, ``plots.predict``. Every figure
function returns a matplotlib Figure and saves it as PNG when given a path.

:func:`stamp_generated` marks a figure as made from generated data; ``report.label_figures`` installs it as a
matplotlib figure hook (``rcParams["figure.hooks"]``), so that on a generated run every figure carries the mark.
"""

from __future__ import annotations

from typing import Any

GENERATED_STAMP = "GENERATED DATA"
"""The mark :func:`stamp_generated` writes on a figure."""


def stamp_generated(fig: Any) -> None:
    """Write :data:`GENERATED_STAMP` in the top-left corner of ``fig`` (a matplotlib Figure), once.

    Called by pyplot on every new figure when listed in ``rcParams["figure.hooks"]`` as
    ``"sefin_utils.plots:stamp_generated"``.
    """
    if getattr(fig, "_sefin_generated", False):
        return
    fig.text(
        0.004,
        0.996,
        GENERATED_STAMP,
        ha="left",
        va="top",
        fontsize=7,
        fontweight="bold",
        color="#8a5300",
        bbox={"boxstyle": "square,pad=0.2", "facecolor": "#fff3cd", "edgecolor": "#e0a800", "lw": 0.8},
    )
    fig._sefin_generated = True
