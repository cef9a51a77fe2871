"""Feature Imitating Networks (FINs): one Keras model per feature of the registry, raw frame in, librosa feature out.

Every FIN maps a batch of raw frames ``(n, 2048)`` (float32, 22,050 Hz) to the feature in librosa's own units and
layout ``(n, dim)``: ``rms`` 1, ``zcr`` 1, ``chroma`` 12, ``mfcc`` 20, ``mel`` 128 (see ``features.FEATURES``).

Two families (``arch``):

``study``
    The seed study's five topologies with its exact parameter counts (``study.FIN_PARAMS``): Dense nets for RMS, a
    strided Conv1D for ZCR, and stride-1 kernel-512 Conv1D + MaxPool + Dense for chroma, MFCC and mel (200-400 million
    multiply-adds per frame each). Trained on raw targets with the study's losses (MSE; MAE for chroma).
``fast`` (default)
    Feature-shaped networks, about 1/1400 of the study's multiply-adds for the five together (:func:`count_macs`):

    - ``rms``: square -> sum (trainable weights, init 1) -> / 2048 -> sqrt -> affine (init identity);
    - ``zcr``: a soft sign ``tanh(gain * x / rms(x) + offset)``, mean product of neighbours, affine
      (:class:`SoftZeroCrossingRate`, 4 trainable scalars);
    - ``mel``: power spectrum of the Hann-windowed frame (:class:`PowerSpectrum`, a real FFT without weights; with
      ``trainable_dft=True`` two Dense layers holding the windowed DFT, 4.2 M multiply-adds, trainable) ->
      :class:`FilterBank` initialised with librosa's Slaney mel filters (trainable, non-negative, on the filters'
      support);
    - ``mfcc``: as mel, then ``power_to_db`` (80 dB floor below the frame's peak) -> Dense initialised with the
      orthonormal DCT-II;
    - ``chroma``: DFT -> magnitude -> chroma filterbanks at 11 tunings (trainable) -> max-normalised; librosa's own
      per-frame tuning estimate (piptrack, median, 100-bin histogram: :class:`TuningWeights`) interpolates between the
      two nearest tunings.

    With ``init="librosa"`` (default) they start at librosa's formula (R² ~ 1 before training) and training
    fine-tunes them (the initial weights are kept unless the validation loss improves); ``init="random"`` draws the
    layers after the DFT at random to measure what training alone reaches. They train in a normalised target
    space (standardised ``log(y)`` for mel, standardised ``y`` otherwise: :class:`TargetStats`) while the model
    still outputs the feature.

Saved FINs (``.keras``) load with plain ``keras.models.load_model`` once ``sefin_utils.fins`` is imported (custom
layers are registered under the ``sefin`` package); :func:`load_fin` does both.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from . import features as _features  # noqa: E402
from . import study as _study  # noqa: E402
from .constants import FRAME_LENGTH, HOP_LENGTH, N_FRAMES, SR  # noqa: E402

ARCHS: tuple[str, ...] = ("fast", "study")
"""FIN families: ``fast`` (default, feature-shaped) and ``study`` (the seed study's topologies)."""

# Thin aliases for callers not yet reading the registry (pipeline.reuse_fins); to go once the runner split lands.
FIN_NAMES: tuple[str, ...] = _features.FEATURE_NAMES
STUDY_R2 = _study.FIN_R2

N_MELS: int = 128
N_MFCC: int = 20
N_CHROMA: int = 12
TOP_DB: float = 80.0
AMIN: float = 1e-10
DB_SCALE: float = 100.0
"""The fast MFCC FIN feeds dB / DB_SCALE to its DCT layer (weights DCT * DB_SCALE) so Adam's steps stay small."""
CHROMA_TUNINGS: tuple[float, ...] = tuple(round(-0.5 + 0.1 * k, 1) for k in range(11))
"""Tunings (fractions of a chroma bin) of the fast chroma FIN's filterbanks; each frame mixes the two nearest to its
estimated tuning."""
PIPTRACK_FMIN: float = 150.0
PIPTRACK_FMAX: float = 4000.0
PIPTRACK_THRESHOLD: float = 0.1
LOG_CAP_STD: float = 8.0
"""The inverse of a ``log`` target transform caps ``log(y)`` at ``mean + LOG_CAP_STD * std`` (no overflow)."""
DEFAULT_EPOCHS: int = 30
DEFAULT_PATIENCE: int = 4
DEFAULT_PAD_KEEP: float = 0.25
"""Share of padding-only frames kept in training batches (all real-audio frames are always kept)."""

_PKG = "sefin"


def _check_name(name: str) -> str:
    if name not in _features.FEATURES:
        raise ValueError(f"unknown FIN {name!r}: expected one of {tuple(_features.FEATURES)}")
    return name


def _dim(name: str) -> int:
    """Output width of FIN ``name`` (``features.FEATURES[name].dim``)."""
    return _features.FEATURES[_check_name(name)].dim


def _check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"unknown FIN arch {arch!r}: expected one of {ARCHS}")
    return arch


# --------------------------------------------------------------------------------------------------------------------
# custom layers (all registered: a saved FIN reloads after `import sefin_utils.fins`)


@keras.saving.register_keras_serializable(package=_PKG)
class ComplexPower(keras.layers.Layer):
    """``re**2 + im**2`` of two equal-width inputs ``[re, im]``: the power spectrum of a DFT pair."""

    def call(self, inputs: Sequence[Any]) -> Any:
        re, im = inputs
        return ops.square(re) + ops.square(im)

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return tuple(input_shape[0])

    def macs(self, input_shape: Sequence[tuple]) -> int:
        return 2 * int(input_shape[0][-1])


@keras.saving.register_keras_serializable(package=_PKG)
class PowerSpectrum(keras.layers.Layer):
    """``|rfft(hann * x)|**2`` of each row: librosa.stft's power spectrum of one ``center=False`` frame, by FFT.

    The fixed (frozen) form of the fast FINs' front end: no weights, ~``2 n log2 n`` multiply-adds. The trainable
    form is two Dense layers holding the same windowed DFT (``build_fin(..., trainable_dft=True)``).
    """

    def __init__(self, n_fft: int = FRAME_LENGTH, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_fft = int(n_fft)

    def call(self, x: Any) -> Any:
        n = np.arange(self.n_fft)
        window = ops.convert_to_tensor((0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.n_fft)).astype(np.float32))
        re, im = ops.rfft(x * window, fft_length=self.n_fft)
        return ops.square(re) + ops.square(im)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.n_fft // 2 + 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_fft": self.n_fft}

    def macs(self, input_shape: tuple) -> int:
        n = self.n_fft
        return n + 2 * n * int(math.log2(n)) + 2 * (n // 2 + 1)  # window, real FFT, power


@keras.saving.register_keras_serializable(package=_PKG)
class SafeSqrt(keras.layers.Layer):
    """``sqrt(max(x, 0))`` with a finite gradient at 0 (``x * rsqrt(max(x, tiny))``)."""

    def __init__(self, tiny: float = 1e-30, **kwargs: Any):
        super().__init__(**kwargs)
        self.tiny = float(tiny)

    def call(self, x: Any) -> Any:
        x = ops.maximum(x, 0.0)
        return x * ops.rsqrt(ops.maximum(x, self.tiny))

    def get_config(self) -> dict:
        return {**super().get_config(), "tiny": self.tiny}

    def macs(self, input_shape: tuple) -> int:
        return 2 * int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=_PKG)
class Square(keras.layers.Layer):
    """Element-wise square."""

    def call(self, x: Any) -> Any:
        return ops.square(x)

    def macs(self, input_shape: tuple) -> int:
        return int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=_PKG)
class PowerToDb(keras.layers.Layer):
    """``librosa.power_to_db(x, ref=1, amin, top_db)`` on each row: ``10 log10(max(x, amin))`` floored at the row's
    maximum minus ``top_db``."""

    def __init__(self, amin: float = AMIN, top_db: float | None = TOP_DB, **kwargs: Any):
        super().__init__(**kwargs)
        self.amin, self.top_db = float(amin), (None if top_db is None else float(top_db))

    def call(self, x: Any) -> Any:
        db = (10.0 / math.log(10.0)) * ops.log(ops.maximum(x, self.amin))
        if self.top_db is not None:
            db = ops.maximum(db, ops.max(db, axis=-1, keepdims=True) - self.top_db)
        return db

    def get_config(self) -> dict:
        return {**super().get_config(), "amin": self.amin, "top_db": self.top_db}

    def macs(self, input_shape: tuple) -> int:
        return 3 * int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=_PKG)
class GroupMaxNormalize(keras.layers.Layer):
    """Split the last axis into ``groups`` equal groups and divide each by its maximum (``librosa.util.normalize``
    with ``norm=inf``: a group whose maximum is below ``tiny`` is left as is). Output ``(n, groups, width)``."""

    def __init__(self, groups: int = 1, tiny: float = float(np.finfo(np.float32).tiny), **kwargs: Any):
        super().__init__(**kwargs)
        self.groups, self.tiny = int(groups), float(tiny)

    def call(self, x: Any) -> Any:
        x = ops.reshape(x, (-1, self.groups, ops.shape(x)[-1] // self.groups))
        peak = ops.max(ops.abs(x), axis=-1, keepdims=True)
        peak = ops.where(peak < self.tiny, ops.ones_like(peak), peak)
        return x / peak

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.groups, input_shape[-1] // self.groups)

    def get_config(self) -> dict:
        return {**super().get_config(), "groups": self.groups, "tiny": self.tiny}

    def macs(self, input_shape: tuple) -> int:
        return 2 * int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=_PKG)
class GatedSum(keras.layers.Layer):
    """``sum_k w_k * bank[:, k, :]`` for ``[bank (n, K, d), w (n, K)]``; ``w = softmax(logits)`` when ``softmax``."""

    def __init__(self, softmax: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.softmax = bool(softmax)

    def call(self, inputs: Sequence[Any]) -> Any:
        bank, w = inputs
        if self.softmax:
            w = ops.softmax(w, axis=-1)
        return ops.sum(bank * ops.expand_dims(w, -1), axis=1)

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return (input_shape[0][0], input_shape[0][2])

    def get_config(self) -> dict:
        return {**super().get_config(), "softmax": self.softmax}

    def macs(self, input_shape: Sequence[tuple]) -> int:
        return int(np.prod(input_shape[0][1:])) + 2 * int(input_shape[1][-1])


@keras.saving.register_keras_serializable(package=_PKG)
class TuningWeights(keras.layers.Layer):
    """``librosa.estimate_tuning`` of each frame's magnitude spectrum, as interpolation weights over a tuning grid.

    As librosa on one frame: ``piptrack`` (local maxima of the magnitudes above ``threshold`` times the frame's
    maximum, between ``fmin`` and ``fmax``, with parabolic interpolation of frequency and magnitude), peaks at or
    above the median peak magnitude, their pitch residuals against A440 in a 100-bin histogram on [-0.5, 0.5), the
    first fullest bin (0.0 without peaks). Output ``(n, K)``: linear interpolation weights of that tuning between the
    two nearest of ``tunings`` (ascending, evenly spaced, covering [-0.5, 0.5]). No weights; no gradient (a choice).
    """

    def __init__(
        self,
        tunings: Sequence[float] = CHROMA_TUNINGS,
        fmin: float = PIPTRACK_FMIN,
        fmax: float = PIPTRACK_FMAX,
        threshold: float = PIPTRACK_THRESHOLD,
        sr: int = SR,
        n_fft: int = FRAME_LENGTH,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.tunings = [float(t) for t in tunings]
        self.fmin, self.fmax, self.threshold = float(fmin), float(fmax), float(threshold)
        self.sr, self.n_fft = int(sr), int(n_fft)
        freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
        band = np.flatnonzero((freqs >= self.fmin) & (freqs < self.fmax))
        self._lo, self._hi = int(band[0]), int(band[-1]) + 1

    def call(self, mag: Any) -> Any:
        lo, hi = self._lo, self._hi
        x = mag[:, lo - 1 : hi + 1]
        left, centre, right = x[:, :-2], x[:, 1:-1], x[:, 2:]
        ref = self.threshold * ops.max(mag, axis=-1, keepdims=True)
        gated = x * ops.cast(x > ref, x.dtype)
        peak = ops.logical_and(gated[:, 1:-1] > gated[:, :-2], gated[:, 1:-1] >= gated[:, 2:])
        a = right + left - 2.0 * centre
        b = 0.5 * (right - left)
        ok = ops.abs(b) < ops.abs(a)
        shift = ops.where(ok, -b / ops.where(ok, a, ops.ones_like(a)), ops.zeros_like(a))
        bins = ops.convert_to_tensor(np.arange(lo, hi, dtype=np.float32))
        pitch = (bins[None, :] + shift) * (self.sr / self.n_fft)
        pmag = centre + 0.5 * b * shift
        # median of the peaks' magnitudes (mean of the two middle values for an even count), per frame
        count = ops.sum(ops.cast(peak, "int32"), axis=-1, keepdims=True)
        ranked = ops.sort(ops.where(peak, pmag, ops.full_like(pmag, np.inf)), axis=-1)
        lo_i = ops.maximum(count - 1, 0) // 2
        hi_i = ops.maximum(count, 1) // 2
        med_lo = ops.take_along_axis(ranked, lo_i, axis=-1)
        med_hi = ops.take_along_axis(ranked, hi_i, axis=-1)
        median = ops.where(count % 2 == 1, med_lo, 0.5 * (med_lo + med_hi))
        selected = ops.logical_and(peak, pmag >= median)
        # residual of each pitch against the equal-tempered grid (A440), in [-0.5, 0.5)
        semis = 12.0 * ops.log(ops.maximum(pitch, 1e-6) / (440.0 / 16.0)) / math.log(2.0)
        res = semis - ops.floor(semis)
        res = ops.where(res >= 0.5, res - 1.0, res)
        idx = ops.clip(ops.cast(ops.floor((res + 0.5) * 100.0), "int32"), 0, 99)
        hist = ops.sum(ops.one_hot(idx, 100) * ops.cast(selected, "float32")[..., None], axis=1)  # (n, 100)
        tuning = -0.5 + 0.01 * ops.cast(ops.argmax(hist, axis=-1), "float32")
        tuning = ops.where(ops.sum(hist, axis=-1) > 0, tuning, ops.zeros_like(tuning))
        # interpolation weights over the grid
        grid = np.asarray(self.tunings, dtype=np.float32)
        step = float(grid[1] - grid[0])
        pos = ops.clip((tuning - float(grid[0])) / step, 0.0, len(grid) - 1.0)
        dist = ops.abs(pos[:, None] - ops.convert_to_tensor(np.arange(len(grid), dtype=np.float32))[None, :])
        return ops.stop_gradient(ops.maximum(1.0 - dist, 0.0))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], len(self.tunings))

    def get_config(self) -> dict:
        extra = {"tunings": self.tunings, "fmin": self.fmin, "fmax": self.fmax, "threshold": self.threshold}
        return {**super().get_config(), **extra, "sr": self.sr, "n_fft": self.n_fft}

    def macs(self, input_shape: tuple) -> int:
        n = self._hi - self._lo
        return 12 * n + int(n * math.log2(max(n, 2)))  # peaks, interpolation, sort, histogram


@keras.saving.register_keras_serializable(package=_PKG)
class SoftZeroCrossingRate(keras.layers.Layer):
    """Differentiable ``librosa.feature.zero_crossing_rate`` of one frame per row.

    Each sample becomes a soft sign ``s = tanh(gain * x / (rms(x) + eps) + offset)`` (scale-free; ``offset > 0`` makes
    exact zeros count as positive, as librosa's ``zero_pos=True``); the rate is ``a * mean(s[i] s[i+1]) + b`` with
    ``a = -b = -(n-1)/(2n)`` at initialisation (the exact count for hard signs). ``log_gain``, ``offset``, ``a`` and
    ``b`` are trainable.
    """

    def __init__(self, gain: float = 3e4, offset: float = 4.0, eps: float = 1e-8, **kwargs: Any):
        super().__init__(**kwargs)
        self.gain, self.offset, self.eps = float(gain), float(offset), float(eps)

    def build(self, input_shape: tuple) -> None:
        n = int(input_shape[-1])
        c = (n - 1) / (2.0 * n)
        const = keras.initializers.Constant
        self.log_gain = self.add_weight(name="log_gain", shape=(), initializer=const(math.log(self.gain)))
        self.shift = self.add_weight(name="offset", shape=(), initializer=const(self.offset))
        self.scale = self.add_weight(name="scale", shape=(), initializer=const(-c))
        self.bias = self.add_weight(name="bias", shape=(), initializer=const(c))

    def call(self, x: Any) -> Any:
        rms = ops.sqrt(ops.mean(ops.square(x), axis=-1, keepdims=True))
        s = ops.tanh(ops.exp(self.log_gain) * x / (rms + self.eps) + self.shift)
        m = ops.mean(s[:, 1:] * s[:, :-1], axis=-1, keepdims=True)
        return self.scale * m + self.bias

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "gain": self.gain, "offset": self.offset, "eps": self.eps}

    def macs(self, input_shape: tuple) -> int:
        return 5 * int(input_shape[-1])


@keras.saving.register_keras_serializable(package=_PKG)
class TargetTransform(keras.layers.Layer):
    """Fixed map between feature units and the training space: forward ``z = (f(y) - mean) / std`` or its inverse,
    with ``f = log(max(y, 0) + eps)`` (``kind="log"``; the inverse caps ``f`` at ``mean + 8 std``) or identity
    (``"linear"``). Constants live in the config (no weights, so parameter counts are unchanged)."""

    def __init__(
        self,
        kind: str = "linear",
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        eps: float = 1e-10,
        inverse: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if kind not in ("linear", "log"):
            raise ValueError(f"TargetTransform kind must be 'linear' or 'log', got {kind!r}")
        self.kind, self.eps, self.inverse = kind, float(eps), bool(inverse)
        self.mean = [float(v) for v in np.ravel(mean)]
        self.std = [float(v) for v in np.ravel(std)]

    def call(self, x: Any) -> Any:
        mean = ops.convert_to_tensor(np.asarray(self.mean, dtype=np.float32))
        std = ops.convert_to_tensor(np.asarray(self.std, dtype=np.float32))
        if self.inverse:
            y = x * std + mean
            if self.kind == "log":  # cap at mean + LOG_CAP_STD std: an untrained head must not overflow exp
                return ops.exp(ops.minimum(y, mean + LOG_CAP_STD * std)) - self.eps
            return y
        if self.kind == "log":
            x = ops.log(ops.maximum(x, 0.0) + self.eps)
        return (x - mean) / std

    def get_config(self) -> dict:
        cfg = {"kind": self.kind, "mean": self.mean, "std": self.std, "eps": self.eps, "inverse": self.inverse}
        return {**super().get_config(), **cfg}

    def macs(self, input_shape: tuple) -> int:
        return 2 * int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=_PKG)
class FixedScale(keras.layers.Layer):
    """Multiply the last axis by constants (in the config, not weights): keeps the trainable kernel before it O(1)
    so Adam's steps are relative, e.g. a max-normalised mel filterbank followed by each filter's true peak."""

    def __init__(self, scale: Sequence[float] = (1.0,), **kwargs: Any):
        super().__init__(**kwargs)
        self.scale = [float(v) for v in np.ravel(scale)]

    def call(self, x: Any) -> Any:
        return x * ops.convert_to_tensor(np.asarray(self.scale, dtype=np.float32))

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}

    def macs(self, input_shape: tuple) -> int:
        return int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=_PKG)
class FilterBank(keras.layers.Layer):
    """A non-negative linear filterbank with a fixed support: ``x @ (relu(kernel) * support)``.

    ``kernel`` (trainable) starts at a reference filterbank (mel, chroma) and ``support`` (non-trainable 0/1) is its
    non-zero pattern, so training reshapes each filter without leaking energy from other frequencies into it (a dense
    kernel under Adam gains ~lr on every one of its 1025 inputs per step, which swamps a narrow mel filter).
    """

    def __init__(self, units: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape: tuple) -> None:
        shape = (int(input_shape[-1]), self.units)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="ones")
        self.support = self.add_weight(name="support", shape=shape, initializer="ones", trainable=False)

    def call(self, x: Any) -> Any:
        return ops.matmul(x, ops.relu(self.kernel) * self.support)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}

    def macs(self, input_shape: tuple) -> int:
        return int(input_shape[-1]) * self.units


CUSTOM_LAYERS: tuple[type, ...] = (
    FilterBank,
    FixedScale,
    PowerSpectrum,
    ComplexPower,
    SafeSqrt,
    Square,
    PowerToDb,
    GroupMaxNormalize,
    GatedSum,
    TuningWeights,
    SoftZeroCrossingRate,
    TargetTransform,
)


# --------------------------------------------------------------------------------------------------------------------
# target statistics


@dataclass(frozen=True)
class TargetStats:
    """Per-dimension statistics of a FIN's training targets in its training space (``features.Feature.target``)."""

    kind: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    eps: float = 1e-10

    @classmethod
    def fit(cls, name: str, y: np.ndarray, *, kind: str | None = None, eps: float | None = None) -> TargetStats:
        """Statistics of targets ``y`` ``(n, dim)`` for FIN ``name``."""
        kind = kind or _features.FEATURES[_check_name(name)].target
        y = np.asarray(y, dtype=np.float64).reshape(-1, _dim(name))
        if eps is None:
            eps = 1e-10 if kind == "log" else 0.0
        f = np.log(np.maximum(y, 0.0) + eps) if kind == "log" else y
        std = f.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(kind, tuple(map(float, f.mean(axis=0))), tuple(map(float, std)), float(eps))

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Feature units -> training space (float32)."""
        y = np.asarray(y, dtype=np.float64)
        f = np.log(np.maximum(y, 0.0) + self.eps) if self.kind == "log" else y
        return ((f - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Training space -> feature units (float32)."""
        f = np.asarray(z, dtype=np.float64) * np.asarray(self.std) + np.asarray(self.mean)
        return (np.exp(f) - self.eps if self.kind == "log" else f).astype(np.float32)

    def layer(self, *, inverse: bool, name: str | None = None) -> TargetTransform:
        """The matching Keras layer."""
        return TargetTransform(self.kind, self.mean, self.std, self.eps, inverse=inverse, name=name)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------------
# builders


def _dense(units: int, name: str, activation: str | None = "relu", **kw: Any) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation=activation, name=name, **kw)


_STUDY_CONV: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "chroma": (256, 256, 128, (256, 128, 64)),
    "mfcc": (256, 512, 110, (256, 128)),
    "mel": (512, 256, 128, ()),
}
"""Conv1D filters, pooling size and stride, hidden Dense widths of the study's chroma/MFCC/mel FINs."""


def _study_fin(name: str, x: Any) -> Any:
    """The seed study's topologies (ReLU hidden layers, linear outputs)."""
    if name not in ("rms", "zcr", *_STUDY_CONV):
        raise ValueError(f"the study has no FIN topology for {name!r} (it has rms, zcr, {', '.join(_STUDY_CONV)})")
    conv = keras.layers.Conv1D
    if name == "rms":
        for i, u in enumerate((32, 16, 8)):
            x = _dense(u, f"dense_{i}")(x)
        return _dense(1, "out", None)(x)
    x = keras.layers.Reshape((FRAME_LENGTH, 1), name="as_signal")(x)
    if name == "zcr":
        x = conv(16, 16, strides=4, padding="valid", activation="relu", name="conv")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        for i in range(3):
            x = _dense(32, f"dense_{i}")(x)
        return _dense(1, "out", None)(x)
    filters, pool, stride, hidden = _STUDY_CONV[name]
    x = conv(filters, 512, strides=1, padding="valid", activation="relu", name="conv")(x)
    x = keras.layers.MaxPooling1D(pool, strides=stride, padding="valid", name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, u in enumerate(hidden):
        x = _dense(u, f"dense_{i}")(x)
    return _dense(_dim(name), "out", None)(x)


def _dft_matrices(n_fft: int = FRAME_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed real DFT as two (n_fft, n_fft//2+1) matrices: ``x @ cos`` and ``x @ sin`` are librosa.stft's
    real and (negated) imaginary parts for one centre=False frame."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)  # scipy.signal.get_window("hann", n_fft, fftbins=True)
    phase = 2.0 * np.pi * np.outer(n, k) / n_fft
    return (window[:, None] * np.cos(phase)).astype(np.float32), (window[:, None] * np.sin(phase)).astype(np.float32)


def _power_spectrum(x: Any, trainable: bool) -> Any:
    if not trainable:
        return PowerSpectrum(name="power")(x)
    cos, sin = _dft_matrices()
    bins = cos.shape[1]
    re_layer = keras.layers.Dense(bins, use_bias=False, name="dft_re", trainable=trainable)
    im_layer = keras.layers.Dense(bins, use_bias=False, name="dft_im", trainable=trainable)
    re, im = re_layer(x), im_layer(x)
    re_layer.set_weights([cos])
    im_layer.set_weights([sin])
    return ComplexPower(name="power")([re, im])


def _mel_matrix() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=FRAME_LENGTH, n_mels=N_MELS).T.astype(np.float32)  # (1025, 128)


def _dct_matrix() -> np.ndarray:
    import scipy.fft

    return scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC].T.astype(np.float32)  # (128, 20)


def _chroma_bank() -> np.ndarray:
    import librosa

    fbs = [librosa.filters.chroma(sr=SR, n_fft=FRAME_LENGTH, tuning=t, n_chroma=N_CHROMA) for t in CHROMA_TUNINGS]
    return np.concatenate(fbs, axis=0).T.astype(np.float32)  # (1025, 12 K)


def _set(layer: keras.layers.Layer, *weights: np.ndarray) -> None:
    layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])


def _fast_rms(x: Any, trainable_dft: bool) -> Any:
    x = Square(name="square")(x)
    mean = keras.layers.Dense(1, use_bias=False, name="sum_squares")
    x = mean(x)
    _set(mean, np.ones((FRAME_LENGTH, 1)))
    x = SafeSqrt(name="sqrt")(FixedScale([1.0 / FRAME_LENGTH], name="mean")(x))
    out = keras.layers.Dense(1, name="out")
    y = out(x)
    _set(out, np.ones((1, 1)), np.zeros(1))
    return y


def _fast_zcr(x: Any, trainable_dft: bool) -> Any:
    return SoftZeroCrossingRate(name="zcr")(x)


def _fast_mel_power(x: Any, trainable_dft: bool) -> Any:
    power = _power_spectrum(x, trainable_dft)
    fb = _mel_matrix()
    peak = fb.max(axis=0)
    mel = FilterBank(N_MELS, name="mel_filters")
    m = FixedScale(peak, name="mel_norm")(mel(power))
    _set(mel, fb / peak, fb > 0)
    return m


def _fast_mfcc(x: Any, trainable_dft: bool) -> Any:
    m = _fast_mel_power(x, trainable_dft)
    db = FixedScale([1.0 / DB_SCALE], name="db_scaled")(PowerToDb(name="power_to_db")(m))
    dct = keras.layers.Dense(N_MFCC, name="dct")
    y = dct(db)
    _set(dct, _dct_matrix() * DB_SCALE, np.zeros(N_MFCC))
    return y


def _fast_chroma(x: Any, trainable_dft: bool) -> Any:
    """|STFT| -> chroma filterbanks at K tunings -> max-normalised; librosa's per-frame tuning estimate picks
    (interpolates between) the two nearest."""
    power = _power_spectrum(x, trainable_dft)
    k = len(CHROMA_TUNINGS)
    mag = SafeSqrt(name="magnitude")(power)
    bank_layer = FilterBank(N_CHROMA * k, name="chroma_filters")
    raw = bank_layer(mag)
    fb = _chroma_bank()
    _set(bank_layer, fb, fb > 0)
    bank = GroupMaxNormalize(groups=k, name="normalize")(raw)  # (n, K, 12)
    weights = TuningWeights(name="tuning")(mag)
    return GatedSum(softmax=False, name="tuning_mix")([bank, weights])


_FAST_BUILDERS: dict[str, Any] = {
    "rms": _fast_rms,
    "zcr": _fast_zcr,
    "chroma": _fast_chroma,
    "mfcc": _fast_mfcc,
    "mel": _fast_mel_power,
}
"""The study's five features' fast FINs; a registered feature brings its own (``features.Feature.fin``)."""


def _fast_fin(name: str, x: Any, trainable_dft: bool) -> Any:
    feat = _features.FEATURES[name]
    if feat.fin is not None:
        return feat.fin(x)
    if name not in _FAST_BUILDERS:
        raise ValueError(f"feature {name!r} has no fast FIN: give its Feature a fin= builder")
    return _FAST_BUILDERS[name](x, trainable_dft)


FAST_INITS: tuple[str, ...] = ("librosa", "random")
"""Initialisations of the ``fast`` FINs' layers after the DFT: librosa's own filterbanks/DCT, or random (seeded)."""


def _randomise(model: keras.Model, rng: np.random.Generator) -> None:
    """Re-draw every trainable weight of a fast FIN after the DFT: filterbanks U(0, 1) on full support,
    Dense kernels N(0, 1/fan_in) (times DB_SCALE for the DCT), scalars near their defaults."""
    for layer in model.layers:
        if isinstance(layer, FilterBank):
            k, _ = layer.get_weights()
            layer.set_weights([rng.uniform(0, 1, k.shape).astype("float32"), np.ones_like(k)])
        elif isinstance(layer, keras.layers.Dense) and layer.trainable and not layer.name.startswith("dft_"):
            w = layer.get_weights()
            scale = DB_SCALE if layer.name == "dct" else 1.0
            if layer.name == "sum_squares":
                w[0] = rng.uniform(0.5, 1.5, w[0].shape)
            else:
                w[0] = rng.normal(0, scale / np.sqrt(w[0].shape[0]), w[0].shape)
            layer.set_weights([np.asarray(v, dtype="float32") for v in w])
        elif isinstance(layer, SoftZeroCrossingRate):
            layer.set_weights(
                [
                    np.float32(v)
                    for v in (rng.uniform(np.log(30), np.log(3e4)), rng.uniform(0, 5), -rng.uniform(), rng.uniform())
                ]
            )


def build_fin(
    name: str,
    *,
    arch: str = "fast",
    target_stats: TargetStats | None = None,
    trainable_dft: bool = False,
    init: str = "librosa",
    seed: int = 0,
) -> keras.Model:
    """Build the FIN for feature ``name``.

    Parameters
    ----------
    name : str
        A registered feature (``features.FEATURES``).
    arch : {"fast", "study"}
        ``fast`` (feature-shaped, librosa-initialised, default) or ``study`` (the study's topology, exact parameter
        count).
    target_stats : TargetStats, optional
        ``study`` only: end the network with the fixed inverse of this training-space transform, so the last Dense
        layer predicts standardised (log-)targets while the model outputs the feature (no extra weights).
        ``fast`` FINs compute the feature directly and ignore it (their training space is applied in the loss).
    trainable_dft : bool
        ``fast`` only: let training change the DFT layers (frozen by default).
    init : {"librosa", "random"}
        ``fast`` only: start the layers after the DFT at librosa's formula (default) or at random (``seed``), to
        measure what training alone reaches.

    Returns
    -------
    keras.Model
        Input ``(None, 2048)`` float32, output ``(None, dim)`` in librosa units; named ``fin_<name>_<arch>``.
    """
    _check_name(name)
    _check_arch(arch)
    inp = keras.Input((FRAME_LENGTH,), dtype="float32", name="frame")
    if arch == "study":
        y = _study_fin(name, inp)
        if target_stats is not None:
            y = target_stats.layer(inverse=True, name="to_feature")(y)
    else:
        if init not in FAST_INITS:
            raise ValueError(f"fast FIN init must be one of {FAST_INITS}, got {init!r}")
        y = _fast_fin(name, inp, trainable_dft)
    model = keras.Model(inp, y, name=f"fin_{name}_{arch}")
    if arch == "fast" and init == "random":
        _randomise(model, np.random.default_rng(seed))
    return model


# --------------------------------------------------------------------------------------------------------------------
# multiply-adds


def _shape(t: Any) -> tuple:
    return tuple(t.shape)


def count_macs(model: keras.Model) -> int:
    """Multiply-adds per frame (batch of one): Dense ``in * units``, Conv1D ``out_len * kernel * in_ch * filters``,
    sefin layers their own ``macs``; pooling, reshape and activations count 0."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        in_shape = [_shape(t) for t in layer._inbound_nodes[0].input_tensors] if layer._inbound_nodes else []
        out_shape = _shape(layer.output)
        if isinstance(layer, keras.layers.Dense):
            steps = int(np.prod(in_shape[0][1:-1])) if len(in_shape[0]) > 2 else 1
            total += steps * int(in_shape[0][-1]) * layer.units
        elif isinstance(layer, keras.layers.Conv1D):
            total += int(out_shape[1]) * int(layer.kernel_size[0]) * int(in_shape[0][-1]) * layer.filters
        elif hasattr(layer, "macs"):
            total += int(layer.macs(in_shape if len(in_shape) > 1 else in_shape[0]))
    return int(total)


# --------------------------------------------------------------------------------------------------------------------
# data


def get_strategy(kind: str | None = "default") -> Any:
    """A ``tf.distribute`` strategy from params: ``default``/None (one device) or ``mirrored`` (all local GPUs)."""
    import tensorflow as tf

    if kind is None or kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"strategy must be 'default' or 'mirrored', got {kind!r}")


def frame_index(
    mask: np.ndarray, *, pad_keep: float = 1.0, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(row, frame) pairs of the frames to use from clips with frame mask ``mask`` (n_clips, n_frames): every real
    frame plus a ``pad_keep`` share of padding-only frames (drawn with ``rng``)."""
    mask = np.asarray(mask, dtype=bool)
    keep = mask.copy()
    if pad_keep >= 1.0:
        keep[:] = True
    elif pad_keep > 0:
        rng = rng or np.random.default_rng(0)
        keep |= rng.random(mask.shape) < pad_keep
    rows, frames = np.nonzero(keep)
    return rows.astype(np.int64), frames.astype(np.int64)


def frame_starts(n_samples: int, n_frames: int) -> np.ndarray:
    """First sample of each of a clip's ``n_frames`` labelled frames (``features.frame_starts``: the hop grid, plus
    the re-anchored tail frames when ``n_frames`` counts them). ``ValueError`` when ``n_frames`` fits neither."""
    from sefin_utils import features

    for tail in (False, True):
        if n_samples >= FRAME_LENGTH and n_frames == features.n_frames(n_samples, tail_frames=tail):
            return features.frame_starts(n_samples, tail_frames=tail)
    raise ValueError(f"{n_frames} labelled frames do not fit clips of {n_samples} samples (hop grid, tail frames)")


def gather_frames(
    clips: np.ndarray, rows: np.ndarray, frames: np.ndarray, *, starts: np.ndarray | None = None
) -> np.ndarray:
    """Frames ``clips[row, start[frame] : start[frame] + 2048]`` as one (n, 2048) float32 array (index arithmetic;
    ``starts`` defaults to the 512-sample hop grid)."""
    rows, frames = np.asarray(rows, dtype=np.int64), np.asarray(frames, dtype=np.int64)
    begin = frames * HOP_LENGTH if starts is None else np.asarray(starts)[frames]
    order = np.argsort(rows, kind="stable")  # memmaps read faster in row order
    out = np.empty((len(rows), FRAME_LENGTH), dtype=np.float32)
    offs = np.arange(FRAME_LENGTH)
    out[order] = np.asarray(clips[rows[order][:, None], begin[order][:, None] + offs[None, :]], dtype=np.float32)
    return out


def frames_dataset(
    store: Any,
    rows: np.ndarray,
    name: str,
    *,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int = 0,
    pad_keep: float = DEFAULT_PAD_KEEP,
    stats: TargetStats | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(frames (b, 2048), targets (b, dim))`` batches framed on the fly from a ClipStore.

    Parameters
    ----------
    store : ClipStore
        Anything with ``clips`` (n, 55125), ``labels[name]`` (n, 104, dim) and ``mask`` (n, 104).
    rows : array of int
        Clip rows to use (e.g. ``store.select(split="train")``).
    name : str
        The FIN / feature.
    batch_size, shuffle, seed
        Batching; with ``shuffle`` the frame order is redrawn every epoch from ``seed`` and the epoch number.
    pad_keep : float
        Share of padding-only frames kept (1.0 keeps all; all real frames are always kept).
    stats : TargetStats, optional
        Map targets into this training space.
    """
    import tensorflow as tf

    _check_name(name)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise ValueError(f"no clips selected for FIN {name!r}")
    labels = store.labels[name]
    dim = _dim(name)
    r_sel, f_sel = frame_index(np.asarray(store.mask)[rows], pad_keep=pad_keep, rng=np.random.default_rng(seed))
    r_sel = rows[r_sel]
    starts = frame_starts(store.clips.shape[1], labels.shape[1])
    n = len(r_sel)
    n_batches = math.ceil(n / batch_size)
    epoch = {"i": 0}

    def gen():
        order = np.random.default_rng([seed, epoch["i"]]).permutation(n) if shuffle else np.arange(n)
        epoch["i"] += 1
        for b in range(n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            r, f = r_sel[idx], f_sel[idx]
            y = np.asarray(labels[r, f], dtype=np.float32).reshape(len(idx), dim)
            yield gather_frames(store.clips, r, f, starts=starts), (stats.forward(y) if stats else y)

    sig = (
        tf.TensorSpec((None, FRAME_LENGTH), tf.float32),
        tf.TensorSpec((None, dim), tf.float32),
    )
    ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def array_dataset(
    frames: np.ndarray, y: np.ndarray, *, batch_size: int = 64, shuffle: bool = True, seed: int = 0
) -> Any:
    """A ``tf.data.Dataset`` of in-memory frames ``(n, 2048)`` and targets ``(n, dim)``."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(frames, np.float32), np.asarray(y, np.float32)))
    if shuffle:
        ds = ds.shuffle(min(len(frames), 100_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(2)


def _check_frames(frames: np.ndarray, y: np.ndarray, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_LENGTH:
        raise ValueError(f"{what} frames must be (n, {FRAME_LENGTH}), got {frames.shape}")
    y = np.asarray(y, dtype=np.float32).reshape(len(frames), -1)
    if y.shape[1] != _dim(name):
        raise ValueError(f"{what} targets for {name!r} must be (n, {_dim(name)}), got {y.shape}")
    return frames, y


# --------------------------------------------------------------------------------------------------------------------
# training


def training_model(model: keras.Model, stats: TargetStats | None) -> keras.Model:
    """The model a FIN is fitted as: up to its fixed inverse (``study`` + stats), or followed by the forward transform
    (``fast`` + stats), or itself. Layers are shared, so fitting it trains ``model``."""
    last = model.layers[-1]
    if isinstance(last, TargetTransform) and last.inverse:
        return keras.Model(model.inputs, last.input, name=model.name + "_train")
    if stats is not None:
        return keras.Model(model.inputs, stats.layer(inverse=False, name="to_target")(model.output))
    return model


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter() - self._t)


def fit_fin(
    model: keras.Model,
    train_ds: Any,
    val_ds: Any,
    *,
    loss: str = "mse",
    stats: TargetStats | None = None,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = 1e-3,
    patience: int = DEFAULT_PATIENCE,
    min_delta: float = 1e-6,
    verbose: int = 1,
) -> dict:
    """Fit ``model`` (already built, inside the strategy's scope if any) on datasets in its training space.

    Adam, EarlyStopping on ``val_loss`` restoring the best weights, ReduceLROnPlateau (factor 0.5). The validation
    loss of the initial weights is measured first; if no epoch beats it the initial weights are kept (an initialised
    ``fast`` FIN is never made worse by training). Returns the history dict plus ``epoch_s``, ``initial_val_loss``,
    ``best_val_loss``, ``kept_initial``.
    """
    train_model = training_model(model, stats)
    train_model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
    initial = train_model.get_weights()
    init_loss = float(train_model.evaluate(val_ds, verbose=0))
    timer = _EpochTimer()
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, min_delta=min_delta, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2), min_lr=1e-6),
        timer,
    ]
    hist = train_model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose)
    h = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best = min(h.get("val_loss", [math.inf]))
    kept_initial = not best < init_loss
    if kept_initial:
        train_model.set_weights(initial)
    h.update(
        epoch_s=timer.times,
        epochs_run=len(timer.times),
        initial_val_loss=init_loss,
        best_val_loss=min(best, init_loss),
        kept_initial=kept_initial,
    )
    return h


def _study_r2(name: str) -> dict[str, float | None]:
    """The study's published R² of FIN ``name`` (all None for a feature the study did not imitate)."""
    r2 = _features.FEATURES[name].study_r2
    return dict(r2) if r2 is not None else dict.fromkeys(("r2_test", "r2_vw_test", "r2_ood", "r2_vw_ood"))


def _loss_for(name: str, arch: str, stats: TargetStats | None) -> str:
    return _features.FEATURES[name].loss if (arch == "study" and stats is None) else "mse"


def train_fin(
    name: str,
    train_frames: np.ndarray,
    train_y: np.ndarray,
    val_frames: np.ndarray,
    val_y: np.ndarray,
    *,
    arch: str = "fast",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    patience: int = DEFAULT_PATIENCE,
    strategy: Any = None,
    standardise: bool | None = None,
    init: str = "librosa",
    verbose: int = 1,
) -> tuple[keras.Model, dict]:
    """Build and train one FIN on in-memory frames.

    Parameters
    ----------
    name, arch
        Which FIN (:func:`build_fin`).
    train_frames, val_frames : (n, 2048) float32
        Raw frames; ``train_y``, ``val_y`` ``(n, dim)`` their librosa labels.
    epochs, batch_size, lr, patience
        Adam at ``lr``; early stopping and LR halving on the validation loss.
    seed : int
        ``keras.utils.set_random_seed(seed)`` before building (weights, shuffling).
    strategy : tf.distribute.Strategy or str, optional
        ``None``/``"default"`` one device, ``"mirrored"`` all local GPUs.
    standardise : bool, optional
        Train in the normalised target space (:class:`TargetStats`); default True for ``fast``, False for ``study``
        (the study's raw targets and losses).
    init : {"librosa", "random"}
        ``fast`` only: initialisation after the DFT (:func:`build_fin`).

    Returns
    -------
    (keras.Model, dict)
        The trained FIN (outputs librosa units) and its history (see :func:`fit_fin`), plus ``target_stats``.
    """
    _check_name(name)
    _check_arch(arch)
    train_frames, train_y = _check_frames(train_frames, train_y, name, "train")
    val_frames, val_y = _check_frames(val_frames, val_y, name, "val")
    keras.utils.set_random_seed(seed)
    standardise = (arch == "fast") if standardise is None else standardise
    stats = TargetStats.fit(name, train_y) if standardise else None
    strategy = get_strategy(strategy) if (strategy is None or isinstance(strategy, str)) else strategy
    with strategy.scope():
        model = build_fin(name, arch=arch, target_stats=stats if arch == "study" else None, init=init, seed=seed)
    fwd = stats.forward if stats else (lambda v: v)
    train_ds = array_dataset(train_frames, fwd(train_y), batch_size=batch_size, seed=seed)
    val_ds = array_dataset(val_frames, fwd(val_y), batch_size=max(batch_size, 256), shuffle=False)
    with strategy.scope():
        hist = fit_fin(
            model,
            train_ds,
            val_ds,
            loss=_loss_for(name, arch, stats),
            stats=stats if arch == "fast" else None,
            epochs=epochs,
            lr=lr,
            patience=patience,
            verbose=verbose,
        )
    hist["target_stats"] = stats.to_dict() if stats else None
    return model, hist


# --------------------------------------------------------------------------------------------------------------------
# evaluation, saving, loading


def predict_store(
    model: keras.Model, store: Any, rows: np.ndarray, name: str, *, batch_size: int = 512, valid_only: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and librosa labels ``(n_frames, dim)`` for the frames of clip ``rows`` (real frames only by
    default; ``valid_only=False`` includes padding-only frames)."""
    rows = np.asarray(rows, dtype=np.int64)
    mask = np.asarray(store.mask)[rows]
    r, f = frame_index(mask, pad_keep=0.0 if valid_only else 1.0)
    r = rows[r]
    true = np.asarray(store.labels[name][r, f], dtype=np.float32).reshape(len(r), _dim(name))
    starts = frame_starts(store.clips.shape[1], store.labels[name].shape[1])
    preds = []
    for b in range(0, len(r), 8192):
        frames = gather_frames(store.clips, r[b : b + 8192], f[b : b + 8192], starts=starts)
        preds.append(np.asarray(model.predict(frames, batch_size=batch_size, verbose=0), dtype=np.float32))
    return np.concatenate(preds).reshape(len(r), -1), true


def evaluate_fin(y_true: np.ndarray, y_pred: np.ndarray, name: str) -> dict[str, float]:
    """``r2`` and ``r2_vw`` (``metrics.r2_scores``); for mel also ``r2_db``/``r2_vw_db`` on ``10 log10(max(y, 1e-10))``
    (element-wise dB, no top_db floor)."""
    from .metrics import r2_scores

    out = r2_scores(y_true, y_pred)
    if name == "mel":
        db = r2_scores(10 * np.log10(np.maximum(y_true, AMIN)), 10 * np.log10(np.maximum(y_pred, AMIN)))
        out.update(r2_db=db["r2"], r2_vw_db=db["r2_vw"])
    return out


def save_fin(model: keras.Model, path: str | Path, card: Mapping[str, Any] | None = None) -> Path:
    """Save ``model`` as ``path`` (``.keras``, written under a temporary name then renamed) and ``card`` as JSON
    beside it (same stem, ``.json``)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"a FIN is saved as a .keras file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.keras")
    model.save(tmp)
    os.replace(tmp, path)
    if card is not None:
        jtmp = path.with_suffix(".json.partial")
        jtmp.write_text(json.dumps(card, indent=2, default=_json_default))
        os.replace(jtmp, path.with_suffix(".json"))
    return path


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def load_fin(path: str | Path) -> keras.Model:
    """Load a saved FIN (``keras.models.load_model`` with sefin's layers registered; no compile state)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no FIN at {path} (expected a .keras file written by save_fin)")
    return keras.models.load_model(path, compile=False)


def load_fins(directory: str | Path, names: Sequence[str] | None = None) -> dict[str, keras.Model]:
    """Load ``<directory>/<name>.keras`` for each FIN in ``names`` (default: all five that exist, at least one)."""
    directory = Path(directory)
    known = tuple(_features.FEATURES)
    names = list(names) if names is not None else [n for n in known if (directory / f"{n}.keras").is_file()]
    if not names:
        raise FileNotFoundError(f"no FIN files (<feature>.keras for {known}) in {directory}")
    return {n: load_fin(directory / f"{n}.keras") for n in names}


def read_card(path: str | Path) -> dict:
    """The JSON card beside a saved FIN (``<feature>.json``)."""
    return json.loads(Path(path).with_suffix(".json").read_text())


# --------------------------------------------------------------------------------------------------------------------
# all five


def train_all(
    store: Any,
    out_dir: str | Path,
    *,
    arch: str = "fast",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    patience: int = DEFAULT_PATIENCE,
    pad_keep: float = DEFAULT_PAD_KEEP,
    strategy: Any = "default",
    features: Sequence[str] | None = None,
    train_rows: np.ndarray | None = None,
    max_eval_clips: int | None = None,
    init: str = "librosa",
    standardise: bool | None = None,
    verbose: int = 2,
) -> dict[str, Any]:
    """Train, select, evaluate and save every FIN of the registry.

    Train on split ``train`` (all augmentations; real frames plus a ``pad_keep`` share of padding frames), select on
    ``val`` (orig), evaluate on ``test`` (orig) and ``ood`` (ESD, orig) real frames. Saves ``<out_dir>/<name>.keras``
    and ``<name>.json`` (the card) for each and ``<out_dir>/metrics.csv``.

    Parameters
    ----------
    store : ClipStore
        ``cache.build(...)``'s store (``index``, ``clips``, ``labels``, ``mask``, ``select``).
    train_rows : array of int, optional
        Restrict training to these rows (e.g. a subset for the slow ``study`` FINs); default all train rows.
    max_eval_clips : int, optional
        Use at most this many clips (a seeded random subset) of each of val, test and ood; default all.
    init : {"librosa", "random"}
        ``fast`` only: initialisation after the DFT (:func:`build_fin`).
    standardise : bool, optional
        Train in the normalised target space (:class:`TargetStats`); default True for ``fast``, False for ``study``
        (raw targets and the study's losses). ``study`` with True ends in the fixed inverse transform (same params).

    Returns
    -------
    dict
        ``table`` (DataFrame, one row per FIN, the study's numbers in ``study_*`` columns), ``cards`` and ``paths``.
    """
    import pandas as pd

    _check_arch(arch)
    names = [_check_name(n) for n in (features or tuple(_features.FEATURES))]
    out_dir = Path(out_dir)
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    rows = {
        "train": store.select(split="train") if train_rows is None else np.asarray(train_rows),
        "val": store.select(split="val", augmentation="orig"),
        "test": store.select(split="test", augmentation="orig"),
        "ood": store.select(split="ood", augmentation="orig"),
    }
    if max_eval_clips is not None:
        pick = np.random.default_rng(seed)
        for split in ("val", "test", "ood"):
            if len(rows[split]) > max_eval_clips:
                rows[split] = np.sort(pick.choice(rows[split], size=max_eval_clips, replace=False))
    index = store.index
    data_card = {
        split: {
            "clips": int(len(r)),
            "frames": int(np.asarray(store.mask)[r].sum()),
            "corpora": sorted(map(str, index.iloc[r]["corpus"].unique())) if len(r) else [],
            "augmentations": sorted(map(str, index.iloc[r]["augmentation"].unique())) if len(r) else [],
        }
        for split, r in rows.items()
    }
    from tqdm.auto import tqdm

    table, cards, paths = [], {}, {}
    for name in tqdm(names, desc=f"FINs ({arch})", disable=not verbose):
        keras.utils.set_random_seed(seed)
        stats = None
        if (arch == "fast") if standardise is None else standardise:
            tr = rows["train"]
            sub = tr[np.random.default_rng(seed).permutation(len(tr))[:2000]]
            stats = TargetStats.fit(name, np.asarray(store.labels[name][sub])[np.asarray(store.mask)[sub]])
        with strategy.scope():
            model = build_fin(name, arch=arch, target_stats=stats if arch == "study" else None, init=init, seed=seed)
        train_ds = frames_dataset(
            store, rows["train"], name, batch_size=batch_size, seed=seed, pad_keep=pad_keep, stats=stats
        )
        val_ds = frames_dataset(
            store, rows["val"], name, batch_size=max(batch_size, 256), shuffle=False, pad_keep=pad_keep, stats=stats
        )
        if verbose:
            print(f"FIN {name} ({arch}): {model.count_params():,} params, {count_macs(model):,} MACs/frame", flush=True)
        with strategy.scope():
            hist = fit_fin(
                model,
                train_ds,
                val_ds,
                loss=_loss_for(name, arch, stats if arch == "study" else None),
                stats=stats if arch == "fast" else None,
                epochs=epochs,
                lr=lr,
                patience=patience,
                verbose=verbose,
            )
        metrics = {}
        for split in ("test", "ood"):
            if len(rows[split]):
                pred, true = predict_store(model, store, rows[split], name)
                metrics[split] = evaluate_fin(true, pred, name)
        row = {
            "feature": name,
            "arch": arch,
            "init": init if arch == "fast" else "random",
            "targets": f"standardised {stats.kind}" if stats else "raw",
            "params": int(model.count_params()),
            "trainable": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
            "macs": count_macs(model),
            "epochs": hist["epochs_run"],
            "epoch_s": float(np.mean(hist["epoch_s"])) if hist["epoch_s"] else float("nan"),
        }
        for split in ("test", "ood"):
            for key, val in metrics.get(split, {}).items():
                row[f"{key}_{split}"] = val
        for key, val in _study_r2(name).items():
            row[f"study_{key}"] = val
        table.append(row)
        card = {
            "feature": name,
            "arch": arch,
            "init": row["init"],
            "model": model.name,
            "input": {"shape": [None, FRAME_LENGTH], "dtype": "float32", "sr": SR, "hop": HOP_LENGTH},
            "output": {"shape": [None, _dim(name)], "units": "librosa"},
            "params": row["params"],
            "trainable_params": row["trainable"],
            "macs_per_frame": row["macs"],
            "layers": [f"{layer.__class__.__name__}:{layer.name}" for layer in model.layers],
            "training": {
                "epochs_max": epochs,
                "epochs_run": hist["epochs_run"],
                "epoch_s": hist["epoch_s"],
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "patience": patience,
                "pad_keep": pad_keep,
                "loss": _loss_for(name, arch, stats if arch == "study" else None),
                "target_stats": stats.to_dict() if stats else None,
                "initial_val_loss": hist["initial_val_loss"],
                "best_val_loss": hist["best_val_loss"],
                "kept_initial": hist["kept_initial"],
                "history": {k: hist[k] for k in ("loss", "val_loss") if k in hist},
            },
            "data": data_card,
            "metrics": metrics,
            "study": _study_r2(name),
            "frames_per_clip": N_FRAMES,
        }
        paths[name] = save_fin(model, out_dir / f"{name}.keras", card)
        cards[name] = card
    df = pd.DataFrame(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_dir / "metrics.csv", index=False)
    return {"table": df, "cards": cards, "paths": paths}
