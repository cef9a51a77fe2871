"""The predict bundle: a trained emotion classifier with everything needed to score new audio.

A bundle is a folder (``runs/<profile>/model/``) holding

``classifier.keras``
    the Keras model. Feature standardisation lives *inside* it (``ser.py`` puts ``Normalization`` layers in), so
    there is no external scaler to lose: :func:`save_bundle` checks for one and refuses a model without it (except
    a model named ``*_raw``, trained on raw features by design).
``preprocess.json``
    ``kind`` (``summary``: the 162-dim Kaggle vector; ``end_to_end``: clips/frames + mask + librosa inputs),
    ``classes``, ``sr``, ``offset``, ``duration``, ``clip_samples``, ``frame_length``, ``hop_length``, ``calm``,
    ``sources`` (feature -> ``fin``/``librosa``, end-to-end only), ``offset_rule`` and ``window_hop`` (see below).
``card.json``
    metrics, the data the model saw, params, ``created`` (UTC ISO time) and ``sefin_version``.
``fins/``
    the FINs as ``<feature>.keras`` when given separately (FINs embedded in the classifier need no copy).

The folder is written to a temporary sibling and renamed into place, so a bundle is either complete or absent.

Windowing rule for new audio (``offset_rule="fit"``, the default)
-----------------------------------------------------------------
With ``W = duration``, ``H = window_hop`` (half a window by default) and ``n`` the length after loading at ``sr``:

* origin ``o = offset`` (the study's 0.6 s) when ``n >= offset + W``, else ``o = 0``: a user's recording is never
  cut by 0.6 s unless it is long enough to afford it, and for a long file the first window is exactly the
  training clip (:func:`sefin_utils.audio.window`).
* windows start at ``o, o + H, o + 2H, ...`` until one reaches the end of the file; a window that runs past the end
  is zero-padded (centred) like a short training clip, and holds more than ``W - H`` real samples (a trailing window
  with less than one frame of audio is dropped).
* ``n <= W`` (after the origin): one window from ``o``, padded as in training.
* a file's probabilities are the mean of its windows' (each window weighs the same); the windows are kept in
  :attr:`Prediction.windows`. A file's windows are batched apart from other files', so a file gets the same numbers
  alone or among others.

Window positions sit on a fixed grid from the origin, never aligned to the end of the file, so a file whose length
differs by a sample (e.g. after resampling: 48 kHz -> 22,050 Hz rounds the length) is cut at the same places; only the
last window's tail moves. The rule depends only on the length, never on where a file comes from: a corpus file is
treated like any other. ``offset_rule="study"`` instead reproduces training's single window exactly for files shorter
than ``offset + W`` (skip ``offset`` unless less than one frame remains, :func:`sefin_utils.audio.window`).

Examples
--------
>>> clf = EmotionClassifier.from_run("runs/demo")            # doctest: +SKIP
>>> clf.classify_file("my_voice.m4a").emotion                # doctest: +SKIP
'happy'
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sefin_utils.constants import (
    CALM_MODES,
    DURATION_S,
    FRAME_LENGTH,
    HOP_LENGTH,
    OFFSET_S,
    SR,
)

KINDS: tuple[str, ...] = ("summary", "end_to_end")
"""Bundle kinds: ``summary`` (model input: the (n, 162) summary vector), ``end_to_end`` (``ser.inputs_from_clips``)."""
OFFSET_RULES: tuple[str, ...] = ("fit", "study")
"""How the leading offset is applied to files shorter than ``offset + duration`` (see the module docstring)."""
WINDOW_HOP_FRACTION: float = 0.5
"""Default hop between sliding windows, as a fraction of the window length."""
RAW_SUFFIX = "_raw"
"""Model-name suffix of classifiers trained on unstandardised features by design (``ser.build_baseline(...,
standardize=False)``): they need no scaler, so :func:`save_bundle` accepts them without a Normalization layer."""
CLASSIFIER_FILE = "classifier.keras"
PREPROCESS_FILE = "preprocess.json"
CARD_FILE = "card.json"
FINS_DIR = "fins"
NORMALIZATION_LAYERS: tuple[str, ...] = ("Normalization",)
"""Keras layer classes accepted as in-model feature standardisation."""


class BundleError(ValueError):
    """A bundle folder that is missing, incomplete or inconsistent; the message names the folder and the problem."""


# --------------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowPrediction:
    """Class probabilities of one analysis window ``[start_s, end_s)`` of a file (times in the loaded signal)."""

    start_s: float
    end_s: float
    probabilities: dict[str, float]

    @property
    def emotion(self) -> str:
        """The most probable class of this window."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "start_s": round(self.start_s, 4),
            "end_s": round(self.end_s, 4),
            "emotion": self.emotion,
            "probabilities": self.probabilities,
        }


@dataclass(frozen=True)
class Prediction:
    """The result for one file or signal.

    ``probabilities`` is the mean of the window probabilities (class -> probability, in model class order);
    ``emotion`` the top class. On failure ``error`` holds the message and ``emotion`` is None.
    """

    path: str | None
    emotion: str | None
    probabilities: dict[str, float]
    windows: list[WindowPrediction] = field(default_factory=list)
    duration_s: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was scored."""
        return self.error is None

    def to_dict(self, *, windows: bool = False) -> dict[str, Any]:
        """JSON-ready dict: ``path``, ``emotion``, ``probabilities``, ``error``, ``duration_s``, ``n_windows``
        (+ ``windows`` when asked)."""
        out: dict[str, Any] = {
            "path": self.path,
            "emotion": self.emotion,
            "probabilities": self.probabilities,
            "error": self.error,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 4),
            "n_windows": len(self.windows),
        }
        if windows:
            out["windows"] = [w.to_dict() for w in self.windows]
        return out

    @classmethod
    def failed(cls, path: str | Path | None, error: str) -> Prediction:
        """A prediction that records a failure."""
        return cls(path=None if path is None else str(path), emotion=None, probabilities={}, error=error)


# --------------------------------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: the classifier and its metadata (see the module docstring for the fields)."""

    path: Path
    classifier: Any  # keras.Model
    kind: str
    classes: list[str]
    preprocess: dict[str, Any]
    card: dict[str, Any]
    fins: dict[str, Any] = field(default_factory=dict)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _iter_layers(model: Any):
    """Every layer of a model, descending into nested models."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _iter_layers(layer)


def normalization_layers(model: Any) -> list[str]:
    """Names of the in-model standardisation layers (``keras.layers.Normalization``, nested models included)."""
    return [layer.name for layer in _iter_layers(model) if type(layer).__name__ in NORMALIZATION_LAYERS]


def resolve_preprocess(preprocess: Mapping[str, Any] | None, *, kind: str, classes: Sequence[str]) -> dict[str, Any]:
    """Fill a preprocess dict with the defaults from ``constants`` and validate it.

    Raises
    ------
    ValueError
        An unknown kind/offset rule/calm mode, a non-positive duration, ``clip_samples`` that disagrees with
        ``duration * sr``, or an end-to-end bundle without ``sources``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    p: dict[str, Any] = {
        "sr": SR,
        "offset": OFFSET_S,
        "duration": DURATION_S,
        "frame_length": FRAME_LENGTH,
        "hop_length": HOP_LENGTH,
        "calm": "class",
        "offset_rule": "fit",
        "window_hop": None,
        "sources": None,
    }
    p.update(dict(preprocess or {}))
    p["kind"] = kind
    p["classes"] = [str(c) for c in classes]
    p["sr"] = int(p["sr"])
    p["offset"], p["duration"] = float(p["offset"]), float(p["duration"])
    if p["duration"] <= 0 or p["offset"] < 0:
        raise ValueError(f"preprocess needs duration > 0 and offset >= 0, got {p['duration']} and {p['offset']}")
    expected = int(round(p["duration"] * p["sr"]))
    p.setdefault("clip_samples", expected)
    if p.get("clip_samples") is None:
        p["clip_samples"] = expected
    if int(p["clip_samples"]) != expected:
        raise ValueError(f"preprocess clip_samples={p['clip_samples']} but duration*sr = {expected}")
    p["clip_samples"] = expected
    if p["window_hop"] is None:
        p["window_hop"] = WINDOW_HOP_FRACTION * p["duration"]
    p["window_hop"] = float(p["window_hop"])
    if not 0 < p["window_hop"] <= p["duration"]:
        raise ValueError(f"preprocess window_hop must be in (0, duration={p['duration']}] s, got {p['window_hop']}")
    if p["offset_rule"] not in OFFSET_RULES:
        raise ValueError(f"preprocess offset_rule must be one of {OFFSET_RULES}, got {p['offset_rule']!r}")
    if p["calm"] not in CALM_MODES:
        raise ValueError(f"preprocess calm must be one of {CALM_MODES}, got {p['calm']!r}")
    if kind == "end_to_end" and not p["sources"]:
        raise ValueError("an end_to_end bundle needs preprocess['sources'] (feature -> 'fin' or 'librosa')")
    if len(set(p["classes"])) != len(p["classes"]) or not p["classes"]:
        raise ValueError(f"classes must be a non-empty list of distinct names, got {p['classes']}")
    return p


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _output_dim(model: Any) -> int:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else model.output_shape
    return int(shape[-1])


def save_bundle(
    out_dir: str | Path,
    *,
    classifier: Any,
    kind: str,
    classes: Sequence[str],
    preprocess: Mapping[str, Any] | None = None,
    fins: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
    require_normalization: bool = True,
) -> Path:
    """Write a predict bundle to ``out_dir`` (e.g. ``runs/<profile>/model``), atomically.

    Parameters
    ----------
    out_dir : str or Path
        The bundle folder; an existing bundle there is replaced only once the new one is complete.
    classifier : keras.Model
        Softmax output of ``len(classes)`` units; ``summary`` kind takes (n, 162), ``end_to_end`` takes the dict of
        ``ser.inputs_from_clips``.
    kind : {"summary", "end_to_end"}
    classes : sequence of str
        Class names in the model's output order (``constants.class_names(calm)``).
    preprocess : dict, optional
        ``sr``, ``offset``, ``duration``, ``clip_samples``, ``frame_length``, ``hop_length``, ``calm``, ``sources``
        (end-to-end), ``offset_rule``, ``window_hop`` (s); missing keys take the defaults from ``constants``.
    fins : dict, optional
        Feature name -> keras.Model or path to a ``.keras`` file (its ``.json`` card beside it is copied too).
        Leave None when the FINs are layers of the classifier.
    card : dict, optional
        Metrics, data seen, params...; ``created`` and ``sefin_version`` are filled in when absent.
    require_normalization : bool
        Refuse a classifier without a ``Normalization`` layer (the bundle carries no external scaler), unless its
        name ends in ``_raw`` (trained on raw features by design, as ser's unstandardised baselines).

    Returns
    -------
    Path
        ``out_dir``.
    """
    from sefin_utils import __version__

    out_dir = Path(out_dir)
    pre = resolve_preprocess(preprocess, kind=kind, classes=classes)
    n_out = _output_dim(classifier)
    if n_out != len(pre["classes"]):
        raise ValueError(f"classifier has {n_out} outputs but {len(pre['classes'])} classes were given: {classes}")
    norm = normalization_layers(classifier)
    name = str(getattr(classifier, "name", ""))
    trained_raw = name.endswith(RAW_SUFFIX)
    if require_normalization and not norm and not trained_raw:
        raise ValueError(
            f"classifier {name!r} has no Normalization layer: the bundle carries no external scaler, so feature "
            "standardisation must be inside the model (adapt a keras.layers.Normalization on the training features). "
            f"A model trained on raw features by design may be named '*{RAW_SUFFIX}' (as ser's unstandardised "
            "baselines are), or pass require_normalization=False"
        )
    pre["standardisation"] = {"in_model": bool(norm), "layers": norm, "trained_raw": bool(trained_raw and not norm)}
    card_out = dict(card or {})
    card_out.setdefault("created", _utc_now())
    card_out.setdefault("sefin_version", __version__)
    card_out.setdefault("kind", kind)
    card_out.setdefault("classes", pre["classes"])
    card_out.setdefault("params", int(classifier.count_params()))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        classifier.save(tmp / CLASSIFIER_FILE)
        fin_names: list[str] = []
        if fins:
            (tmp / FINS_DIR).mkdir()
            for name, fin in fins.items():
                target = tmp / FINS_DIR / f"{name}.keras"
                if isinstance(fin, str | Path):
                    src = Path(fin)
                    if not src.is_file():
                        raise FileNotFoundError(f"FIN {name!r}: no such file {src}")
                    shutil.copyfile(src, target)
                    if src.with_suffix(".json").is_file():
                        shutil.copyfile(src.with_suffix(".json"), target.with_suffix(".json"))
                else:
                    fin.save(target)
                fin_names.append(str(name))
        pre["fins"] = fin_names
        _write_json(tmp / PREPROCESS_FILE, pre)
        _write_json(tmp / CARD_FILE, card_out)  # last: a card marks a complete bundle
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _register_custom_objects() -> None:
    """Import the modules whose custom layers models may use, so ``load_model`` can rebuild them."""
    import importlib

    for name in ("sefin_utils.fins", "sefin_utils.ser"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def load_bundle(path: str | Path, *, load_fins: bool = False) -> Bundle:
    """Load a bundle folder written by :func:`save_bundle`.

    Parameters
    ----------
    path : str or Path
        The bundle folder (``runs/<profile>/model``), or a run folder that contains ``model/``.
    load_fins : bool
        Also load the separate FINs in ``fins/`` (not needed to classify).

    Raises
    ------
    BundleError
        The folder or one of its files is missing, or the classifier disagrees with the class list.
    """
    path = Path(path)
    if not (path / PREPROCESS_FILE).is_file() and (path / "model" / PREPROCESS_FILE).is_file():
        path = path / "model"
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle folder")
    for name in (CLASSIFIER_FILE, PREPROCESS_FILE, CARD_FILE):
        if not (path / name).is_file():
            raise BundleError(f"{path}: incomplete bundle, {name} is missing")
    try:
        pre = json.loads((path / PREPROCESS_FILE).read_text())
        card = json.loads((path / CARD_FILE).read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: unreadable bundle metadata ({err})") from err
    for key in ("kind", "classes", "sr", "offset", "duration", "clip_samples"):
        if key not in pre:
            raise BundleError(f"{path / PREPROCESS_FILE}: missing key {key!r}")
    try:
        pre = resolve_preprocess(pre, kind=pre["kind"], classes=pre["classes"])
    except ValueError as err:
        raise BundleError(f"{path / PREPROCESS_FILE}: {err}") from err

    import keras

    _register_custom_objects()
    classifier = keras.models.load_model(path / CLASSIFIER_FILE, compile=False)
    if _output_dim(classifier) != len(pre["classes"]):
        raise BundleError(
            f"{path}: classifier has {_output_dim(classifier)} outputs but the bundle lists {len(pre['classes'])} "
            f"classes {pre['classes']}"
        )
    fins: dict[str, Any] = {}
    if load_fins and (path / FINS_DIR).is_dir():
        for fin_path in sorted((path / FINS_DIR).glob("*.keras")):
            fins[fin_path.stem] = keras.models.load_model(fin_path, compile=False)
    return Bundle(
        path=path, classifier=classifier, kind=pre["kind"], classes=list(pre["classes"]), preprocess=pre, card=card,
        fins=fins,
    )


# --------------------------------------------------------------------------------------------------------------------
# Windows and classification
# --------------------------------------------------------------------------------------------------------------------


def window_starts(
    n_samples: int,
    *,
    sr: int = SR,
    offset: float = OFFSET_S,
    duration: float = DURATION_S,
    hop: float | None = None,
    rule: str = "fit",
) -> list[int]:
    """Start samples of the analysis windows of a signal of ``n_samples`` (see the module docstring's rule).

    Examples
    --------
    >>> window_starts(22050 * 5)                     # 5 s: from 0.6 s, hop 1.25 s; the last one is padded
    [13230, 40792, 68354]
    >>> window_starts(22050 * 3)                     # 3 s < 0.6 + 2.5: from 0, no skip
    [0, 27562]
    >>> window_starts(22050 * 2)                     # shorter than a window: one padded window from 0
    [0]
    """
    if rule not in OFFSET_RULES:
        raise ValueError(f"rule must be one of {OFFSET_RULES}, got {rule!r}")
    w = int(round(duration * sr))
    off = int(round(offset * sr))
    step = int(round((WINDOW_HOP_FRACTION * duration if hop is None else hop) * sr))
    if not 0 < step <= w:
        raise ValueError(f"hop must be > 0 and at most the window ({duration} s), got {step / sr} s")
    if n_samples < off + w:
        if rule == "study":
            return [off if n_samples - off >= FRAME_LENGTH else 0]
        off = 0
    count = 1 + max(0, math.ceil((n_samples - off - w) / step))
    starts = [off + k * step for k in range(count)]
    if len(starts) > 1 and n_samples - starts[-1] < FRAME_LENGTH:
        starts.pop()  # less than one frame of audio left: not worth a padded window
    return starts


def _resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample as :func:`sefin_utils.audio.load` (its ``resample`` when it has one, else librosa ``soxr_hq``)."""
    from sefin_utils import audio

    if hasattr(audio, "resample"):
        return audio.resample(y, orig_sr=orig_sr, target_sr=target_sr)
    import librosa

    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


class EmotionClassifier:
    """Score audio files or signals with a bundle.

    Parameters
    ----------
    bundle : Bundle
        From :func:`load_bundle`.
    hop : float, optional
        Seconds between sliding windows on long files (default: the bundle's ``window_hop``, half a window).
    offset_rule : {"fit", "study"}, optional
        Default: the bundle's (``fit``).
    batch_size : int
        Windows per forward pass (a file's windows are always scored together, so results never depend on the
        other files of a batch).
    """

    def __init__(
        self, bundle: Bundle, *, hop: float | None = None, offset_rule: str | None = None, batch_size: int = 64
    ) -> None:
        self.bundle = bundle
        pre = bundle.preprocess
        self.sr: int = int(pre["sr"])
        self.offset: float = float(pre["offset"])
        self.duration: float = float(pre["duration"])
        self.hop: float = float(pre["window_hop"] if hop is None else hop)
        self.offset_rule: str = offset_rule or pre.get("offset_rule", "fit")
        if self.offset_rule not in OFFSET_RULES:
            raise ValueError(f"offset_rule must be one of {OFFSET_RULES}, got {self.offset_rule!r}")
        if not 0 < self.hop <= self.duration:
            raise ValueError(f"hop must be > 0 and at most the window ({self.duration} s), got {self.hop} s")
        self.batch_size = int(batch_size)
        self._input_names = [str(getattr(t, "name", "")) for t in getattr(bundle.classifier, "inputs", [])]

    # constructors ----------------------------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, path: str | Path, **kwargs: Any) -> EmotionClassifier:
        """Load the bundle folder ``path`` (``runs/<profile>/model``)."""
        return cls(load_bundle(path), **kwargs)

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs: Any) -> EmotionClassifier:
        """Load the bundle of a run folder (``<run_dir>/model``)."""
        run_dir = Path(run_dir)
        if not (run_dir / "model").is_dir():
            raise BundleError(
                f"{run_dir}: no model/ bundle in this run folder (a completed `python -m sefin_utils run` writes one)"
            )
        return cls(load_bundle(run_dir / "model"), **kwargs)

    # properties ------------------------------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        """Class names in output order."""
        return list(self.bundle.classes)

    @property
    def kind(self) -> str:
        """``summary`` or ``end_to_end``."""
        return self.bundle.kind

    def __repr__(self) -> str:
        return f"EmotionClassifier({self.bundle.path}, kind={self.kind}, classes={self.classes})"

    # classification --------------------------------------------------------------------------------------------
    def classify_file(self, path: str | Path) -> Prediction:
        """Load a file (any rate, mono or stereo; :func:`sefin_utils.audio.load`) and classify it.

        Raises
        ------
        sefin_utils.audio.AudioError
            Unreadable, empty, silent, too-short or NaN-containing file.
        """
        from sefin_utils import audio

        y = audio.load(path, sr=self.sr)
        return self._classify(y, path=str(path))

    def classify_signal(self, y: np.ndarray, sr: int, *, path: str | None = None) -> Prediction:
        """Classify a signal: (n,) mono or (n, channels) / (channels, n) multi-channel at any rate ``sr``.

        Channels are averaged and the signal resampled exactly as :func:`sefin_utils.audio.load` does (librosa's
        ``soxr_hq``), so a signal and the same samples read from a file give identical predictions.
        """
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=1 if y.shape[0] > y.shape[1] else 0)
        if y.ndim != 1:
            raise ValueError(f"expected a (n,) or (n, channels) signal, got shape {y.shape}")
        name = path or "<signal>"
        if y.size == 0:
            raise ValueError(f"{name}: empty signal")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{name}: signal has {int(np.sum(~np.isfinite(y)))} NaN/inf samples")
        from sefin_utils.audio import SILENCE_PEAK

        if float(np.max(np.abs(y))) < SILENCE_PEAK:
            raise ValueError(f"{name}: all-silent signal (peak below {SILENCE_PEAK:.0e})")
        if int(sr) != self.sr:
            y = np.ascontiguousarray(_resample(y, int(sr), self.sr), dtype=np.float32)
        if len(y) < FRAME_LENGTH:
            raise ValueError(f"{name}: too short ({len(y)} samples at {self.sr} Hz < one {FRAME_LENGTH}-sample frame)")
        return self._classify(y, path=path)

    def windows(self, y: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]], list[int]]:
        """Cut a loaded signal into model windows: ``(clips (k, clip_samples), valid ranges, start samples)``."""
        from sefin_utils import audio

        starts = window_starts(
            len(y), sr=self.sr, offset=self.offset, duration=self.duration, hop=self.hop, rule=self.offset_rule
        )
        clips, valid = [], []
        for s in starts:
            clip = audio.window(y, sr=self.sr, offset=s / self.sr, duration=self.duration)
            clips.append(clip.samples)
            valid.append(tuple(int(v) for v in clip.valid))
        return np.stack(clips).astype(np.float32), valid, starts

    def model_inputs(self, clips: np.ndarray, valid: Sequence[tuple[int, int]]) -> Any:
        """The classifier's input for a batch of clips.

        ``summary``: (k, 162) summary vectors of each clip's real samples (as ``cache`` computes them);
        ``end_to_end``: ``ser.inputs_from_clips(clips, mask, sources)`` with the padding-aware frame mask.
        """
        if self.kind == "summary":
            from sefin_utils import features

            # as the cache: on the real samples only (clip[valid_start:valid_stop]), never on the padding
            x = np.stack([features.clip_summary(c, v) for c, v in zip(clips, valid, strict=True)]).astype(np.float32)
            return {"summary": x} if self._input_names == ["summary"] else x
        from sefin_utils import features, ser

        n = clips.shape[1]
        pre = self.bundle.preprocess
        mask = np.stack([features.valid_frame_mask(v, n) for v in valid])
        return ser.inputs_from_clips(clips, mask.astype(np.float32), pre["sources"], progress=False)

    def predict_proba(self, clips: np.ndarray, valid: Sequence[tuple[int, int]]) -> np.ndarray:
        """Class probabilities (k, n_classes) of clips, in chunks of ``batch_size``."""
        out = []
        for i in range(0, len(clips), self.batch_size):
            x = self.model_inputs(clips[i : i + self.batch_size], valid[i : i + self.batch_size])
            p = self.bundle.classifier(x, training=False)
            out.append(np.asarray(p, dtype=np.float64))
        probs = np.concatenate(out)
        if probs.ndim != 2 or probs.shape[1] != len(self.classes):
            raise BundleError(
                f"{self.bundle.path}: classifier returned shape {probs.shape}, expected (k, {len(self.classes)})"
            )
        return probs

    def _classify(self, y: np.ndarray, *, path: str | None) -> Prediction:
        clips, valid, starts = self.windows(y)
        probs = self.predict_proba(clips, valid)
        mean = probs.mean(axis=0)
        classes = self.classes
        w = int(round(self.duration * self.sr))
        windows = [
            WindowPrediction(
                start_s=s / self.sr,
                end_s=min(s + w, len(y)) / self.sr,
                probabilities={c: float(p) for c, p in zip(classes, row, strict=True)},
            )
            for s, row in zip(starts, probs, strict=True)
        ]
        return Prediction(
            path=path,
            emotion=classes[int(np.argmax(mean))],
            probabilities={c: float(p) for c, p in zip(classes, mean, strict=True)},
            windows=windows,
            duration_s=len(y) / self.sr,
        )


__all__ = [
    "Bundle",
    "BundleError",
    "EmotionClassifier",
    "KINDS",
    "OFFSET_RULES",
    "Prediction",
    "WindowPrediction",
    "load_bundle",
    "normalization_layers",
    "resolve_preprocess",
    "save_bundle",
    "window_starts",
]
