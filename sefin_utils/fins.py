"""Feature Imitating Networks (FINs): one Keras model per feature of the registry, raw frame in, librosa feature out.

Every FIN maps a batch of raw frames ``(n, 2048)`` (float32, 22,050 Hz) to the feature in librosa's own units and
layout ``(n, dim)``: ``rms`` 1, ``zcr`` 1, ``chroma`` 12, ``mfcc`` 20, ``mel`` 128 (see ``features.FEATURES``).

Three families (``arch``; ``learnt`` is described in ``sefin_utils.learnt``, its trained FINs ship in
``models/fins``):

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

Saved FINs (``.keras``) load with plain ``keras.models.load_model`` after ``import sefin_utils`` (every custom layer
is registered in ``sefin_utils.layers`` under the ``sefin`` package, as soon as Keras is loaded:
``sefin_utils.keras_hook``); :func:`load_fin` does the same with a clear error for a missing file. Training is in
``training`` (one fit loop), what runs and what is written in ``experiments`` (``train_all``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from . import features as _features  # noqa: E402
from .constants import FRAME_LENGTH, SR  # noqa: E402
from .io import read_json, write_json  # noqa: E402
from .layers import (  # noqa: E402
    AMIN,
    CHROMA_TUNINGS,
    DB_SCALE,
    TOP_DB,
    ComplexPower,
    FilterBank,
    FixedScale,
    GatedSum,
    GroupMaxNormalize,
    PowerSpectrum,
    PowerToDb,
    SafeSqrt,
    SoftZeroCrossingRate,
    Square,
    TargetTransform,
    TuningWeights,
)

ARCHS: tuple[str, ...] = ("fast", "study", "learnt")
"""FIN families: ``fast`` (default, feature-shaped, the analytic comparison), ``study`` (the seed study's topologies)
and ``learnt`` (every weight from a random start: ``sefin_utils.learnt``; trained ones ship in :data:`LEARNT_DIR`)."""
LEARNT_DIR: Path = Path(__file__).resolve().parents[1] / "models" / "fins"
"""The shipped learnt FINs (``<feature>.keras`` + card), trained by imitation on the full corpora (issue 13)."""

N_MELS: int = 128
N_MFCC: int = 20
N_CHROMA: int = 12
__all__ = [
    "AMIN",
    "ARCHS",
    "CHROMA_TUNINGS",
    "DB_SCALE",
    "FAST_INITS",
    "TOP_DB",
    "TargetStats",
    "build_fin",
    "check_arch",
    "check_name",
    "count_macs",
    "feature_dim",
    "load_fin",
    "load_fins",
    "load_learnt_fins",
    "LEARNT_DIR",
    "read_card",
    "save_fin",
]


def check_name(name: str) -> str:
    """Return ``name`` if it is a registered feature (``features.FEATURES``); ``ValueError`` naming them otherwise."""
    if name not in _features.FEATURES:
        raise ValueError(f"unknown FIN {name!r}: expected one of {tuple(_features.FEATURES)}")
    return name


def feature_dim(name: str) -> int:
    """Output width of FIN ``name`` (``features.FEATURES[name].dim``)."""
    return _features.FEATURES[check_name(name)].dim


def check_arch(arch: str) -> str:
    """Return ``arch`` if it is one of :data:`ARCHS`; ``ValueError`` otherwise."""
    if arch not in ARCHS:
        raise ValueError(f"unknown FIN arch {arch!r}: expected one of {ARCHS}")
    return arch


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
        kind = kind or _features.FEATURES[check_name(name)].target
        y = np.asarray(y, dtype=np.float64).reshape(-1, feature_dim(name))
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
    return _dense(feature_dim(name), "out", None)(x)


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
    arch : {"fast", "study", "learnt"}
        ``fast`` (feature-shaped, librosa-initialised, default), ``study`` (the study's topology, exact parameter
        count) or ``learnt`` (``learnt.build_learnt_fin``: fixed FFT front end, learnt layers at random; the other
        arguments but ``seed`` do not apply; the pre-trained ones: :func:`load_learnt_fins`).
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
    check_name(name)
    check_arch(arch)
    if arch == "learnt":  # every weight at random (seeded); train with benchmarks/learnt_fins.py or load LEARNT_DIR
        from . import learnt

        return learnt.build_learnt_fin(name, seed=seed)
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
# saving and loading


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
        write_json(path.with_suffix(".json"), card)
    return path


def load_fin(path: str | Path) -> keras.Model:
    """Load a saved FIN (``keras.models.load_model`` with sefin's layers registered; no compile state)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no FIN at {path} (expected a .keras file written by save_fin)")
    return keras.models.load_model(path, compile=False)


def load_learnt_fins(names: Sequence[str] | None = None) -> dict[str, keras.Model]:
    """The shipped learnt FINs (:data:`LEARNT_DIR`; their cards: :func:`read_card`), "FINs pre-trained by imitation"
    for the end-to-end variants: ``{name: model}`` (raw frames ``(n, 2048)`` in, librosa units out)."""
    return load_fins(LEARNT_DIR, names)


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
    return read_json(Path(path).with_suffix(".json"))
