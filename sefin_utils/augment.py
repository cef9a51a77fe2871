"""Data augmentation as the study did it, but seeded and reproducible.

The study made two augmented copies of every training recording: Gaussian noise, and a time stretch (rate 0.8)
followed by a pitch shift (+0.7 semitone). sefin keeps both and makes them deterministic.

Where augmentation is applied
-----------------------------
The study loaded each file with ``offset=0.6, duration=2.5`` and augmented that (unpadded) signal. sefin does the
same: a copy is made from the fixed 2.5 s window (:func:`sefin_utils.audio.window`), and only its *valid* (real,
non-padding) samples ``y[start:stop]`` are transformed. The result is refitted to the same length and put back at the
same place, so

- the copy has exactly as many samples as the source clip (``CLIP_SAMPLES``),
- padding stays exactly zero (noise is not added to silence the study never had),
- the copy's valid range, and hence its frame mask, equals the source's ``Clip.valid``.

Seeding
-------
Each copy draws from its own generator derived from a stable hash of ``(seed, recording_id, kind)``
(:func:`rng_for`), never from the global RNG. Copies are therefore identical whatever the order, the chunking or the
process they are made in, and two recordings get different noise.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from sefin_utils.constants import SR

NOISE_FACTOR: float = 0.035
"""Noise amplitude factor: amplitude = NOISE_FACTOR * U(0, 1) * max|x| (the study's 0.035)."""
STRETCH_RATE: float = 0.8
"""Time-stretch rate (< 1 slows down, so the signal gets 1/0.8 = 1.25 times longer)."""
PITCH_STEPS: float = 0.7
"""Pitch shift in semitones applied after the stretch."""

ORIGINAL: str = "orig"
"""Name of the un-augmented copy in cache indexes."""


def _check_waveform(y: Any, name: str = "y") -> np.ndarray:
    """Validate a mono waveform: 1-D, floating point, finite."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mono waveform, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be floating point, got dtype {arr.dtype}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def rng_for(*parts: object) -> np.random.Generator:
    """Return a generator seeded from a stable hash of ``parts``.

    Parameters
    ----------
    *parts : object
        Anything with a stable ``repr`` (ints, strings, tuples), e.g. ``(seed, recording_id, kind)``; numpy
        scalars count as the equal Python numbers.

    Returns
    -------
    numpy.random.Generator
        The same stream for the same parts in any process (unlike Python's salted ``hash``).

    Examples
    --------
    >>> rng_for(0, "RAVDESS/a", "noise").integers(1000) == rng_for(0, "RAVDESS/a", "noise").integers(1000)
    True
    """
    plain = tuple(p.item() if isinstance(p, np.generic) else p for p in parts)  # np.int64(0) hashes as 0
    digest = hashlib.sha256(repr(plain).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or symmetrically zero-pad ``y`` to exactly ``n`` samples."""
    if len(y) > n:
        start = (len(y) - n) // 2
        return y[start : start + n]
    if len(y) < n:
        left = (n - len(y)) // 2
        return np.pad(y, (left, n - len(y) - left))
    return y


def noise(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise with amplitude ``0.035 * U(0, 1) * max|y|`` (the study's noise).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    rng : numpy.random.Generator
        Source of the amplitude draw and of the noise.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    y = _check_waveform(y)
    if y.size == 0:
        return y.astype(np.float32)
    amp = NOISE_FACTOR * rng.uniform() * float(np.max(np.abs(y)))
    return (y + amp * rng.standard_normal(y.shape[0])).astype(np.float32)


def stretch_pitch(y: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """Time-stretch to rate 0.8, pitch-shift by +0.7 semitone, then refit to the input length.

    The stretched signal is 1.25 times longer; its centre is kept so the length is unchanged.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (for the pitch shift).

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    import librosa

    y = _check_waveform(y).astype(np.float32, copy=False)
    if y.size == 0:
        return y.copy()
    with warnings.catch_warnings():
        # librosa warns that n_fft is too large for very short segments; the result is still defined.
        warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        stretched = librosa.effects.time_stretch(y, rate=STRETCH_RATE)
        shifted = librosa.effects.pitch_shift(stretched, sr=sr, n_steps=PITCH_STEPS)
    return _fit_length(np.asarray(shifted, dtype=np.float32), len(y))


def _noise_kind(y: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    return noise(y, rng)


def _stretch_pitch_kind(y: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    return stretch_pitch(y, sr=sr)


AUGMENTATIONS: dict[str, Callable[[np.ndarray, np.random.Generator, int], np.ndarray]] = {
    "noise": _noise_kind,
    "stretch_pitch": _stretch_pitch_kind,
}
"""Registry of augmentations: name -> ``fn(y, rng, sr)``. ``"orig"`` (:data:`ORIGINAL`) is the un-augmented clip."""


def augment(
    y: np.ndarray,
    kind: str,
    *,
    seed_key: tuple[object, ...] | str,
    valid: tuple[int, int] | None = None,
    sr: int = SR,
) -> np.ndarray:
    """Return a deterministic augmented copy of ``y``.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        The fixed-length clip (or any mono waveform).
    kind : str
        A name in :data:`AUGMENTATIONS`, or ``"orig"`` for an unchanged copy.
    seed_key : tuple or str
        Identifies the copy, normally ``(seed, recording_id)``; the generator is ``rng_for(*seed_key, kind)``, so
        the same key gives the same copy in any order or process.
    valid : (int, int), optional
        Range of real samples ``(start, stop)``. When given, only ``y[start:stop]`` is transformed and the padding
        outside it is left untouched, so the copy keeps the same valid range. Default: the whole signal.
    sr : int
        Sample rate.

    Returns
    -------
    np.ndarray, shape (n,), float32
        Same length as ``y``.
    """
    y = _check_waveform(y)
    if kind == ORIGINAL:
        return y.astype(np.float32, copy=True)
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; expected one of {[ORIGINAL, *AUGMENTATIONS]}")
    start, stop = (0, len(y)) if valid is None else (int(valid[0]), int(valid[1]))
    if not 0 <= start <= stop <= len(y):
        raise ValueError(f"valid range {valid} does not fit a signal of {len(y)} samples")
    key = seed_key if isinstance(seed_key, tuple) else (seed_key,)
    out = y.astype(np.float32, copy=True)
    if stop > start:
        segment = AUGMENTATIONS[kind](y[start:stop], rng_for(*key, kind), sr)
        if segment.shape != (stop - start,):
            raise RuntimeError(f"augmentation {kind!r} changed the length {stop - start} -> {segment.shape}")
        out[start:stop] = segment
    return out
