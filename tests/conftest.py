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
