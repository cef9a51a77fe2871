"""Shared fixtures: the real audio sample and small temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SAMPLE_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ser-sample"


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The shared real sample (../shared/data/ser-sample). Skips where absent; under CI its absence fails."""
    if not (SAMPLE_ROOT / "manifest.csv").is_file():
        msg = f"real sample not found at {SAMPLE_ROOT} (expected ../shared/data/ser-sample beside the repo)"
        if _under_ci():
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)
    return SAMPLE_ROOT


@pytest.fixture(scope="module")
def fins() -> dict:
    """Stand-in FINs, one per imitated feature of the Kaggle vector: (None, 2048) -> (None, dim), each a tiny Dense net
    with a BatchNorm so that frozen (inference-mode) behaviour matters. Seeded: the same weights in every module."""
    import keras

    from sefin_utils import classifiers

    def tiny_fin(dim: int, seed: int) -> keras.Model:
        init = keras.initializers.GlorotUniform(seed=seed)
        inp = keras.Input((2048,))
        x = keras.layers.Dense(3, activation="relu", kernel_initializer=init)(inp)
        x = keras.layers.BatchNormalization()(x)
        return keras.Model(inp, keras.layers.Dense(dim, kernel_initializer=init)(x))

    return {n: tiny_fin(d, i) for i, (n, d) in enumerate(classifiers.FEATURE_DIMS.items())}
