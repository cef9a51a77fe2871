"""The five reference features: one registry, exact per-frame labels, and the Kaggle summary vector.

The FINs learn to imitate five librosa features on raw 2048-sample frames. The study computed its labels by calling
librosa once per frame (``center=False``, ``n_fft=2048``, ``hop_length=512``, ``sr=22050``); that definition is
:func:`reference_frame_labels` here. :func:`frame_labels` computes the *same* values for all frames of a clip at once:

- one STFT of the framed signal (float64 FFT cast to complex64, exactly as ``librosa.stft`` does), shared by chroma,
  mel and MFCC; one mel power spectrogram shared by mel and MFCC;
- MFCC's 80 dB floor (``power_to_db(top_db=80)``) relative to *each frame's own* maximum, as a per-frame call has it;
- chroma's tuning estimated *per frame*, as ``librosa.estimate_tuning`` does on a single frame: ``librosa.piptrack``'s
  peak picking redone for all frames at once in its 150-4000 Hz band (same float32/float64 arithmetic as its numba
  stencils), then each frame's median-magnitude threshold and tuning histogram, vectorised; the chroma filterbanks
  are then applied grouped by tuning value (at most 100 values, each filterbank built once per process).

The STFT, the piptrack peaks and the per-frame tuning are bit-identical to librosa's (checked on all 411 files of the
shared sample, 44,388 frames with tail frames: 0 tuning mismatches); the values then agree with the loop to float32
rounding of matrix products summed in another order. ``benchmarks/labels.py`` on 40 real clips (one core, CPU time):
max error / feature range rms 0, zcr 0, chroma 2.2e-6, mfcc 8.5e-8, mel 9.8e-8; the five features together 133x faster
than the loop (about 3.4 ms per 2.5 s clip, ~300 clips/s per core). A fixed tuning (``tuning=0.0``) is offered as the
cleaner variant; it is *not* what the study computed.

Frames
------
:func:`frame` gives librosa's ``center=False`` frames, ``y[512 i : 512 i + 2048]`` (104 for a 2.5 s clip of 55,125
samples). The last ``(len(y) - 2048) % 512`` samples (341 for 55,125) are in no frame. The study appended four
*re-anchored tail frames* that end exactly at the end of the signal, ``y[len - 2048 - 512 k : len - 512 k]`` for
``k = 3, 2, 1, 0``, giving 108 frames, the frame count of ``center=True`` analysis (``1 + len // 512``). They are
offered with ``tail_frames=True`` for exact reproduction, and off by default because they are not what librosa
computes on the signal (no librosa framing yields them), they are not on the 512-sample hop grid, and they repeat
samples the regular frames already hold (for 55,125 samples the four tail frames start at 51,541 to 53,077, all
overlapping the last regular frame at 52,736): duplicated training rows that overweight each clip's ending.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import librosa
import numpy as np
import scipy.fft

from sefin_utils import study
from sefin_utils.constants import FRAME_LENGTH, HOP_LENGTH, SR

__all__ = [
    "ABLATION_SOURCES",
    "Composition",
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "FrameContext",
    "KAGGLE",
    "SUMMARY_ORDER",
    "SUMMARY_DIM",
    "TAIL_FRAMES",
    "TUNING_MODES",
    "clip_summary",
    "frame",
    "frame_starts",
    "frame_labels",
    "frame_summary_vector",
    "get_feature",
    "labels_from_frames",
    "n_frames",
    "one_blas_thread",
    "register_feature",
    "reference_frame_labels",
    "summary_slices",
    "summary_vector",
    "valid_frame_mask",
    "warm_up",
]

TAIL_FRAMES: int = 4
"""Number of re-anchored tail frames the study appended (``tail_frames=True``)."""
N_MFCC: int = 20
"""MFCC coefficients (librosa's default)."""
N_MELS: int = 128
"""Mel bands (librosa's default)."""
N_CHROMA: int = 12
"""Chroma bins (librosa's default)."""
TOP_DB: float = 80.0
"""MFCC's dB floor below each frame's peak (``librosa.power_to_db`` default)."""
TUNING_MODES: tuple[str, ...] = ("per_frame",)
"""Named chroma tuning modes; a float (e.g. ``0.0``) fixes the tuning instead."""

_N_BINS = 1 + FRAME_LENGTH // 2  # 1025 STFT bins
_ZC_THRESHOLD = 1e-10  # librosa.zero_crossings default: |x| <= this counts as zero
_TUNING_BINS = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / 0.01)) + 1)  # librosa.pitch_tuning's histogram edges


# --------------------------------------------------------------------------------------------------------------------
# validation and framing
# --------------------------------------------------------------------------------------------------------------------


def _check_waveform(y: Any, *, name: str = "y", min_samples: int = FRAME_LENGTH) -> np.ndarray:
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


def _check_frames(frames: Any) -> np.ndarray:
    """Validate a (n, 2048) frame matrix and return it as float32."""
    arr = np.asarray(frames)
    if arr.ndim != 2 or arr.shape[1] != FRAME_LENGTH or arr.shape[0] < 1:
        raise ValueError(f"frames must have shape (n >= 1, {FRAME_LENGTH}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"frames must be floating point, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("frames must be finite, found NaN or inf")
    return np.asarray(arr, dtype=np.float32)


def _min_samples(tail_frames: bool) -> int:
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
    if n_samples < _min_samples(tail_frames):
        raise ValueError(
            f"n_samples={n_samples} is shorter than {'the tail frames (' if tail_frames else 'one frame ('}"
            f"{_min_samples(tail_frames)} samples)"
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
    y = _check_waveform(y, min_samples=_min_samples(tail_frames))
    return _frame(y, tail_frames=tail_frames)


def _frame(y: np.ndarray, *, tail_frames: bool) -> np.ndarray:
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


def _one_blas_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run ``fn`` inside :func:`one_blas_thread`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------------------------------
# the per-frame librosa definitions (the study's loop)
# --------------------------------------------------------------------------------------------------------------------

_STFT_KW: dict[str, Any] = {"n_fft": FRAME_LENGTH, "hop_length": HOP_LENGTH, "center": False}


def _librosa_rms(x: np.ndarray) -> np.ndarray:
    return librosa.feature.rms(y=x, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH, center=False)[:, 0]


def _librosa_zcr(x: np.ndarray) -> np.ndarray:
    return librosa.feature.zero_crossing_rate(x, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH, center=False)[:, 0]


def _librosa_chroma(x: np.ndarray) -> np.ndarray:
    return librosa.feature.chroma_stft(S=np.abs(librosa.stft(x, **_STFT_KW)), sr=SR)[:, 0]


def _librosa_mfcc(x: np.ndarray) -> np.ndarray:
    return librosa.feature.mfcc(y=x, sr=SR, n_mfcc=N_MFCC, **_STFT_KW)[:, 0]


def _librosa_mel(x: np.ndarray) -> np.ndarray:
    return librosa.feature.melspectrogram(y=x, sr=SR, n_mels=N_MELS, **_STFT_KW)[:, 0]


# --------------------------------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------------------------------

TARGET_KINDS: tuple[str, ...] = ("linear", "log")
"""Training-space transforms of a FIN's targets: ``linear`` = standardised ``y``, ``log`` = standardised
``log(y + eps)`` (``fins.TargetStats``)."""
PLOT_KINDS: tuple[str, ...] = ("line", "image", "image_db")
"""How figures draw a feature over time: one line (1-d), an image, an image in dB (power features)."""
LOSSES: tuple[str, ...] = ("mse", "mae")


class FrameContext:
    """A validated (n, 2048) float32 frame matrix and the intermediate arrays its features share, each computed once
    on first use: what a :class:`Feature`'s vectorised ``labels`` function receives.

    Attributes
    ----------
    frames : np.ndarray, shape (n, 2048), float32
    tuning : "per_frame" or float
        Chroma tuning mode (see :func:`frame_labels`).
    mag : np.ndarray, shape (n, 1025), float32
        ``|STFT|`` of each frame (Hann window, ``center=False``; as ``librosa.stft``).
    mel : np.ndarray, shape (n, 128), float32
        Mel power spectrogram (``|STFT|**2`` through librosa's Slaney mel filters).
    """

    def __init__(self, frames: np.ndarray, tuning: str | float = "per_frame") -> None:
        self.frames = frames
        self.tuning = tuning
        self._cache: dict[str, np.ndarray] = {}

    @property
    def mag(self) -> np.ndarray:
        if "mag" not in self._cache:
            self._cache["mag"] = _stft_mag(self.frames)
        return self._cache["mag"]

    @property
    def mel(self) -> np.ndarray:
        if "mel" not in self._cache:
            self._cache["mel"] = np.square(self.mag) @ _state()["mel_t"]  # (n, 128) float32 power
        return self._cache["mel"]


@dataclass(frozen=True)
class Feature:
    """One reference feature a FIN imitates: everything labels, FINs, classifiers, plots and reports need.

    Attributes
    ----------
    name : str
        Registry key (``rms``, ``zcr``, ``chroma``, ``mfcc``, ``mel``).
    dim : int
        Values per frame.
    description : str
        One line for tables and figures.
    units : str
        Units of the values.
    librosa_frame : Callable[[np.ndarray], np.ndarray]
        The definition: librosa called on ONE 2048-sample frame (``center=False``, ``n_fft=2048``,
        ``hop_length=512``, ``sr=22050``), returning shape ``(dim,)``.
    labels : Callable[[FrameContext], np.ndarray]
        The same values for all frames at once: ``labels(ctx) -> (n, dim)`` (:class:`FrameContext` shares the STFT
        and the mel spectrogram between features).
    loss : str
        Training loss of this feature's FIN on raw targets (the study's: ``"mse"``, ``"mae"`` for chroma).
    component_names : tuple[str, ...]
        A name for each of the ``dim`` values (columns of tables, axes of plots).
    target : str
        Training-space transform of the FIN's targets (:data:`TARGET_KINDS`): ``log`` for power features.
    plot : str
        How figures draw it (:data:`PLOT_KINDS`).
    study_r2 : Mapping or None
        The study's published R² (``study.FIN_R2[name]``: ``r2_test``, ``r2_vw_test``, ``r2_ood``, ``r2_vw_ood``);
        None for a feature the study did not imitate.
    fin : Callable or None
        A builder of this feature's fast FIN: ``fin(frames) -> output`` on a Keras ``(None, 2048)`` tensor, output
        ``(None, dim)`` in the feature's units. None for the study's five, whose builders live in ``fins``.
    """

    name: str
    dim: int
    description: str
    units: str
    librosa_frame: Callable[[np.ndarray], np.ndarray]
    labels: Callable[[FrameContext], np.ndarray]
    loss: str
    component_names: tuple[str, ...]
    target: str = "linear"
    plot: str = "line"
    study_r2: Mapping[str, float | None] | None = None
    fin: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not isinstance(self.name, str):
            problems.append(f"name must be a non-empty string, got {self.name!r}")
        if int(self.dim) < 1:
            problems.append(f"dim must be >= 1, got {self.dim}")
        if len(self.component_names) != self.dim:
            problems.append(f"{len(self.component_names)} component_names for dim {self.dim}")
        for field_name, value, allowed in (
            ("target", self.target, TARGET_KINDS),
            ("plot", self.plot, PLOT_KINDS),
            ("loss", self.loss, LOSSES),
        ):
            if value not in allowed:
                problems.append(f"{field_name} must be one of {allowed}, got {value!r}")
        if problems:
            raise ValueError(f"Feature {self.name!r}: " + "; ".join(problems))

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Compute this feature on one 2048-sample frame the study's way; shape ``(dim,)``, float32."""
        x = _check_waveform(x, name="frame")
        if x.shape[0] != FRAME_LENGTH:
            raise ValueError(f"a frame must have {FRAME_LENGTH} samples, got {x.shape[0]}")
        return np.asarray(self.librosa_frame(x), dtype=np.float32)


def _labels_rms(ctx: FrameContext) -> np.ndarray:
    return np.sqrt(np.mean(np.square(ctx.frames), axis=1, keepdims=True))


def _labels_zcr(ctx: FrameContext) -> np.ndarray:
    frames = ctx.frames
    negative = np.signbit(np.where(np.abs(frames) <= _state()["zc_threshold"], np.float32(0), frames))
    crossings = np.count_nonzero(negative[:, 1:] != negative[:, :-1], axis=1)
    return (crossings / np.float32(FRAME_LENGTH)).astype(np.float32)[:, None]


def _labels_chroma(ctx: FrameContext) -> np.ndarray:
    return _chroma(ctx.mag, ctx.tuning)


def _labels_mel(ctx: FrameContext) -> np.ndarray:
    return ctx.mel


def _labels_mfcc(ctx: FrameContext) -> np.ndarray:
    log_mel = np.float32(10.0) * np.log10(np.maximum(np.float32(1e-10), ctx.mel))
    log_mel = np.maximum(log_mel, log_mel.max(axis=1, keepdims=True) - np.float32(TOP_DB))
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :N_MFCC]


_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

_REGISTRY: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature(
            "rms",
            1,
            "root-mean-square energy of the frame",
            "amplitude (full scale = 1)",
            _librosa_rms,
            _labels_rms,
            study.FIN_LOSS["rms"],
            ("rms",),
            study_r2=study.FIN_R2["rms"],
        ),
        Feature(
            "zcr",
            1,
            "zero-crossing rate: fraction of samples whose sign differs from the previous one",
            "crossings per sample",
            _librosa_zcr,
            _labels_zcr,
            study.FIN_LOSS["zcr"],
            ("zcr",),
            study_r2=study.FIN_R2["zcr"],
        ),
        Feature(
            "chroma",
            12,
            "chroma of |STFT| magnitude, tuning estimated on the frame, max-normalised (C..B)",
            "relative energy (max = 1)",
            _librosa_chroma,
            _labels_chroma,
            study.FIN_LOSS["chroma"],
            _PITCH_CLASSES,
            plot="image",
            study_r2=study.FIN_R2["chroma"],
        ),
        Feature(
            "mfcc",
            20,
            "20 MFCCs of the log-mel power spectrogram (80 dB floor below the frame's peak)",
            "dB (DCT-II, ortho)",
            _librosa_mfcc,
            _labels_mfcc,
            study.FIN_LOSS["mfcc"],
            tuple(f"mfcc_{i:02d}" for i in range(N_MFCC)),
            plot="image",
            study_r2=study.FIN_R2["mfcc"],
        ),
        Feature(
            "mel",
            128,
            "128-band mel power spectrogram (Slaney mel filters on |STFT|^2)",
            "power (|STFT|^2, Slaney-normalised filters)",
            _librosa_mel,
            _labels_mel,
            study.FIN_LOSS["mel"],
            tuple(f"mel_{i:03d}" for i in range(N_MELS)),
            target="log",
            plot="image_db",
            study_r2=study.FIN_R2["mel"],
        ),
    )
}

FEATURES: Mapping[str, Feature] = MappingProxyType(_REGISTRY)
"""THE registry of imitated features, in order (the study's five first): ``for name, feat in FEATURES.items()``;
``FEATURES["mfcc"].dim``. A read-only live view: :func:`register_feature` adds to it."""

FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)
"""The study's five, in its order: ``("rms", "zcr", "chroma", "mfcc", "mel")`` (``tuple(FEATURES)`` also lists any
feature registered since)."""


class register_feature:  # noqa: N801 - used as a function and as a context manager
    """Add a :class:`Feature` to :data:`FEATURES` (after the others); as a context manager, remove it on exit.

    Labels, FIN builders, classifiers and plots that iterate the registry then include it; the Kaggle summary
    vector (:data:`KAGGLE`) never changes.

    Raises
    ------
    ValueError
        A feature of that name is already registered.

    Examples
    --------
    >>> centroid = Feature("centroid", 1, "spectral centroid", "Hz", lambda x: x[:1], lambda ctx: ctx.frames[:, :1],
    ...                    "mse", ("centroid",))
    >>> with register_feature(centroid):
    ...     "centroid" in FEATURES
    True
    >>> "centroid" in FEATURES
    False
    """

    def __init__(self, feature: Feature) -> None:
        if not isinstance(feature, Feature):
            raise TypeError(f"register_feature takes a Feature, got {type(feature).__name__}")
        if feature.name in _REGISTRY:
            raise ValueError(f"feature {feature.name!r} is already registered (known: {', '.join(FEATURES)})")
        _REGISTRY[feature.name] = feature
        self.feature = feature

    def undo(self) -> None:
        """Remove the feature again (a no-op once removed)."""
        if _REGISTRY.get(self.feature.name) is self.feature:
            del _REGISTRY[self.feature.name]

    def __enter__(self) -> Feature:
        return self.feature

    def __exit__(self, *exc: object) -> None:
        self.undo()


def get_feature(name: str) -> Feature:
    """Return the registered feature called ``name`` (``KeyError`` listing the known names otherwise)."""
    try:
        return FEATURES[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown feature {name!r}; known features: {', '.join(FEATURES)}") from None


def _check_names(names: Iterable[str] | str | None) -> tuple[str, ...]:
    if names is None:
        return tuple(FEATURES)
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    for n in names:
        get_feature(n)
    if not names:
        raise ValueError(f"names must list at least one feature of {tuple(FEATURES)}, got an empty list")
    return names


# --------------------------------------------------------------------------------------------------------------------
# reference labels: the slow loop
# --------------------------------------------------------------------------------------------------------------------


@_one_blas_thread
def reference_frame_labels(
    y: np.ndarray, *, names: Iterable[str] | None = None, tail_frames: bool = False
) -> dict[str, np.ndarray]:
    """Per-frame labels the study's way: librosa called once per frame (slow; the reference).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform at 22,050 Hz, at least 2048 samples.
    names : iterable of str, optional
        Features to compute (default every registered feature, :data:`FEATURES`).
    tail_frames : bool
        Also label the four re-anchored tail frames (see :func:`frame`).

    Returns
    -------
    dict[str, np.ndarray]
        ``name -> (n_frames, dim)`` float32.
    """
    y = _check_waveform(y, min_samples=_min_samples(tail_frames))
    names = _check_names(names)
    frames = _frame(y, tail_frames=tail_frames)
    out = {}
    for n in names:
        feat = FEATURES[n]
        out[n] = np.stack([np.asarray(feat.librosa_frame(np.ascontiguousarray(x))) for x in frames]).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------------------------
# vectorised labels
# --------------------------------------------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}
_CHROMA_FB: dict[float, np.ndarray] = {}
_SCRATCH = threading.local()


def _state() -> dict[str, Any]:
    """Per-process constants (window, mel filterbank, pitch band, ZCR threshold), built on first use."""
    if not _STATE:
        state: dict[str, Any] = {}
        window = librosa.filters.get_window("hann", FRAME_LENGTH, fftbins=True)  # float64, as librosa.stft
        state["window"] = np.asarray(window, dtype=np.float64)
        state["mel_t"] = np.ascontiguousarray(librosa.filters.mel(sr=SR, n_fft=FRAME_LENGTH, n_mels=N_MELS).T)
        freqs = librosa.fft_frequencies(sr=SR, n_fft=FRAME_LENGTH)
        band = np.flatnonzero((freqs >= 150.0) & (freqs < 4000.0))  # piptrack's default fmin, fmax
        state["pitch_band"] = slice(int(band[0]), int(band[-1]) + 1)
        thr = np.float32(_ZC_THRESHOLD)
        if float(thr) > _ZC_THRESHOLD:  # largest float32 <= 1e-10, so that float32 |x| <= thr is exact
            thr = np.nextafter(thr, np.float32(0))
        state["zc_threshold"] = thr
        _STATE.update(state)  # all at once: another thread never sees half of it
    return _STATE


def warm_up() -> None:
    """Build this process's filterbanks and import what labelling needs (a process pool's initializer).

    The first call in a fresh process otherwise pays it (about 1-5 s, mostly importing ``scipy.signal`` and
    numba-backed ``librosa.util``); later calls reuse everything.
    """
    _state()
    _chroma_fb_t(0.0)


def _chroma_fb_t(tuning: float) -> np.ndarray:
    """The transposed (1025, 12) chroma filterbank for one tuning, built once per process."""
    fb = _CHROMA_FB.get(tuning)
    if fb is None:
        fb = np.ascontiguousarray(librosa.filters.chroma(sr=SR, n_fft=FRAME_LENGTH, tuning=tuning, n_chroma=N_CHROMA).T)
        _CHROMA_FB[tuning] = fb
    return fb


def _scratch(shape: tuple[int, ...], dtype: type, key: str) -> np.ndarray:
    """A per-thread reusable work array (fresh multi-MB arrays cost page faults on every call)."""
    store = _SCRATCH.__dict__
    arr = store.get(key)
    if arr is None or arr.shape != shape:
        arr = np.empty(shape, dtype=dtype)
        store[key] = arr
    return arr


def _stft_mag(frames: np.ndarray) -> np.ndarray:
    """|STFT| of each frame, (n, 1025) float32, computed as librosa.stft does (float64 FFT, complex64 result)."""
    n = frames.shape[0]
    windowed = _scratch((n, FRAME_LENGTH), np.float64, "windowed")
    np.multiply(frames, _state()["window"], out=windowed)
    spec = _scratch((n, _N_BINS), np.complex128, "spec")
    np.fft.rfft(windowed, axis=-1, out=spec)  # the same pocketfft as scipy.fft.rfft, into a reused buffer
    spec32 = _scratch((n, _N_BINS), np.complex64, "spec32")
    spec32[...] = spec
    return np.abs(spec32)


def _piptrack_band(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``librosa.piptrack(S=mag.T, sr=SR)`` restricted to its 150-4000 Hz search band, same float arithmetic.

    Returns the (row, bin) indices of the local maxima and their float32 pitch and magnitude, row-major.
    """
    band = _state()["pitch_band"]
    x = mag[:, band.start - 1 : band.stop + 1]
    left, centre, right = x[:, :-2], x[:, 1:-1], x[:, 2:]
    ref = np.float32(0.1) * mag.max(axis=1, keepdims=True)  # threshold * max over ALL bins of the frame
    gated = x * (x > ref)
    peak = (gated[:, 1:-1] > gated[:, :-2]) & (gated[:, 1:-1] >= gated[:, 2:])
    rows, cols = np.nonzero(peak)
    xl, xc, xr = left[rows, cols], centre[rows, cols], right[rows, cols]
    # librosa's numba stencil: a and b in float64 (2 * float32 and / 2 promote), shift stored as float32
    a = (xr + xl).astype(np.float64) - 2.0 * xc.astype(np.float64)
    b = (xr - xl).astype(np.float64) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(np.float32)
    avg = (xr - xl) / np.float32(2.0)  # np.gradient, interior points
    mags = xc + np.float32(0.5) * avg * shift
    bins = cols + band.start
    pitch = ((bins + shift) * float(SR) / FRAME_LENGTH).astype(np.float32)
    return rows, pitch, mags


def _frame_tuning(mag: np.ndarray) -> np.ndarray:
    """``librosa.estimate_tuning(S=mag[i:i+1].T, sr=SR)`` for every frame ``i`` at once; (n,) float64."""
    n = mag.shape[0]
    rows, pitch, pmag = _piptrack_band(mag)
    counts = np.bincount(rows, minlength=n)
    # each frame's median magnitude over its peaks (np.median in float32: mean of the two middle values)
    width = max(int(counts.max()), 1)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranked = np.full((n, width), np.inf, dtype=np.float32)
    ranked[rows, np.arange(rows.shape[0]) - first[rows]] = pmag
    ranked.sort(axis=1)
    r = np.arange(n)
    lo = ranked[r, np.maximum(counts - 1, 0) // 2]
    hi = ranked[r, np.maximum(counts, 1) // 2]
    median = np.where(counts % 2 == 1, lo, (lo + hi) / np.float32(2))
    selected = (pmag >= median[rows]) & (pitch > 0)
    sel_rows = rows[selected]
    freqs = pitch[selected]  # 1-D float32, frame-major, as librosa.pitch_tuning sees each frame's values
    # librosa.pitch_tuning, vectorised: residual in [-0.5, 0.5), 101-edge histogram, first bin of the peak
    residual = np.mod(N_CHROMA * librosa.hz_to_octs(freqs, bins_per_octave=N_CHROMA), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = _TUNING_BINS
    n_bins = edges.shape[0] - 1
    idx = np.searchsorted(edges, residual, side="right") - 1
    idx[residual == edges[-1]] = n_bins - 1  # np.histogram's last bin is closed
    keep = (idx >= 0) & (idx < n_bins)
    hist = np.bincount(sel_rows[keep] * n_bins + idx[keep], minlength=n * n_bins).reshape(n, n_bins)
    tuning = edges[np.argmax(hist, axis=1)]
    tuning[hist.sum(axis=1) == 0] = 0.0  # librosa warns and returns 0.0 for a frame with no pitch
    return tuning


def _chroma(mag: np.ndarray, tuning: str | float) -> np.ndarray:
    """Max-normalised chroma of each frame's |STFT| (n, 12) float32."""
    if isinstance(tuning, str):
        per_frame = _frame_tuning(mag)
        raw = np.empty((mag.shape[0], N_CHROMA), dtype=np.float32)
        values, inverse = np.unique(per_frame, return_inverse=True)
        for k, t in enumerate(values):
            rows = np.flatnonzero(inverse == k)
            raw[rows] = mag[rows] @ _chroma_fb_t(float(t))
    else:
        raw = mag @ _chroma_fb_t(float(tuning))
    peak = raw.max(axis=1, keepdims=True)
    peak[peak < np.finfo(np.float32).tiny] = 1.0  # librosa.util.normalize leaves silent frames unnormalised
    return raw / peak


def _check_tuning(tuning: Any) -> str | float:
    if isinstance(tuning, str):
        if tuning not in TUNING_MODES:
            raise ValueError(f"tuning must be one of {TUNING_MODES} or a float in [-0.5, 0.5), got {tuning!r}")
        return tuning
    if isinstance(tuning, bool) or not isinstance(tuning, int | float | np.floating | np.integer):
        raise TypeError(f"tuning must be 'per_frame' or a float, got {tuning!r}")
    if not -0.5 <= float(tuning) < 0.5:
        raise ValueError(f"a fixed tuning must lie in [-0.5, 0.5) (fractions of a chroma bin), got {tuning}")
    return float(tuning)


@_one_blas_thread
def labels_from_frames(
    frames: np.ndarray, *, names: Iterable[str] | None = None, tuning: str | float = "per_frame"
) -> dict[str, np.ndarray]:
    """Vectorised labels of an arbitrary (n, 2048) frame matrix (what :func:`frame_labels` calls).

    Parameters
    ----------
    frames : np.ndarray, shape (n, 2048)
        Raw frames (cast to float32).
    names : iterable of str, optional
        Features to compute (default every registered feature, :data:`FEATURES`).
    tuning : "per_frame" or float
        Chroma tuning: estimated on each frame as the study (default), or fixed (e.g. ``0.0``).

    Returns
    -------
    dict[str, np.ndarray]
        ``name -> (n, dim)`` float32, equal to ``FEATURES[name].librosa_frame`` on each row up to float32 rounding.
    """
    return _labels(_check_frames(frames), _check_names(names), _check_tuning(tuning))


def _labels(frames: np.ndarray, names: tuple[str, ...], tuning: str | float) -> dict[str, np.ndarray]:
    """Vectorised labels of validated float32 frames: each feature's ``labels`` on one shared :class:`FrameContext`."""
    ctx = FrameContext(frames, tuning)
    out = {}
    for n in names:
        feat = FEATURES[n]
        values = np.ascontiguousarray(feat.labels(ctx), dtype=np.float32)
        if values.shape != (frames.shape[0], feat.dim):
            raise ValueError(
                f"feature {n!r}: labels gave shape {values.shape}, expected ({frames.shape[0]}, {feat.dim})"
            )
        out[n] = values
    return out


@_one_blas_thread
def frame_labels(
    y: np.ndarray,
    *,
    names: Iterable[str] | None = None,
    tuning: str | float = "per_frame",
    tail_frames: bool = False,
) -> dict[str, np.ndarray]:
    """Per-frame labels of a clip, all frames at once, equal to :func:`reference_frame_labels`.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform at 22,050 Hz, at least 2048 samples.
    names : iterable of str, optional
        Features to compute (default every registered feature, :data:`FEATURES`).
    tuning : "per_frame" or float
        Chroma tuning: estimated on each frame as the study and the loop do (default), or fixed, e.g. ``0.0``
        (the cleaner variant: chroma then depends on the frame's spectrum only through fixed filters).
    tail_frames : bool
        Also label the four re-anchored tail frames (see :func:`frame`).

    Returns
    -------
    dict[str, np.ndarray]
        ``name -> (n_frames, dim)`` float32, in the order of ``names``.

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal(55_125).astype(np.float32)
    >>> {k: v.shape for k, v in frame_labels(y, names=["rms", "mfcc"]).items()}
    {'rms': (104, 1), 'mfcc': (104, 20)}
    """
    y = _check_waveform(y, min_samples=_min_samples(tail_frames))
    return _labels(_frame(y, tail_frames=tail_frames), _check_names(names), _check_tuning(tuning))


# --------------------------------------------------------------------------------------------------------------------
# the Kaggle summary vector
# --------------------------------------------------------------------------------------------------------------------

ABLATION_SOURCES: tuple[str, ...] = ("fin", "librosa")
"""Where an end-to-end model takes a feature from: its FIN, or the librosa labels."""


@dataclass(frozen=True)
class Composition:
    """A named concatenation of registered features, per frame or pooled: the classifiers' input vector.

    :data:`KAGGLE` (ZCR 1 | Chroma 12 | MFCC 20 | RMS 1 | Mel 128 = 162) is the Kaggle baseline's summary vector and
    the end-to-end models' default; it is its own list, so registering a feature never changes it. A composition
    with more features (``Composition("kaggle+centroid", KAGGLE.order + ("centroid",))``) feeds the same models.

    Attributes
    ----------
    name : str
    order : tuple of str
        Registered feature names in vector order (each at most once).
    """

    name: str
    order: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.order or len(set(self.order)) != len(self.order):
            raise ValueError(f"composition {self.name!r}: order must list distinct features, got {self.order}")

    @property
    def dim(self) -> int:
        """Length of the vector (162 for :data:`KAGGLE`)."""
        return sum(get_feature(n).dim for n in self.order)

    @property
    def features(self) -> tuple[str, ...]:
        """Its features in registry order (the order of ablation codes)."""
        for n in self.order:
            get_feature(n)
        return tuple(n for n in FEATURES if n in self.order)

    def slices(self) -> dict[str, slice]:
        """Each feature's slice of the vector, in :attr:`order`."""
        out, start = {}, 0
        for n in self.order:
            dim = get_feature(n).dim
            out[n] = slice(start, start + dim)
            start += dim
        return out

    def check_sources(self, sources: Mapping[str, str]) -> dict[str, str]:
        """Validate a feature -> ``"fin"`` | ``"librosa"`` mix naming exactly this composition's features."""
        if set(sources) != set(self.order):
            raise ValueError(f"sources must name exactly {self.features}, got {sorted(sources)}")
        bad = {k: v for k, v in sources.items() if v not in ABLATION_SOURCES}
        if bad:
            raise ValueError(f"sources values must be one of {ABLATION_SOURCES}, got {bad}")
        return {n: sources[n] for n in self.features}

    def ablation_code(self, sources: Mapping[str, str]) -> str:
        """Short name of a source mix in registry order, e.g. ``"F-F-L-F-L"`` (rms, zcr, chroma, mfcc, mel)."""
        mix = self.check_sources(sources)
        return "-".join("F" if mix[n] == "fin" else "L" for n in self.features)

    def sources_from_code(self, code: str) -> dict[str, str]:
        """Inverse of :meth:`ablation_code`."""
        names = self.features
        parts = str(code).split("-")
        if len(parts) != len(names) or set(parts) - {"F", "L"}:
            raise ValueError(f"ablation code {code!r}: expected {len(names)} of F/L joined by '-'")
        return {n: ("fin" if p == "F" else "librosa") for n, p in zip(names, parts, strict=True)}

    def ablation(self) -> dict[str, dict[str, str]]:
        """Every source mix (``2 ** len(order)``): code -> {feature: "fin" | "librosa"}, all-FIN first."""
        names = self.features
        mixes = (
            dict(zip(names, combo, strict=True)) for combo in itertools.product(ABLATION_SOURCES, repeat=len(names))
        )
        return {self.ablation_code(m): m for m in mixes}


KAGGLE: Composition = Composition("kaggle", ("zcr", "chroma", "mfcc", "rms", "mel"))
"""The Kaggle baseline's 162-dim vector (ZCR 1 | Chroma 12 | MFCC 20 | RMS 1 | Mel 128), the classifiers' input."""
SUMMARY_ORDER: tuple[str, ...] = KAGGLE.order
"""Order of the features in the 162-dim Kaggle summary vector."""
SUMMARY_DIM: int = KAGGLE.dim
"""162."""


def summary_slices() -> dict[str, slice]:
    """Return each feature's slice in the 162-dim summary vector, in :data:`SUMMARY_ORDER`.

    Examples
    --------
    >>> summary_slices()["mfcc"]
    slice(13, 33, None)
    """
    return KAGGLE.slices()


@_one_blas_thread
def summary_vector(y: np.ndarray) -> np.ndarray:
    """The Kaggle baseline's 162-dim vector: time-means of librosa features on the whole clip.

    librosa defaults (``center=True``, ``n_fft=2048``, ``hop_length=512``) as the Kaggle notebook: means over time of
    ``zero_crossing_rate(y)``, ``chroma_stft(S=|stft(y)|, sr)``, ``mfcc(y, sr)`` (20), ``rms(y)`` and
    ``melspectrogram(y, sr)``, concatenated in :data:`SUMMARY_ORDER`. One STFT is shared by chroma, mel and MFCC
    (the same arrays librosa computes inside each call).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform at 22,050 Hz, at least 2048 samples.

    Returns
    -------
    np.ndarray, shape (162,), float32
    """
    y = _check_waveform(y)
    mag = np.abs(librosa.stft(y))
    mel = librosa.feature.melspectrogram(S=mag**2, sr=SR)
    parts = {
        "zcr": librosa.feature.zero_crossing_rate(y),
        "chroma": librosa.feature.chroma_stft(S=mag, sr=SR),
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC),
        "rms": librosa.feature.rms(y=y),
        "mel": mel,
    }
    return np.concatenate([np.mean(parts[n], axis=1) for n in SUMMARY_ORDER]).astype(np.float32)


@_one_blas_thread
def clip_summary(clip: np.ndarray, valid: tuple[int, int]) -> np.ndarray:
    """The 162-dim :func:`summary_vector` of a padded clip's real samples ``clip[start:stop]`` (the whole clip when
    the range is empty): THE summary input of the Kaggle baseline, computed by the training cache and by prediction.

    Parameters
    ----------
    clip : np.ndarray, shape (n_samples,)
        A fixed-length clip (``audio.Clip.samples``).
    valid : (int, int)
        ``(start, stop)`` of its real samples (``audio.Clip.valid``); at least 2048 of them.

    Returns
    -------
    np.ndarray, shape (162,), float32
    """
    v0, v1 = int(valid[0]), int(valid[1])
    return summary_vector(clip[v0:v1] if v1 > v0 else clip)


def frame_summary_vector(labels: Mapping[str, np.ndarray], composition: Composition = KAGGLE) -> np.ndarray:
    """Stack per-frame labels into (n_frames, 162) rows in :data:`SUMMARY_ORDER` (the end-to-end models' input).

    Parameters
    ----------
    labels : mapping of str to np.ndarray
        At least the composition's features, each ``(n_frames, dim)`` (e.g. the output of :func:`frame_labels`).
    composition : Composition
        The vector's layout (default :data:`KAGGLE`, 162 values).

    Returns
    -------
    np.ndarray, shape (n_frames, composition.dim), float32
    """
    order = composition.order
    missing = [n for n in order if n not in labels]
    if missing:
        raise KeyError(f"labels lack {missing}; got {sorted(labels)}, need all of {order}")
    arrays = []
    n = None
    for name in order:
        a = np.asarray(labels[name])
        dim = get_feature(name).dim
        if a.ndim != 2 or a.shape[1] != dim:
            raise ValueError(f"labels[{name!r}] must have shape (n_frames, {dim}), got {a.shape}")
        if n is not None and a.shape[0] != n:
            raise ValueError(f"labels[{name!r}] has {a.shape[0]} frames, the others {n}")
        n = a.shape[0]
        arrays.append(a)
    return np.concatenate(arrays, axis=1).astype(np.float32)
