"""Learnt FINs: the five features imitated by networks whose weights all start at random (issue 13).

Every model maps raw frames ``(n, 2048)`` (float32, 22,050 Hz) to the feature in librosa's units ``(n, dim)``, as the
other FIN families do (``fins.build_fin``), and is built from three kinds of parts:

fixed, declared DSP (no weights)
    the Hann-windowed power spectrum by real FFT (``layers.PowerSpectrum``; chroma, MFCC, mel), element-wise square /
    square root, ``power_to_db`` with the per-frame 80 dB floor (MFCC), max-normalisation (chroma), the soft sign of
    the zero-crossing layer and, for chroma only, librosa's per-frame tuning estimate used as gating weights over K
    learnt banks (``layers.TuningWeights``: piptrack peaks, median, 100-bin histogram; see ``CHROMA_GATES``).
learnt weights, drawn at random (seeded)
    non-negative banks :class:`PositiveDense` (``x @ exp(log_kernel)``, ``log_kernel ~ N(-log(fan_in), 1)``: no
    librosa mel/chroma matrix), Dense layers with Glorot-uniform kernels (no DCT), the zero-crossing layer's four
    scalars drawn as in ``fins._randomise``.
fixed output scaling
    ``layers.TargetTransform`` (inverse, linear) with the training targets' mean and std, so that the last
    Dense layer predicts standardised values while the model outputs librosa units (no weights).

Topologies (multiply-adds per frame: :func:`fins.count_macs`):

- ``rms``: square -> :class:`PositiveDense` (2048 -> 1) -> sqrt -> Dense(1) -> de-standardise;
- ``zcr``: ``layers.SoftZeroCrossingRate`` (soft sign, neighbour products, 4 learnt scalars);
- ``mel``: power spectrum -> :class:`PositiveDense` (1025 -> 128);
- ``mfcc``: power spectrum -> :class:`PositiveDense` (1025 -> 128) -> power_to_db (80 dB floor) / 100 -> Dense(20)
  -> de-standardise (the shipped one's bank warm-started from the learnt mel FIN's: ``train_head(warm_start=...)``);
- ``chroma``: |STFT| -> :class:`PositiveDense` (1025 -> 12 K) -> max-normalise each of the K groups -> mix the K
  by the gate (``tuning``: librosa's per-frame tuning estimate, fixed DSP; ``learnt``: softmax of a Dense layer on
  the log of the K banks' energies).

Training (:func:`train_head`) works on precomputed front-end outputs (power spectra, raw frames) and the exact
labels of ``features.labels_from_frames``: Adam, cosine learning-rate decay, early stopping on a validation split of
train speakers. The loss is MSE in a standardised space per feature (:func:`loss_for`): standardised values for rms,
zcr, chroma and MFCC; for mel ``log(mel + 1e-10)`` centred per band and scaled by the bands' pooled std, plus a
small power-domain term.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from . import features  # noqa: E402
from . import layers as lyr  # noqa: E402
from .constants import FRAME_LENGTH  # noqa: E402
from .layers import LogEnergyGate, PositiveDense  # noqa: E402  (registered in layers; re-exported)

__all__ = [
    "CHROMA_GATES",
    "FRONT_ENDS",
    "LEARNT_NAMES",
    "PositiveDense",
    "LogEnergyGate",
    "build_head",
    "build_learnt_fin",
    "front_end",
    "loss_for",
    "train_head",
    "WallClockCosine",
    "HPARAMS",
    "power_spectrum",
]

LEARNT_NAMES: tuple[str, ...] = ("rms", "zcr", "chroma", "mfcc", "mel")
"""The five learnt FINs."""
FRONT_ENDS: dict[str, str] = {"rms": "frames", "zcr": "frames", "chroma": "power", "mfcc": "power", "mel": "power"}
"""Fixed front end of each learnt FIN: the raw frame or its Hann-windowed FFT power spectrum (1025 bins)."""
N_BINS: int = FRAME_LENGTH // 2 + 1
CHROMA_GATES: tuple[str, ...] = ("tuning", "learnt")
"""How the chroma FIN mixes its K learnt banks: ``tuning`` = librosa's per-frame tuning estimate (fixed DSP,
``layers.TuningWeights``), ``learnt`` = a learnt softmax gate (:class:`LogEnergyGate`)."""
HPARAMS: dict[str, dict[str, Any]] = {
    "rms": {"epochs": 8, "batch": 512, "lr": 5e-2, "frames": 100_000},
    "zcr": {"epochs": 8, "batch": 512, "lr": 1e-2, "frames": 100_000},
    "chroma": {"epochs": 12, "batch": 256, "lr": 2e-2, "frames": 150_000},
    "mel": {"epochs": 12, "batch": 256, "lr": 5e-2, "frames": None},
    "mfcc": {"epochs": 8, "batch": 256, "lr": 1e-2, "frames": None},
}
"""Per-FIN training settings of the shipped learnt FINs (``benchmarks/learnt_fins.py``; a run's ``fin_arch: learnt``
takes ``batch`` and ``lr``): Adam's peak learning rate, frames per batch, epochs and train frames drawn from the frame
store (None = all)."""
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FRAME_LENGTH) / FRAME_LENGTH)


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """The fixed front end in NumPy: ``|rfft(hann * frame)|**2`` per row (float64 FFT, float32 result), (n, 2048) ->
    (n, 1025); the formula of ``layers.PowerSpectrum`` (periodic Hann, as ``scipy.signal.get_window("hann")``)."""
    spec = np.fft.rfft(np.asarray(frames, dtype=np.float64) * _WINDOW, axis=-1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


MEL_EPS: float = 1e-10


# --------------------------------------------------------------------------------------------------------------------
# builders


def front_end(name: str, x: Any) -> Any:
    """The fixed front end of FIN ``name`` applied to raw frames ``x`` (n, 2048): the frame or its power spectrum."""
    return lyr.PowerSpectrum(name="power")(x) if FRONT_ENDS[name] == "power" else x


def _graph(
    name: str,
    x: Any,
    layers: dict[str, keras.layers.Layer],
    *,
    target_mean: Any = 0.0,
    target_std: Any = 1.0,
    seed: int = 0,
    chroma_banks: int = 11,
    chroma_gate: str = "tuning",
    gate_hidden: int = 64,
    bank_init_std: float = 1.0,
    gate_tensor: Any = None,
) -> Any:
    """Apply FIN ``name``'s learnt part to front-end output ``x``; layers are taken from / created into ``layers``
    (so that the head and the full model share them)."""
    glorot = keras.initializers.GlorotUniform
    dim = features.FEATURES[name].dim

    def get(key: str, ctor: Callable[[], keras.layers.Layer]) -> keras.layers.Layer:
        if key not in layers:
            layers[key] = ctor()
        return layers[key]

    def destd(z: Any) -> Any:
        mean = np.broadcast_to(np.asarray(target_mean, dtype=np.float64), (dim,))
        std = np.broadcast_to(np.asarray(target_std, dtype=np.float64), (dim,))
        return get("to_feature", lambda: lyr.TargetTransform("linear", mean, std, inverse=True, name="to_feature"))(z)

    if name == "rms":
        x = get("square", lambda: lyr.Square(name="square"))(x)
        x = get("energy", lambda: PositiveDense(1, init_std=0.5, seed=seed, name="energy"))(x)
        x = get("sqrt", lambda: lyr.SafeSqrt(name="sqrt"))(x)
        return destd(
            get("affine", lambda: keras.layers.Dense(1, kernel_initializer=glorot(seed + 1), name="affine"))(x)
        )
    if name == "zcr":
        new = "zcr" not in layers
        layer = get("zcr", lambda: lyr.SoftZeroCrossingRate(name="zcr"))
        y = layer(x)
        if new:  # the four scalars drawn at random, as fins._randomise does for the fast family
            rng = np.random.default_rng(seed)
            draw = (rng.uniform(np.log(30), np.log(3e4)), rng.uniform(0, 5), -rng.uniform(), rng.uniform())
            layer.set_weights([np.float32(v) for v in draw])
        return y
    if name == "mel":
        return get(
            "mel_bank", lambda: PositiveDense(features.N_MELS, init_std=bank_init_std, seed=seed, name="mel_bank")
        )(x)
    if name == "mfcc":
        m = get("mel_bank", lambda: PositiveDense(features.N_MELS, init_std=bank_init_std, seed=seed, name="mel_bank"))(
            x
        )
        db = get("power_to_db", lambda: lyr.PowerToDb(name="power_to_db"))(m)
        db = get("db_scaled", lambda: lyr.FixedScale([1.0 / lyr.DB_SCALE], name="db_scaled"))(db)
        cep = get(
            "cepstrum",
            lambda: keras.layers.Dense(features.N_MFCC, kernel_initializer=glorot(seed + 1), name="cepstrum"),
        )
        return destd(cep(db))
    if chroma_gate not in CHROMA_GATES:
        raise ValueError(f"chroma_gate must be one of {CHROMA_GATES}, got {chroma_gate!r}")
    k = int(chroma_banks)
    mag = get("magnitude", lambda: lyr.SafeSqrt(name="magnitude"))(x)
    raw = get(
        "chroma_banks",
        lambda: PositiveDense(features.N_CHROMA * k, init_std=bank_init_std, seed=seed, name="chroma_banks"),
    )(mag)
    bank = get("normalize", lambda: lyr.GroupMaxNormalize(groups=k, name="normalize"))(raw)
    if gate_tensor is not None:  # training on precomputed tuning weights (the fixed DSP run once)
        gate = gate_tensor
    elif chroma_gate == "tuning":
        grid = tuple(float(t) for t in np.linspace(-0.5, 0.5, k))
        gate = get("tuning", lambda: lyr.TuningWeights(tunings=grid, name="tuning"))(mag)
    else:
        gate = get("gate", lambda: LogEnergyGate(k, hidden=gate_hidden, seed=seed + 2, name="gate"))(raw)
    return get("mix", lambda: lyr.GatedSum(softmax=False, name="mix"))([bank, gate])


def build_head(name: str, layers: dict[str, keras.layers.Layer] | None = None, **kwargs: Any) -> keras.Model:
    """The learnt part of FIN ``name``: front-end output in (``(n, 2048)`` frame or ``(n, 1025)`` power spectrum),
    feature ``(n, dim)`` out; named ``learnt_<name>_head``.

    Parameters
    ----------
    name : str
        One of :data:`LEARNT_NAMES`.
    layers : dict, optional
        Layer store shared with :func:`build_learnt_fin` (filled here when empty); kept as ``model.learnt_layers``.
    **kwargs
        ``target_mean``/``target_std`` (training targets' statistics: rms and MFCC's fixed de-standardising output),
        ``seed`` (every random initialiser), ``chroma_banks`` (K, default 11), ``chroma_gate`` (:data:`CHROMA_GATES`),
        ``gate_hidden`` (the learnt gate's hidden width).

    Raises
    ------
    ValueError
        Unknown feature or chroma gate.
    """
    if name not in LEARNT_NAMES:
        raise ValueError(f"unknown learnt FIN {name!r}: expected one of {LEARNT_NAMES}")
    layers = {} if layers is None else layers
    width = FRAME_LENGTH if FRONT_ENDS[name] == "frames" else N_BINS
    inp = keras.Input((width,), dtype="float32", name="front")
    model = keras.Model(inp, _graph(name, inp, layers, **kwargs), name=f"learnt_{name}_head")
    model.learnt_layers = layers
    model.learnt_kwargs = dict(kwargs)
    return model


def build_learnt_fin(name: str, head: keras.Model | None = None, **kwargs: Any) -> keras.Model:
    """The full learnt FIN: raw frames ``(n, 2048)`` float32 -> fixed front end -> learnt part -> feature
    ``(n, dim)`` in librosa units; named ``fin_<name>_learnt``.

    ``head`` (from :func:`build_head` / :func:`train_head`) lends its layers and weights; without it the layers are
    built at random from ``kwargs`` (see :func:`build_head`).
    """
    if name not in LEARNT_NAMES:
        raise ValueError(f"unknown learnt FIN {name!r}: expected one of {LEARNT_NAMES}")
    layers = head.learnt_layers if head is not None else {}
    kwargs = head.learnt_kwargs if head is not None else kwargs
    inp = keras.Input((FRAME_LENGTH,), dtype="float32", name="frame")
    y = _graph(name, front_end(name, inp), layers, **kwargs)
    return keras.Model(inp, y, name=f"fin_{name}_learnt")


# --------------------------------------------------------------------------------------------------------------------
# training


def tuning_weights(power: np.ndarray, banks: int = 11, batch: int = 2048) -> np.ndarray:
    """The chroma FIN's fixed gate on precomputed power spectra ``(n, 1025)``: ``layers.TuningWeights`` of
    ``sqrt(power)`` over ``banks`` tunings evenly spaced on [-0.5, 0.5]; ``(n, banks)`` float32."""
    grid = tuple(float(t) for t in np.linspace(-0.5, 0.5, banks))
    layer = lyr.TuningWeights(tunings=grid)
    out = [
        np.asarray(layer(np.sqrt(np.maximum(np.asarray(power[i : i + batch], np.float32), 0.0))), np.float32)
        for i in range(0, len(power), batch)
    ]
    return np.concatenate(out)


def loss_for(name: str, y_train: np.ndarray, *, power_weight: float = 0.1) -> Callable[[Any, Any], Any]:
    """The training loss of FIN ``name`` on labels ``y_true`` and outputs ``y_pred`` in librosa units.

    MSE in a standardised space fitted on ``y_train`` ``(n, dim)``: standardised values (rms, zcr, chroma, MFCC: the
    loss is then ``1 - R²`` averaged over dimensions) or, for mel, ``log(mel + 1e-10)`` centred per band and scaled
    by the bands' pooled std, plus ``power_weight`` times the squared error summed over bands / the summed band
    variances (``1 - R²_vw`` in
    expectation: the term the variance-weighted R² scores).
    """
    y64 = np.asarray(y_train, dtype=np.float64)
    std_t = ops.convert_to_tensor(np.maximum(y64.std(axis=0), 1e-12).astype(np.float32))
    if name != "mel":

        def mse(y_true: Any, y_pred: Any) -> Any:
            return ops.mean(ops.square((y_pred - y_true) / std_t), axis=-1)

        return mse
    total_var = float(np.sum(y64.var(axis=0)))  # 1 - variance-weighted R² = sum of SSE / sum of variances
    ly = np.log(y64 + MEL_EPS)
    lmean_t = ops.convert_to_tensor(ly.mean(axis=0).astype(np.float32))
    # one pooled scale for all bands: bands above 8 kHz are ~0 for 16 kHz sources (CREMA-D), so per-band log stds
    # can be ~1e-4 and would blow up their weight
    lstd_t = ops.convert_to_tensor(np.float32(np.sqrt(np.mean(ly.var(axis=0)))))
    pw = float(power_weight)

    def mel_loss(y_true: Any, y_pred: Any) -> Any:
        lt = (ops.log(y_true + MEL_EPS) - lmean_t) / lstd_t
        lp = (ops.log(ops.maximum(y_pred, 0.0) + MEL_EPS) - lmean_t) / lstd_t
        power = ops.sum(ops.square(y_pred - y_true), axis=-1) / total_var
        return ops.mean(ops.square(lp - lt), axis=-1) + pw * power

    return mel_loss


def train_head(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 512,
    lr: float = 3e-3,
    patience: int = 5,
    max_seconds: float | None = None,
    verbose: int = 2,
    power_weight: float = 0.1,
    warm_start: dict[str, list[np.ndarray]] | None = None,
    budget_seconds: float | None = None,
    **head_kwargs: Any,
) -> tuple[keras.Model, dict]:
    """Train the learnt head of FIN ``name`` on front-end outputs; returns the head (best validation weights) and
    a log (epochs run, seconds, per-epoch losses, frames seen).

    ``budget_seconds`` (a wall-clock budget, e.g. ``benchmarks/fin_budget.py``) replaces the epoch-planned schedule:
    the learning rate decays from ``lr`` on a cosine over the budget's seconds (:class:`WallClockCosine`), training
    stops at the first batch past the budget (mid-epoch), and the final weights are kept (no early stopping; ``x_val``
    may then be None). The clock starts before the chroma gate's precompute, which the budget therefore includes.
    """
    t0 = time.time()  # the training time includes the chroma gate's one-off precompute
    keras.utils.set_random_seed(seed)
    y64 = np.asarray(y_train, dtype=np.float64)
    mean, std = y64.mean(axis=0), np.maximum(y64.std(axis=0), 1e-12)
    head = build_head(name, target_mean=mean, target_std=std, seed=seed, **head_kwargs)
    for layer_name, weights in (warm_start or {}).items():  # e.g. MFCC's bank from the learnt mel FIN's
        head.get_layer(layer_name).set_weights(weights)
    loss = loss_for(name, y_train, power_weight=power_weight)
    fit_model = head
    if name == "chroma" and head_kwargs.get("chroma_gate", "tuning") == "tuning":
        # the fixed tuning gate is computed once here, not in every epoch: train a two-input twin sharing the layers
        k = int(head_kwargs.get("chroma_banks", 11))
        t_gate = time.time()
        x_train = [x_train, tuning_weights(x_train, k)]
        x_val = [x_val, tuning_weights(x_val, k)] if x_val is not None else None
        n_val = len(x_val[0]) if x_val is not None else 0
        print(f"   chroma: tuning gate of {len(x_train[0])} + {n_val} frames in {time.time() - t_gate:.0f} s")
        inp = keras.Input((N_BINS,), dtype="float32", name="front")
        w_in = keras.Input((k,), dtype="float32", name="gate")
        kw = {**head.learnt_kwargs, "gate_tensor": w_in}
        fit_model = keras.Model([inp, w_in], _graph(name, inp, head.learnt_layers, **kw), name="learnt_chroma_fit")
    clock: WallClockCosine | None = None
    if budget_seconds is not None:
        clock = WallClockCosine(lr, budget_seconds, t0, n=len(y_train), batch_size=batch_size)
        fit_model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
        cbs: list[keras.callbacks.Callback] = [clock]
    else:
        steps = epochs * math.ceil(len(y_train) / batch_size)
        sched = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps, alpha=0.01)
        fit_model.compile(optimizer=keras.optimizers.Adam(sched), loss=loss)
        cbs = [keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True, monitor="val_loss")]
        if max_seconds:
            cbs.append(_TimeLimit(max_seconds, t0))
    hist = fit_model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val) if x_val is not None else None,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=cbs,
        verbose=verbose,
    )
    log = {
        "epochs": len(hist.history["loss"]),
        "seconds": round(time.time() - t0, 1),
        "frames_seen": clock.frames if clock is not None else len(hist.history["loss"]) * len(y_train),
        "loss": [float(v) for v in hist.history["loss"]],
        "val_loss": [float(v) for v in hist.history.get("val_loss", [])],
        "target_mean": mean.tolist(),
        "target_std": std.tolist(),
    }
    return head, log


class WallClockCosine(keras.callbacks.Callback):
    """Cosine learning-rate decay over a wall-clock budget, stopping at the first batch past it.

    The learning rate at elapsed time ``t`` (seconds since ``t0``) is ``lr * (alpha + (1 - alpha) * (1 + cos(pi *
    min(t / seconds, 1))) / 2)`` (Keras' ``CosineDecay`` with time for steps), set before every batch; the model must
    be compiled with a float learning rate. ``frames`` counts the training examples seen (``n`` per epoch, batches of
    ``batch_size``, the last one shorter).
    """

    def __init__(self, lr: float, seconds: float, t0: float, *, n: int, batch_size: int, alpha: float = 0.01):
        super().__init__()
        self.lr, self.seconds, self.t0, self.alpha = float(lr), float(seconds), float(t0), float(alpha)
        self.n, self.batch_size = int(n), int(batch_size)
        self.frames = 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        frac = min((time.time() - self.t0) / self.seconds, 1.0)
        lr = self.lr * (self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + math.cos(math.pi * frac)))
        self.model.optimizer.learning_rate.assign(lr)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.frames += min(self.batch_size, self.n - batch * self.batch_size)
        if time.time() - self.t0 >= self.seconds:
            self.model.stop_training = True


class _TimeLimit(keras.callbacks.Callback):
    def __init__(self, seconds: float, t0: float):
        super().__init__()
        self.seconds, self.t0 = seconds, t0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if time.time() - self.t0 > self.seconds:
            self.model.stop_training = True
