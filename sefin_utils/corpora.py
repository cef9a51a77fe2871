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

import pandas as pd
import soundfile as sf

from sefin_utils.audio import AUDIO_EXTENSIONS, AudioError, check_wav_header, frames_at
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

MANIFEST_COLUMNS = [
    "recording_id", "path", "corpus", "speaker", "speaker_key", "gender", "emotion", "source_label",
    "sample_rate", "channels", "duration", "frames",
]  # fmt: skip


class UnrecognisedName(ValueError):
    """A file whose name or folders break its corpus' convention (the message says how)."""


@dataclass(frozen=True)
class Recording:
    """One labelled recording, as parsed from its path."""

    corpus: str
    speaker: str
    gender: str
    emotion: str
    source_label: str
    stem: str

    @property
    def recording_id(self) -> str:
        """A unique id: ``corpus/stem`` (file stems are unique within each corpus)."""
        return f"{self.corpus}/{self.stem}"


def _ravdess(path: Path, m: re.Match[str]) -> Recording:
    modality, channel, emo, _intensity, _statement, _rep, actor = m.groups()
    if modality not in {"01", "02", "03"} or channel not in {"01", "02"} or emo not in RAVDESS_EMOTIONS:
        raise UnrecognisedName(f"RAVDESS fields out of range (modality {modality}, channel {channel}, emotion {emo})")
    if channel == "02":
        raise UnrecognisedName("RAVDESS song (vocal channel 02): only speech is used")
    if modality == "02":
        raise UnrecognisedName("RAVDESS video-only file (modality 02) carries no audio")
    folder = re.fullmatch(r"Actor_(\d{2})", path.parent.name)
    if folder and folder.group(1) != actor:
        raise UnrecognisedName(f"RAVDESS actor field {actor} disagrees with folder {path.parent.name}")
    gender = "male" if int(actor) % 2 == 1 else "female"
    return Recording("RAVDESS", actor, gender, RAVDESS_EMOTIONS[emo], emo, path.stem)


def _crema(path: Path, m: re.Match[str], demographics: dict[str, str]) -> Recording:
    speaker, _sentence, emo, level = m.groups()
    if emo not in CREMA_EMOTIONS:
        raise UnrecognisedName(f"CREMA-D emotion code {emo!r} is none of {sorted(CREMA_EMOTIONS)}")
    if level not in {"XX", "LO", "MD", "HI", "X"}:
        raise UnrecognisedName(f"CREMA-D intensity {level!r} is none of XX, LO, MD, HI")
    gender = demographics.get(speaker)
    if gender is None:  # the built-in table covers the release's actors 1001-1091
        gender = ("female" if speaker in CREMA_FEMALE else "male") if 1001 <= int(speaker) <= 1091 else "unknown"
    return Recording("CREMA-D", speaker, gender, CREMA_EMOTIONS[emo], emo, path.stem)


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
    return Recording("TESS", speaker, "female", TESS_EMOTIONS[emo_key], emo, path.stem)


def _savee(path: Path, m: re.Match[str]) -> Recording:
    speaker, code, _num = m.groups()
    if speaker is None:  # original release layout: DC/a01.wav
        speaker = path.parent.name
        if speaker not in SAVEE_SPEAKERS:
            raise UnrecognisedName(f"SAVEE-style name {path.name!r} outside a speaker folder {SAVEE_SPEAKERS}")
    stem = f"{speaker}_{code}{_num}"
    return Recording("SAVEE", speaker, "male", SAVEE_EMOTIONS[code], code, stem)


def _esd(path: Path, m: re.Match[str], esd_speakers: frozenset[str]) -> Recording:
    speaker, number = m.groups()
    if speaker not in ESD_ENGLISH and speaker not in ESD_MANDARIN:
        raise UnrecognisedName(f"ESD speaker {speaker} outside 0001-0020")
    if speaker not in esd_speakers:
        lang = "Mandarin" if speaker in ESD_MANDARIN else "English"
        raise UnrecognisedName(f"ESD {lang} speaker {speaker} not selected (param esd_speakers)")
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
    return Recording("ESD", speaker, gender, emotion, folder_label, path.stem)


def parse_path(
    path: str | Path,
    *,
    esd_speakers: Iterable[str] = ESD_ENGLISH,
    crema_demographics: dict[str, str] | None = None,
) -> Recording | None:
    """Parse a file path into a :class:`Recording`.

    Returns None when the name follows no corpus convention; raises :class:`UnrecognisedName` when it looks like a
    corpus file but breaks that corpus' rules (song files, unselected ESD speakers, name/folder disagreements).
    """
    path = Path(path)
    stem = path.stem
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
    return None


def harmonise_calm(emotion: str, calm: str) -> str | None:
    """Apply the calm mode: keep ``calm`` as its own class, merge it into ``neutral``, or drop it (None)."""
    if calm not in CALM_MODES:
        raise ValueError(f"calm must be one of {CALM_MODES}, got {calm!r}")
    if emotion != "calm" or calm == "class":
        return emotion
    return "neutral" if calm == "neutral" else None


@dataclass
class Discovery:
    """What ``discover`` found: the manifest (one row per usable recording) and the skipped files with reasons."""

    root: Path
    manifest: pd.DataFrame
    skipped: pd.DataFrame
    params: dict[str, object] = field(default_factory=dict)

    def summary(self) -> str:
        """A text summary: files per corpus and emotion, then skipped files grouped by reason."""
        lines = [f"{len(self.manifest)} recordings under {self.root}"]
        if len(self.manifest):
            table = pd.crosstab(self.manifest["corpus"], self.manifest["emotion"], margins=True, margins_name="total")
            lines.append(table.to_string())
        lines.append(f"{len(self.skipped)} files skipped")
        if len(self.skipped):
            for reason, group in self.skipped.groupby("reason", sort=True):
                example = Path(str(group["path"].iloc[0])).name
                lines.append(f"  {len(group):5d}  {reason}  (e.g. {example})")
        return "\n".join(lines)


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
    """Header facts without decoding: rate, channels, duration, frames at 22,050 Hz. Raises AudioError."""
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if path.suffix.lower() == ".wav":
        check_wav_header(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, f"unreadable audio header ({err})") from err
    if info.frames <= 0:
        raise AudioError(path, "zero-length audio (no samples)")
    duration = info.frames / info.samplerate
    return {
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "duration": round(duration, 4),
        "frames": frames_at(int(round(duration * SR))),
    }


def _audio_files(root: Path) -> list[Path]:
    exts = set(AUDIO_EXTENSIONS)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in exts and not name.startswith("._"):
                found.append(Path(dirpath) / name)
    return found


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
        ``manifest`` with the columns of ``MANIFEST_COLUMNS`` sorted by recording_id, and ``skipped`` (path, reason).
        Duplicate copies of one recording (the Kaggle RAVDESS download holds two trees) keep the first path in sorted
        order; the others are listed as skipped duplicates.
    """
    from tqdm.auto import tqdm

    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a folder")
    if calm not in CALM_MODES:
        raise ValueError(f"calm must be one of {CALM_MODES}, got {calm!r}")
    demographics = _read_crema_demographics(root)
    esd = frozenset(esd_speakers)
    rows: list[dict[str, object]] = []
    skipped: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    files = _audio_files(root)
    for path in tqdm(files, desc="discover", unit="file", disable=not progress or len(files) < 200):
        try:
            rec = parse_path(path, esd_speakers=esd, crema_demographics=demographics)
        except UnrecognisedName as err:
            skipped.append({"path": str(path), "reason": str(err)})
            continue
        if rec is None:
            skipped.append({"path": str(path), "reason": "file name matches no corpus convention"})
            continue
        if rec.recording_id in seen:
            skipped.append({"path": str(path), "reason": f"duplicate of {seen[rec.recording_id]}"})
            continue
        emotion = harmonise_calm(rec.emotion, calm)
        if emotion is None:
            skipped.append({"path": str(path), "reason": "calm dropped (param calm=drop)"})
            continue
        row: dict[str, object] = {**asdict(rec), "emotion": emotion, "path": str(path.resolve())}
        row.pop("stem")
        row["recording_id"] = rec.recording_id
        row["speaker_key"] = f"{rec.corpus}:{rec.speaker}"
        if probe:
            try:
                row.update(_probe(path))
            except AudioError as err:
                skipped.append({"path": str(path), "reason": err.reason})
                continue
        seen[rec.recording_id] = str(path)
        rows.append(row)
    manifest = pd.DataFrame(rows, columns=[c for c in MANIFEST_COLUMNS if probe or c not in _PROBE_COLS])
    manifest = manifest.sort_values("recording_id", kind="stable").reset_index(drop=True)
    assert set(manifest["emotion"]).issubset(EMOTIONS)
    skipped_df = pd.DataFrame(skipped, columns=["path", "reason"])
    params = {"esd_speakers": sorted(esd), "calm": calm}
    return Discovery(root=root, manifest=manifest, skipped=skipped_df, params=params)


_PROBE_COLS = {"sample_rate", "channels", "duration", "frames"}
_STR_COLS = {"recording_id": str, "path": str, "corpus": str, "speaker": str, "speaker_key": str, "gender": str,
             "emotion": str, "source_label": str, "split": str, "source": str, "augmentation": str}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a manifest/splits CSV written by sefin, keeping ids such as RAVDESS speaker ``01`` as strings."""
    head = pd.read_csv(path, nrows=0)
    return pd.read_csv(path, dtype={c: t for c, t in _STR_COLS.items() if c in head.columns}, keep_default_na=False)


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
    spk = args.esd_speakers.lower()
    esd = ESD_ENGLISH if spk == "english" else ESD_ENGLISH + ESD_MANDARIN if spk == "all" else spk.split(",")
    try:
        found = discover(args.data_root, esd_speakers=esd, calm=args.calm)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    found.manifest.to_csv(args.output, index=False)
    skipped_path = args.skipped or args.output.with_suffix(".skipped.csv")
    found.skipped.to_csv(skipped_path, index=False)
    print(found.summary())
    print(f"wrote {args.output} ({len(found.manifest)} rows) and {skipped_path} ({len(found.skipped)} rows)")
    return 0 if len(found.manifest) else 1
