"""sefin's custom Keras layers, registered once under the ``sefin`` package name.

Every layer a FIN or a classifier uses beyond Keras' own: importing this module (``fins``, ``classifiers`` and the
inference bundle do) lets plain ``keras.models.load_model`` rebuild any saved sefin model. The registered names
(``sefin>PowerSpectrum``, ``sefin>FrameClips``, ...) are those models saved before this module existed carry too, so
they load unchanged.

FIN front ends (``fins``)
    :class:`PowerSpectrum`, :class:`ComplexPower`, :class:`SafeSqrt`, :class:`Square`, :class:`PowerToDb`,
    :class:`FilterBank`, :class:`FixedScale`, :class:`GroupMaxNormalize`, :class:`GatedSum`, :class:`TuningWeights`,
    :class:`SoftZeroCrossingRate`, :class:`TargetTransform`.
Learnt FINs (``learnt``)
    :class:`PositiveDense` (a non-negative learnt filterbank), :class:`LogEnergyGate` (a learnt gate over K banks).
Framing and pooling (``classifiers``)
    :class:`FrameClips`, :class:`MergeFrames`, :class:`SplitFrames`, :class:`MaskedMean`.

Layers with a ``macs(input_shape)`` method report their multiply-adds per frame to ``fins.count_macs``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from .constants import FRAME_LENGTH, HOP_LENGTH, N_FRAMES, SR  # noqa: E402

PACKAGE: str = "sefin"
"""The package name every sefin layer is registered under (``keras.saving.register_keras_serializable``)."""
TOP_DB: float = 80.0
"""``librosa.power_to_db``'s default floor below the peak (dB)."""
AMIN: float = 1e-10
"""``librosa.power_to_db``'s default amplitude floor."""
DB_SCALE: float = 100.0
"""MFCC FINs feed dB / DB_SCALE to their DCT-like layer (``FixedScale(1 / DB_SCALE)``) so Adam's steps stay small."""
CHROMA_TUNINGS: tuple[float, ...] = tuple(round(-0.5 + 0.1 * k, 1) for k in range(11))
"""Tunings (fractions of a chroma bin) of the fast chroma FIN's filterbanks; each frame mixes the two nearest to its
estimated tuning."""
PIPTRACK_FMIN: float = 150.0
PIPTRACK_FMAX: float = 4000.0
PIPTRACK_THRESHOLD: float = 0.1
"""``librosa.piptrack``'s defaults (Hz, Hz, share of the frame's peak), as ``librosa.estimate_tuning`` uses them."""
LOG_CAP_STD: float = 8.0
"""The inverse of a ``log`` target transform caps ``log(y)`` at ``mean + LOG_CAP_STD * std`` (no overflow)."""


# --------------------------------------------------------------------------------------------------------------------
# FIN layers


@keras.saving.register_keras_serializable(package=PACKAGE)
class ComplexPower(keras.layers.Layer):
    """``re**2 + im**2`` of two equal-width inputs ``[re, im]``: the power spectrum of a DFT pair."""

    def call(self, inputs: Sequence[Any]) -> Any:
        re, im = inputs
        return ops.square(re) + ops.square(im)

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return tuple(input_shape[0])

    def macs(self, input_shape: Sequence[tuple]) -> int:
        return 2 * int(input_shape[0][-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
class Square(keras.layers.Layer):
    """Element-wise square."""

    def call(self, x: Any) -> Any:
        return ops.square(x)

    def macs(self, input_shape: tuple) -> int:
        return int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


@keras.saving.register_keras_serializable(package=PACKAGE)
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


# --------------------------------------------------------------------------------------------------------------------
# framing and pooling inside the classifiers


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameClips(keras.layers.Layer):
    """Cut (batch, samples) clips into (batch, n_frames, frame_length) frames, center=False, as librosa does."""

    def __init__(
        self,
        *,
        frame_length: int = FRAME_LENGTH,
        hop_length: int = HOP_LENGTH,
        n_frames: int = N_FRAMES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.frame_length, self.hop_length, self.n_frames = int(frame_length), int(hop_length), int(n_frames)
        self._index = (
            np.arange(self.n_frames)[:, None] * self.hop_length + np.arange(self.frame_length)[None, :]
        ).astype("int32")

    def build(self, input_shape: tuple) -> None:
        need = self.frame_length + (self.n_frames - 1) * self.hop_length
        if input_shape[-1] is not None and input_shape[-1] < need:
            raise ValueError(
                f"FrameClips: clips of {input_shape[-1]} samples are shorter than the {need} needed "
                f"for {self.n_frames} frames of {self.frame_length}/{self.hop_length}"
            )

    def call(self, x: Any) -> Any:
        return ops.take(x, self._index, axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.n_frames, self.frame_length)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "frame_length": self.frame_length,
            "hop_length": self.hop_length,
            "n_frames": self.n_frames,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MergeFrames(keras.layers.Layer):
    """(batch, T, d) -> (batch * T, d), so a per-frame model runs once on all frames (no per-step unrolling)."""

    def call(self, x: Any) -> Any:
        return ops.reshape(x, (-1, x.shape[-1]))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None, input_shape[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class SplitFrames(keras.layers.Layer):
    """(batch * n_frames, d) -> (batch, n_frames, d): the inverse of :class:`MergeFrames`."""

    def __init__(self, n_frames: int = N_FRAMES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_frames = int(n_frames)

    def call(self, x: Any) -> Any:
        return ops.reshape(x, (-1, self.n_frames, x.shape[-1]))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None, self.n_frames, input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "n_frames": self.n_frames}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMean(keras.layers.Layer):
    """Mean over frames of ``[x (batch, T, d), mask (batch, T)]`` counting only frames where mask > 0.

    Padding frames are replaced by zeros before the sum, so their content (even NaN) never reaches the output;
    a clip with no real frame gives zeros.
    """

    def call(self, inputs: Sequence[Any]) -> Any:
        x, m = inputs
        m = ops.cast(m, x.dtype)
        keep = ops.expand_dims(m, -1) > 0
        x = ops.where(keep, x, ops.zeros_like(x))
        total = ops.sum(x, axis=1)
        count = ops.maximum(ops.sum(ops.cast(keep, x.dtype), axis=1), 1.0)
        return total / count

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return (input_shape[0][0], input_shape[0][2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedStats(keras.layers.Layer):
    """Statistics pooling: ``[mean, std]`` over frames of ``[x (batch, T, d), mask (batch, T)]`` counting only frames
    where mask > 0 -> (batch, 2 d). Std is ``sqrt(E[(x - E[x])^2] + eps)`` (eps 1e-6 keeps the gradient finite
    on constant inputs). Padding frames never reach the output; a clip with no real frame gives zeros (std sqrt(eps)).
    Source: x-vector statistics pooling (Snyder et al., "X-vectors: robust DNN embeddings", ICASSP 2018).
    """

    def call(self, inputs: Sequence[Any]) -> Any:
        x, m = inputs
        m = ops.cast(m, x.dtype)
        keep = ops.expand_dims(m, -1) > 0
        x = ops.where(keep, x, ops.zeros_like(x))
        count = ops.maximum(ops.sum(ops.cast(keep, x.dtype), axis=1), 1.0)
        mean = ops.sum(x, axis=1) / count
        # two passes (E[(x - mean)^2]), not E[x^2] - E[x]^2: the latter cancels digits on large features (mel power)
        dev = ops.where(keep, x - ops.expand_dims(mean, 1), ops.zeros_like(x))
        std = ops.sqrt(ops.sum(dev * dev, axis=1) / count + 1e-6)
        return ops.concatenate([mean, std], axis=-1)

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return (input_shape[0][0], 2 * input_shape[0][2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class FramesToDb(keras.layers.Layer):
    """Per-frame vectors (batch, T, d) with some components in decibels: component ``i`` becomes
    ``factors[i] * log10(max(x, 10 ** (-100 / factors[i])))`` where ``factors[i] > 0`` (10 for a power, 20 for an
    amplitude: a -100 dB floor, librosa's ``power_to_db`` with ``amin=1e-10``, ``ref=1``, no ``top_db``) and is left
    as it is where ``factors[i] == 0``. The same as :func:`sefin_utils.classifiers.frames_to_db` (tested)."""

    def __init__(self, factors: Sequence[float], **kwargs: Any):
        super().__init__(**kwargs)
        self.factors = [float(f) for f in factors]
        f = np.asarray(self.factors, dtype="float32")
        if f.ndim != 1 or (f < 0).any():
            raise ValueError(f"factors must be a 1-D list of values >= 0, got {factors!r}")
        self._f = f
        self._amin = np.where(f > 0, 10.0 ** (-100.0 / np.maximum(f, 1e-9)), 1.0).astype("float32")

    def call(self, x: Any) -> Any:
        f = ops.cast(self._f, x.dtype)
        db = (f / math.log(10.0)) * ops.log(ops.maximum(x, ops.cast(self._amin, x.dtype)))
        return ops.where(f > 0, db, x)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "factors": self.factors}

    def macs(self, input_shape: tuple) -> int:
        return 3 * int(np.prod(input_shape[1:]))


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedFrames(keras.layers.Layer):
    """Zero the padding frames of ``[x (batch, T, d), mask (batch, T)]`` (so a convolution sees silence there)."""

    def call(self, inputs: Sequence[Any]) -> Any:
        x, m = inputs
        keep = ops.expand_dims(ops.cast(m, x.dtype), -1) > 0
        return ops.where(keep, x, ops.zeros_like(x))

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return tuple(input_shape[0])


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedAttentionPool(keras.layers.Layer):
    """Attentive pooling: ``[x (batch, T, d), scores (batch, T, 1), mask (batch, T)]`` -> (batch, d), the
    softmax(scores)-weighted sum over the real frames only (padding frames get weight 0; a clip with no real frame
    gives zeros). Source: attentive pooling for utterance embeddings (Okabe et al., Interspeech 2018, without std).
    """

    def call(self, inputs: Sequence[Any]) -> Any:
        x, s, m = inputs
        keep = ops.cast(m, x.dtype) > 0
        s = ops.squeeze(s, -1)
        s = ops.where(keep, s, ops.full_like(s, -1e9))
        w = ops.softmax(s, axis=1) * ops.cast(keep, x.dtype)
        w = w / ops.maximum(ops.sum(w, axis=1, keepdims=True), 1e-9)
        return ops.sum(x * ops.expand_dims(w, -1), axis=1)

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        return (input_shape[0][0], input_shape[0][2])


# --------------------------------------------------------------------------------------------------------------------
# learnt FIN layers (sefin_utils.learnt)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositiveDense(keras.layers.Layer):
    """A non-negative linear map ``x @ exp(log_kernel)`` (a learnt filterbank; no bias).

    ``log_kernel`` starts at ``N(-log(fan_in) + init_offset, init_std)`` (seeded): random, positive, fan-in scaled.
    The log parameterisation makes Adam's steps relative, so a weight can shrink by orders of magnitude (a band
    that should ignore a frequency) without dying at zero as a ReLU-clipped kernel would.
    """

    def __init__(self, units: int, init_std: float = 1.0, init_offset: float = 0.0, seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.units, self.init_std, self.init_offset, self.seed = (
            int(units),
            float(init_std),
            float(init_offset),
            int(seed),
        )

    def build(self, input_shape: tuple) -> None:
        fan_in = int(input_shape[-1])
        init = keras.initializers.RandomNormal(
            mean=-math.log(fan_in) + self.init_offset, stddev=self.init_std, seed=self.seed
        )
        self.log_kernel = self.add_weight(name="log_kernel", shape=(fan_in, self.units), initializer=init)

    def call(self, x: Any) -> Any:
        return ops.matmul(x, ops.exp(self.log_kernel))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        cfg = {"units": self.units, "init_std": self.init_std, "init_offset": self.init_offset, "seed": self.seed}
        return {**super().get_config(), **cfg}

    def macs(self, input_shape: tuple) -> int:
        return int(input_shape[-1]) * self.units


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogEnergyGate(keras.layers.Layer):
    """Learnt gate over K banks: ``softmax(Dense(log(bank + eps) - max))`` of the raw banks ``(n, K * d)`` -> (n, K).

    The log makes the gate see the banks' energy pattern independent of loudness (the row maximum is subtracted).
    """

    def __init__(self, groups: int, hidden: int = 64, eps: float = 1e-6, seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.groups, self.hidden, self.eps, self.seed = int(groups), int(hidden), float(eps), int(seed)
        self.h = keras.layers.Dense(
            self.hidden, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
        )
        self.o = keras.layers.Dense(self.groups, kernel_initializer=keras.initializers.GlorotUniform(seed + 1))

    def build(self, input_shape: tuple) -> None:
        self.h.build(input_shape)
        self.o.build((*input_shape[:-1], self.hidden))

    def call(self, x: Any) -> Any:
        lx = ops.log(x + self.eps * ops.max(x, axis=-1, keepdims=True) + 1e-30)
        lx = lx - ops.max(lx, axis=-1, keepdims=True)
        return ops.softmax(self.o(self.h(lx)), axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.groups)

    def get_config(self) -> dict:
        cfg = {"groups": self.groups, "hidden": self.hidden, "eps": self.eps, "seed": self.seed}
        return {**super().get_config(), **cfg}

    def macs(self, input_shape: tuple) -> int:
        d = int(input_shape[-1])
        return 3 * d + d * self.hidden + self.hidden * self.groups + 3 * self.groups


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
    FrameClips,
    MergeFrames,
    SplitFrames,
    MaskedMean,
    MaskedStats,
    MaskedFrames,
    MaskedAttentionPool,
    PositiveDense,
    LogEnergyGate,
)
"""Every sefin layer (all registered under :data:`PACKAGE`)."""
