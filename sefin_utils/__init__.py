"""sefin: speech emotion recognition with Feature Imitating Networks.

The package holds all logic; the stage notebooks in ``notebooks/`` stay thin.
Modules: ``constants`` (sample rate, framing, vocabulary), ``corpora`` (parsers, ``discover``), ``splits``,
``audio`` (loading, fixed windows), ``synth`` (generated demo corpus), ``features`` (the feature registry and
exact per-frame labels), ``augment``, ``cache`` (on-disk clip/label caches), ``fins``, ``ser``, ``metrics``,
``plots``, ``report``, ``profile`` (typed params), ``stages`` (the stage list), ``runs`` (what the notebooks call),
``runner`` (papermill, stamps and the ``run`` command), ``predict``.
"""

from __future__ import annotations

from sefin_utils.constants import (
    CLIP_SAMPLES,
    EMOTIONS,
    FRAME_LENGTH,
    HOP_LENGTH,
    N_FRAMES,
    SR,
)

__version__ = "0.1.0"

__all__ = ["CLIP_SAMPLES", "EMOTIONS", "FRAME_LENGTH", "HOP_LENGTH", "N_FRAMES", "SR", "__version__"]
