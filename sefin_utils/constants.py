"""Constants shared by every stage (defined once, as librosa does)."""

from __future__ import annotations

SR: int = 22_050
"""Working sample rate (Hz): librosa's default and the study's."""
FRAME_LENGTH: int = 2_048
"""Samples per frame (librosa's n_fft default)."""
HOP_LENGTH: int = 512
"""Hop between frames (librosa's default)."""
OFFSET_S: float = 0.6
"""The study's window offset (seconds) into each recording."""
DURATION_S: float = 2.5
"""The study's window length (seconds)."""
CLIP_SAMPLES: int = int(round(DURATION_S * SR))  # 55,125
"""Samples per fixed-length clip."""
N_FRAMES: int = 1 + (CLIP_SAMPLES - FRAME_LENGTH) // HOP_LENGTH  # 104
"""Frames per clip with center=False framing."""

EMOTIONS: tuple[str, ...] = ("angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise")
"""The harmonised emotion vocabulary (sorted; the class order of every model)."""
ESD_EMOTIONS: tuple[str, ...] = ("angry", "happy", "neutral", "sad", "surprise")
"""Classes ESD shares with the training corpora (out-of-domain evaluation)."""
CORPORA: tuple[str, ...] = ("CREMA-D", "RAVDESS", "SAVEE", "TESS", "ESD")
"""Corpus names as written in manifests."""
TRAIN_CORPORA: tuple[str, ...] = ("CREMA-D", "RAVDESS", "SAVEE", "TESS")
"""Corpora that may be trained on; ESD is out of domain only."""

CORPUS_LICENCES: dict[str, str] = {
    "RAVDESS": "CC BY-NC-SA 4.0",
    "TESS": "CC BY-NC-ND 4.0",
    "SAVEE": "research use (University of Surrey; free for research)",
    "CREMA-D": "ODbL 1.0 (database) / DbCL 1.0 (contents)",
    "ESD": "ESD licence: non-commercial research use (out of domain only; never trained on)",
}
"""The corpora's licences (their own pages), stated wherever results or models trained on them are published."""

SPLITS: tuple[str, ...] = ("train", "val", "test", "ood")
"""Split names; `ood` holds ESD and is never trained on."""
CALM_MODES: tuple[str, ...] = ("class", "neutral", "drop")
"""How `calm` is treated: its own class (the study), merged into neutral, or dropped."""


def class_names(calm: str = "class") -> list[str]:
    """Return the class list for a calm mode (sorted, as the models' outputs)."""
    if calm not in CALM_MODES:
        raise ValueError(f"calm must be one of {CALM_MODES}, got {calm!r}")
    return [e for e in EMOTIONS if not (e == "calm" and calm != "class")]
