"""Emotion classifiers: heads, the Kaggle baseline, end-to-end models fed by FINs or librosa features, their inputs,
the ablation codes.

Every model is a Keras 3 functional model whose inputs are named, so ``model.predict(dict)`` takes the dictionary
that :func:`make_inputs` (from a ClipStore) or :func:`inputs_from_clips` (from raw audio) returns.

Baseline (:func:`build_baseline`)
    ``summary`` (None, 162): the Kaggle summary vector (ZCR 1 | Chroma 12 | MFCC 20 | RMS 1 | Mel 128) ->
    per-feature standardisation (a ``Normalization`` layer holding the train mean/variance, saved in the model) ->
    a head.

End-to-end (:func:`build_end_to_end`)
    ``clip`` (None, 55125) raw samples, framed *inside* the model by :class:`FrameClips` (center=False, 2048/512,
    104 frames: the same frames as the librosa labels), ``mask`` (None, 104) float, 1 where the frame overlaps real
    audio, and one input per librosa-sourced feature named after it, (None, 104, dim). Each FIN-sourced feature is
    its FIN applied to all frames at once (reshaped to (batch * 104, 2048)); the per-frame 162-vectors are stacked in
    ``features.SUMMARY_ORDER``, averaged over the real frames only (:class:`MaskedMean`), standardised per feature
    (train-label statistics, so FIN and librosa inputs share one scale) and passed to the head. ``clip`` is an input
    only when at least one feature comes from a FIN.

Heads (:func:`build_head`)
    ``kaggle``: Conv1D 256-256-128-64 (kernel 5, 'same'), each followed by MaxPool(5, strides 2, 'same'), dropout
    0.2 after the third, Dense 32 + dropout 0.3, softmax. ``study``: the study's "new CNN" (1,283,720 parameters for
    8 classes and 162 inputs).

The per-frame vector is a ``features.Composition`` (default ``features.KAGGLE``, 162 values); a composition that adds
a registered feature feeds the same models. Training is in ``training``; what runs and what is written (the
protocol, ``run_experiments``) in ``experiments``. The custom layers live in ``layers``.

Examples
--------
>>> import numpy as np
>>> model = build_baseline("study", 8, norm_mean=np.zeros(162), norm_var=np.ones(162))
>>> model.count_params()
1283720
>>> len(ABLATION), ABLATION["F-L-F-L-F"]["zcr"]
(32, 'librosa')
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers
from tqdm.auto import tqdm

from sefin_utils.constants import CLIP_SAMPLES, FRAME_LENGTH, N_FRAMES
from sefin_utils.features import ABLATION_SOURCES, FEATURES, KAGGLE, SUMMARY_ORDER, Composition
from sefin_utils.layers import (
    FilterBank,
    FrameClips,
    FramesToDb,
    MaskedAttentionPool,
    MaskedFrames,
    MaskedMean,
    MaskedStats,
    MergeFrames,
    SoftZeroCrossingRate,
    SplitFrames,
)

FEATURE_NAMES: tuple[str, ...] = KAGGLE.features
"""The Kaggle vector's features in registry order (rms, zcr, chroma, mfcc, mel): the order of ablation codes."""
FEATURE_DIMS: dict[str, int] = {n: FEATURES[n].dim for n in FEATURE_NAMES}
N_SUMMARY: int = KAGGLE.dim  # 162
HEADS: tuple[str, ...] = ("kaggle", "study")
SOURCES: tuple[str, ...] = ABLATION_SOURCES
FIN_INITS: tuple[str, ...] = ("pretrained", "random")
FRAME_SCALES: tuple[str, ...] = ("linear", "db")
"""How a classifier reads the per-frame vectors before pooling: ``linear`` (the values as librosa gives them: mel
power, RMS amplitude; the study's) or ``db`` (mel and RMS in decibels, :func:`frames_to_db`)."""
POOLINGS: tuple[str, ...] = ("mean", "stats", "temporal")
"""How the per-frame vectors become one clip vector: ``mean`` (the study's masked mean -> head), ``stats`` (masked
mean and std over real frames, 2 x 162 -> head), ``temporal`` (per-frame standardisation -> two masked Conv1D 64
(kernel 5, ReLU) over frames -> masked attentive pooling -> dropout -> softmax; no head)."""
TEMPORAL_FILTERS: int = 64
TEMPORAL_KERNEL: int = 5


def _check_sources(sources: Mapping[str, str], composition: Composition = KAGGLE) -> None:
    composition.check_sources(sources)


def ablation_code(sources: Mapping[str, str], composition: Composition = KAGGLE) -> str:
    """Short name of a source mix in registry order, e.g. ``"F-F-L-F-L"`` (rms, zcr, chroma, mfcc, mel)."""
    return composition.ablation_code(sources)


def sources_from_code(code: str, composition: Composition = KAGGLE) -> dict[str, str]:
    """Inverse of :func:`ablation_code`."""
    return composition.sources_from_code(code)


ABLATION: dict[str, dict[str, str]] = KAGGLE.ablation()
"""The 32 feature-source mixes: code (``"F-L-F-F-L"``) -> {feature: "fin" | "librosa"}, each exactly once."""

ALL_FIN: dict[str, str] = {n: "fin" for n in FEATURE_NAMES}


# ----------------------------------------------------------------------------------------------------------- heads
class _Seeds:
    """Deterministic per-layer seeds derived from one model seed (no global RNG)."""

    def __init__(self, seed: int) -> None:
        self._counter = itertools.count(int(seed) * 1_000 + 1)

    def __call__(self) -> int:
        return next(self._counter)

    def glorot(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=self())


def _conv(x: Any, filters: int, kernel: int, name: str, s: _Seeds, activation: str | None = "relu") -> Any:
    return layers.Conv1D(
        filters, kernel, padding="same", activation=activation, kernel_initializer=s.glorot(), name=name
    )(x)


def _kaggle_head(x: Any, n_classes: int, s: _Seeds, dropout: float | None = None) -> Any:
    for i, filters in enumerate((256, 256, 128, 64)):
        x = _conv(x, filters, 5, f"head_conv{i + 1}", s)
        x = layers.MaxPooling1D(pool_size=5, strides=2, padding="same", name=f"head_pool{i + 1}")(x)
        if i == 2:
            x = layers.Dropout(0.2 if dropout is None else dropout, seed=s(), name="head_drop3")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(32, activation="relu", kernel_initializer=s.glorot(), name="head_dense")(x)
    x = layers.Dropout(0.3 if dropout is None else dropout, seed=s(), name="head_drop_dense")(x)
    return layers.Dense(n_classes, activation="softmax", kernel_initializer=s.glorot(), name="probs")(x)


def _study_head(x: Any, n_classes: int, s: _Seeds, dropout: float | None = None) -> Any:
    rate = 0.25 if dropout is None else dropout
    x = _conv(x, 256, 8, "head_conv1", s)
    x = _conv(x, 256, 8, "head_conv2", s, activation=None)
    x = layers.BatchNormalization(name="head_bn1")(x)
    x = layers.Activation("relu", name="head_relu2")(x)
    x = layers.Dropout(rate, seed=s(), name="head_drop1")(x)
    x = layers.MaxPooling1D(pool_size=8, name="head_pool1")(x)
    for i in range(3):
        x = _conv(x, 128, 8, f"head_conv{i + 3}", s)
    x = _conv(x, 128, 8, "head_conv6", s, activation=None)
    x = layers.BatchNormalization(name="head_bn2")(x)
    x = layers.Activation("relu", name="head_relu6")(x)
    x = layers.Dropout(rate, seed=s(), name="head_drop2")(x)
    x = layers.MaxPooling1D(pool_size=8, name="head_pool2")(x)
    x = _conv(x, 64, 8, "head_conv7", s)
    x = _conv(x, 64, 8, "head_conv8", s)
    x = layers.Flatten(name="head_flatten")(x)
    return layers.Dense(n_classes, activation="softmax", kernel_initializer=s.glorot(), name="probs")(x)


def build_head(x: Any, head: str, n_classes: int, *, seed: int = 0, dropout: float | None = None) -> Any:
    """Apply a classification head to a (batch, 162) tensor (treated as a (162, 1) sequence); returns probs.

    ``dropout`` replaces every dropout rate of the head (None: the study's rates, 0.2/0.3 kaggle, 0.25 study)."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    x = layers.Reshape((x.shape[-1], 1), name="as_sequence")(x)
    builder = _kaggle_head if head == "kaggle" else _study_head
    return builder(x, n_classes, _Seeds(seed), dropout)


def _normalization(norm_mean: np.ndarray | None, norm_var: np.ndarray | None, n: int) -> layers.Normalization:
    if norm_mean is None or norm_var is None:
        raise ValueError("standardisation needs norm_mean and norm_var (train statistics); see norm_stats()")
    mean = np.asarray(norm_mean, dtype="float32").reshape(-1)
    var = np.asarray(norm_var, dtype="float32").reshape(-1)
    if mean.shape != (n,) or var.shape != (n,):
        raise ValueError(f"norm_mean/norm_var must have shape ({n},), got {mean.shape} and {var.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(var).all()) or (var < 0).any():
        raise ValueError("norm_mean/norm_var must be finite and the variance non-negative")
    return layers.Normalization(mean=mean.tolist(), variance=var.tolist(), name="standardize")


def norm_stats(x: np.ndarray, *, min_var: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and variance of (n, d) train vectors; constant columns get variance 1 (left unscaled)."""
    x = np.asarray(x, dtype="float64")
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"norm_stats expects a non-empty (n, d) array, got shape {x.shape}")
    mean, var = x.mean(axis=0), x.var(axis=0)
    var = np.where(var < min_var, 1.0, var)
    return mean.astype("float32"), var.astype("float32")


# ---------------------------------------------------------------------------------------------------------- models
def build_baseline(
    head: str,
    n_classes: int,
    *,
    norm_mean: np.ndarray | None = None,
    norm_var: np.ndarray | None = None,
    standardize: bool = True,
    n_inputs: int = N_SUMMARY,
    seed: int = 0,
    dropout: float | None = None,
) -> keras.Model:
    """The Kaggle baseline: input ``summary`` (None, 162) -> per-feature standardisation -> head.

    Parameters
    ----------
    head : "kaggle" or "study".
    n_classes : number of output classes.
    norm_mean, norm_var : (162,) train statistics (:func:`norm_stats` of the train summary vectors), stored in
        the model's ``Normalization`` layer so a saved model needs no external scaler.
    standardize : False reproduces the study's flaw (raw features straight into the CNN).
    seed : initialiser and dropout seed.
    """
    inp = keras.Input(shape=(n_inputs,), name="summary")
    x = _normalization(norm_mean, norm_var, n_inputs)(inp) if standardize else inp
    out = build_head(x, head, n_classes, seed=seed, dropout=dropout)
    suffix = "" if standardize else "_raw"
    return keras.Model(inputs={"summary": inp}, outputs=out, name=f"baseline_{head}{suffix}")


def _reseed_config(cfg: Any, s: _Seeds) -> Any:
    """Give every initializer/dropout in a layer config a fresh deterministic seed (for re-initialised clones)."""
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            if k == "seed" and (v is None or isinstance(v, int)):
                out[k] = s()
            else:
                out[k] = _reseed_config(v, s)
        return out
    if isinstance(cfg, list):
        return [_reseed_config(v, s) for v in cfg]
    return cfg


def clone_fin(fin: keras.Model, *, init: str = "pretrained", seed: int = 0) -> keras.Model:
    """An independent copy of a FIN: same weights (``pretrained``) or re-initialised (``random``, seeded).

    ``random``: every seeded initializer gets a fresh seed; a ``fast`` FIN (one with a ``FilterBank`` or a
    ``SoftZeroCrossingRate``) is then drawn as ``fins.build_fin(init="random")`` draws it (``fins._randomise``:
    filterbanks U(0, 1), Dense kernels N(0, 1/fan_in)). Its filterbanks' initializer is ``ones``, which no seed
    changes: re-seeding alone gave 128 identical mel bands and 12 identical chroma bins, so the 162 pooled values of
    the demo's ``e2e_random`` spanned 5 dimensions (singular values 162, 51, 10, 2.9, 0.1, then 0)."""
    if init not in FIN_INITS:
        raise ValueError(f"fin_init must be one of {FIN_INITS}, got {init!r}")
    s = _Seeds(seed + 7_919)

    def reinit(layer: layers.Layer) -> layers.Layer:
        cfg = layer.get_config()
        if init == "random":
            cfg = _reseed_config(cfg, s)
        return layer.__class__.from_config(cfg)

    clone = keras.models.clone_model(fin, clone_function=reinit)
    if init == "pretrained":
        clone.set_weights(fin.get_weights())
    elif any(isinstance(layer, FilterBank | SoftZeroCrossingRate) for layer in clone.layers):
        from sefin_utils import fins

        fins._randomise(clone, np.random.default_rng(seed + 7_919))
    return clone


def model_input_names(sources: Mapping[str, str], composition: Composition = KAGGLE) -> list[str]:
    """Input names of an end-to-end model for a source mix (``clip`` only when a FIN is used)."""
    _check_sources(sources, composition)
    names = ["clip"] if any(v == "fin" for v in sources.values()) else []
    return names + ["mask"] + [n for n in composition.features if sources[n] == "librosa"]


def build_end_to_end(
    *,
    fins: Mapping[str, keras.Model],
    sources: Mapping[str, str],
    fin_trainable: bool,
    head: str,
    n_classes: int,
    norm_mean: np.ndarray | None,
    norm_var: np.ndarray | None,
    fin_init: str = "pretrained",
    standardize: bool = True,
    n_frames: int = N_FRAMES,
    clip_samples: int = CLIP_SAMPLES,
    seed: int = 0,
    name: str | None = None,
    composition: Composition = KAGGLE,
    pooling: str = "mean",
    dropout: float | None = None,
    frame_scale: str = "linear",
) -> keras.Model:
    """End-to-end classifier: clip -> frames -> FINs (or librosa labels) per frame -> masked mean -> head.

    ``pooling`` (:data:`POOLINGS`): ``mean`` is the study's; ``stats`` and ``temporal`` keep the time course
    (:func:`pool_and_classify`; their ``norm_mean``/``norm_var`` have the shape :func:`norm_dim` gives).
    ``dropout``: see :func:`build_head`. ``frame_scale`` (:data:`FRAME_SCALES`): ``db`` reads mel and RMS in
    decibels before pooling (:class:`~sefin_utils.layers.FramesToDb`; ``norm_mean``/``norm_var`` then describe
    the dB values).

    Parameters
    ----------
    fins : feature name -> FIN ``keras.Model`` mapping (None, 2048) frames to (None, dim). Only the FIN-sourced
        features need one. Each is cloned, so the caller's FINs are never modified by training.
    sources : feature name -> "fin" or "librosa" for all five features (see ``ABLATION``).
    fin_trainable : fine-tune the FINs (True) or freeze them (False; BatchNorm then runs in inference mode).
    head, n_classes : see :func:`build_head`.
    norm_mean, norm_var : (162,) statistics of the train clips' masked-mean label vectors in ``SUMMARY_ORDER``
        (:func:`pooled_label_vectors` then :func:`norm_stats`).
    fin_init : "pretrained" (the given weights) or "random" (the same architecture re-initialised, seeded).
    standardize : per-feature standardisation after pooling (False: none).
    n_frames, clip_samples : framing of the ``clip`` input (center=False, 2048/512).
    seed : head initialisers, dropout and the random FIN re-initialisation.
    composition : the per-frame vector's features and order (default ``features.KAGGLE``, 162 values); ``sources``
        and ``norm_mean``/``norm_var`` follow it.

    Inputs (a dict): ``clip`` (None, clip_samples) when a FIN is used, ``mask`` (None, n_frames) float, and each
    librosa-sourced feature by name (None, n_frames, dim).
    """
    _check_sources(sources, composition)
    inputs: dict[str, Any] = {}
    need_fin = [n for n in composition.features if sources[n] == "fin"]
    flat_frames = None
    if need_fin:
        inputs["clip"] = keras.Input(shape=(clip_samples,), name="clip")
        frames = FrameClips(n_frames=n_frames, name="frames")(inputs["clip"])
        flat_frames = MergeFrames(name="flat_frames")(frames)
    inputs["mask"] = keras.Input(shape=(n_frames,), name="mask")
    per_frame: dict[str, Any] = {}
    for i, fname in enumerate(composition.features):
        dim = FEATURES[fname].dim
        if sources[fname] == "librosa":
            inputs[fname] = keras.Input(shape=(n_frames, dim), name=fname)
            per_frame[fname] = inputs[fname]
            continue
        if fname not in fins:
            raise ValueError(f"feature {fname!r} is FIN-sourced but no FIN was given (have {sorted(fins)})")
        fin = clone_fin(fins[fname], init=fin_init, seed=seed * 31 + i)
        in_shape, out_shape = tuple(fin.input_shape), tuple(fin.output_shape)
        if in_shape[1:] != (FRAME_LENGTH,) or out_shape[1:] != (dim,):
            raise ValueError(
                f"FIN for {fname!r} maps {in_shape} -> {out_shape}; expected (None, {FRAME_LENGTH}) -> (None, {dim})"
            )
        fin = keras.Model(fin.input, fin.output, name=f"fin_{fname}")  # unique name inside the classifier
        fin.trainable = bool(fin_trainable)
        # keras' TimeDistributed unrolls a Python loop over the 104 frames (slow to trace); reshape instead
        per_frame[fname] = SplitFrames(n_frames, name=f"frames_{fname}")(fin(flat_frames))
    stacked = layers.Concatenate(axis=-1, name="per_frame_vector")([per_frame[n] for n in composition.order])
    out = pool_and_classify(
        stacked,
        inputs["mask"],
        pooling=pooling,
        head=head,
        n_classes=n_classes,
        norm_mean=norm_mean,
        norm_var=norm_var,
        standardize=standardize,
        seed=seed,
        dropout=dropout,
        db_factors=_db_factors(frame_scale, composition),
    )
    if name is None:
        name = f"e2e_{ablation_code(sources, composition)}_{fin_init}_{'ft' if fin_trainable else 'frozen'}"
    return keras.Model(inputs=inputs, outputs=out, name=name.replace("-", ""))


def norm_dim(pooling: str, dim: int) -> int:
    """Length of the standardisation statistics of a pooling over ``dim``-wide frames (``stats``: 2 dim)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return 2 * dim if pooling == "stats" else dim


def pool_and_classify(
    per_frame: Any,
    mask: Any,
    *,
    pooling: str,
    head: str,
    n_classes: int,
    norm_mean: np.ndarray | None,
    norm_var: np.ndarray | None,
    standardize: bool = True,
    seed: int = 0,
    dropout: float | None = None,
    db_factors: np.ndarray | None = None,
) -> Any:
    """Per-frame vectors (batch, T, d) and mask (batch, T) -> class probabilities, by ``pooling`` (:data:`POOLINGS`).

    ``db_factors`` (d,): when given, the vectors are first read in decibels where a factor is > 0
    (:class:`~sefin_utils.layers.FramesToDb`, layer ``frames_db``); the statistics describe those values.

    ``mean``: :class:`MaskedMean` -> standardise (d) -> head (the study's). ``stats``: :class:`MaskedStats` ->
    standardise (2 d) -> head. ``temporal``: standardise each frame (d) -> padding frames zeroed -> two Conv1D
    (``TEMPORAL_FILTERS``, kernel ``TEMPORAL_KERNEL``, ReLU, padding frames zeroed after each) -> Dense(1) scores ->
    :class:`MaskedAttentionPool` -> dropout (``dropout`` or 0.3) -> Dense softmax; ``head`` is not used.
    Layer names are fixed, so a model built on precomputed per-frame vectors shares its weights by name with the
    end-to-end model (:func:`copy_head_weights`).
    """
    dim = int(per_frame.shape[-1])
    n = norm_dim(pooling, dim)
    if db_factors is not None:
        if len(db_factors) != dim:
            raise ValueError(f"db_factors has {len(db_factors)} values for {dim}-dim per-frame vectors")
        per_frame = FramesToDb([float(f) for f in db_factors], name="frames_db")(per_frame)
    if pooling == "mean":
        x = MaskedMean(name="masked_mean")([per_frame, mask])
        x = _normalization(norm_mean, norm_var, n)(x) if standardize else x
        return build_head(x, head, n_classes, seed=seed, dropout=dropout)
    if pooling == "stats":
        x = MaskedStats(name="masked_stats")([per_frame, mask])
        x = _normalization(norm_mean, norm_var, n)(x) if standardize else x
        return build_head(x, head, n_classes, seed=seed, dropout=dropout)
    s = _Seeds(seed)
    x = _normalization(norm_mean, norm_var, n)(per_frame) if standardize else per_frame
    x = MaskedFrames(name="temporal_mask0")([x, mask])
    for i in (1, 2):
        x = _conv(x, TEMPORAL_FILTERS, TEMPORAL_KERNEL, f"temporal_conv{i}", s)
        x = MaskedFrames(name=f"temporal_mask{i}")([x, mask])
    scores = layers.Dense(1, kernel_initializer=s.glorot(), name="attention_scores")(x)
    x = MaskedAttentionPool(name="attentive_pool")([x, scores, mask])
    x = layers.Dropout(0.3 if dropout is None else dropout, seed=s(), name="temporal_drop")(x)
    return layers.Dense(n_classes, activation="softmax", kernel_initializer=s.glorot(), name="probs")(x)


def build_frame_classifier(
    *,
    dim: int,
    pooling: str,
    head: str,
    n_classes: int,
    norm_mean: np.ndarray | None,
    norm_var: np.ndarray | None,
    n_frames: int = N_FRAMES,
    seed: int = 0,
    dropout: float | None = None,
    name: str = "frame_classifier",
    frame_scale: str = "linear",
    composition: Composition = KAGGLE,
) -> keras.Model:
    """The pooling and head of an end-to-end model on precomputed per-frame vectors: inputs ``per_frame``
    (None, n_frames, dim) and ``mask`` (None, n_frames) -> probabilities (:func:`pool_and_classify`, same layer names
    and seeds as :func:`build_end_to_end`, so its weights copy into it). ``frame_scale`` and ``composition``: as
    there (``dim`` must be the composition's with ``db``)."""
    per_frame = keras.Input(shape=(n_frames, dim), name="per_frame")
    mask = keras.Input(shape=(n_frames,), name="mask")
    out = pool_and_classify(
        per_frame,
        mask,
        pooling=pooling,
        head=head,
        n_classes=n_classes,
        norm_mean=norm_mean,
        norm_var=norm_var,
        seed=seed,
        dropout=dropout,
        db_factors=_db_factors(frame_scale, composition),
    )
    return keras.Model({"per_frame": per_frame, "mask": mask}, out, name=name)


def _db_factors(frame_scale: str, composition: Composition) -> np.ndarray | None:
    if frame_scale not in FRAME_SCALES:
        raise ValueError(f"frame_scale must be one of {FRAME_SCALES}, got {frame_scale!r}")
    return composition.db_factors() if frame_scale == "db" else None


def frames_to_db(per_frame: np.ndarray, frame_scale: str = "db", composition: Composition = KAGGLE) -> np.ndarray:
    """Per-frame vectors (..., d) in ``composition`` order -> the values a ``frame_scale`` classifier reads
    (float32): with ``db``, mel power as ``10 log10(max(x, 1e-10))`` and RMS as ``20 log10(max(x, 1e-5))``
    (:attr:`~sefin_utils.features.Feature.db_factor`; -100 dB floors, ``librosa.power_to_db(ref=1, amin=1e-10,
    top_db=None)``), the rest unchanged; with ``linear``, the input. What
    :class:`~sefin_utils.layers.FramesToDb` computes in the model, for the train statistics.

    Raises
    ------
    ValueError: unknown ``frame_scale``, or a last axis that is not the composition's length.
    """
    factors = _db_factors(frame_scale, composition)
    x = np.asarray(per_frame, dtype="float32")
    if factors is None:
        return x
    if x.shape[-1] != len(factors):
        raise ValueError(
            f"per-frame vectors have {x.shape[-1]} values; composition {composition.name!r} has {len(factors)}"
        )
    out = x.copy()
    on = factors > 0
    floor = (10.0 ** (-100.0 / factors[on])).astype("float32")
    out[..., on] = factors[on] * np.log10(np.maximum(x[..., on], floor))
    return out


def pooled_norm_stats(
    per_frame: np.ndarray, mask: np.ndarray, pooling: str, *, frame_scale: str = "linear", chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Standardisation statistics for ``pooling`` from train per-frame vectors (n, T, d) and masks (n, T): of the
    masked means (``mean``), of the [mean, std] vectors (``stats``), or of the real frames themselves
    (``temporal``), after :func:`frames_to_db` with ``frame_scale`` (default ``linear``: the values as given).
    (:func:`norm_stats`; constant columns get variance 1.)

    Read ``chunk`` clips at a time in float64 (two passes for ``temporal``: the mean, then the squared deviations),
    so that the peak memory is that of one chunk, not a float64 copy of every frame (23,238 train clips of the full
    corpora: ~3 GB for that copy)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    _db_factors(frame_scale, KAGGLE)  # an unknown frame_scale is refused before any work
    n = len(per_frame)
    if len(mask) != n:
        raise ValueError(f"per_frame has {n} clips but mask has {len(mask)}")
    spans = [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]

    def clip_chunk(sl: slice) -> tuple[np.ndarray, np.ndarray]:
        return frames_to_db(per_frame[sl], frame_scale).astype("float64"), np.asarray(mask[sl]) > 0

    if pooling == "temporal":
        count, total = 0, None
        for sl in spans:
            x, m = clip_chunk(sl)
            s = x[m].sum(axis=0)
            total, count = (s if total is None else total + s), count + int(m.sum())
        if not count:
            raise ValueError("pooled_norm_stats: no real frame in the train clips")
        mean = total / count
        sq = np.zeros_like(mean)
        for sl in spans:
            x, m = clip_chunk(sl)
            sq += ((x[m] - mean) ** 2).sum(axis=0)
        var = np.where(sq / count < 1e-12, 1.0, sq / count)
        return mean.astype("float32"), var.astype("float32")
    pooled = []
    for sl in spans:
        x, m = clip_chunk(sl)
        cnt = np.maximum(m.sum(axis=1, keepdims=True), 1)
        xm = np.where(m[..., None], x, 0.0)
        mean = xm.sum(axis=1) / cnt
        if pooling == "stats":
            std = np.sqrt(np.maximum((xm * xm).sum(axis=1) / cnt - mean * mean, 0.0) + 1e-6)
            mean = np.concatenate([mean, std], axis=1)
        pooled.append(mean)
    return norm_stats(np.concatenate(pooled, axis=0))


# ---------------------------------------------------------------------------------------------------------- inputs
def _rows(rows: Any, n: int) -> np.ndarray:
    r = np.asarray(rows)
    if r.dtype == bool:
        if r.shape != (n,):
            raise ValueError(f"boolean rows must have shape ({n},), got {r.shape}")
        r = np.flatnonzero(r)
    return r.astype(np.int64)


def pooled_label_vectors(store: Any, rows: Any, *, chunk: int = 512, composition: Composition = KAGGLE) -> np.ndarray:
    """Masked mean over real frames of the librosa labels, stacked in the composition's order (default SUMMARY_ORDER):
    (len(rows), composition.dim = 162) float32."""
    r = _rows(rows, len(store.mask))
    out = np.empty((len(r), composition.dim), dtype="float32")
    for start in range(0, len(r), chunk):
        idx = r[start : start + chunk]
        m = np.asarray(store.mask[idx], dtype="float32")[..., None]
        cnt = np.maximum(m.sum(axis=1), 1.0)
        parts = [(np.asarray(store.labels[n][idx], dtype="float32") * m).sum(axis=1) / cnt for n in composition.order]
        out[start : start + len(idx)] = np.concatenate(parts, axis=1)
    return out


def make_inputs(
    store: Any,
    rows: Any,
    sources: Mapping[str, str] | None = None,
    *,
    clip_mode: str = "clip",
    composition: Composition = KAGGLE,
) -> dict[str, np.ndarray]:
    """Model inputs for ``rows`` (positions or a boolean mask over ``store.index``) of a ClipStore.

    ``clip_mode="summary"`` feeds :func:`build_baseline` (``{"summary": (n, 162)}``); ``clip_mode="clip"`` feeds
    :func:`build_end_to_end` for ``sources`` (``clip``, ``mask`` and the librosa-sourced labels). Arrays are read
    into memory (float32).
    """
    r = _rows(rows, len(store.index))
    if clip_mode == "summary":
        return {"summary": np.asarray(store.summary[r], dtype="float32")}
    if clip_mode != "clip":
        raise ValueError(f"clip_mode must be 'summary' or 'clip', got {clip_mode!r}")
    if sources is None:
        raise ValueError("clip_mode='clip' needs the feature sources")
    out: dict[str, np.ndarray] = {}
    for name in model_input_names(sources, composition):
        if name == "clip":
            out[name] = np.asarray(store.clips[r], dtype="float32")
        elif name == "mask":
            out[name] = np.asarray(store.mask[r], dtype="float32")
        else:
            out[name] = np.asarray(store.labels[name][r], dtype="float32")
    return out


def inputs_from_clips(
    clips: np.ndarray,
    mask: np.ndarray,
    sources: Mapping[str, str],
    *,
    progress: bool = True,
    composition: Composition = KAGGLE,
) -> dict[str, np.ndarray]:
    """End-to-end model inputs from raw clips (n, 55125) and frame masks (n, 104): librosa labels computed here.

    Used by predict on users' audio; the labels come from ``features.frame_labels`` exactly as in the cache.
    """
    clips = np.asarray(clips, dtype="float32")
    mask = np.asarray(mask, dtype="float32")
    if clips.ndim != 2 or mask.ndim != 2 or len(clips) != len(mask):
        raise ValueError(f"clips (n, samples) and mask (n, frames) expected, got {clips.shape} and {mask.shape}")
    names = model_input_names(sources, composition)
    out: dict[str, np.ndarray] = {"mask": mask}
    if "clip" in names:
        out["clip"] = clips
    lib = [n for n in names if n not in ("clip", "mask")]
    if lib:
        from sefin_utils import features

        per: dict[str, list[np.ndarray]] = {n: [] for n in lib}
        for y in tqdm(clips, desc="librosa labels", disable=not progress or len(clips) < 2):
            labels = features.frame_labels(y, names=lib)
            for n in lib:
                per[n].append(np.asarray(labels[n], dtype="float32")[: mask.shape[1]])
        for n in lib:
            out[n] = np.stack(per[n])
    return out


def encode_labels(emotions: Sequence[str], classes: Sequence[str], *, calm: str = "class") -> np.ndarray:
    """Emotion names -> class indices; ``calm="neutral"`` maps calm to neutral. Unknown names raise."""
    lookup = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(emotions), dtype=np.int64)
    for i, e in enumerate(emotions):
        e = "neutral" if (e == "calm" and calm == "neutral") else e
        if e not in lookup:
            raise ValueError(f"emotion {e!r} is not one of the classes {list(classes)} (calm mode {calm!r})")
        out[i] = lookup[e]
    return out


def pooled_label_parts(store: Any, rows: Any) -> dict[str, np.ndarray]:
    """Masked mean over real frames of each feature's librosa labels: name -> (len(rows), dim)."""
    vec = pooled_label_vectors(store, rows)
    out, start = {}, 0
    for name in SUMMARY_ORDER:
        out[name] = vec[:, start : start + FEATURE_DIMS[name]]
        start += FEATURE_DIMS[name]
    return out


def assemble_pooled(parts: Mapping[tuple[str, str], np.ndarray], sources: Mapping[str, str]) -> np.ndarray:
    """The pooled (n, 162) vector of a source mix from per-feature parts keyed ``(source, feature)``."""
    return np.concatenate([parts[(sources[n], n)] for n in SUMMARY_ORDER], axis=1)


def copy_head_weights(src: keras.Model, dst: keras.Model) -> int:
    """Copy every weighted layer of ``src`` (standardisation, head) into the same-named layer of ``dst``."""
    n = 0
    for layer in src.layers:
        if layer.weights:
            try:
                target = dst.get_layer(layer.name)
            except ValueError as err:
                raise ValueError(f"{dst.name} has no layer {layer.name!r} to receive {src.name}'s weights") from err
            target.set_weights(layer.get_weights())
            n += 1
    return n
