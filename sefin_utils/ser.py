"""Emotion classifiers: the Kaggle baseline, end-to-end models fed by FINs or librosa features, the ablation.

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

Protocol (:func:`run_experiments`): train on the TRAIN clips (all augmentations by default), select the epoch on
VAL (original recordings), test on TEST (original recordings only), and score ESD (``ood``) on the classes it shares.
Models with frozen pre-trained FINs train only their head on the FINs' pooled outputs, computed once
(``frozen_shortcut``; the saved model is still the full end-to-end model, checked against the head).

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
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import layers, ops
from tqdm.auto import tqdm

from sefin_utils import study
from sefin_utils.constants import (
    CLIP_SAMPLES,
    ESD_EMOTIONS,
    FRAME_LENGTH,
    HOP_LENGTH,
    N_FRAMES,
    class_names,
)
from sefin_utils.features import ABLATION_SOURCES, FEATURES, KAGGLE, SUMMARY_ORDER, Composition
from sefin_utils.metrics import classification_report

FEATURE_NAMES: tuple[str, ...] = KAGGLE.features
"""The Kaggle vector's features in registry order (rms, zcr, chroma, mfcc, mel): the order of ablation codes."""
FEATURE_DIMS: dict[str, int] = {n: FEATURES[n].dim for n in FEATURE_NAMES}
N_SUMMARY: int = KAGGLE.dim  # 162
HEADS: tuple[str, ...] = ("kaggle", "study")
SOURCES: tuple[str, ...] = ABLATION_SOURCES
FIN_INITS: tuple[str, ...] = ("pretrained", "random")


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


# --------------------------------------------------------------------------------------------------- custom layers
@keras.saving.register_keras_serializable(package="sefin")
class FrameClips(layers.Layer):
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
            raise ValueError(f"FrameClips: clips of {input_shape[-1]} samples are shorter than the {need} needed "
                             f"for {self.n_frames} frames of {self.frame_length}/{self.hop_length}")

    def call(self, x: Any) -> Any:
        return ops.take(x, self._index, axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.n_frames, self.frame_length)

    def get_config(self) -> dict:
        return {**super().get_config(), "frame_length": self.frame_length, "hop_length": self.hop_length,
                "n_frames": self.n_frames}


@keras.saving.register_keras_serializable(package="sefin")
class MergeFrames(layers.Layer):
    """(batch, T, d) -> (batch * T, d), so a per-frame model runs once on all frames (no per-step unrolling)."""

    def call(self, x: Any) -> Any:
        return ops.reshape(x, (-1, x.shape[-1]))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None, input_shape[-1])


@keras.saving.register_keras_serializable(package="sefin")
class SplitFrames(layers.Layer):
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


@keras.saving.register_keras_serializable(package="sefin")
class MaskedMean(layers.Layer):
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
    return layers.Conv1D(filters, kernel, padding="same", activation=activation, kernel_initializer=s.glorot(),
                         name=name)(x)


def _kaggle_head(x: Any, n_classes: int, s: _Seeds) -> Any:
    for i, filters in enumerate((256, 256, 128, 64)):
        x = _conv(x, filters, 5, f"head_conv{i + 1}", s)
        x = layers.MaxPooling1D(pool_size=5, strides=2, padding="same", name=f"head_pool{i + 1}")(x)
        if i == 2:
            x = layers.Dropout(0.2, seed=s(), name="head_drop3")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(32, activation="relu", kernel_initializer=s.glorot(), name="head_dense")(x)
    x = layers.Dropout(0.3, seed=s(), name="head_drop_dense")(x)
    return layers.Dense(n_classes, activation="softmax", kernel_initializer=s.glorot(), name="probs")(x)


def _study_head(x: Any, n_classes: int, s: _Seeds) -> Any:
    x = _conv(x, 256, 8, "head_conv1", s)
    x = _conv(x, 256, 8, "head_conv2", s, activation=None)
    x = layers.BatchNormalization(name="head_bn1")(x)
    x = layers.Activation("relu", name="head_relu2")(x)
    x = layers.Dropout(0.25, seed=s(), name="head_drop1")(x)
    x = layers.MaxPooling1D(pool_size=8, name="head_pool1")(x)
    for i in range(3):
        x = _conv(x, 128, 8, f"head_conv{i + 3}", s)
    x = _conv(x, 128, 8, "head_conv6", s, activation=None)
    x = layers.BatchNormalization(name="head_bn2")(x)
    x = layers.Activation("relu", name="head_relu6")(x)
    x = layers.Dropout(0.25, seed=s(), name="head_drop2")(x)
    x = layers.MaxPooling1D(pool_size=8, name="head_pool2")(x)
    x = _conv(x, 64, 8, "head_conv7", s)
    x = _conv(x, 64, 8, "head_conv8", s)
    x = layers.Flatten(name="head_flatten")(x)
    return layers.Dense(n_classes, activation="softmax", kernel_initializer=s.glorot(), name="probs")(x)


def build_head(x: Any, head: str, n_classes: int, *, seed: int = 0) -> Any:
    """Apply a classification head to a (batch, 162) tensor (treated as a (162, 1) sequence); returns probs."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    x = layers.Reshape((x.shape[-1], 1), name="as_sequence")(x)
    builder = _kaggle_head if head == "kaggle" else _study_head
    return builder(x, n_classes, _Seeds(seed))


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
    out = build_head(x, head, n_classes, seed=seed)
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
    """An independent copy of a FIN: same weights (``pretrained``) or re-initialised (``random``, seeded)."""
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
) -> keras.Model:
    """End-to-end classifier: clip -> frames -> FINs (or librosa labels) per frame -> masked mean -> head.

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
            raise ValueError(f"FIN for {fname!r} maps {in_shape} -> {out_shape}; expected (None, {FRAME_LENGTH}) "
                             f"-> (None, {dim})")
        fin = keras.Model(fin.input, fin.output, name=f"fin_{fname}")  # unique name inside the classifier
        fin.trainable = bool(fin_trainable)
        # keras' TimeDistributed unrolls a Python loop over the 104 frames (slow to trace); reshape instead
        per_frame[fname] = SplitFrames(n_frames, name=f"frames_{fname}")(fin(flat_frames))
    stacked = layers.Concatenate(axis=-1, name="per_frame_vector")([per_frame[n] for n in composition.order])
    pooled = MaskedMean(name="masked_mean")([stacked, inputs["mask"]])
    x = _normalization(norm_mean, norm_var, composition.dim)(pooled) if standardize else pooled
    out = build_head(x, head, n_classes, seed=seed)
    if name is None:
        name = f"e2e_{ablation_code(sources, composition)}_{fin_init}_{'ft' if fin_trainable else 'frozen'}"
    return keras.Model(inputs=inputs, outputs=out, name=name.replace("-", ""))


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
        idx = r[start:start + chunk]
        m = np.asarray(store.mask[idx], dtype="float32")[..., None]
        cnt = np.maximum(m.sum(axis=1), 1.0)
        parts = [
            (np.asarray(store.labels[n][idx], dtype="float32") * m).sum(axis=1) / cnt for n in composition.order
        ]
        out[start:start + len(idx)] = np.concatenate(parts, axis=1)
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


# -------------------------------------------------------------------------------------------------------- training
class _EpochLog(keras.callbacks.Callback):
    """Records seconds per epoch and shows a tqdm bar over epochs."""

    def __init__(self, epochs: int, desc: str, progress: bool) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._bar = tqdm(total=epochs, desc=desc, disable=not progress, leave=False)
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._t0)
        logs = logs or {}
        self._bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("loss", "val_loss", "val_accuracy") if k in logs})
        self._bar.update(1)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._bar.close()


def _n_rows(inputs: Mapping[str, np.ndarray]) -> int:
    lens = {k: len(v) for k, v in inputs.items()}
    if len(set(lens.values())) != 1:
        raise ValueError(f"inputs disagree on the number of rows: {lens}")
    return next(iter(lens.values()))


MAX_TENSOR_BYTES: int = 2**30
"""Inputs larger than this are batched from numpy by a generator instead of being copied into one tensor."""


def make_dataset(
    inputs: Mapping[str, np.ndarray],
    y: np.ndarray | None,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    max_tensor_bytes: int = MAX_TENSOR_BYTES,
) -> Any:
    """A ``tf.data.Dataset`` of (inputs dict, y) batches; shuffled with a seeded order that changes every epoch.

    Inputs up to ``max_tensor_bytes`` in all become one in-memory tensor; larger ones (e.g. the full corpora's
    clips) are read batch by batch from the numpy arrays (memory maps work), in a seeded permutation per epoch.
    """
    import tensorflow as tf

    n = _n_rows(inputs)
    if sum(np.asarray(v).nbytes for v in inputs.values()) <= max_tensor_bytes:
        data = dict(inputs) if y is None else (dict(inputs), np.asarray(y))
        ds = tf.data.Dataset.from_tensor_slices(data)
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    rng = np.random.default_rng(seed)  # one generator: every epoch draws a new permutation
    labels = None if y is None else np.asarray(y)

    def batches() -> Any:
        order = rng.permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            b = np.sort(order[start:start + batch_size])
            x = {k: np.asarray(v[b], dtype="float32") for k, v in inputs.items()}
            yield x if labels is None else (x, labels[b])

    x_sig = {k: tf.TensorSpec((None, *np.shape(v)[1:]), tf.float32) for k, v in inputs.items()}
    sig = x_sig if labels is None else (x_sig, tf.TensorSpec((None,), tf.as_dtype(labels.dtype)))
    return tf.data.Dataset.from_generator(batches, output_signature=sig).prefetch(2)


def balanced_class_weight(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """``n / (k * count)`` per present class (scikit-learn's "balanced")."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = len(y) / (present.sum() * counts[present])
    return {i: float(w[i]) for i in range(n_classes) if present[i]}


def train_classifier(
    model: keras.Model,
    train_inputs: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    val_inputs: Mapping[str, np.ndarray],
    y_val: np.ndarray,
    *,
    epochs: int = 50,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    patience: int = 8,
    class_weight: Mapping[int, float] | None = None,
    progress: bool = True,
    jit_compile: bool | str = "auto",
    run_eagerly: bool = False,
) -> dict[str, Any]:
    """Compile (Adam, sparse cross-entropy) and fit with early stopping on validation loss.

    The weights of the epoch with the lowest validation loss are restored at the end (never the last epoch when
    validation loss rose); ReduceLROnPlateau halves the learning rate after ``max(1, patience // 2)`` flat epochs.
    ``run_eagerly`` skips graph tracing (for tiny test runs).
    Returns ``history`` (per-epoch lists), ``epoch_seconds``, ``best_epoch`` (1-based), ``epochs_run``,
    ``s_per_epoch`` (median after the first, compiling epoch), ``first_epoch_s`` and ``best_val_loss``.
    """
    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    if _n_rows(train_inputs) != len(y_train) or _n_rows(val_inputs) != len(y_val):
        raise ValueError("train/val inputs and labels differ in length")
    if len(y_val) == 0:
        raise ValueError("no validation rows: model selection needs the val split")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False if run_eagerly else jit_compile,
        run_eagerly=run_eagerly,
    )
    log = _EpochLog(epochs, model.name, progress)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2),
                                                min_lr=1e-6)
    hist = model.fit(
        make_dataset(train_inputs, y_train, batch_size=batch_size, shuffle=True, seed=seed),
        validation_data=make_dataset(val_inputs, y_val, batch_size=batch_size),
        epochs=epochs,
        callbacks=[stop, plateau, log],
        class_weight=dict(class_weight) if class_weight else None,
        shuffle=False,  # the dataset is already shuffled (seeded)
        verbose=0,
    )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    val_loss = history.get("val_loss", [])
    best = int(np.argmin(val_loss)) if val_loss else len(log.seconds) - 1
    return {
        "history": history,
        "epoch_seconds": log.seconds,
        # the first epoch includes tracing/compilation: report the median of the others when there are any
        "s_per_epoch": float(np.median(log.seconds[1:] or log.seconds)) if log.seconds else float("nan"),
        "first_epoch_s": float(log.seconds[0]) if log.seconds else float("nan"),
        "epochs_run": len(log.seconds),
        "best_epoch": best + 1,
        "best_val_loss": float(val_loss[best]) if val_loss else float("nan"),
    }


# ------------------------------------------------------------------------------------------------------ evaluation
def predict_proba(model: keras.Model, inputs: Mapping[str, np.ndarray], *, batch_size: int = 128) -> np.ndarray:
    """Class probabilities (n, n_classes) for an input dict."""
    return np.asarray(model.predict(make_dataset(inputs, None, batch_size=batch_size), verbose=0))


def evaluate(
    model: keras.Model | None,
    inputs: Mapping[str, np.ndarray] | None,
    y: np.ndarray,
    classes: Sequence[str],
    *,
    corpus: Sequence[str] | None = None,
    restrict_to: Sequence[str] | None = None,
    proba: np.ndarray | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Metrics overall and per corpus (``metrics.classification_report``).

    ``y`` holds indices into ``classes`` (the model's outputs). With ``restrict_to`` (e.g. ``ESD_EMOTIONS`` for the
    out-of-domain set) only those classes are scored: the prediction is the argmax over *their* probabilities (the
    other classes' outputs are ignored), and reports use ``restrict_to`` as the class list; every true label must
    be one of them. Pass ``proba`` to reuse predictions (then model/inputs may be None).
    """
    y = np.asarray(y, dtype=int)
    if proba is None:
        if model is None or inputs is None:
            raise ValueError("evaluate needs model and inputs, or proba")
        proba = predict_proba(model, inputs, batch_size=batch_size)
    proba = np.asarray(proba)
    if proba.shape != (len(y), len(classes)):
        raise ValueError(f"probabilities {proba.shape} do not match {len(y)} labels x {len(classes)} classes")
    scored = list(classes)
    if restrict_to is not None:
        missing = [c for c in restrict_to if c not in classes]
        if missing:
            raise ValueError(f"restrict_to classes {missing} are not model classes {list(classes)}")
        keep = np.array([list(classes).index(c) for c in restrict_to])
        pos = {int(k): j for j, k in enumerate(keep)}
        bad = sorted({classes[int(t)] for t in y if int(t) not in pos})
        if bad:
            raise ValueError(f"true labels {bad} are outside restrict_to {list(restrict_to)}")
        y = np.array([pos[int(t)] for t in y], dtype=int)
        pred = np.argmax(proba[:, keep], axis=1)
        scored = list(restrict_to)
    else:
        pred = np.argmax(proba, axis=1)
    out: dict[str, Any] = {"overall": classification_report(y, pred, scored), "scored_classes": scored}
    if corpus is not None:
        corpus = np.asarray(corpus)
        if len(corpus) != len(y):
            raise ValueError(f"corpus has {len(corpus)} entries for {len(y)} labels")
        out["per_corpus"] = {
            str(c): classification_report(y[corpus == c], pred[corpus == c], scored) for c in sorted(set(corpus))
        }
    return out


# ------------------------------------------------------------------------------------- frozen-FIN shortcut
def pooled_fin_outputs(
    fins: Mapping[str, keras.Model],
    clips: np.ndarray,
    mask: np.ndarray,
    *,
    batch_size: int = 32,
    n_frames: int = N_FRAMES,
) -> dict[str, np.ndarray]:
    """Masked mean over real frames of each FIN's per-frame outputs: name -> (n, dim), in one pass over the clips.

    This is what frozen FINs feed the pooling; computed with the same layers as :func:`build_end_to_end`
    (framing, each FIN in inference mode, masked mean).
    """
    clip_in = keras.Input(shape=(clips.shape[1],), name="clip")
    mask_in = keras.Input(shape=(n_frames,), name="mask")
    flat = MergeFrames()(FrameClips(n_frames=n_frames)(clip_in))
    outputs = {}
    for name, fin in fins.items():
        clone = clone_fin(fin, init="pretrained")
        clone = keras.Model(clone.input, clone.output, name=f"fin_{name}")
        clone.trainable = False
        outputs[name] = MaskedMean(name=f"pooled_{name}")([SplitFrames(n_frames)(clone(flat)), mask_in])
    model = keras.Model({"clip": clip_in, "mask": mask_in}, outputs)
    x = {"clip": np.asarray(clips, dtype="float32"), "mask": np.asarray(mask, dtype="float32")}
    pred = model.predict(make_dataset(x, None, batch_size=batch_size), verbose=0)
    return {name: np.asarray(pred[name], dtype="float32") for name in fins}


def pooled_label_parts(store: Any, rows: Any) -> dict[str, np.ndarray]:
    """Masked mean over real frames of each feature's librosa labels: name -> (len(rows), dim)."""
    vec = pooled_label_vectors(store, rows)
    out, start = {}, 0
    for name in SUMMARY_ORDER:
        out[name] = vec[:, start:start + FEATURE_DIMS[name]]
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


# ----------------------------------------------------------------------------------------------------- experiments
DEFAULT_PARAMS: dict[str, Any] = {
    "head": "study",
    "heads": ["kaggle", "study"],
    "calm": "class",
    "epochs": 50,
    "batch_size": 32,
    "lr": 1e-3,
    "finetune_lr": None,
    "seeds": [0],
    "patience": 8,
    "class_weight": None,
    "variants": ["baseline", "frozen", "finetuned", "random"],
    "baseline_unstandardized": False,
    "ablation": False,
    "ablation_epochs": None,
    "ablation_fin_trainable": False,
    "ablation_codes": None,
    "train_augmentations": None,
    "protocol": "speaker",
    "save_models": True,
    "progress": True,
    "run_eagerly": False,
    "frozen_shortcut": True,
}


def _resolve(params: Mapping[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    p = {**DEFAULT_PARAMS, **params}
    if "classes" in params and "calm" not in params:  # alias
        p["calm"] = params["classes"]
    for k in ("heads", "seeds", "variants"):
        if isinstance(p[k], str | int):
            p[k] = [p[k]]
    bad = set(p["variants"]) - {"baseline", "frozen", "finetuned", "random"}
    if bad:
        raise ValueError(f"params['variants'] has unknown entries {sorted(bad)}")
    for h in [p["head"], *p["heads"]]:
        if h not in HEADS:
            raise ValueError(f"params head {h!r} is not one of {HEADS}")
    if not p["seeds"]:
        raise ValueError("params['seeds'] is empty")
    return p


def _split_rows(store: Any, p: Mapping[str, Any]) -> dict[str, np.ndarray]:
    idx = store.index.reset_index(drop=True)
    for col in ("split", "emotion"):
        if col not in idx.columns:
            raise ValueError(f"ClipStore.index lacks column {col!r}")
    aug = idx["augmentation"].astype(str) if "augmentation" in idx.columns else pd.Series("orig", index=idx.index)
    keep = np.ones(len(idx), dtype=bool)
    if p["calm"] == "drop":
        keep &= (idx["emotion"] != "calm").to_numpy()
    train = keep & (idx["split"] == "train").to_numpy()
    if p["train_augmentations"] is not None:
        train &= aug.isin(list(p["train_augmentations"])).to_numpy()
    orig = (aug == "orig").to_numpy()
    rows = {
        "train": np.flatnonzero(train),
        "val": np.flatnonzero(keep & orig & (idx["split"] == "val").to_numpy()),
        "test": np.flatnonzero(keep & orig & (idx["split"] == "test").to_numpy()),
        "ood": np.flatnonzero(keep & orig & (idx["split"] == "ood").to_numpy()
                              & idx["emotion"].isin(ESD_EMOTIONS).to_numpy()),
    }
    for s in ("train", "val"):
        if len(rows[s]) == 0:
            raise ValueError(f"ClipStore has no {s} clips (after calm={p['calm']!r}); cannot train")
    return rows


def _specs(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The models to train: name, kind, head, sources, fin_init, fin_trainable, seeds, epochs, lr."""
    seeds, head = list(p["seeds"]), p["head"]
    specs: list[dict[str, Any]] = []
    if "baseline" in p["variants"]:
        for h in p["heads"]:
            specs.append({"variant": f"baseline_{h}", "kind": "baseline", "head": h, "standardize": True,
                          "seeds": seeds})
            if p["baseline_unstandardized"]:
                specs.append({"variant": f"baseline_{h}_raw", "kind": "baseline", "head": h,
                              "standardize": False, "seeds": seeds})
    e2e = {"frozen": ("pretrained", False), "finetuned": ("pretrained", True), "random": ("random", True)}
    for v, (init, trainable) in e2e.items():
        if v in p["variants"]:
            specs.append({"variant": f"e2e_{v}", "kind": "e2e", "head": head, "sources": dict(ALL_FIN),
                          "fin_init": init, "fin_trainable": trainable, "seeds": seeds})
    if p["ablation"]:
        codes = p["ablation_codes"] or list(ABLATION)
        for code in codes:
            if code not in ABLATION:
                raise ValueError(f"params['ablation_codes'] entry {code!r} is not an ablation code")
            specs.append({"variant": f"ablation_{code}", "kind": "ablation", "head": head,
                          "sources": dict(ABLATION[code]), "fin_init": "pretrained",
                          "fin_trainable": bool(p["ablation_fin_trainable"]), "seeds": seeds[:1],
                          "epochs": p["ablation_epochs"]})
    return specs


def _load_fins(fins_dir: str | Path | None) -> dict[str, keras.Model]:
    if fins_dir is None:
        raise ValueError("end-to-end variants need fins_dir (or fins=)")
    from sefin_utils import fins as fin_module

    loaded = fin_module.load_fins(fins_dir)
    return {k: (v[0] if isinstance(v, tuple) else v) for k, v in dict(loaded).items()}


def _flat(prefix: str, report: Mapping[str, Any] | None) -> dict[str, float]:
    keys = ("n", "accuracy", "macro_f1", "weighted_f1", "uar")
    if report is None:
        return {f"{prefix}_{k}": float("nan") for k in keys}
    return {f"{prefix}_{k}": report["overall"][k] for k in keys}


def _per_corpus(prefix: str, report: Mapping[str, Any] | None) -> dict[str, float]:
    """``<prefix>_<corpus>_accuracy`` / ``_macro_f1`` / ``_n`` columns from an ``evaluate`` result."""
    out: dict[str, float] = {}
    for corpus, rep in ((report or {}).get("per_corpus") or {}).items():
        for k in ("n", "accuracy", "macro_f1"):
            out[f"{prefix}_{corpus}_{k}"] = rep[k]
    return out


def run_experiments(
    store: Any,
    fins_dir: str | Path | None,
    out_dir: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    fins: Mapping[str, keras.Model] | None = None,
) -> pd.DataFrame:
    """Train and score every variant; write results, metrics, histories and models under ``out_dir``.

    Variants: ``baseline_<head>`` for each of ``heads`` (standardised; ``baseline_<head>_raw`` too when
    ``baseline_unstandardized``), ``e2e_frozen`` / ``e2e_finetuned`` (pre-trained FINs) and ``e2e_random``
    (re-initialised FINs, trained), all five features from FINs, with ``head``; with ``ablation`` the 32
    ``ablation_<code>`` mixes (pre-trained FINs, frozen unless ``ablation_fin_trainable``; first seed only).

    params (defaults in ``DEFAULT_PARAMS``)
        head ("study") head of the end-to-end/ablation models; heads (["kaggle", "study"]) baseline heads;
        calm ("class" | "neutral" | "drop"; alias ``classes``); epochs (50); batch_size (32); lr (1e-3);
        finetune_lr (None = lr) for fine-tuned/random FIN variants; seeds ([0]) every headline variant is trained
        once per seed (mean and std in the summary); patience (8) early stopping on val loss; class_weight
        (None | "balanced"); variants (baseline, frozen, finetuned, random); baseline_unstandardized (False);
        ablation (False); ablation_epochs (None = epochs); ablation_fin_trainable (False); ablation_codes (None =
        all 32); train_augmentations (None = all); protocol ("speaker") label for the table; save_models (True);
        progress (True); run_eagerly (False; True for tiny test runs); frozen_shortcut (True): models with frozen
        pre-trained FINs (``e2e_frozen`` and the frozen ablation) train their head on the pooled FIN outputs
        computed once (:func:`pooled_fin_outputs`; the same maths, frozen FINs run in inference mode), then the
        head's weights are copied into the full end-to-end model, checked against the head on a few validation
        clips, and saved; ``s_per_epoch`` is then the head's (column ``shortcut``).

    Protocol: train on TRAIN clips, select on VAL originals, test on TEST originals; ``ood`` (ESD) originals are
    scored on ``ESD_EMOTIONS`` only (argmax over those classes' probabilities).

    Writes ``results.csv`` (one row per variant and seed; val/test/ood metrics and ``test_<corpus>_*`` columns),
    ``summary.csv`` and ``results.html`` (mean/std beside
    the study's numbers), ``metrics/<variant>__seed<k>.json`` (val/test/ood reports, per corpus, history, epoch
    times), ``models/<variant>.keras`` (the seed with the best validation macro-F1). Returns the results table.
    """
    p = _resolve(params)
    out = Path(out_dir)
    (out / "metrics").mkdir(parents=True, exist_ok=True)
    if p["save_models"]:
        (out / "models").mkdir(parents=True, exist_ok=True)
    classes = class_names("class" if p["calm"] == "class" else "neutral")
    n_classes = len(classes)
    rows = _split_rows(store, p)
    idx = store.index.reset_index(drop=True)
    y = {s: encode_labels(idx["emotion"].to_numpy()[r], classes, calm=p["calm"]) for s, r in rows.items()}
    corpus = {s: (idx["corpus"].to_numpy()[r] if "corpus" in idx.columns else None) for s, r in rows.items()}
    cw = balanced_class_weight(y["train"], n_classes) if p["class_weight"] == "balanced" else None

    specs = _specs(p)
    if not specs:
        raise ValueError("params select no model: 'variants' is empty and 'ablation' is false")
    if any(s["kind"] != "baseline" for s in specs) and fins is None:
        fins = _load_fins(fins_dir)
    base_mean, base_var = norm_stats(np.asarray(store.summary[rows["train"]]))
    lab_mean = lab_var = None
    if any(s["kind"] != "baseline" for s in specs):
        lab_mean, lab_var = norm_stats(pooled_label_vectors(store, rows["train"]))

    for spec in specs:
        spec["shortcut"] = bool(p["frozen_shortcut"] and spec["kind"] != "baseline" and not spec["fin_trainable"]
                                and spec["fin_init"] == "pretrained")
    parts: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    if any(spec["shortcut"] for spec in specs):
        need = sorted({n for spec in specs if spec["shortcut"] for n, v in spec["sources"].items() if v == "fin"})
        for s, r in rows.items():
            if not len(r):
                continue
            lab = pooled_label_parts(store, r)
            parts[s] = {("librosa", n): lab[n] for n in FEATURE_NAMES}
            if need:
                x = make_inputs(store, r, ALL_FIN, clip_mode="clip")
                pooled = pooled_fin_outputs({n: fins[n] for n in need}, x["clip"], x["mask"],
                                            batch_size=int(p["batch_size"]))
                parts[s].update({("fin", n): v for n, v in pooled.items()})
                del x, pooled

    records: list[dict[str, Any]] = []
    best_val: dict[str, float] = {}
    input_cache: dict[tuple, dict[str, dict[str, np.ndarray]]] = {}
    for spec in tqdm(specs, desc="SER models", disable=not p["progress"]):
        if spec["shortcut"]:
            sources = spec["sources"]
            key = ("pooled", ablation_code(sources))
            if key not in input_cache:
                input_cache.clear()
                input_cache[key] = {s: {"summary": assemble_pooled(parts[s], sources)} for s in parts}
        elif spec["kind"] == "baseline":
            key: tuple = ("summary",)
            mode, sources = "summary", None
        else:
            sources = spec["sources"]
            key = tuple(model_input_names(sources))
            mode = "clip"
        if key not in input_cache and not spec["shortcut"]:
            input_cache.clear()  # keep one input set in memory at a time
            input_cache[key] = {s: make_inputs(store, r, sources, clip_mode=mode) for s, r in rows.items()
                                if len(r)}
        data = input_cache[key]
        for seed in spec["seeds"]:
            if spec["shortcut"]:  # the head alone, on the frozen FINs' pooled outputs (same layer names/seeds)
                model = build_baseline(spec["head"], n_classes, norm_mean=lab_mean, norm_var=lab_var, seed=seed)
                lr = p["lr"]
            elif spec["kind"] == "baseline":
                model = build_baseline(spec["head"], n_classes, norm_mean=base_mean, norm_var=base_var,
                                       standardize=spec["standardize"], seed=seed)
                lr = p["lr"]
            else:
                model = build_end_to_end(fins=fins or {}, sources=sources, fin_trainable=spec["fin_trainable"],
                                         head=spec["head"], n_classes=n_classes, norm_mean=lab_mean,
                                         norm_var=lab_var, fin_init=spec["fin_init"], seed=seed,
                                         name=spec["variant"])
                lr = p["finetune_lr"] if (spec["fin_trainable"] and p["finetune_lr"]) else p["lr"]
            fit = train_classifier(model, data["train"], y["train"], data["val"], y["val"],
                                   epochs=int(spec.get("epochs") or p["epochs"]), batch_size=int(p["batch_size"]),
                                   lr=float(lr), seed=seed, patience=int(p["patience"]), class_weight=cw,
                                   progress=p["progress"], run_eagerly=bool(p["run_eagerly"]))
            reports: dict[str, Any] = {}
            for s in ("val", "test", "ood"):
                if s not in data:
                    reports[s] = None
                    continue
                reports[s] = evaluate(model, data[s], y[s], classes, corpus=corpus[s],
                                      restrict_to=list(ESD_EMOTIONS) if s == "ood" else None)
            variant = spec["variant"]
            if spec["shortcut"]:
                model = _assemble_frozen(model, spec, seed, fins or {}, store, rows["val"], data["val"],
                                         n_classes=n_classes, norm=(lab_mean, lab_var))
            rec = {
                "variant": variant, "kind": spec["kind"], "head": spec["head"], "seed": seed,
                "sources": ablation_code(sources) if sources else "summary",
                "fin_init": spec.get("fin_init", ""), "fin_trainable": spec.get("fin_trainable", False),
                "standardize": spec.get("standardize", True), "protocol": p["protocol"],
                "n_classes": n_classes, "n_params": int(model.count_params()),
                "n_train": len(rows["train"]), "epochs_run": fit["epochs_run"], "best_epoch": fit["best_epoch"],
                "s_per_epoch": fit["s_per_epoch"], "shortcut": spec["shortcut"],
                **_flat("val", reports["val"]), **_flat("test", reports["test"]), **_flat("ood", reports["ood"]),
                **_per_corpus("test", reports["test"]),
            }
            records.append(rec)
            payload = {"record": rec, "classes": classes, "reports": reports, **fit}
            _write_json(out / "metrics" / f"{variant}__seed{seed}.json", payload)
            if p["save_models"] and rec["val_macro_f1"] > best_val.get(variant, -1.0):
                best_val[variant] = rec["val_macro_f1"]
                tmp = out / "models" / f".{variant}.tmp.keras"
                model.save(tmp)
                tmp.replace(out / "models" / f"{variant}.keras")
            keras.backend.clear_session(free_memory=True)

    results = pd.DataFrame.from_records(records)
    _write_atomic(out / "results.csv", results.to_csv(index=False))
    summary = summary_table(results)
    _write_atomic(out / "summary.csv", summary.to_csv(index=False))
    _write_atomic(out / "results.html", results_html(results))
    return results


def _assemble_frozen(
    head_model: keras.Model,
    spec: Mapping[str, Any],
    seed: int,
    fins: Mapping[str, keras.Model],
    store: Any,
    val_rows: np.ndarray,
    val_pooled: Mapping[str, np.ndarray],
    *,
    n_classes: int,
    norm: tuple[np.ndarray | None, np.ndarray | None],
    n_check: int = 4,
) -> keras.Model:
    """The full end-to-end model of a frozen-FIN spec with the trained head's weights, checked on a few clips."""
    full = build_end_to_end(fins=fins, sources=spec["sources"], fin_trainable=False, head=spec["head"],
                            n_classes=n_classes, norm_mean=norm[0], norm_var=norm[1], fin_init="pretrained",
                            seed=seed, name=spec["variant"])
    copy_head_weights(head_model, full)
    k = min(n_check, len(val_rows))
    got = np.asarray(full(make_inputs(store, val_rows[:k], spec["sources"], clip_mode="clip"), training=False))
    want = np.asarray(head_model({"summary": val_pooled["summary"][:k]}, training=False))
    if not np.allclose(got, want, atol=1e-4):
        raise RuntimeError(f"{spec['variant']}: the assembled end-to-end model disagrees with its head trained on "
                           f"pooled frozen-FIN outputs (max diff {np.abs(got - want).max():.2e})")
    return full


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _write_json(path: Path, obj: Any) -> None:
    _write_atomic(path, json.dumps(obj, indent=1, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


SUMMARY_METRICS: tuple[str, ...] = (
    "val_macro_f1", "test_accuracy", "test_macro_f1", "test_weighted_f1", "test_uar", "ood_accuracy", "ood_macro_f1",
)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per variant (``<metric>_mean``, ``<metric>_std``), with the study's numbers."""
    if results.empty:
        return pd.DataFrame()
    g = results.groupby("variant", sort=False)
    out = g[["kind", "head", "sources", "protocol", "n_params"]].first()
    out["n_seeds"] = g.size()
    out["s_per_epoch"] = g["s_per_epoch"].mean()
    for m in SUMMARY_METRICS:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1) if g.size().max() > 1 else np.nan
    study_key = {v: ("baseline" if v.startswith("baseline") and not v.endswith("_raw") else v) for v in out.index}
    published = study.SER_RESULTS
    out["study_accuracy"] = [published.get(study_key[v], {}).get("accuracy", np.nan) for v in out.index]
    out["study_macro_f1"] = [published.get(study_key[v], {}).get("macro_f1", np.nan) for v in out.index]
    return out.reset_index()


def results_html(results: pd.DataFrame) -> str:
    """The results page: our mean ± std per variant beside the study's logged numbers, then the ablation."""
    summary = summary_table(results)
    protocol = ", ".join(sorted(set(results["protocol"]))) if not results.empty else "?"

    def pm(row: pd.Series, m: str) -> str:
        mean, std = row[f"{m}_mean"], row[f"{m}_std"]
        if pd.isna(mean):
            return "–"
        return f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")

    head = summary[summary["kind"] != "ablation"] if not summary.empty else summary
    table = pd.DataFrame({
        "variant": head["variant"], "head": head["head"], "seeds": head["n_seeds"],
        f"test accuracy ({protocol})": [pm(r, "test_accuracy") for _, r in head.iterrows()],
        f"test macro-F1 ({protocol})": [pm(r, "test_macro_f1") for _, r in head.iterrows()],
        "test UAR": [pm(r, "test_uar") for _, r in head.iterrows()],
        "ESD accuracy (5 shared classes)": [pm(r, "ood_accuracy") for _, r in head.iterrows()],
        "ESD macro-F1": [pm(r, "ood_macro_f1") for _, r in head.iterrows()],
        f"study accuracy ({study.PROTOCOL})": [("–" if pd.isna(v) else f"{v:.3f}") for v in head["study_accuracy"]],
        f"study macro-F1 ({study.PROTOCOL})": [("–" if pd.isna(v) else f"{v:.2f}") for v in head["study_macro_f1"]],
        "s/epoch": [f"{v:.2f}" for v in head["s_per_epoch"]],
    }) if not head.empty else pd.DataFrame()
    parts = [
        "<html><head><meta charset='utf-8'><title>sefin emotion classifiers</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:right}</style></head><body>",
        "<h1>Emotion classifiers: results</h1>",
        f"<p>Our protocol: <b>{protocol}</b> split; trained on augmented train clips, epoch chosen on validation "
        "loss, tested once on unaugmented test recordings; ESD scored on the 5 classes it shares. Values are mean "
        f"± std over seeds. The study's numbers come from a different protocol (<b>{study.PROTOCOL}</b>, 1,825 "
        "unaugmented files, single runs, last epoch) and are not directly comparable.</p>",
        table.to_html(index=False, escape=True),
    ]
    abl = results[results["kind"] == "ablation"] if not results.empty else results
    if not abl.empty:
        cols = ["sources", "val_macro_f1", "test_accuracy", "test_macro_f1", "ood_accuracy", "ood_macro_f1"]
        a = abl[cols].sort_values("test_accuracy", ascending=False)
        lo, hi = study.ABLATION_ACCURACY
        parts += [
            f"<h2>Ablation: {len(a)} source mixes (F = FIN, L = librosa; order {', '.join(FEATURE_NAMES)})</h2>",
            f"<p>Our test accuracy spread: {a['test_accuracy'].min():.3f}–{a['test_accuracy'].max():.3f}. "
            f"The study's: {lo:.3f}–{hi:.3f} ({study.PROTOCOL}, single runs).</p>",
            a.to_html(index=False, float_format=lambda v: f"{v:.3f}"),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def best_model(results: pd.DataFrame, *, metric: str = "val_macro_f1") -> str:
    """Name of the variant with the best mean validation score (selection never looks at test)."""
    if results.empty:
        raise ValueError("no results to choose from")
    if metric not in results.columns:
        raise ValueError(f"results have no column {metric!r}")
    means = results.groupby("variant", sort=False)[[metric, "val_accuracy"]].mean()
    means = means.sort_values([metric, "val_accuracy"], ascending=False, kind="stable")
    return str(means.index[0])
