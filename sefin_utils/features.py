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

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import librosa
import numpy as np
import scipy.fft

from sefin_utils import study
from sefin_utils.constants import FRAME_LENGTH, HOP_LENGTH, SR
from sefin_utils.framing import (
    TAIL_FRAMES,
    check_frames,
    check_waveform,
    frame,
    frame_starts,
    min_samples_for,
    n_frames,
    one_blas_thread,
    pinned,
    unchecked_frame,
    valid_frame_mask,
)
from sefin_utils.spectral import N_CHROMA, N_MELS, N_MFCC, TOP_DB, FrameContext, chroma, state, warm_up

__all__ = [
    "ABLATION_SOURCES",
    "Composition",
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "FrameContext",
    "KAGGLE",
    "N_CHROMA",
    "N_MELS",
    "N_MFCC",
    "SUMMARY_ORDER",
    "SUMMARY_DIM",
    "TAIL_FRAMES",
    "TOP_DB",
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

TUNING_MODES: tuple[str, ...] = ("per_frame",)
"""Named chroma tuning modes; a float (e.g. ``0.0``) fixes the tuning instead."""


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
    db_factor : float or None
        The values' decibel factor when they are a power (10: mel) or an amplitude (20: RMS), so that a classifier of
        per-frame vectors can read them in dB (``db_factor * log10(max(x, 10 ** (-100 / db_factor)))``: -100 dB
        floors, librosa's ``amin=1e-10`` for power); None when they already are on a log or bounded scale.
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
    db_factor: float | None = None
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
        if self.db_factor is not None and not float(self.db_factor) > 0:
            problems.append(f"db_factor must be None or > 0, got {self.db_factor!r}")
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
        x = check_waveform(x, name="frame")
        if x.shape[0] != FRAME_LENGTH:
            raise ValueError(f"a frame must have {FRAME_LENGTH} samples, got {x.shape[0]}")
        return np.asarray(self.librosa_frame(x), dtype=np.float32)


def _labels_rms(ctx: FrameContext) -> np.ndarray:
    return np.sqrt(np.mean(np.square(ctx.frames), axis=1, keepdims=True))


def _labels_zcr(ctx: FrameContext) -> np.ndarray:
    frames = ctx.frames
    negative = np.signbit(np.where(np.abs(frames) <= state()["zc_threshold"], np.float32(0), frames))
    crossings = np.count_nonzero(negative[:, 1:] != negative[:, :-1], axis=1)
    return (crossings / np.float32(FRAME_LENGTH)).astype(np.float32)[:, None]


def _labels_chroma(ctx: FrameContext) -> np.ndarray:
    return chroma(ctx.mag, ctx.tuning)


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
            db_factor=20.0,
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
            db_factor=10.0,
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


@pinned
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
    y = check_waveform(y, min_samples=min_samples_for(tail_frames))
    names = _check_names(names)
    frames = unchecked_frame(y, tail_frames=tail_frames)
    out = {}
    for n in names:
        feat = FEATURES[n]
        out[n] = np.stack([np.asarray(feat.librosa_frame(np.ascontiguousarray(x))) for x in frames]).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------------------------
# vectorised labels
# --------------------------------------------------------------------------------------------------------------------


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


@pinned
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
    return _labels(check_frames(frames), _check_names(names), _check_tuning(tuning))


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


@pinned
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
    y = check_waveform(y, min_samples=min_samples_for(tail_frames))
    return _labels(unchecked_frame(y, tail_frames=tail_frames), _check_names(names), _check_tuning(tuning))


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

    def db_factors(self) -> np.ndarray:
        """(dim,) float32: each component's :attr:`Feature.db_factor` in vector order, 0 where None (the per-frame
        decibel scale of :func:`sefin_utils.classifiers.frames_to_db`)."""
        return np.concatenate(
            [np.full(get_feature(n).dim, get_feature(n).db_factor or 0.0, dtype="float32") for n in self.order]
        )

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


@pinned
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
    y = check_waveform(y)
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


@pinned
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
