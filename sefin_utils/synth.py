"""The generated demo corpus: speech-like clips laid out with the real corpora's naming conventions.

The demo corpus is what the main job uses when no data root is given. It is *not* speech: every clip is a
synthetic voiced signal (a glottal-pulse source with a pitch contour and a syllable-rate envelope, passed through
formant resonances, plus consonant-like noise bursts and a little background noise). Emotions differ in prosody
(pitch level and range, tempo, loudness, spectral tilt, jitter/shimmer, creak, breathiness, final contour) and
speakers differ in base pitch, formants, loudness and tempo, with moderate per-clip randomness, so that a
classifier learns it well above chance but not trivially.

Layout (one folder per corpus, names as the real releases / Kaggle copies have them)::

    ravdess/Actor_XX/03-01-EE-II-SS-RR-XX.wav                                   48,000 Hz (two files stereo)
    CREMA-D/AudioWAV/1004_DFA_ANG_XX.wav                                        16,000 Hz
    tess/TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav    24,414 Hz
    savee/ALL/DC_a01.wav                                                        44,100 Hz
    esd/0011/Angry/0011_000351.wav                                              16,000 Hz
    GENERATED.txt  demo_manifest.csv

Every file is 16-bit PCM. Generation is deterministic: each file's random numbers come from ``seed`` and the
file's relative path, each speaker's traits from ``seed`` and the speaker, so the same seed gives byte-identical
files whatever ``scale`` is (a smaller scale writes a subset of a larger one's files).

Examples
--------
>>> from sefin_utils import synth
>>> root = synth.write_demo_corpus("/tmp/sefin-demo", progress=False)  # doctest: +SKIP
>>> synth.is_generated(root)  # doctest: +SKIP
True
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import signal

from sefin_utils.constants import EMOTIONS

__all__ = [
    "GENERATED_MARKER",
    "MANIFEST_NAME",
    "MANIFEST_COLUMNS",
    "GENERATOR_VERSION",
    "Prosody",
    "EMOTION_PROSODY",
    "Speaker",
    "DemoFile",
    "plan_demo_corpus",
    "render",
    "write_demo_corpus",
    "is_generated",
    "read_demo_manifest",
    "main",
]

GENERATED_MARKER: str = "GENERATED.txt"
"""File at the demo root that marks the folder as generated (see :func:`is_generated`)."""
MANIFEST_NAME: str = "demo_manifest.csv"
"""The ground-truth table written at the demo root."""
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "corpus",
    "speaker",
    "gender",
    "emotion",
    "source_label",
    "sample_rate",
    "channels",
    "duration_s",
)
"""Columns of ``demo_manifest.csv``; ``path`` is relative to the root, with ``/`` separators."""
GENERATOR_VERSION: int = 2
"""Bumped whenever the signal model changes, so that an old demo folder is regenerated."""

# --------------------------------------------------------------------------------------------------------------
# Prosody of the emotions
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prosody:
    """Prosodic settings of one rendering.

    Attributes
    ----------
    pitch_st : float
        Mean pitch relative to the speaker's base f0 (semitones).
    range_st : float
        Size of the pitch accents (semitones, standard deviation per syllable).
    rate : float
        Syllables per second.
    loud_db : float
        Loudness relative to the corpus reference (dB).
    tilt : float
        Spectral tilt, -1 (dark: long glottal closing phase, low cutoff) to +1 (bright, pressed voice).
    jitter : float
        Relative per-cycle f0 perturbation (standard deviation).
    shimmer : float
        Per-cycle amplitude perturbation (standard deviation of the log amplitude).
    creak : float
        0 to 1: period doubling (alternate cycles weakened) on part of the syllables.
    breath : float
        Aspiration noise relative to the voiced source.
    rise_st : float
        Pitch change over the last third of the utterance (semitones; positive = rising, question-like).
    tremor_st : float
        Depth of a 6 Hz pitch tremor (semitones).
    """

    pitch_st: float
    range_st: float
    rate: float
    loud_db: float
    tilt: float
    jitter: float
    shimmer: float
    creak: float
    breath: float
    rise_st: float
    tremor_st: float

    def toward(self, other: Prosody, k: float) -> Prosody:
        """Return ``self + k * (other - self)`` (rate interpolated on a log scale)."""
        values = {}
        for name in self.__dataclass_fields__:
            a, b = getattr(self, name), getattr(other, name)
            if name == "rate":
                values[name] = float(a * (b / a) ** k)
            else:
                values[name] = float(a + k * (b - a))
        return Prosody(**values)


EMOTION_PROSODY: dict[str, Prosody] = {
    #                    pitch range rate  loud  tilt  jitter shimmer creak breath rise tremor
    "neutral": Prosody(0.0, 2.0, 4.4, 0.0, 0.0, 0.006, 0.04, 0.0, 0.05, -1.0, 0.0),
    "calm": Prosody(-0.8, 1.5, 3.9, -3.0, -0.3, 0.005, 0.035, 0.0, 0.10, -1.5, 0.0),
    "happy": Prosody(3.0, 4.0, 4.9, 3.0, 0.3, 0.007, 0.04, 0.0, 0.05, 0.5, 0.0),
    "sad": Prosody(-2.0, 0.9, 3.3, -6.0, -0.8, 0.010, 0.06, 0.1, 0.20, -2.0, 0.1),
    "angry": Prosody(3.5, 3.0, 5.4, 7.0, 0.9, 0.010, 0.05, 0.0, 0.03, -2.0, 0.0),
    "fear": Prosody(5.0, 2.5, 5.6, 1.0, 0.1, 0.025, 0.08, 0.0, 0.25, 1.0, 0.6),
    "disgust": Prosody(-1.5, 2.5, 3.5, 0.0, -0.3, 0.015, 0.07, 0.6, 0.10, -3.0, 0.0),
    "surprise": Prosody(4.0, 4.5, 4.7, 3.0, 0.4, 0.007, 0.04, 0.0, 0.08, 6.0, 0.0),
}
"""Prosody of each harmonised emotion at the reference intensity (angry: high, loud, fast, bright; sad: low, slow,
quiet, dark, narrow; calm: near neutral but softer and slower; fear: high, jittery, fast, trembling; happy: high,
wide range; surprise: rising contour; disgust: low, slow, creaky)."""
if set(EMOTION_PROSODY) != set(EMOTIONS):  # pragma: no cover - a guard against editing one list only
    raise RuntimeError(f"EMOTION_PROSODY covers {sorted(EMOTION_PROSODY)}, expected {EMOTIONS}")

# Vowel formants (F1-F4, Hz) of an adult male voice and their bandwidths; speakers scale them.
_VOWELS: np.ndarray = np.array(
    [
        [730.0, 1090.0, 2440.0, 3400.0],  # a
        [270.0, 2290.0, 3010.0, 3600.0],  # i
        [300.0, 870.0, 2240.0, 3300.0],  # u
        [530.0, 1840.0, 2480.0, 3450.0],  # e
        [570.0, 840.0, 2410.0, 3300.0],  # o
    ]
)
_BANDWIDTHS: np.ndarray = np.array([80.0, 100.0, 150.0, 220.0])
_CONTROL_RATE: float = 200.0  # Hz: the pitch contour is built at this rate, then interpolated

# --------------------------------------------------------------------------------------------------------------
# What is written: speakers and files
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speaker:
    """A generated speaker: corpus, the corpus' own id and gender."""

    corpus: str
    speaker: str
    gender: str


@dataclass(frozen=True)
class DemoFile:
    """One planned file of the demo corpus.

    Attributes
    ----------
    path : str
        Path relative to the demo root (``/`` separators).
    speaker : Speaker
    emotion : str
        Harmonised emotion.
    source_label : str
        The corpus' own label as in the file name (``05``, ``ANG``, ``angry``, ``a``, ``Angry``).
    sample_rate : int
    channels : int
    duration_s : float
        Length of the file (seconds, rounded to whole samples).
    intensity : float
        Scales the emotion's departure from neutral (RAVDESS strong intensity, CREMA-D levels, ...).
    """

    path: str
    speaker: Speaker
    emotion: str
    source_label: str
    sample_rate: int
    channels: int
    duration_s: float
    intensity: float = 1.0


_RAVDESS_CODES: dict[str, str] = {
    "neutral": "01",
    "calm": "02",
    "happy": "03",
    "sad": "04",
    "angry": "05",
    "fear": "06",
    "disgust": "07",
    "surprise": "08",
}
_CREMA_CODES: dict[str, str] = {
    "angry": "ANG",
    "disgust": "DIS",
    "fear": "FEA",
    "happy": "HAP",
    "neutral": "NEU",
    "sad": "SAD",
}
_CREMA_SENTENCES: tuple[str, ...] = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")
_CREMA_LEVELS: dict[str, float] = {"LO": 0.6, "MD": 1.0, "HI": 1.4, "XX": 1.0}
# Speakers of the real sample, with their sex from CREMA-D's VideoDemographics.csv.
_CREMA_SPEAKERS: tuple[tuple[str, str], ...] = (
    ("1004", "female"),
    ("1028", "female"),
    ("1047", "female"),
    ("1040", "male"),
    ("1044", "male"),
    ("1051", "male"),
)
_TESS_LABELS: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "ps",
}
# The Kaggle copy's (irregular) folder names.
_TESS_FOLDERS: dict[str, dict[str, str]] = {
    "OAF": {
        "angry": "OAF_angry",
        "disgust": "OAF_disgust",
        "fear": "OAF_Fear",
        "happy": "OAF_happy",
        "neutral": "OAF_neutral",
        "sad": "OAF_Sad",
        "surprise": "OAF_Pleasant_surprise",
    },
    "YAF": {
        "angry": "YAF_angry",
        "disgust": "YAF_disgust",
        "fear": "YAF_fear",
        "happy": "YAF_happy",
        "neutral": "YAF_neutral",
        "sad": "YAF_sad",
        "surprise": "YAF_pleasant_surprised",
    },
}
_TESS_ROOT: str = "tess/TESS Toronto emotional speech set data"
_TESS_WORDS: tuple[str, ...] = (
    "back",
    "bar",
    "base",
    "bath",
    "bean",
    "beg",
    "bite",
    "boat",
    "bone",
    "book",
    "burn",
    "cab",
    "calm",
    "came",
    "chain",
    "chair",
    "chalk",
    "chat",
    "check",
    "cheek",
    "dab",
    "date",
    "dead",
    "deep",
    "dime",
    "dip",
    "dog",
    "door",
    "fall",
    "far",
    "fat",
    "five",
    "food",
    "gap",
    "gas",
    "get",
    "goal",
    "good",
    "goose",
    "half",
    "hall",
    "hate",
)
_SAVEE_CODES: dict[str, str] = {
    "angry": "a",
    "disgust": "d",
    "fear": "f",
    "happy": "h",
    "neutral": "n",
    "sad": "sa",
    "surprise": "su",
}
_ESD_FOLDERS: dict[str, str] = {
    "neutral": "Neutral",
    "angry": "Angry",
    "happy": "Happy",
    "sad": "Sad",
    "surprise": "Surprise",
}
_ESD_FIRST: dict[str, int] = {"neutral": 1, "angry": 351, "happy": 701, "sad": 1051, "surprise": 1401}
_ESD_SPEAKERS: tuple[tuple[str, str], ...] = (("0011", "male"), ("0016", "female"))


@dataclass(frozen=True)
class _CorpusAudio:
    per_cell: int  # files per (speaker, emotion) cell at scale 1
    duration: tuple[float, float]  # range of file lengths (s)
    sr: int  # the corpus' native sample rate
    ref_db: float  # reference speech RMS (dBFS)
    noise_db: float  # background noise re speech (dB)
    intensity: float  # how strongly the corpus' actors depart from neutral


_CORPUS_AUDIO: dict[str, _CorpusAudio] = {
    "RAVDESS": _CorpusAudio(2, (3.3, 4.3), 48_000, -31.0, -50.0, 1.0),
    "CREMA-D": _CorpusAudio(2, (2.8, 3.8), 16_000, -27.0, -38.0, 1.0),
    "TESS": _CorpusAudio(3, (2.4, 3.2), 24_414, -25.0, -50.0, 1.2),
    "SAVEE": _CorpusAudio(2, (3.0, 4.4), 44_100, -29.0, -45.0, 1.0),
    "ESD": _CorpusAudio(2, (2.6, 3.8), 16_000, -28.0, -45.0, 0.9),
}


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from the parts (stable across runs, platforms and Python hash seeds)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _count(base: int, scale: float, cap: int) -> int:
    return int(min(cap, max(1, round(base * scale))))


def _duration(seed: int, path: str, corpus: str, sr: int) -> float:
    lo, hi = _CORPUS_AUDIO[corpus].duration
    n = int(round(_rng(seed, "duration", path).uniform(lo, hi) * sr))
    return n / sr


def _file(
    seed: int, path: str, spk: Speaker, emotion: str, label: str, *, intensity: float = 1.0, channels: int = 1
) -> DemoFile:
    audio = _CORPUS_AUDIO[spk.corpus]
    duration = _duration(seed, path, spk.corpus, audio.sr)
    return DemoFile(path, spk, emotion, label, audio.sr, channels, duration, audio.intensity * intensity)


def _plan_ravdess(seed: int, scale: float) -> list[DemoFile]:
    files = []
    for actor in range(1, 9):
        spk = Speaker("RAVDESS", f"{actor:02d}", "male" if actor % 2 else "female")
        for emotion in EMOTIONS:
            # (intensity, statement, repetition); neutral has normal intensity only, as in RAVDESS.
            combos = [(i, s, r) for i in (1, 2) for s in (1, 2) for r in (1, 2)]
            combos = [c for c in combos if not (emotion == "neutral" and c[0] == 2)]
            order = _rng(seed, "plan", "RAVDESS", spk.speaker, emotion).permutation(len(combos))
            n = _count(_CORPUS_AUDIO["RAVDESS"].per_cell, scale, len(combos))
            for j in order[:n]:
                i, s, r = combos[j]
                code = _RAVDESS_CODES[emotion]
                path = f"ravdess/Actor_{actor:02d}/03-01-{code}-{i:02d}-{s:02d}-{r:02d}-{actor:02d}.wav"
                files.append(_file(seed, path, spk, emotion, code, intensity=1.35 if i == 2 else 1.0))
    # Two stereo files, as in the real RAVDESS sample, so that loaders must down-mix.
    for emotion in ("calm", "surprise"):
        j = next(j for j, f in enumerate(files) if f.speaker.speaker == "01" and f.emotion == emotion)
        files[j] = replace(files[j], channels=2)
    return files


def _plan_crema(seed: int, scale: float) -> list[DemoFile]:
    files = []
    for speaker, gender in _CREMA_SPEAKERS:
        spk = Speaker("CREMA-D", speaker, gender)
        for emotion, code in _CREMA_CODES.items():
            rng = _rng(seed, "plan", "CREMA-D", speaker, emotion)
            order = rng.permutation(len(_CREMA_SENTENCES))
            n = _count(_CORPUS_AUDIO["CREMA-D"].per_cell, scale, len(order))
            for j in order[:n]:
                sentence = _CREMA_SENTENCES[j]
                # Only IEO was recorded at several levels; its neutral version is XX.
                level = str(rng.choice(["LO", "MD", "HI"])) if sentence == "IEO" and code != "NEU" else "XX"
                path = f"CREMA-D/AudioWAV/{speaker}_{sentence}_{code}_{level}.wav"
                files.append(_file(seed, path, spk, emotion, code, intensity=_CREMA_LEVELS[level]))
    return files


def _plan_tess(seed: int, scale: float) -> list[DemoFile]:
    files = []
    for speaker, folders in _TESS_FOLDERS.items():
        spk = Speaker("TESS", speaker, "female")
        for emotion, label in _TESS_LABELS.items():
            order = _rng(seed, "plan", "TESS", speaker, emotion).permutation(len(_TESS_WORDS))
            n = _count(_CORPUS_AUDIO["TESS"].per_cell, scale, len(order))
            for j in order[:n]:
                path = f"{_TESS_ROOT}/{folders[emotion]}/{speaker}_{_TESS_WORDS[j]}_{label}.wav"
                files.append(_file(seed, path, spk, emotion, label))
    return files


def _plan_savee(seed: int, scale: float) -> list[DemoFile]:
    files = []
    for speaker in ("DC", "JE", "JK", "KL"):
        spk = Speaker("SAVEE", speaker, "male")
        for emotion, code in _SAVEE_CODES.items():
            n_sentences = 30 if code == "n" else 15
            order = _rng(seed, "plan", "SAVEE", speaker, emotion).permutation(n_sentences) + 1
            n = _count(_CORPUS_AUDIO["SAVEE"].per_cell, scale, n_sentences)
            for nn in order[:n]:
                files.append(_file(seed, f"savee/ALL/{speaker}_{code}{nn:02d}.wav", spk, emotion, code))
    return files


def _plan_esd(seed: int, scale: float) -> list[DemoFile]:
    files = []
    for speaker, gender in _ESD_SPEAKERS:
        spk = Speaker("ESD", speaker, gender)
        for emotion, folder in _ESD_FOLDERS.items():
            order = _rng(seed, "plan", "ESD", speaker, emotion).permutation(350) + _ESD_FIRST[emotion]
            n = _count(_CORPUS_AUDIO["ESD"].per_cell, scale, 350)
            for utt in order[:n]:
                files.append(_file(seed, f"esd/{speaker}/{folder}/{speaker}_{utt:06d}.wav", spk, emotion, folder))
    return files


def plan_demo_corpus(*, seed: int = 0, scale: float = 1.0) -> list[DemoFile]:
    """List the files of the demo corpus without rendering them.

    Parameters
    ----------
    seed : int
        Seed of every random choice (which names, durations, speakers' traits, the signals).
    scale : float
        Multiplies the files per (speaker, emotion) cell (RAVDESS 2, CREMA-D 2, TESS 3, SAVEE 2, ESD 2 at 1.0);
        at least 1 per cell, at most the names the corpus has (e.g. 8 per RAVDESS actor and emotion, 4 for
        neutral). Speakers are fixed: RAVDESS 8, CREMA-D 6, TESS 2, SAVEE 4, ESD 2 (English).

    Returns
    -------
    list of DemoFile
        Sorted by path; 318 files at ``scale=1``.
    """
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    files = (
        _plan_ravdess(seed, scale)
        + _plan_crema(seed, scale)
        + _plan_tess(seed, scale)
        + _plan_savee(seed, scale)
        + _plan_esd(seed, scale)
    )
    return sorted(files, key=lambda f: f.path)


# --------------------------------------------------------------------------------------------------------------
# The signal model
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Voice:
    f0: float  # base pitch (Hz)
    formant_scale: float
    loud_db: float
    rate_scale: float
    tilt: float
    expressiveness: float


def _voice(seed: int, spk: Speaker) -> _Voice:
    """A speaker's traits, drawn from ``seed`` and the speaker only (so every clip of a speaker shares them)."""
    rng = _rng(seed, "speaker", spk.corpus, spk.speaker)
    female = spk.gender == "female"
    f0 = rng.uniform(180.0, 240.0) if female else rng.uniform(95.0, 135.0)
    if spk.corpus == "TESS":  # an older and a younger adult woman
        f0 = {"OAF": 175.0, "YAF": 215.0}.get(spk.speaker, f0) * rng.uniform(0.97, 1.03)
    return _Voice(
        f0=float(f0),
        formant_scale=float(rng.uniform(1.12, 1.22) if female else rng.uniform(0.94, 1.06)),
        loud_db=float(rng.normal(0.0, 2.0)),
        rate_scale=float(np.exp(rng.normal(0.0, 0.08))),
        tilt=float(rng.normal(0.0, 0.15)),
        expressiveness=float(rng.uniform(0.75, 1.25)),
    )


def _formant_sos(formants: np.ndarray, sr: int) -> np.ndarray:
    """Second-order sections of a cascade of unit-DC-gain resonators (formants clamped below 0.45 sr)."""
    f, bw = np.minimum(formants, 0.45 * sr), _BANDWIDTHS
    r = np.exp(-np.pi * bw / sr)
    a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * f / sr), r * r
    sos = np.zeros((len(f), 6))
    sos[:, 0] = 1.0 + a1 + a2
    sos[:, 3], sos[:, 4], sos[:, 5] = 1.0, a1, a2
    return sos


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average of a 1-D array with a Hann window (edges held)."""
    w = np.hanning(width + 2)[1:-1]
    pad = width // 2
    return np.convolve(np.pad(x, (pad, width - 1 - pad), mode="edge"), w / w.sum(), mode="valid")


def render(file: DemoFile, *, seed: int = 0) -> np.ndarray:
    """Render one planned file.

    Parameters
    ----------
    file : DemoFile
        From :func:`plan_demo_corpus`.
    seed : int
        The corpus seed; the file's random numbers come from it and ``file.path``.

    Returns
    -------
    np.ndarray
        float64 in [-1, 1), shape (n,) for mono or (n, 2) for stereo, ``n = duration_s * sample_rate``.

    Notes
    -----
    Files at 44.1 or 48 kHz are synthesised at half their rate and upsampled (the working rate is 22,050 Hz, so
    nothing downstream sees the missing top octave); the background noise is added at the native rate.
    """
    if file.emotion not in EMOTION_PROSODY:
        raise ValueError(f"{file.path}: unknown emotion {file.emotion!r}; expected one of {EMOTIONS}")
    native_n = int(round(file.duration_s * file.sample_rate))
    up = 2 if file.sample_rate >= 44_100 else 1
    sr = file.sample_rate / up
    n = -(-native_n // up)
    rng = _rng(seed, "render", file.path)
    voice = _voice(seed, file.speaker)
    neutral = EMOTION_PROSODY["neutral"]
    p = neutral.toward(EMOTION_PROSODY[file.emotion], file.intensity * voice.expressiveness)
    audio = _CORPUS_AUDIO[file.speaker.corpus]

    # Per-clip variation (moderate, so that emotions overlap).
    pitch_st = p.pitch_st + rng.normal(0.0, 1.2)
    range_st = p.range_st * np.exp(rng.normal(0.0, 0.2))
    rate = p.rate * voice.rate_scale * np.exp(rng.normal(0.0, 0.1))
    loud_db = audio.ref_db + voice.loud_db + p.loud_db + rng.normal(0.0, 2.0)
    tilt = float(np.clip(p.tilt + voice.tilt + rng.normal(0.0, 0.2), -1.5, 1.5))
    jitter = p.jitter * np.exp(rng.normal(0.0, 0.3))
    shimmer = p.shimmer * np.exp(rng.normal(0.0, 0.3))
    breath = p.breath * np.exp(rng.normal(0.0, 0.3))

    # Syllables: lead-in silence, speech, trailing silence.
    t = np.arange(n) / sr
    lead, tail = rng.uniform(0.25, 0.6), rng.uniform(0.15, 0.4)
    speech = max(file.duration_s - lead - tail, 0.5)
    n_syll = max(3, int(round(speech * rate)))
    syll = rng.gamma(8.0, 1.0, n_syll)
    syll *= speech / syll.sum()
    bounds = lead + np.concatenate([[0.0], np.cumsum(syll)])
    pause = rng.random(n_syll) < 0.12
    pause[0] = False
    stress = rng.uniform(0.55, 1.0, n_syll)
    accent = np.clip(rng.normal(0.0, 1.0, n_syll), -2.0, 2.5)
    vowel = rng.integers(0, len(_VOWELS), n_syll)
    onset = rng.uniform(0.12, 0.25, n_syll)  # consonant part of each syllable
    cons_amp = np.where(rng.random(n_syll) < 0.7, rng.uniform(0.15, 0.45, n_syll), 0.0)
    creaky = p.creak * (rng.random(n_syll) < 0.6)

    def locate(times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.searchsorted(bounds, times, side="right") - 1
        inside = (idx >= 0) & (idx < n_syll)
        idx = np.clip(idx, 0, n_syll - 1)
        return idx, inside, (times - bounds[idx]) / syll[idx]

    # Pitch contour (semitones re the speaker's f0), built at the control rate, then interpolated.
    tc = np.arange(int(np.ceil(file.duration_s * _CONTROL_RATE)) + 2) / _CONTROL_RATE
    idx_c, _, local_c = locate(tc)
    pos = np.clip((tc - lead) / speech, 0.0, 1.0)
    st = (
        pitch_st
        - 0.35 * range_st * pos
        + range_st * accent[idx_c] * np.sin(np.pi * np.clip(local_c, 0.0, 1.0))
        + p.rise_st * np.clip((pos - 0.67) / 0.33, 0.0, 1.0) ** 1.5
        + p.tremor_st * np.sin(2.0 * np.pi * 6.0 * tc + rng.uniform(0, 2 * np.pi))
    )
    st = _smooth(st, 9)
    f0 = voice.f0 * np.exp2(np.interp(t, tc, st) / 12.0)

    # Glottal source: Rosenberg pulses from the phase, with per-cycle jitter, shimmer and creak.
    cycle = (np.cumsum(f0) / sr).astype(np.int64)
    f0 *= 1.0 + np.clip(rng.normal(0.0, jitter, cycle[-1] + 2), -0.25, 0.25)[cycle]
    phase = np.cumsum(f0) / sr
    cycle = phase.astype(np.int64)
    frac = phase - cycle
    idx, inside, local = locate(t)
    amp = np.exp(rng.normal(0.0, shimmer, cycle[-1] + 1))[cycle]
    if p.creak > 0:
        amp *= 1.0 - 0.7 * creaky[idx] * (cycle % 2)
    t_open = 0.40
    t_close = 0.16 * 2.0 ** (-tilt)
    flow = np.where(
        frac < t_open,
        0.5 - 0.5 * np.cos((np.pi / t_open) * frac),
        np.cos((0.5 * np.pi / t_close) * np.minimum(frac - t_open, t_close)),
    )
    source = np.diff(flow * amp, prepend=0.0)
    source /= np.sqrt(np.mean(source**2)) + 1e-12
    source += breath * (0.4 + flow) * rng.standard_normal(n)
    a = np.exp(-2.0 * np.pi * 1200.0 * 4.0**tilt / sr)  # one-pole low-pass: the tilt
    source = signal.lfilter([1.0 - a], [1.0, -a], source)

    # Envelopes: voiced nucleus and consonant burst of each syllable.
    live = inside & ~pause[idx]
    nucleus = np.clip((local - onset[idx]) / (0.95 - onset[idx]), 0.0, 1.0)
    env_v = np.where(live, stress[idx] * np.sin(np.pi * nucleus) ** 0.6, 0.0)
    env_c = np.where(live & (local < onset[idx]), cons_amp[idx] * np.sin(np.pi * local / onset[idx]), 0.0)

    # Vowel formants (speaker-scaled), switched at syllable starts, where the voiced envelope is silent.
    excitation = source * env_v
    voiced = np.empty(n)
    bank = [_formant_sos(f * voice.formant_scale, sr) for f in _VOWELS]
    state = np.zeros((len(_BANDWIDTHS), 2))
    edges = np.concatenate([[0], np.flatnonzero(np.diff(idx)) + 1, [n]])
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        voiced[lo:hi], state = signal.sosfilt(bank[vowel[idx[lo]]], excitation[lo:hi], zi=state)
    voiced /= np.sqrt(np.mean(voiced[env_v > 0.05] ** 2)) + 1e-12
    hiss = signal.sosfilt(
        signal.butter(2, min(2500.0, 0.4 * sr), "highpass", fs=sr, output="sos"), rng.standard_normal(n)
    )
    y = voiced + env_c * (hiss / (np.sqrt(np.mean(hiss**2)) + 1e-12))

    # Loudness: RMS over the active part set to the target; background noise relative to it.
    active = (env_v > 0.05) | (env_c > 0.05)
    rms = np.sqrt(np.mean(y[active] ** 2)) if active.any() else 1.0
    y *= 10.0 ** (loud_db / 20.0) / (rms + 1e-12)
    if up > 1:
        y = signal.resample_poly(y, up, 1)[:native_n]
    noise_db = loud_db + audio.noise_db + rng.normal(0.0, 3.0)
    y += 10.0 ** (noise_db / 20.0) * rng.standard_normal(native_n)
    y = np.clip(y, -1.0, 32767.0 / 32768.0)
    if file.channels == 2:
        y = np.stack([y, 0.85 * y], axis=1)
    return y


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def _write_wav(path: Path, y: np.ndarray, sr: int) -> None:
    """Write 16-bit PCM atomically (temporary name, then rename)."""
    import soundfile as sf

    pcm = np.round(y * 32768.0).clip(-32768, 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(tmp, pcm, sr, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _stamp(seed: int, scale: float, n_files: int) -> str:
    return f"generator: sefin_utils.synth v{GENERATOR_VERSION} seed={seed} scale={scale!r} files={n_files}"


def _marker_text(seed: int, scale: float, files: Sequence[DemoFile]) -> str:
    counts = Counter(f.speaker.corpus for f in files)
    lines = [
        "GENERATED DEMO CORPUS - NOT REAL SPEECH",
        "",
        "Every .wav file below this folder was synthesised by sefin_utils.synth (python -m sefin_utils demo-data).",
        "They are speech-like signals (glottal pulses, pitch contours, formants, noise) whose emotions differ only",
        "in prosody. File and folder names follow the conventions of RAVDESS, CREMA-D, TESS, SAVEE and ESD so that",
        "the corpus parsers treat them like real data, but they contain no recording of any real speaker, and",
        "results on them say nothing about real emotional speech.",
        "",
        "Ground truth: demo_manifest.csv. Files per corpus: "
        + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())),
        "",
        _stamp(seed, scale, len(files)),
        "",
    ]
    return "\n".join(lines)


def _manifest_rows(files: Sequence[DemoFile]) -> list[dict[str, object]]:
    return [
        {
            "path": f.path,
            "corpus": f.speaker.corpus,
            "speaker": f.speaker.speaker,
            "gender": f.speaker.gender,
            "emotion": f.emotion,
            "source_label": f.source_label,
            "sample_rate": f.sample_rate,
            "channels": f.channels,
            "duration_s": f"{f.duration_s:.6f}",
        }
        for f in files
    ]


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def is_generated(root: str | os.PathLike[str]) -> bool:
    """True if ``root`` holds a generated demo corpus (it has ``GENERATED.txt``), so reports can label runs."""
    return (Path(root) / GENERATED_MARKER).is_file()


def read_demo_manifest(root: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of ``root/demo_manifest.csv`` (all values as strings; ``path`` relative to ``root``)."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no demo manifest (write one with `python -m sefin_utils demo-data {root}`)")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _up_to_date(root: Path, seed: int, scale: float, files: Sequence[DemoFile]) -> bool:
    marker = root / GENERATED_MARKER
    if not marker.is_file() or not (root / MANIFEST_NAME).is_file():
        return False
    if _stamp(seed, scale, len(files)) not in marker.read_text(encoding="utf-8").splitlines():
        return False
    return all((root / f.path).is_file() for f in files)


def write_demo_corpus(
    root: str | os.PathLike[str], *, seed: int = 0, scale: float = 1.0, progress: bool = True, force: bool = False
) -> Path:
    """Write the generated demo corpus under ``root``.

    Parameters
    ----------
    root : path
        Folder to write (created). It must be empty, missing, or an earlier demo corpus (with ``GENERATED.txt``):
        a folder with other content is refused, so real data is never mixed with generated files.
    seed : int
        Same seed, byte-identical files.
    scale : float
        Multiplies the files per (speaker, emotion) cell, see :func:`plan_demo_corpus` (318 files at 1.0).
    progress : bool
        Show a tqdm progress bar.
    force : bool
        Rewrite even if ``root`` already holds this exact corpus (same generator version, seed, scale).

    Returns
    -------
    Path
        ``root``, holding the corpus folders, ``GENERATED.txt`` and ``demo_manifest.csv`` (path relative to root,
        corpus, speaker, gender, emotion, source_label, sample_rate, channels, duration_s).
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root}: demo corpus root exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not is_generated(root):
        raise FileExistsError(
            f"{root}: folder is not empty and has no {GENERATED_MARKER}; refusing to write generated audio into it "
            "(choose an empty or new folder)"
        )
    files = plan_demo_corpus(seed=seed, scale=scale)
    if not force and _up_to_date(root, seed, scale, files):
        return root
    root.mkdir(parents=True, exist_ok=True)
    # Marker first: an interrupted write still leaves the folder labelled as generated.
    _write_text_atomic(root / GENERATED_MARKER, _marker_text(seed, scale, files))
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    wanted = {f.path for f in files}
    for old in root.rglob("*.wav"):  # stale files of an earlier scale or seed
        if old.relative_to(root).as_posix() not in wanted:
            old.unlink()
    from tqdm.auto import tqdm

    for f in tqdm(files, desc="demo corpus", unit="file", disable=not progress):
        _write_wav(root / f.path, render(f, seed=seed), f.sample_rate)
    tmp = root / (MANIFEST_NAME + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_manifest_rows(files))
    os.replace(tmp, root / MANIFEST_NAME)
    return root


def _summary(root: Path) -> str:
    rows = read_demo_manifest(root)
    corpora = sorted({r["corpus"] for r in rows})
    table = Counter((r["corpus"], r["emotion"]) for r in rows)
    head = f"{'corpus':<9}" + "".join(f"{e[:8]:>9}" for e in EMOTIONS) + f"{'total':>8}{'speakers':>10}"
    lines = [head]
    for c in corpora:
        spk = len({r["speaker"] for r in rows if r["corpus"] == c})
        cells = "".join(f"{table.get((c, e), 0) or '-':>9}" for e in EMOTIONS)
        lines.append(f"{c:<9}{cells}{sum(v for (cc, _), v in table.items() if cc == c):>8}{spk:>10}")
    seconds = sum(float(r["duration_s"]) for r in rows)
    lines.append(f"{len(rows)} files, {seconds / 60:.1f} min of audio (GENERATED, not real speech)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m sefin_utils demo-data OUT_DIR [--seed N] [--scale X] [--force] [--quiet]``."""
    parser = argparse.ArgumentParser(
        prog="python -m sefin_utils demo-data",
        description="Write the generated demo corpus (speech-like signals, real corpus naming; not real speech).",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (new, empty, or an earlier demo corpus)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, identical files; default 0)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies the files per speaker and emotion (default 1.0: 318 files)"
    )
    parser.add_argument("--force", action="store_true", help="rewrite even if the folder is already up to date")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    start = time.perf_counter()
    try:
        root = write_demo_corpus(
            args.out_dir, seed=args.seed, scale=args.scale, progress=not args.quiet, force=args.force
        )
    except (FileExistsError, NotADirectoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(_summary(root))
    print(f"written to {root.resolve()} in {time.perf_counter() - start:.1f} s (seed {args.seed}, scale {args.scale})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
