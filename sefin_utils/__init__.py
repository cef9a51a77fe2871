"""sefin: speech emotion recognition with Feature Imitating Networks.

The package holds all logic; the stage notebooks in ``notebooks/`` stay thin.
Modules: ``constants`` (sample rate, framing, vocabulary), ``corpora`` (parsers, ``discover``), ``splits``,
``audio`` (loading, fixed windows), ``synth`` (generated demo corpus), ``features`` (the feature registry and
exact per-frame labels), ``augment``, ``cache`` (on-disk clip/label caches), ``fins``, ``ser``, ``metrics``,
``plots``, ``report``, ``profile`` (typed params), ``stages`` (the stage list), ``runs`` (what the notebooks call),
``runner`` (papermill, stamps and the ``run`` command), ``predict``.

Importing the package loads neither Keras nor TensorFlow; it arranges (``keras_hook.install``) that sefin's custom
layers are registered with Keras once Keras is loaded, so that ``keras.models.load_model("models/fins/mel.keras")``
works after ``import sefin_utils`` alone.
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
from sefin_utils.keras_hook import install as _install_keras_hook

_install_keras_hook()

__version__ = "0.1.0"

__all__ = ["CLIP_SAMPLES", "EMOTIONS", "FRAME_LENGTH", "HOP_LENGTH", "N_FRAMES", "SR", "__version__"]
