"""Inference: the predict bundle (save, load, preprocess, card) and :class:`EmotionClassifier` (scoring files and
signals). The ``predict`` command (finding files, output formats, CLI) is :mod:`sefin_utils.predict`.

Never imports training code at module level (fins, ser, classifiers, training, experiments): a bundle needs only
Keras, the custom layers its model was saved with (imported by name when it is loaded), ``audio`` and ``features``.

A bundle is a folder (``runs/<profile>/model/``) holding

``classifier.keras``
    the Keras model. Feature standardisation lives *inside* it (``Normalization`` layers), so there is no external
    scaler to lose: :func:`save_bundle` refuses a model without one (except a model named ``*_raw``, trained on raw
    features by design).
``preprocess.json``
    ``kind`` (``summary``: the 162-dim Kaggle vector; ``end_to_end``: clips/frames + mask + librosa inputs),
    ``classes``, ``sr``, ``offset``, ``duration``, ``clip_samples``, ``frame_length``, ``hop_length``, ``calm``,
    ``sources`` (feature -> ``fin``/``librosa``, end-to-end only), ``offset_rule``, ``window_hop`` and
    ``layer_modules`` (the modules that register the model's custom layers).
``card.json``
    metrics, the data the model saw (``data.generated`` is true for sefin's generated demo corpus: every answer of
    such a bundle then carries :data:`GENERATED_WARNING`), params, ``created`` (UTC ISO time), ``sefin_version``.
``fins/``
    the FINs as ``<feature>.keras`` when given separately (FINs embedded in the classifier need no copy).

The folder is written to a temporary sibling and renamed into place, so a bundle is either complete or absent.

Windowing rule for new audio (``offset_rule="fit"``, the default)
-----------------------------------------------------------------
With ``W = duration``, ``H = window_hop`` (half a window by default) and ``n`` the length after loading at ``sr``
*up to the end of the last sound* (trailing digital silence is padding, see below):

* origin ``o = offset`` (the study's 0.6 s) when ``n >= offset + W``, else ``o = 0``: a user's recording is never
  cut by 0.6 s unless it is long enough to afford it, and for a long file the first window is exactly the
  training clip (:func:`sefin_utils.audio.window`).
* windows start at ``o, o + H, o + 2H, ...`` until one reaches the end; a window that runs past the end is
  zero-padded (centred) like a short training clip (a trailing window with less than one frame of audio is dropped).
* ``n <= W`` (after the origin): one window from ``o``, padded as in training.
* a file's probabilities are the mean of its used windows' (each weighs the same). A file's windows are batched
  apart from other files', so a file gets the same numbers alone or among others.

``offset_rule="study"`` instead reproduces training's single window exactly for files shorter than ``offset + W``.

Silence inside a recording
--------------------------
Runs of digital silence (:func:`sefin_utils.audio.sound_intervals`: at least 0.1 s of a flat signal) are treated
like padding: trailing silence does not lengthen the file; in each window the summary vector is computed on the
sound only and the end-to-end frame mask marks only frames that overlap sound; a window with less than one frame of
sound is skipped and counted (``Prediction.n_skipped``). A file with no usable window is a per-file error.

Long recordings
---------------
A file is read in blocks (:func:`sefin_utils.audio.scan` then :func:`sefin_utils.audio.stream`) and its windows are
scored ``batch_size`` at a time, so memory is bounded by the batch, not by the file (``benchmarks/predict_memory.py``).

Examples
--------
>>> clf = EmotionClassifier.from_run("runs/demo")            # doctest: +SKIP
>>> clf.classify_file("my_voice.m4a").emotion                # doctest: +SKIP
'happy'
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sefin_utils import audio
from sefin_utils import io as _io
from sefin_utils.audio import AudioError, display_path
from sefin_utils.constants import CALM_MODES, DURATION_S, FRAME_LENGTH, HOP_LENGTH, OFFSET_S, SR

KINDS: tuple[str, ...] = ("summary", "end_to_end")
"""Bundle kinds: ``summary`` (model input: the (n, 162) summary vector), ``end_to_end`` (clips, mask, labels)."""
OFFSET_RULES: tuple[str, ...] = ("fit", "study")
"""How the leading offset is applied to files shorter than ``offset + duration`` (see the module docstring)."""
WINDOW_HOP_FRACTION: float = 0.5
"""Default hop between sliding windows, as a fraction of the window length."""
RAW_SUFFIX = "_raw"
"""Model-name suffix of classifiers trained on unstandardised features by design: they need no scaler, so
:func:`save_bundle` accepts them without a Normalization layer."""
CLASSIFIER_FILE = "classifier.keras"
PREPROCESS_FILE = "preprocess.json"
CARD_FILE = "card.json"
FINS_DIR = "fins"
NORMALIZATION_LAYERS: tuple[str, ...] = ("Normalization",)
"""Keras layer classes accepted as in-model feature standardisation."""
DEFAULT_LAYER_MODULES: tuple[str, ...] = ("sefin_utils.layers", "sefin_utils.fins")
"""Where the custom layers of a bundle that does not name its ``layer_modules`` (older bundles) are registered: the
first of these that exists is imported when such a bundle is loaded."""
GENERATED_WARNING = (
    "model trained on sefin's GENERATED demo corpus, not on real speech: this answer says nothing about the "
    "emotion in a real recording"
)
"""The warning every answer of a bundle whose card says ``data.generated: true`` carries (table, CSV, JSON)."""


class BundleError(ValueError):
    """A bundle folder that is missing, incomplete or inconsistent; the message names the folder and the problem."""


# --------------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowPrediction:
    """Class probabilities of one analysis window ``[start_s, end_s)`` of a file (times in the loaded signal);
    ``sound_s``: seconds of sound (not digital silence) it held."""

    start_s: float
    end_s: float
    probabilities: dict[str, float]
    sound_s: float | None = None

    @property
    def emotion(self) -> str:
        """The most probable class of this window."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = {
            "start_s": round(self.start_s, 4),
            "end_s": round(self.end_s, 4),
            "emotion": self.emotion,
            "probabilities": self.probabilities,
        }
        if self.sound_s is not None:
            out["sound_s"] = round(self.sound_s, 4)
        return out


@dataclass(frozen=True)
class Prediction:
    """The result for one file or signal.

    ``probabilities`` is the mean of the used windows' probabilities (class -> probability, in model class order);
    ``emotion`` the top class. On failure ``error`` holds the message and ``emotion`` is None; a file that is not
    audio (found in a folder) has ``skipped`` set instead. ``n_skipped``: windows left out as digital silence.
    ``notes``: what was repaired or chosen while reading (stale header, dead/cancelling channel). ``warning``: set
    on every answer of a bundle trained on generated data (:data:`GENERATED_WARNING`).
    """

    path: str | None
    emotion: str | None
    probabilities: dict[str, float]
    windows: list[WindowPrediction] = field(default_factory=list)
    duration_s: float | None = None
    error: str | None = None
    n_skipped: int = 0
    notes: tuple[str, ...] = ()
    warning: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was scored."""
        return self.error is None and self.skipped is None

    def to_dict(self, *, windows: bool = False) -> dict[str, Any]:
        """JSON-ready dict: ``path``, ``emotion``, ``probabilities``, ``error``, ``duration_s``, ``n_windows`` (used),
        ``n_windows_skipped`` (silent), ``notes``, ``warning``, ``skipped`` (+ ``windows`` when asked)."""
        out: dict[str, Any] = {
            "path": self.path,
            "emotion": self.emotion,
            "probabilities": self.probabilities,
            "error": self.error,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 4),
            "n_windows": len(self.windows),
            "n_windows_skipped": self.n_skipped,
            "notes": list(self.notes),
            "warning": self.warning,
            "skipped": self.skipped,
        }
        if windows:
            out["windows"] = [w.to_dict() for w in self.windows]
        return out

    @classmethod
    def failed(cls, path: str | Path | None, error: str, *, warning: str | None = None) -> Prediction:
        """A prediction that records a failure."""
        return cls(
            path=None if path is None else str(path), emotion=None, probabilities={}, error=error, warning=warning
        )

    @classmethod
    def skip(cls, path: str | Path, reason: str) -> Prediction:
        """A file found in a folder and not scored (not audio, hidden), with the reason."""
        return cls(path=str(path), emotion=None, probabilities={}, skipped=reason)


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

    @property
    def generated(self) -> bool:
        """True when the card says the model was trained on sefin's generated demo corpus."""
        data = self.card.get("data") if isinstance(self.card.get("data"), dict) else {}
        return bool(data.get("generated") or self.card.get("generated"))


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
        ``classifiers.inputs_from_clips``.
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
        pre["layer_modules"] = layer_modules(classifier)
        _io.write_json(tmp / PREPROCESS_FILE, pre)
        _io.write_json(tmp / CARD_FILE, card_out)  # last: a card marks a complete bundle
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


def layer_modules(model: Any) -> list[str]:
    """The ``sefin_utils`` modules that define the custom layers of a model (nested models included)."""
    return sorted({type(layer).__module__ for layer in _iter_layers(model)
                   if type(layer).__module__.startswith("sefin_utils.")})  # fmt: skip


def _import_layer_modules(pre: Mapping[str, Any]) -> None:
    """Import the modules that register a bundle's custom layers, so ``load_model`` can rebuild them: those named
    in ``preprocess["layer_modules"]``, or for an older bundle the first of :data:`DEFAULT_LAYER_MODULES` there is."""
    names = pre.get("layer_modules")
    if names is None:
        names = [next(m for m in DEFAULT_LAYER_MODULES if importlib.util.find_spec(m) is not None)]
    for name in names:
        importlib.import_module(name)


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

    _import_layer_modules(pre)
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
        path=path,
        classifier=classifier,
        kind=pre["kind"],
        classes=list(pre["classes"]),
        preprocess=pre,
        card=card,
        fins=fins,
    )


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


# --------------------------------------------------------------------------------------------------------------------
# Windows and classification
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    start: int  # sample index in the signal
    samples: np.ndarray  # (clip_samples,) float32, padded as in training
    valid: tuple[int, int]  # real (non-padding) samples in the clip
    sound: list[tuple[int, int]]  # sound spans in clip coordinates (inside valid)


def _clip_spans(spans: Sequence[tuple[int, int]], lo: int, hi: int, shift: int) -> list[tuple[int, int]]:
    """Sound spans intersected with ``[lo, hi)`` of the signal, moved by ``shift`` into clip coordinates."""
    out = []
    for a, b in spans:
        a, b = max(a, lo), min(b, hi)
        if b > a:
            out.append((a + shift, b + shift))
    return out


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
        Windows per forward pass; also what bounds memory on a long file. A file's windows are always scored apart
        from other files', so results never depend on the other files of a batch.
    block_s : float
        Seconds of audio read at a time from a file (:func:`sefin_utils.audio.stream`).
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        hop: float | None = None,
        offset_rule: str | None = None,
        batch_size: int = 64,
        block_s: float = audio.BLOCK_S,
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
        self.block_s = float(block_s)
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

    @property
    def warning(self) -> str | None:
        """:data:`GENERATED_WARNING` for a bundle trained on generated data, else None."""
        return GENERATED_WARNING if self.bundle.generated else None

    def __repr__(self) -> str:
        return f"EmotionClassifier({self.bundle.path}, kind={self.kind}, classes={self.classes})"

    # classification --------------------------------------------------------------------------------------------
    def classify_file(self, path: str | Path) -> Prediction:
        """Read a file (any format, rate, channels, length; :mod:`sefin_utils.audio`) block by block and classify it.

        Raises
        ------
        sefin_utils.audio.AudioError
            Unreadable, empty, silent, too-short or NaN-containing file, or no window with sound.
        """
        path = Path(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", audio.AudioWarning)  # scan returns them as notes
            found = audio.scan(path, sr=self.sr, block_s=self.block_s)
        spans = audio.sound_intervals_blocks(audio.stream(path, found, block_s=self.block_s), sr=self.sr)
        return self._classify(
            lambda: audio.stream(path, found, block_s=self.block_s),
            found.n_samples,
            spans,
            path=str(path),
            notes=found.notes,
        )

    def classify_signal(self, y: np.ndarray, sr: int, *, path: str | None = None) -> Prediction:
        """Classify a signal: (n,) mono or (n, channels) / (channels, n) multi-channel at any rate ``sr``.

        Channels are down-mixed (:func:`sefin_utils.audio.downmix`) and the signal resampled exactly as
        :func:`sefin_utils.audio.load` does, so a signal and the same samples read from a file give identical
        predictions.
        """
        y = np.asarray(y, dtype=np.float32)
        name = path or "<signal>"
        notes: tuple[str, ...] = ()
        if y.ndim == 2:
            data = y if y.shape[0] > y.shape[1] else y.T
            if data.size and np.all(np.isfinite(data)):
                y, note = audio.downmix(data)
                notes = (note,) if note else ()
            else:
                y = data.mean(axis=1)
        if y.ndim != 1:
            raise ValueError(f"expected a (n,) or (n, channels) signal, got shape {y.shape}")
        if y.size == 0:
            raise ValueError(f"{name}: empty signal")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{name}: signal has {int(np.sum(~np.isfinite(y)))} NaN/inf samples")
        if float(np.max(np.abs(y))) < audio.SILENCE_PEAK:
            raise ValueError(f"{name}: all-silent signal (peak below {audio.SILENCE_PEAK:.0e})")
        if int(sr) != self.sr:
            y = np.ascontiguousarray(audio.resample(y, orig_sr=int(sr), target_sr=self.sr), dtype=np.float32)
        if len(y) < FRAME_LENGTH:
            raise ValueError(f"{name}: too short ({len(y)} samples at {self.sr} Hz < one {FRAME_LENGTH}-sample frame)")
        spans = audio.sound_intervals(y, sr=self.sr)
        return self._classify(lambda: iter([y]), len(y), spans, path=path, notes=notes)

    def window_starts(self, n_samples: int) -> list[int]:
        """Start samples of the windows of a signal of ``n_samples`` (this classifier's rule, hop and offset)."""
        return window_starts(
            n_samples, sr=self.sr, offset=self.offset, duration=self.duration, hop=self.hop, rule=self.offset_rule
        )

    def _iter_windows(
        self, blocks: Iterator[np.ndarray], end: int, spans: Sequence[tuple[int, int]]
    ) -> Iterator[_Window]:
        """Cut windows from a stream of blocks, holding at most one window plus one block in memory."""
        w = int(round(self.duration * self.sr))
        starts = self.window_starts(end)
        buf = np.zeros(0, np.float32)
        buf_start = 0  # signal index of buf[0] (everything before it was read and dropped)
        blocks = iter(blocks)
        for s in starts:
            stop = min(s + w, end)
            while True:
                if s > buf_start:  # drop what no later window needs
                    drop = min(s - buf_start, len(buf))
                    buf, buf_start = buf[drop:], buf_start + drop
                if buf_start + len(buf) >= stop:
                    break
                block = next(blocks, None)
                if block is None:
                    break
                buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
            seg = buf[s - buf_start : stop - buf_start]
            clip = audio.window(seg, sr=self.sr, offset=0.0, duration=self.duration)
            v0, v1 = (int(v) for v in clip.valid)
            sound = _clip_spans(spans, s, stop, v0 - s)
            yield _Window(s, clip.samples, (v0, v1), sound)

    def windows(self, y: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]], list[int]]:
        """Cut a loaded signal into model windows: ``(clips (k, clip_samples), valid ranges, start samples)``
        (every window of the grid, silent ones included; the grid ends at the last sound)."""
        end = _sound_end(audio.sound_intervals(y, sr=self.sr), len(y))
        wins = list(self._iter_windows(iter([y]), end, [(0, len(y))]))
        return np.stack([x.samples for x in wins]).astype(np.float32), [x.valid for x in wins], [x.start for x in wins]

    def model_inputs(
        self,
        clips: np.ndarray,
        valid: Sequence[tuple[int, int]],
        sound: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> Any:
        """The classifier's input for a batch of clips.

        ``summary``: (k, 162) summary vectors of each clip's real samples (``features.clip_summary``, as the training
        cache computes them), on its sound only when ``sound`` spans leave digital silence out; ``end_to_end``: the
        model's named inputs (``clip``, ``mask`` and librosa ``features.frame_labels``) with the padding- and
        silence-aware frame mask.
        """
        from sefin_utils import features

        sound = [None] * len(clips) if sound is None else sound
        if self.kind == "summary":
            rows = []
            for c, v, s in zip(clips, valid, sound, strict=True):
                if s is None or list(s) == [tuple(v)]:
                    rows.append(features.clip_summary(c, v))
                elif len(s) == 1:
                    rows.append(features.clip_summary(c, s[0]))  # silence only at the edges: like padding
                else:
                    rows.append(features.summary_vector(np.concatenate([c[a:b] for a, b in s])))
            x = np.stack(rows).astype(np.float32)
            # a dict only for a model built on a dict of inputs (the baselines); the anchors' export takes the tensor
            return {"summary": x} if isinstance(getattr(self.bundle.classifier, "input", None), dict) else x
        n = clips.shape[1]
        masks = []
        for v, s in zip(valid, sound, strict=True):
            m = np.zeros(features.n_frames(n), bool)
            for span in [v] if s is None else s:
                m |= features.valid_frame_mask(span, n)
            masks.append(m)
        mask = np.stack(masks).astype(np.float32)
        names = self._input_names or ["clip", "mask"]
        out: dict[str, np.ndarray] = {}
        lib = [k for k in names if k not in ("clip", "mask")]
        if lib:
            per: dict[str, list[np.ndarray]] = {k: [] for k in lib}
            for c in clips:
                labels = features.frame_labels(c, names=lib)
                for k in lib:
                    per[k].append(np.asarray(labels[k], dtype=np.float32)[: mask.shape[1]])
            out.update({k: np.stack(v) for k, v in per.items()})
        if "clip" in names:
            out["clip"] = np.asarray(clips, dtype=np.float32)
        out["mask"] = mask
        return {k: out[k] for k in names}

    def predict_proba(
        self,
        clips: np.ndarray,
        valid: Sequence[tuple[int, int]],
        sound: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> np.ndarray:
        """Class probabilities (k, n_classes) of clips, in chunks of ``batch_size``."""
        out = []
        for i in range(0, len(clips), self.batch_size):
            part = None if sound is None else sound[i : i + self.batch_size]
            x = self.model_inputs(clips[i : i + self.batch_size], valid[i : i + self.batch_size], part)
            p = self.bundle.classifier(x, training=False)
            out.append(np.asarray(p, dtype=np.float64))
        probs = np.concatenate(out)
        if probs.ndim != 2 or probs.shape[1] != len(self.classes):
            raise BundleError(
                f"{self.bundle.path}: classifier returned shape {probs.shape}, expected (k, {len(self.classes)})"
            )
        return probs

    def _classify(
        self,
        blocks: Callable[[], Iterator[np.ndarray]],
        n: int,
        spans: list[tuple[int, int]],
        *,
        path: str | None,
        notes: tuple[str, ...] = (),
    ) -> Prediction:
        name = display_path(path) if path else "<signal>"
        if not spans:
            raise AudioError(name, "no usable window: the recording is digital silence throughout", "silent window")
        end = _sound_end(spans, n)
        w = int(round(self.duration * self.sr))
        used: list[tuple[int, np.ndarray, float]] = []
        skipped = 0
        batch: list[_Window] = []

        def flush() -> None:
            if not batch:
                return
            probs = self.predict_proba(
                np.stack([b.samples for b in batch]), [b.valid for b in batch], [b.sound for b in batch]
            )
            used.extend(
                (b.start, p, sum(y - x for x, y in b.sound) / self.sr) for b, p in zip(batch, probs, strict=True)
            )
            batch.clear()

        for win in self._iter_windows(blocks(), end, spans):
            if sum(b - a for a, b in win.sound) < FRAME_LENGTH:
                skipped += 1
                continue
            batch.append(win)
            if len(batch) >= self.batch_size:
                flush()
        flush()
        if not used:
            raise AudioError(
                name, f"no usable window: all {skipped} window(s) hold less than one frame of sound", "silent window"
            )
        silence = (n - sum(b - a for a, b in spans)) / self.sr
        if silence >= audio.SILENCE_MIN_S:
            notes = (*notes, f"{silence:.1f} s of digital silence treated as padding ({skipped} window(s) skipped)")
        classes = self.classes
        mean = np.mean([p for _, p, _ in used], axis=0)
        windows = [
            WindowPrediction(
                start_s=s / self.sr,
                end_s=min(s + w, end) / self.sr,
                probabilities={c: float(v) for c, v in zip(classes, p, strict=True)},
                sound_s=snd,
            )
            for s, p, snd in used
        ]
        return Prediction(
            path=path,
            emotion=classes[int(np.argmax(mean))],
            probabilities={c: float(p) for c, p in zip(classes, mean, strict=True)},
            windows=windows,
            duration_s=n / self.sr,
            n_skipped=skipped,
            notes=tuple(notes),
            warning=self.warning,
        )


def _sound_end(spans: Sequence[tuple[int, int]], n: int) -> int:
    """Where the signal's last sound ends (trailing digital silence is padding); ``n`` when there is none."""
    return int(spans[-1][1]) if spans else n


__all__ = [
    "Bundle",
    "BundleError",
    "EmotionClassifier",
    "GENERATED_WARNING",
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
