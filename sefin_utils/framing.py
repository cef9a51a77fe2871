"""THE framing of sefin: frame counts, frame starts, frames, the valid-frame mask, waveform checks, one BLAS thread.

Training (labels, the cache, FIN datasets) and prediction call these same functions; ``features`` re-exports them.

:func:`frame` gives librosa's ``center=False`` frames, ``y[512 i : 512 i + 2048]`` (104 for a 2.5 s clip of 55,125
samples; ``librosa.util.frame``). With ``tail_frames`` the study's four re-anchored tail frames that end exactly at the
end of the signal are appended (see ``features`` for why they are off by default).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sefin_utils.constants import FRAME_LENGTH, HOP_LENGTH

__all__ = [
    "TAIL_FRAMES",
    "check_frames",
    "check_waveform",
    "min_samples_for",
    "frame",
    "frame_starts",
    "n_frames",
    "one_blas_thread",
    "pinned",
    "unchecked_frame",
    "valid_frame_mask",
]

TAIL_FRAMES: int = 4
"""Number of re-anchored tail frames the study appended (``tail_frames=True``)."""


def check_waveform(y: Any, *, name: str = "y", min_samples: int = FRAME_LENGTH) -> np.ndarray:
    """Validate a mono waveform and return it as contiguous float32.

    Parameters
    ----------
    y : array_like, shape (n,)
        1-D floating-point, finite, at least ``min_samples`` samples. float64 input is cast to float32 (the dtype
        ``librosa.load`` returns, on which the study's labels were computed).
    name : str
        Name used in error messages.
    min_samples : int
        Minimum length.

    Returns
    -------
    numpy.ndarray, shape (n,), float32
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mono waveform, got an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point waveform, got dtype {arr.dtype}")
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} samples; at least {min_samples} are needed "
            f"(one {FRAME_LENGTH}-sample frame{' plus the tail frames' if min_samples > FRAME_LENGTH else ''})"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite, found {arr[bad]} at sample {bad}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_frames(frames: Any) -> np.ndarray:
    """Validate a (n, 2048) frame matrix and return it as float32."""
    arr = np.asarray(frames)
    if arr.ndim != 2 or arr.shape[1] != FRAME_LENGTH or arr.shape[0] < 1:
        raise ValueError(f"frames must have shape (n >= 1, {FRAME_LENGTH}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"frames must be floating point, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("frames must be finite, found NaN or inf")
    return np.asarray(arr, dtype=np.float32)


def min_samples_for(tail_frames: bool) -> int:
    """Shortest signal :func:`frame` accepts: one frame, or the four tail frames' span."""
    return FRAME_LENGTH + (TAIL_FRAMES - 1) * HOP_LENGTH if tail_frames else FRAME_LENGTH


def n_frames(n_samples: int, *, tail_frames: bool = False) -> int:
    """Return the number of frames :func:`frame` makes from ``n_samples`` samples (THE frame-count formula).

    ``1 + (n_samples - 2048) // 512``, plus :data:`TAIL_FRAMES` with ``tail_frames`` (librosa's ``center=False``
    frame count, ``librosa.util.frame``).

    Raises
    ------
    ValueError
        ``n_samples`` shorter than one frame (or than the tail frames' span with ``tail_frames``).

    Examples
    --------
    >>> n_frames(55_125), n_frames(55_125, tail_frames=True)
    (104, 108)
    """
    n_samples = int(n_samples)
    if n_samples < min_samples_for(tail_frames):
        raise ValueError(
            f"n_samples={n_samples} is shorter than {'the tail frames (' if tail_frames else 'one frame ('}"
            f"{min_samples_for(tail_frames)} samples)"
        )
    return 1 + (n_samples - FRAME_LENGTH) // HOP_LENGTH + (TAIL_FRAMES if tail_frames else 0)


def frame_starts(n_samples: int, *, tail_frames: bool = False) -> np.ndarray:
    """First sample of each frame :func:`frame` makes from ``n_samples`` samples.

    Returns
    -------
    np.ndarray, shape (n_frames(n_samples, tail_frames=...),), int64
        ``512 i`` on the hop grid, then with ``tail_frames`` the re-anchored tail frames
        ``n_samples - 2048 - 512 k`` for ``k = 3, 2, 1, 0``.

    Examples
    --------
    >>> frame_starts(55_125, tail_frames=True)[-5:].tolist()
    [52736, 51541, 52053, 52565, 53077]
    """
    n_regular = n_frames(n_samples, tail_frames=tail_frames) - (TAIL_FRAMES if tail_frames else 0)
    regular = np.arange(n_regular, dtype=np.int64) * HOP_LENGTH
    if not tail_frames:
        return regular
    tails = int(n_samples) - FRAME_LENGTH - HOP_LENGTH * np.arange(TAIL_FRAMES - 1, -1, -1, dtype=np.int64)
    return np.concatenate([regular, tails])


def valid_frame_mask(valid: tuple[int, int], n_samples: int, *, tail_frames: bool = False) -> np.ndarray:
    """Which frames of a padded clip hold real audio: True where a frame overlaps the real samples ``[start, stop)``.

    The one mask used by the training cache and by prediction.

    Parameters
    ----------
    valid : (int, int)
        ``(start, stop)`` of the real (non-padding) samples, ``0 <= start <= stop <= n_samples``
        (``audio.Clip.valid``). An empty range masks every frame out.
    n_samples : int
        Length of the clip.
    tail_frames : bool
        Mask the frames of ``frame(..., tail_frames=True)``.

    Returns
    -------
    np.ndarray, shape (n_frames(n_samples, tail_frames=...),), bool

    Examples
    --------
    >>> valid_frame_mask((20_000, 30_000), 55_125).nonzero()[0][[0, -1]].tolist()
    [36, 58]
    """
    start, stop = int(valid[0]), int(valid[1])
    if not 0 <= start <= stop <= int(n_samples):
        raise ValueError(f"valid range {valid} must satisfy 0 <= start <= stop <= n_samples={n_samples}")
    starts = frame_starts(n_samples, tail_frames=tail_frames)
    if stop == start:
        return np.zeros(starts.shape[0], dtype=bool)
    return (starts < stop) & (starts + FRAME_LENGTH > start)


def frame(y: np.ndarray, *, tail_frames: bool = False) -> np.ndarray:
    """Split a waveform into librosa's ``center=False`` frames.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform, at least 2048 samples (``2048 + 3 * 512`` with ``tail_frames``).
    tail_frames : bool
        Append the study's four re-anchored tail frames ``y[len - 2048 - 512 k : len - 512 k]``, ``k = 3..0``
        (see the module notes for why this is off by default).

    Returns
    -------
    np.ndarray, shape (n_frames, 2048), float32
        Frame ``i`` is ``y[512 i : 512 i + 2048]``. A read-only strided view of ``y`` (when ``y`` is already
        contiguous float32) without tail frames; a copy with them.

    Examples
    --------
    >>> frame(np.zeros(55_125, dtype=np.float32)).shape
    (104, 2048)
    """
    y = check_waveform(y, min_samples=min_samples_for(tail_frames))
    return unchecked_frame(y, tail_frames=tail_frames)


def unchecked_frame(y: np.ndarray, *, tail_frames: bool) -> np.ndarray:
    """:func:`frame` of an already validated float32 signal (no checks)."""
    frames = np.lib.stride_tricks.sliding_window_view(y, FRAME_LENGTH)[::HOP_LENGTH]
    if not tail_frames:
        return frames
    starts = frame_starts(y.shape[0], tail_frames=True)[-TAIL_FRAMES:]
    tail = np.stack([y[s : s + FRAME_LENGTH] for s in starts])
    return np.concatenate([frames, tail])


# --------------------------------------------------------------------------------------------------------------------
# one BLAS thread: the same float rounding whoever calls
# --------------------------------------------------------------------------------------------------------------------

_BLAS_LOCK = threading.Lock()
_BLAS: dict[str, Any] = {"depth": 0, "controller": None, "limiter": None}


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with this process's BLAS (numpy's OpenBLAS) limited to one thread, then restore it.

    A multi-threaded matrix product sums in another order, so labels and summary vectors computed under 1 or 2 BLAS
    threads differ in the last float32 bits (seen: 2 of 2,080 MFCC values by 3.3e-6). Every public function here that
    computes labels or summaries runs inside this, so that the training cache (in-process or in workers) and
    prediction give bit-identical values whatever the caller's thread settings (``OPENBLAS_NUM_THREADS`` or none).
    Re-entrant and thread-safe: the first entrant sets the limit, the last one out restores it. Uses
    ``threadpoolctl``'s controller (built once per process, ~0.1 ms per entry).
    """
    with _BLAS_LOCK:
        if _BLAS["depth"] == 0:
            if _BLAS["controller"] is None:
                from threadpoolctl import ThreadpoolController

                _BLAS["controller"] = ThreadpoolController()
            _BLAS["limiter"] = _BLAS["controller"].limit(limits=1, user_api="blas")
        _BLAS["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS["depth"] -= 1
            if _BLAS["depth"] == 0:
                _BLAS["limiter"].restore_original_limits()
                _BLAS["limiter"] = None


def pinned(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run ``fn`` inside :func:`one_blas_thread`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper
