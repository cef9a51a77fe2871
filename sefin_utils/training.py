"""Training: datasets, one fit loop (Adam, early stopping, learning-rate halving, seeds), FIN and classifier fits.

:func:`fit` is THE fit loop both model kinds use: Adam at ``lr``; ``EarlyStopping`` on the validation loss restoring
the best epoch's weights; ``ReduceLROnPlateau`` halving the learning rate after ``max(1, patience // 2)`` flat epochs
(down to 1e-6); seconds per epoch recorded (a tqdm bar over epochs on request); with ``keep_initial`` the initial
weights' validation loss is measured first and kept when no epoch beats it (an initialised fast FIN is never made
worse by training).

- FINs: :func:`frames_dataset` frames clips of a ClipStore on the fly (real frames plus a share of padding frames),
  :func:`array_dataset` batches in-memory frames; :func:`fit_fin` fits a FIN in its training space
  (``fins.TargetStats``); :func:`train_fin` builds, seeds and fits one FIN on arrays.
- Classifiers: :func:`make_dataset` batches input dicts (a seeded shuffle, memory maps read batch by batch);
  :func:`train_classifier` compiles with sparse cross-entropy and fits; :func:`predict_proba`.

Seeds come from ``io.seed_everything`` (FINs) and from each layer's own seed (classifiers: ``classifiers.build_head``);
dataset shuffles are seeded.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from . import features as _features  # noqa: E402
from .constants import FRAME_LENGTH, HOP_LENGTH  # noqa: E402
from .fins import TargetStats, build_fin, check_arch, check_name, feature_dim  # noqa: E402
from .io import seed_everything  # noqa: E402
from .layers import TargetTransform  # noqa: E402

DEFAULT_EPOCHS: int = 30
DEFAULT_PATIENCE: int = 4
"""FIN training defaults (epochs, early-stopping patience)."""
DEFAULT_PAD_KEEP: float = 0.25
"""Share of padding-only frames kept in FIN training batches (all real-audio frames are always kept)."""
MAX_TENSOR_BYTES: int = 2**30
"""Classifier inputs larger than this are batched from numpy by a generator instead of being copied into one tensor."""


# --------------------------------------------------------------------------------------------------------------------
# the fit loop


class _EpochLog(keras.callbacks.Callback):
    """Records seconds per epoch and shows a tqdm bar over epochs (when ``progress``)."""

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


class ValMacroF1(keras.callbacks.Callback):
    """Adds ``val_macro_f1`` (scikit-learn's macro-F1 over the classes present in ``y_val``) to each epoch's logs.

    Must run before the callbacks that monitor it (EarlyStopping, ReduceLROnPlateau): :func:`fit` puts it first.
    """

    def __init__(self, val_ds: Any, y_val: np.ndarray) -> None:
        super().__init__()
        self._ds = val_ds
        self._y = np.asarray(y_val, dtype=int)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["val_macro_f1"] = _macro_f1(self.model, self._ds, self._y)


MONITORS: dict[str, str] = {"val_loss": "min", "val_macro_f1": "max"}
"""What :func:`fit` can select the epoch on, and in which direction."""
LR_SCHEDULES: tuple[str, ...] = ("plateau", "cosine")
"""``plateau``: halve the learning rate after ``max(1, patience // 2)`` flat epochs; ``cosine``: cosine decay from
``lr`` to 0 over ``epochs`` (Loshchilov & Hutter, SGDR, 2017)."""


def fit(
    model: keras.Model,
    train_ds: Any,
    val_ds: Any,
    *,
    loss: str,
    epochs: int,
    lr: float,
    patience: int,
    metrics: list[str] | None = None,
    min_delta: float = 0.0,
    class_weight: Mapping[int, float] | None = None,
    keep_initial: bool = False,
    progress: bool = False,
    verbose: int = 0,
    jit_compile: bool | str = "auto",
    run_eagerly: bool = False,
    monitor: str = "val_loss",
    y_val: np.ndarray | None = None,
    weight_decay: float = 0.0,
    lr_schedule: str = "plateau",
    steps_per_epoch: int | None = None,
) -> dict[str, Any]:
    """Compile ``model`` (Adam at ``lr``, ``loss``, ``metrics``) and fit it on ``train_ds``, selecting on ``val_ds``.

    ``monitor`` picks the selection score (:data:`MONITORS`): ``val_loss`` (default) or ``val_macro_f1`` (needs
    ``y_val``, the labels of ``val_ds`` in order; computed each epoch by :class:`ValMacroF1`). ``weight_decay`` > 0
    uses AdamW (decoupled weight decay, Loshchilov & Hutter 2019). ``lr_schedule`` (:data:`LR_SCHEDULES`):
    ``cosine`` needs ``steps_per_epoch`` and replaces the plateau halving.

    ``EarlyStopping(monitor="val_loss", patience, min_delta, restore_best_weights=True)`` and
    ``ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2), min_lr=1e-6)``. With
    ``keep_initial`` the validation loss of the initial weights is measured first, and they are put back when no
    epoch beats it (with ``monitor="val_macro_f1"`` the initial weights' validation macro-F1 is the score to beat: a
    warm-started model is never made worse on validation by fine-tuning). ``run_eagerly`` skips graph tracing (for
    tiny test runs). Datasets are already shuffled (seeded).

    Returns
    -------
    dict
        ``history`` (per-epoch lists), ``epoch_seconds``, ``s_per_epoch`` (median after the first, compiling epoch),
        ``first_epoch_s``, ``epochs_run``, ``best_epoch`` (1-based), ``best_val_loss``; with ``keep_initial`` also
        ``initial_val_loss``, ``initial_score`` (on ``monitor``) and ``kept_initial`` (the best values then count the
        initial weights too; ``best_epoch`` 0 when they were kept).
    """
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {monitor!r}")
    if monitor == "val_macro_f1" and y_val is None:
        raise ValueError("monitor='val_macro_f1' needs y_val (the validation labels in dataset order)")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    rate: Any = lr
    if lr_schedule == "cosine":
        if not steps_per_epoch:
            raise ValueError("lr_schedule='cosine' needs steps_per_epoch")
        rate = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, epochs * int(steps_per_epoch)))
    if weight_decay and weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate=rate, weight_decay=float(weight_decay))
    else:
        optimizer = keras.optimizers.Adam(learning_rate=rate)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        jit_compile=False if run_eagerly else jit_compile,
        run_eagerly=run_eagerly,
    )
    if keep_initial:
        initial = model.get_weights()
        init_loss = float(np.ravel(model.evaluate(val_ds, verbose=0))[0])
        init_score = init_loss if monitor == "val_loss" else _macro_f1(model, val_ds, y_val)
    log = _EpochLog(epochs, model.name, progress)
    mode = MONITORS[monitor]
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, restore_best_weights=True
    )
    callbacks: list[keras.callbacks.Callback] = [ValMacroF1(val_ds, y_val)] if y_val is not None else []
    callbacks.append(stop)
    if lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, mode=mode, factor=0.5, patience=max(1, patience // 2), min_lr=1e-6
            )
        )
    hist = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        callbacks=[*callbacks, log],
        class_weight=dict(class_weight) if class_weight else None,
        shuffle=False,  # the datasets are already shuffled (seeded)
        verbose=verbose,
    )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    val_loss = history.get("val_loss", [])
    score = history.get(monitor, [])
    if score:  # the first best epoch, as EarlyStopping keeps it
        best = int(np.argmin(score)) if mode == "min" else int(np.argmax(score))
    else:
        best = len(log.seconds) - 1
    out: dict[str, Any] = {
        "history": history,
        "epoch_seconds": log.seconds,
        # the first epoch includes tracing/compilation: report the median of the others when there are any
        "s_per_epoch": float(np.median(log.seconds[1:] or log.seconds)) if log.seconds else float("nan"),
        "first_epoch_s": float(log.seconds[0]) if log.seconds else float("nan"),
        "epochs_run": len(log.seconds),
        "best_epoch": best + 1,
        "best_val_loss": float(val_loss[best]) if val_loss else float("nan"),
        "monitor": monitor,
    }
    if "val_macro_f1" in history:
        out["best_val_macro_f1"] = float(history["val_macro_f1"][best])
    if keep_initial:
        best_score = (min if mode == "min" else max)(score or [math.inf if mode == "min" else -math.inf])
        kept = not (best_score < init_score if mode == "min" else best_score > init_score)
        if kept:
            model.set_weights(initial)
        out.update(initial_val_loss=init_loss, initial_score=init_score, kept_initial=kept)
        if monitor == "val_loss":
            out["best_val_loss"] = min(best_score, init_loss)
        elif kept:
            out.update(best_val_loss=init_loss, best_val_macro_f1=init_score, best_epoch=0)
    return out


def _macro_f1(model: keras.Model, ds: Any, y: np.ndarray) -> float:
    """Macro-F1 of ``model`` on dataset ``ds`` with labels ``y`` (the classes present in ``y``, as
    :class:`ValMacroF1`)."""
    from sklearn.metrics import f1_score

    y = np.asarray(y, dtype=int)
    pred = np.argmax(np.asarray(model.predict(ds, verbose=0)), axis=1)
    return float(f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0))


# --------------------------------------------------------------------------------------------------------------------
# FIN data


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

    check_name(name)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise ValueError(f"no clips selected for FIN {name!r}")
    labels = store.labels[name]
    dim = feature_dim(name)
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
    if y.shape[1] != feature_dim(name):
        raise ValueError(f"{what} targets for {name!r} must be (n, {feature_dim(name)}), got {y.shape}")
    return frames, y


# --------------------------------------------------------------------------------------------------------------------
# FIN training


def training_model(model: keras.Model, stats: TargetStats | None) -> keras.Model:
    """The model a FIN is fitted as: up to its fixed inverse (``study`` + stats), or followed by the forward transform
    (``fast`` + stats), or itself. Layers are shared, so fitting it trains ``model``."""
    last = model.layers[-1]
    if isinstance(last, TargetTransform) and last.inverse:
        return keras.Model(model.inputs, last.input, name=model.name + "_train")
    if stats is not None:
        return keras.Model(model.inputs, stats.layer(inverse=False, name="to_target")(model.output))
    return model


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

    :func:`fit` on :func:`training_model` with ``keep_initial`` (an initialised ``fast`` FIN is never made worse by
    training). Returns the per-epoch history (``loss``, ``val_loss``, ``learning_rate``) plus ``epoch_s``,
    ``epochs_run``, ``initial_val_loss``, ``best_val_loss``, ``kept_initial``.
    """
    out = fit(
        training_model(model, stats),
        train_ds,
        val_ds,
        loss=loss,
        epochs=epochs,
        lr=lr,
        patience=patience,
        min_delta=min_delta,
        keep_initial=True,
        verbose=verbose,
    )
    h = dict(out["history"])
    h.update(
        epoch_s=out["epoch_seconds"],
        epochs_run=out["epochs_run"],
        initial_val_loss=out["initial_val_loss"],
        best_val_loss=out["best_val_loss"],
        kept_initial=out["kept_initial"],
    )
    return h


def loss_for(name: str, arch: str, stats: TargetStats | None) -> str:
    """The training loss: the feature's own (``Feature.loss``, the study's) on raw targets of a ``study`` FIN, MSE in a
    standardised training space."""
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
        ``io.seed_everything(seed)`` before building (weights, shuffling).
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
    check_name(name)
    check_arch(arch)
    train_frames, train_y = _check_frames(train_frames, train_y, name, "train")
    val_frames, val_y = _check_frames(val_frames, val_y, name, "val")
    seed_everything(seed)
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
            loss=loss_for(name, arch, stats),
            stats=stats if arch == "fast" else None,
            epochs=epochs,
            lr=lr,
            patience=patience,
            verbose=verbose,
        )
    hist["target_stats"] = stats.to_dict() if stats else None
    return model, hist


# --------------------------------------------------------------------------------------------------------------------
# classifier data and training


class RowView:
    """Rows ``rows`` of an array (a memmap: nothing is read until indexed), as float32.

    ``view[idx]`` reads ``array[rows[idx]]`` (``idx`` an int array, a slice or an int); ``np.asarray(view)`` reads every
    row. :func:`make_dataset` streams views batch by batch (rows sorted within a batch, so a memmap reads forward).
    """

    def __init__(self, array: Any, rows: np.ndarray | None = None) -> None:
        self.array = array
        self.rows = np.arange(len(array), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *tuple(array.shape[1:]))
        self.dtype = np.dtype("float32")
        self.nbytes = int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: Any) -> np.ndarray:
        rows = self.rows[idx]
        if np.ndim(rows) == 0:
            return np.asarray(self.array[int(rows)], dtype="float32")
        rows = np.asarray(rows)
        if len(rows) > 1 and np.all(rows[1:] == rows[:-1] + 1):  # a contiguous run: one slice read
            return np.asarray(self.array[int(rows[0]) : int(rows[-1]) + 1], dtype="float32")
        return np.asarray(self.array[rows], dtype="float32")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype)


def _nbytes(v: Any) -> int:
    return int(v.nbytes) if hasattr(v, "nbytes") else int(np.asarray(v).nbytes)


def _n_rows(inputs: Mapping[str, np.ndarray]) -> int:
    lens = {k: len(v) for k, v in inputs.items()}
    if len(set(lens.values())) != 1:
        raise ValueError(f"inputs disagree on the number of rows: {lens}")
    return next(iter(lens.values()))


def model_norm_stats(
    model: keras.Model,
    layer: str,
    train_inputs: Mapping[str, Any],
    *,
    seed: int = 0,
    batch_size: int = 32,
    max_clips: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Standardisation statistics (``classifiers.norm_stats``: per-column mean and variance) of the output of
    ``model``'s layer ``layer`` (an (n, d) pooled vector) on a seeded subset of at most ``max_clips`` of the
    ``train_inputs`` rows (a mapping of input name -> array or memmap, first axis clips). Used for models whose own
    pooled vectors are not on the librosa labels' scale (re-initialised FINs). Frees the Keras session afterwards."""
    from .classifiers import norm_stats

    pooled = keras.Model(model.inputs, model.get_layer(layer).output)
    n = len(next(iter(train_inputs.values())))
    pick = np.sort(np.random.default_rng(int(seed)).permutation(n)[:max_clips])
    x = {k: np.asarray(v[pick], dtype="float32") for k, v in train_inputs.items()}
    out = np.asarray(pooled.predict(make_dataset(x, None, batch_size=batch_size), verbose=0))
    keras.backend.clear_session(free_memory=True)
    return norm_stats(out)


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
    if sum(_nbytes(v) for v in inputs.values()) <= max_tensor_bytes:
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        data = arrays if y is None else (arrays, np.asarray(y))
        ds = tf.data.Dataset.from_tensor_slices(data)
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    rng = np.random.default_rng(seed)  # one generator: every epoch draws a new permutation
    labels = None if y is None else np.asarray(y)

    def batches() -> Any:
        order = rng.permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            b = np.sort(order[start : start + batch_size])
            x = {k: np.asarray(v[b], dtype="float32") for k, v in inputs.items()}  # RowView: one read per batch
            yield x if labels is None else (x, labels[b])

    x_sig = {k: tf.TensorSpec((None, *np.shape(v)[1:]), tf.float32) for k, v in inputs.items()}
    sig = x_sig if labels is None else (x_sig, tf.TensorSpec((None,), tf.as_dtype(labels.dtype)))
    return tf.data.Dataset.from_generator(batches, output_signature=sig).prefetch(tf.data.AUTOTUNE)


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
    select: str = "val_loss",
    weight_decay: float = 0.0,
    lr_schedule: str = "plateau",
    keep_initial: bool = False,
) -> dict[str, Any]:
    """Compile (Adam, sparse cross-entropy, accuracy) and :func:`fit` with early stopping on ``select``.

    ``select``: ``val_loss`` (default here) or ``val_macro_f1`` (what ``experiments.run_experiments`` uses by
    default: the epoch with the best validation macro-F1 is restored). ``weight_decay`` and ``lr_schedule``: see
    :func:`fit`. ``keep_initial``: the given weights are kept when no epoch beats them on ``select`` (fine-tuning a
    warm-started model).

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
    return fit(
        model,
        make_dataset(train_inputs, y_train, batch_size=batch_size, shuffle=True, seed=seed),
        make_dataset(val_inputs, y_val, batch_size=batch_size),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        epochs=epochs,
        lr=lr,
        patience=patience,
        class_weight=class_weight,
        progress=progress,
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
        monitor=select,
        y_val=y_val if select == "val_macro_f1" else None,
        weight_decay=weight_decay,
        lr_schedule=lr_schedule,
        steps_per_epoch=math.ceil(len(y_train) / batch_size),
        keep_initial=keep_initial,
    )


def predict_proba(model: keras.Model, inputs: Mapping[str, np.ndarray], *, batch_size: int = 128) -> np.ndarray:
    """Class probabilities (n, n_classes) for an input dict."""
    return np.asarray(model.predict(make_dataset(inputs, None, batch_size=batch_size), verbose=0))
