"""The five corpora: file-name parsers, the harmonised vocabulary, and ``discover`` (the manifest).

Each corpus encodes its labels in its file names (conventions in docs/architecture.md and ../shared/design.md):

- RAVDESS (speech): ``Actor_XX/03-01-EE-II-SS-RR-AA.wav``; actor odd = male. Song files (channel 02) are skipped.
- CREMA-D: ``AudioWAV/1001_DFA_ANG_XX.wav``; sex from ``VideoDemographics.csv`` (built in, or read beside the data).
- TESS: ``OAF_back_angry.wav`` / ``YAF_...``; two female speakers; ``ps`` = pleasant surprise.
- SAVEE: ``ALL/DC_a01.wav`` (Kaggle) or ``DC/a01.wav`` (original release); four male speakers.
- ESD: ``00XX/Angry/00XX_000351.wav`` (English speakers 0011-0020 by default; Mandarin 0001-0010 as a param).

``discover(root)`` walks a folder at any depth, recognises every file it can, and lists every audio file it cannot
use in ``Discovery.skipped`` with the reason: nothing is guessed and nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sefin_utils import audio
from sefin_utils.audio import AUDIO_EXTENSIONS, LOSSLESS_EXTENSIONS, AudioError, display_path, frames_at
from sefin_utils.constants import CALM_MODES, EMOTIONS, SR

ESD_ENGLISH: tuple[str, ...] = tuple(f"{i:04d}" for i in range(11, 21))
"""ESD's English speakers (the default); 0001-0010 are Mandarin."""
ESD_MANDARIN: tuple[str, ...] = tuple(f"{i:04d}" for i in range(1, 11))

RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}  # fmt: skip
CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
TESS_EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "sad": "sad", "ps": "surprise",
}  # fmt: skip
SAVEE_EMOTIONS = {
    "a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprise",
}  # fmt: skip
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
ESD_EMOTION_FOLDERS = {"Neutral": "neutral", "Angry": "angry", "Happy": "happy", "Sad": "sad", "Surprise": "surprise"}
ESD_RANGES = ("neutral", "angry", "happy", "sad", "surprise")  # utterances 1-350, 351-700, ... per speaker

# CREMA-D actors recorded as female in the official VideoDemographics.csv (column Sex); all others are male.
CREMA_FEMALE = frozenset(
    "1002 1003 1004 1006 1007 1008 1009 1010 1012 1013 1018 1020 1021 1024 1025 1028 1029 1030 1037 1043 1046 1047 "
    "1049 1052 1053 1054 1055 1056 1058 1060 1061 1063 1072 1073 1074 1075 1076 1078 1079 1082 1084 1089 1091".split()
)
ESD_MALE = frozenset({"0011", "0012", "0013", "0014", "0020"})
ESD_FEMALE = frozenset({"0015", "0016", "0017", "0018", "0019"})

_RAVDESS = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_CREMA = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")
_TESS = re.compile(r"^(OAF|YAF)_([A-Za-z]+)_([A-Za-z]+)$", re.IGNORECASE)
_TESS_FOLDER = re.compile(r"^(OAF|YAF)_(.+)$", re.IGNORECASE)
_SAVEE = re.compile(r"^(?:(DC|JE|JK|KL)_)?(sa|su|a|d|f|h|n)(\d{2})$")
_ESD = re.compile(r"^(\d{4})_(\d{6})$")
_TESS_LIKE = re.compile(r"^(?:([A-Za-z]{1,3})_)?([A-Za-z]+)_([A-Za-z]+)$")
_COPY_MARKER = re.compile(r"^(.+?)(?: \(\d+\)| - [Cc]opy(?: \(\d+\))?|_copy\d*| copy\d*)$")
"""Names a file manager or browser gives a second copy: ``x (1).wav``, ``x - Copy.wav``, ``x_copy.wav``."""

MANIFEST_COLUMNS = [
    "recording_id", "path", "corpus", "speaker", "speaker_key", "gender", "emotion", "source_label",
    "sample_rate", "channels", "duration", "frames", "note",
]  # fmt: skip
SKIPPED_COLUMNS = ["path", "kind", "reason"]
"""Columns of ``Discovery.skipped`` (and ``other``): ``kind`` is a short category that summaries group by."""


class UnrecognisedName(ValueError):
    """A file whose name or folders break its corpus' convention (the message says how; ``kind`` categorises it)."""

    def __init__(self, message: str, kind: str = "breaks its corpus convention") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Recording:
    """One labelled recording, as parsed from its path."""

    corpus: str
    speaker: str
    gender: str
    emotion: str
    source_label: str
    stem: str
    note: str = ""
    """How a label was recovered when the name breaks the convention (e.g. TESS ``OA_bite_neutral``), else ""."""
    copy: bool = False
    """The name carries a copy marker (``x (1).wav``, ``x - Copy.wav``): a second file of one recording."""

    @property
    def recording_id(self) -> str:
        """A unique id: ``corpus/stem`` (file stems are unique within each corpus)."""
        return f"{self.corpus}/{self.stem}"

    @property
    def performance(self) -> str:
        """The key of the performance this file carries, whatever its name's case, format or copy marker: two files
        with one key are one recording (RAVDESS' audio-video ``01-...`` and audio-only ``03-...`` files included)."""
        stem = self.stem
        if self.corpus == "RAVDESS":
            stem = "03" + stem[2:]
        return f"{self.corpus}/{stem.lower()}"


def _ravdess(path: Path, m: re.Match[str]) -> Recording:
    modality, channel, emo, _intensity, _statement, _rep, actor = m.groups()
    if modality not in {"01", "02", "03"} or channel not in {"01", "02"} or emo not in RAVDESS_EMOTIONS:
        raise UnrecognisedName(f"RAVDESS fields out of range (modality {modality}, channel {channel}, emotion {emo})")
    if channel == "02":
        raise UnrecognisedName("RAVDESS song (vocal channel 02): only speech is used", "RAVDESS song")
    if modality == "02":
        raise UnrecognisedName("RAVDESS video-only file (modality 02) carries no audio", "RAVDESS video only")
    folder = re.fullmatch(r"Actor_(\d{2})", path.parent.name)
    if folder and folder.group(1) != actor:
        raise UnrecognisedName(f"RAVDESS actor field {actor} disagrees with folder {path.parent.name}")
    gender = "male" if int(actor) % 2 == 1 else "female"
    return Recording("RAVDESS", actor, gender, RAVDESS_EMOTIONS[emo], emo, "03" + m.string[2:])


def _crema(path: Path, m: re.Match[str], demographics: dict[str, str]) -> Recording:
    speaker, _sentence, emo, level = m.groups()
    if emo not in CREMA_EMOTIONS:
        raise UnrecognisedName(f"CREMA-D emotion code {emo!r} is none of {sorted(CREMA_EMOTIONS)}")
    if level not in {"XX", "LO", "MD", "HI", "X"}:
        raise UnrecognisedName(f"CREMA-D intensity {level!r} is none of XX, LO, MD, HI")
    gender = demographics.get(speaker)
    if gender is None:  # the built-in table covers the release's actors 1001-1091
        gender = ("female" if speaker in CREMA_FEMALE else "male") if 1001 <= int(speaker) <= 1091 else "unknown"
    return Recording("CREMA-D", speaker, gender, CREMA_EMOTIONS[emo], emo, m.string)


def _tess(path: Path, m: re.Match[str]) -> Recording:
    speaker, _word, emo = m.groups()
    speaker, emo_key = speaker.upper(), emo.lower()
    if emo_key not in TESS_EMOTIONS:
        raise UnrecognisedName(f"TESS emotion {emo!r} is none of {sorted(TESS_EMOTIONS)}")
    folder = _TESS_FOLDER.match(path.parent.name)
    if folder:
        f_speaker, f_emo = folder.group(1).upper(), folder.group(2).lower()
        f_emo = "ps" if "surprise" in f_emo else f_emo
        if f_speaker != speaker or f_emo != emo_key:
            raise UnrecognisedName(f"TESS name ({speaker}, {emo}) disagrees with folder {path.parent.name!r}")
    return Recording("TESS", speaker, "female", TESS_EMOTIONS[emo_key], emo, m.string)


def _tess_from_folder(path: Path, stem: str) -> Recording | None:
    """A TESS file whose name lost or mistyped its speaker (the release ships ``OAF_neutral/OA_bite_neutral.wav``):
    speaker and emotion from its folder ``OAF_<emotion>``/``YAF_<emotion>`` when the name's emotion agrees with the
    folder's and its prefix (if any) begins the folder's speaker code. None when it is not such a file."""
    folder = _TESS_FOLDER.match(path.parent.name)
    m = _TESS_LIKE.match(stem)
    if not folder or not m:
        return None
    prefix, word, emo = m.groups()
    f_speaker, f_emo = folder.group(1).upper(), folder.group(2).lower()
    f_emo = "ps" if "surprise" in f_emo else f_emo
    if emo.lower() != f_emo or f_emo not in TESS_EMOTIONS or (prefix and not f_speaker.startswith(prefix.upper())):
        return None
    note = (
        f"speaker {f_speaker} and emotion from folder {path.parent.name!r}: the file name "
        f"{'has speaker ' + repr(prefix) if prefix else 'has no speaker'} (a naming slip in the release)"
    )
    return Recording("TESS", f_speaker, "female", TESS_EMOTIONS[f_emo], emo, f"{f_speaker}_{word}_{emo}", note)


def _savee(path: Path, m: re.Match[str]) -> Recording:
    speaker, code, _num = m.groups()
    if speaker is None:  # original release layout: DC/a01.wav
        speaker = path.parent.name
        if speaker not in SAVEE_SPEAKERS:
            raise UnrecognisedName(
                f"SAVEE-style name {display_path(path.name)!r} outside a speaker folder {SAVEE_SPEAKERS}"
            )
    stem = f"{speaker}_{code}{_num}"
    return Recording("SAVEE", speaker, "male", SAVEE_EMOTIONS[code], code, stem)


def _esd(path: Path, m: re.Match[str], esd_speakers: frozenset[str]) -> Recording:
    speaker, number = m.groups()
    if speaker not in ESD_ENGLISH and speaker not in ESD_MANDARIN:
        raise UnrecognisedName(f"ESD speaker {speaker} outside 0001-0020")
    if speaker not in esd_speakers:
        lang = "Mandarin" if speaker in ESD_MANDARIN else "English"
        raise UnrecognisedName(
            f"ESD {lang} speaker {speaker} not selected (param esd_speakers)", "ESD speaker not selected"
        )
    folders = [p.name for p in path.parents][:3]
    emotion = next((ESD_EMOTION_FOLDERS[f] for f in folders if f in ESD_EMOTION_FOLDERS), None)
    if emotion is None:
        raise UnrecognisedName(f"ESD file outside an emotion folder ({', '.join(ESD_EMOTION_FOLDERS)})")
    n = int(number)
    by_number = ESD_RANGES[(n - 1) // 350] if 1 <= n <= 1750 else None
    if by_number != emotion:
        raise UnrecognisedName(f"ESD utterance {number} is in the {by_number} range but under folder {emotion}")
    gender = "male" if speaker in ESD_MALE else "female" if speaker in ESD_FEMALE else "unknown"
    folder_label = next(f for f in folders if f in ESD_EMOTION_FOLDERS)
    return Recording("ESD", speaker, gender, emotion, folder_label, m.string)


def parse_path(
    path: str | Path,
    *,
    esd_speakers: Iterable[str] = ESD_ENGLISH,
    crema_demographics: dict[str, str] | None = None,
) -> Recording | None:
    """Parse a file path into a :class:`Recording`.

    Returns None when the name follows no corpus convention; raises :class:`UnrecognisedName` when it looks like a
    corpus file but breaks that corpus' rules (song files, unselected ESD speakers, name/folder disagreements).
    A name with a copy marker (``x (1).wav``, ``x - Copy.wav``) is parsed as ``x`` with ``copy=True``; a TESS file
    whose name lost its speaker is recovered from its folder, with a ``note`` saying so.
    """
    path = Path(path)
    stem, copy = path.stem, False
    if (marked := _COPY_MARKER.match(stem)) and _parse_stem(path, marked.group(1), esd_speakers, crema_demographics):
        stem, copy = marked.group(1), True
    rec = _parse_stem(path, stem, esd_speakers, crema_demographics)
    if rec is not None and copy:
        rec = Recording(**{**asdict(rec), "copy": True})
    return rec


def _parse_stem(
    path: Path, stem: str, esd_speakers: Iterable[str], crema_demographics: dict[str, str] | None
) -> Recording | None:
    if m := _RAVDESS.match(stem):
        return _ravdess(path, m)
    if m := _CREMA.match(stem):
        return _crema(path, m, crema_demographics or {})
    if m := _ESD.match(stem):
        return _esd(path, m, frozenset(esd_speakers))
    if m := _TESS.match(stem):
        return _tess(path, m)
    if m := _SAVEE.match(stem):
        return _savee(path, m)
    return _tess_from_folder(path, stem)


def harmonise_calm(emotion: str, calm: str) -> str | None:
    """Apply the calm mode: keep ``calm`` as its own class, merge it into ``neutral``, or drop it (None)."""
    if calm not in CALM_MODES:
        raise ValueError(f"calm must be one of {CALM_MODES}, got {calm!r}")
    if emotion != "calm" or calm == "class":
        return emotion
    return "neutral" if calm == "neutral" else None


@dataclass
class Discovery:
    """What ``discover`` found.

    ``manifest``: one row per usable recording (:data:`MANIFEST_COLUMNS`). ``skipped``: every audio file not used,
    with its ``kind`` of reason and the ``reason`` (:data:`SKIPPED_COLUMNS`). ``other``: the files that are not audio
    (README, CSV, transcripts...), same columns; together the three tables hold every file under ``root``.
    """

    root: Path
    manifest: pd.DataFrame
    skipped: pd.DataFrame
    params: dict[str, object] = field(default_factory=dict)
    other: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIPPED_COLUMNS))

    def summary(self) -> str:
        """A text summary: files per corpus and emotion, then skipped files grouped by kind of reason, each with a
        count and one example (file and full reason), then the other (non-audio) files by extension."""
        lines = [f"{len(self.manifest)} recordings under {display_path(self.root)}"]
        if len(self.manifest):
            table = pd.crosstab(self.manifest["corpus"], self.manifest["emotion"], margins=True, margins_name="total")
            lines.append(table.to_string())
            notes = self.manifest[self.manifest["note"] != ""] if "note" in self.manifest.columns else []
            for row in list(getattr(notes, "itertuples", lambda: [])())[:5]:
                lines.append(f"  note: {row.recording_id}: {row.note}")
        lines.append(f"{len(self.skipped)} files skipped")
        lines += _grouped(self.skipped)
        if len(self.other):
            ext = self.other["path"].map(lambda p: Path(str(p)).suffix.lower() or "(no extension)")
            counts = ", ".join(f"{e} {n}" for e, n in ext.value_counts().sort_index().items())
            lines.append(f"{len(self.other)} other files, not audio ({counts})")
        return "\n".join(lines)

    def all_skipped(self) -> pd.DataFrame:
        """``skipped`` and ``other`` in one table (what the manifest CLI writes beside the manifest)."""
        return pd.concat([self.skipped, self.other], ignore_index=True)


def _grouped(skipped: pd.DataFrame, *, indent: str = "  ") -> list[str]:
    """One line per kind of reason: count, kind, and one example file with its full reason."""
    lines = []
    if not len(skipped):
        return lines
    kinds = skipped["kind"] if "kind" in skipped.columns else skipped["reason"]
    for kind, group in skipped.groupby(kinds, sort=True):
        path, reason = str(group["path"].iloc[0]), str(group["reason"].iloc[0])
        lines.append(f"{indent}{len(group):5d}  {kind}  (e.g. {display_path(Path(path).name)}: {reason})")
    return lines


def _read_crema_demographics(root: Path) -> dict[str, str]:
    """Sex per CREMA-D actor from any VideoDemographics.csv under root (the built-in table otherwise)."""
    out: dict[str, str] = {}
    for csv in root.rglob("VideoDemographics.csv"):
        try:
            df = pd.read_csv(csv, dtype=str)
            out.update({str(a): str(s).lower() for a, s in zip(df["ActorID"], df["Sex"], strict=True)})
        except (KeyError, ValueError, OSError):
            continue
    return out


def _probe(path: Path) -> dict[str, object]:
    """Header facts (``audio.info``): rate, channels, duration, frames at 22,050 Hz, and a ``note`` for a repaired
    stale header. Raises AudioError."""
    found = audio.info(path)
    duration = found.frames / found.sample_rate
    return {
        "sample_rate": int(found.sample_rate),
        "channels": int(found.channels),
        "duration": round(duration, 4),
        "frames": frames_at(int(round(duration * SR))),
        "note": "; ".join(found.notes),
    }


def _is_blank(path: Path) -> str | None:
    """Why a file holds no usable audio (decoded, down-mixed), or None when it does."""
    try:
        data, _, _ = audio.read(path)
        y, _ = audio.downmix(data)
    except (AudioError, ValueError) as err:
        return getattr(err, "reason", str(err))
    if not y.size or not np.all(np.isfinite(y)):
        return "no finite samples"
    peak = float(np.max(np.abs(y)))
    return f"blank: all-silent audio (peak {peak:.2e})" if peak < audio.SILENCE_PEAK else None


def _scan(root: Path) -> tuple[list[Path], list[dict[str, str]]]:
    """Audio files under root (sorted, any depth) and the other files with the reason they are not used."""
    exts = set(AUDIO_EXTENSIONS)
    found: list[Path] = []
    other: list[dict[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith("._"):
                other.append(
                    {
                        "path": str(path),
                        "kind": "macOS metadata",
                        "reason": "macOS AppleDouble metadata ('._' twin of a file copied from a Mac)",
                    }
                )
            elif Path(name).suffix.lower() in exts:
                found.append(path)
            else:
                suffix = Path(name).suffix.lower() or "no extension"
                other.append({"path": str(path), "kind": "not audio", "reason": f"not an audio file ({suffix})"})
    return found, other


def _preference(path: Path, rec: Recording) -> tuple[int, int]:
    """Sort key among files of one recording: lossless before lossy, an original name before a copy's."""
    return (0 if path.suffix.lower() in LOSSLESS_EXTENSIONS else 1, int(rec.copy))


def discover(
    root: str | Path,
    *,
    esd_speakers: Iterable[str] = ESD_ENGLISH,
    calm: str = "class",
    probe: bool = True,
    progress: bool = True,
) -> Discovery:
    """Find every recording of the five corpora under ``root`` (any depth, original or Kaggle layouts).

    Parameters
    ----------
    root : str or Path
        A folder holding one or more corpora (e.g. ``/kaggle/input`` or ``../shared/data/ser-sample``).
    esd_speakers : iterable of str
        ESD speakers to keep (default the English 0011-0020); others are listed as skipped.
    calm : {"class", "neutral", "drop"}
        How RAVDESS' calm is treated (default its own class, as the study).
    probe : bool
        Read each file's header (rate, channels, duration, frames) and skip unreadable files with their reason.
    progress : bool
        Show a progress bar while probing.

    Returns
    -------
    Discovery
        ``manifest`` with the columns of ``MANIFEST_COLUMNS`` sorted by recording_id, ``skipped`` and ``other``
        (path, kind, reason).

    Notes
    -----
    Files that carry one performance (:attr:`Recording.performance`: the same corpus name whatever its case, format,
    copy marker or folder; RAVDESS audio-video and audio-only files) are one recording, kept once so that it cannot
    cross a split: the lossless original is preferred over a lossy twin (CREMA-D's ``AudioMP3/`` beside
    ``AudioWAV/``), an original name over a copy (``x (1).wav``), then the first path in sorted order; a file that
    cannot be read or is blank never replaces a usable twin (blank CREMA-D MP3s). Every other file is listed in
    ``skipped`` as a duplicate of the kept one, with the reason it lost.
    """
    from tqdm.auto import tqdm

    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data root {display_path(root)} is not a folder")
    if calm not in CALM_MODES:
        raise ValueError(f"calm must be one of {CALM_MODES}, got {calm!r}")
    demographics = _read_crema_demographics(root)
    esd = frozenset(esd_speakers)
    skipped: list[dict[str, str]] = []
    files, other = _scan(root)
    groups: dict[str, list[tuple[Path, Recording]]] = {}
    for path in files:
        try:
            rec = parse_path(path, esd_speakers=esd, crema_demographics=demographics)
        except UnrecognisedName as err:
            skipped.append({"path": str(path), "kind": err.kind, "reason": str(err)})
            continue
        if rec is None:
            skipped.append(
                {"path": str(path), "kind": "no corpus convention", "reason": "file name matches no corpus convention"}
            )
            continue
        if harmonise_calm(rec.emotion, calm) is None:
            skipped.append({"path": str(path), "kind": "calm dropped", "reason": "calm dropped (param calm=drop)"})
            continue
        groups.setdefault(rec.performance, []).append((path, rec))
    rows: list[dict[str, object]] = []
    bar = tqdm(groups.values(), desc="discover", unit="rec", disable=not progress or len(groups) < 200)
    for group in bar:
        order = sorted(range(len(group)), key=lambda i: (_preference(*group[i]), i))
        kept: tuple[Path, Recording] | None = None
        kept_row: dict[str, object] = {}
        losers: list[tuple[Path, str]] = []
        for i in order:
            path, rec = group[i]
            if kept is not None:
                losers.append((path, ""))
                continue
            row: dict[str, object] = {"note": rec.note}
            try:
                if probe:
                    row.update(_probe(path))
                    row["note"] = "; ".join(n for n in (rec.note, row["note"]) if n)
                blank = _is_blank(path) if len(group) > 1 else None
            except AudioError as err:
                if len(group) == 1:
                    skipped.append({"path": str(path), "kind": err.kind, "reason": err.reason})
                    continue
                blank = err.reason
            if blank is not None:
                losers.append((path, blank))
                continue
            kept, kept_row = (path, rec), row
        if kept is None:
            for path, why in losers:
                skipped.append(
                    {
                        "path": str(path),
                        "kind": "unusable duplicate",
                        "reason": f"no usable file of this recording: {why}",
                    }
                )
            continue
        path, rec = kept
        for lost, why in losers:
            if why:
                reason = f"duplicate of {kept[0]}, which was kept: this copy is unusable ({why})"
            elif lost.suffix.lower() not in LOSSLESS_EXTENSIONS and path.suffix.lower() in LOSSLESS_EXTENSIONS:
                reason = f"duplicate of {kept[0]} (the lossless original is kept)"
            else:
                reason = f"duplicate of {kept[0]}"
            skipped.append({"path": str(lost), "kind": "duplicate", "reason": reason})
        emotion = harmonise_calm(rec.emotion, calm)
        out: dict[str, object] = {**asdict(rec), "emotion": emotion, "path": str(path.resolve())}
        for key in ("stem", "copy"):
            out.pop(key)
        out["recording_id"] = rec.recording_id
        out["speaker_key"] = f"{rec.corpus}:{rec.speaker}"
        out.update(kept_row)
        rows.append(out)
    columns = [c for c in MANIFEST_COLUMNS if probe or c not in _PROBE_COLS]
    manifest = pd.DataFrame(rows, columns=columns)
    manifest = manifest.sort_values("recording_id", kind="stable").reset_index(drop=True)
    assert set(manifest["emotion"]).issubset(EMOTIONS)
    skipped_df = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    skipped_df = skipped_df.sort_values("path", kind="stable").reset_index(drop=True)
    params = {"esd_speakers": sorted(esd), "calm": calm}
    other_df = pd.DataFrame(other, columns=SKIPPED_COLUMNS)
    return Discovery(root=root, manifest=manifest, skipped=skipped_df, params=params, other=other_df)


_PROBE_COLS = {"sample_rate", "channels", "duration", "frames"}
_STR_COLS = {
    "recording_id": str,
    "path": str,
    "corpus": str,
    "speaker": str,
    "speaker_key": str,
    "gender": str,
    "emotion": str,
    "source_label": str,
    "split": str,
    "source": str,
    "augmentation": str,
    "note": str,
}
ENCODING_ERRORS = "surrogateescape"
"""How tables hold paths that are not valid UTF-8 (a Latin-1 byte in a file name): the bytes are written as they
are and read back to the same path (Python's surrogate escapes), so every file can still be opened."""


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a manifest/splits CSV written by sefin, keeping ids such as RAVDESS speaker ``01`` as strings (and
    paths that are not valid UTF-8 byte for byte, see :data:`ENCODING_ERRORS`)."""
    head = pd.read_csv(path, nrows=0, encoding_errors=ENCODING_ERRORS)
    return pd.read_csv(
        path,
        dtype={c: t for c, t in _STR_COLS.items() if c in head.columns},
        keep_default_na=False,
        encoding_errors=ENCODING_ERRORS,
    )


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a manifest/splits CSV atomically (temporary name, then rename); file names that are not valid UTF-8
    are kept byte for byte (:data:`ENCODING_ERRORS`), so that :func:`read_table` gives back paths that open."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        df.to_csv(tmp, index=False, encoding="utf-8", errors=ENCODING_ERRORS)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m sefin_utils manifest DATA_ROOT -o manifest.csv``: write the manifest and print a summary."""
    parser = argparse.ArgumentParser(prog="python -m sefin_utils manifest", description=main.__doc__)
    parser.add_argument("data_root", type=Path, help="folder holding one or more corpora (any depth)")
    parser.add_argument("-o", "--output", type=Path, default=Path("manifest.csv"), help="manifest CSV to write")
    parser.add_argument("--skipped", type=Path, default=None, help="skip table CSV (default: <output>.skipped.csv)")
    parser.add_argument("--calm", choices=CALM_MODES, default="class", help="how calm is treated (default: class)")
    parser.add_argument(
        "--esd-speakers", default="english", help="'english' (0011-0020), 'all', or comma-separated ids"
    )
    args = parser.parse_args(argv)
    audio.safe_output(sys.stdout)
    spk = args.esd_speakers.lower()
    esd = ESD_ENGLISH if spk == "english" else ESD_ENGLISH + ESD_MANDARIN if spk == "all" else spk.split(",")
    try:
        found = discover(args.data_root, esd_speakers=esd, calm=args.calm)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_table(found.manifest, args.output)
    skipped_path = args.skipped or args.output.with_suffix(".skipped.csv")
    everything = found.all_skipped()
    write_table(everything, skipped_path)
    print(found.summary())
    print(
        f"wrote {display_path(args.output)} ({len(found.manifest)} rows) and {display_path(skipped_path)} "
        f"({len(everything)} rows: {len(found.skipped)} skipped audio files, {len(found.other)} other files)"
    )
    return 0 if len(found.manifest) else 1
