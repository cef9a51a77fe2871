"""Corpus parsers and discover(): the real sample, Kaggle layouts, and deliberately odd names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sefin_utils.corpora import (
    ESD_ENGLISH,
    ESD_MANDARIN,
    UnrecognisedName,
    discover,
    harmonise_calm,
    parse_path,
    read_table,
)


def _wav(path: Path, sr: int = 16_000, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


def test_real_sample_agrees_with_its_manifest(sample_root: Path) -> None:
    found = discover(sample_root, progress=False)
    truth = pd.read_csv(sample_root / "manifest.csv", dtype=str)
    truth["path"] = [str((sample_root / p).resolve()) for p in truth["path"]]
    got = found.manifest.set_index("path")
    assert len(found.skipped) == 0, found.skipped
    assert set(got.index) == set(truth["path"])
    t = truth.set_index("path").loc[got.index]
    assert (got["corpus"] == t["dataset"]).all()
    assert (got["speaker"] == t["speaker"]).all()
    assert (got["emotion"] == t["emotion"]).all()
    assert (got["gender"] == t["gender"]).all()
    assert (got["sample_rate"] == t["sample_rate"].astype(int)).all()
    assert np.allclose(got["duration"], t["duration_s"].astype(float), atol=2e-3)
    assert got["recording_id"].is_unique


@pytest.mark.parametrize(
    ("rel", "corpus", "speaker", "gender", "emotion"),
    [
        ("Actor_01/03-01-05-01-02-01-01.wav", "RAVDESS", "01", "male", "angry"),
        ("audio_speech_actors_01-24/Actor_12/03-01-02-02-01-01-12.wav", "RAVDESS", "12", "female", "calm"),
        ("AudioWAV/1091_WSI_SAD_XX.wav", "CREMA-D", "1091", "female", "sad"),
        ("AudioWAV/1001_IEO_HAP_HI.wav", "CREMA-D", "1001", "male", "happy"),
        (
            "TESS Toronto emotional speech set data/YAF_pleasant_surprised/YAF_bite_ps.wav",
            "TESS",
            "YAF",
            "female",
            "surprise",
        ),
        ("tess/OAF_Fear/OAF_food_fear.wav", "TESS", "OAF", "female", "fear"),
        ("ALL/KL_su15.wav", "SAVEE", "KL", "male", "surprise"),
        ("AudioData/JK/sa03.wav", "SAVEE", "JK", "male", "sad"),
        ("0020/Surprise/train/0020_001401.wav", "ESD", "0020", "male", "surprise"),
        ("0017/Neutral/0017_000350.wav", "ESD", "0017", "female", "neutral"),
    ],
)
def test_parsers(rel: str, corpus: str, speaker: str, gender: str, emotion: str) -> None:
    rec = parse_path(Path("/data") / rel)
    assert rec is not None
    assert (rec.corpus, rec.speaker, rec.gender, rec.emotion) == (corpus, speaker, gender, emotion)


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("Actor_01/03-02-05-01-02-01-01.wav", "song"),
        ("Actor_02/03-01-05-01-02-01-01.wav", "disagrees with folder"),
        ("Actor_01/03-01-09-01-02-01-01.wav", "out of range"),
        ("AudioWAV/1001_DFA_XYZ_XX.wav", "emotion code"),
        ("OAF_angry/YAF_back_angry.wav", "disagrees with folder"),
        ("OAF_back_bored.wav", "TESS emotion"),
        ("misc/a01.wav", "outside a speaker folder"),
        ("0001/Angry/0001_000351.wav", "Mandarin"),
        ("0011/Angry/0011_000001.wav", "neutral range"),
        ("0011/0011_000001.wav", "emotion folder"),
    ],
)
def test_odd_names_are_rejected_with_a_reason(rel: str, message: str) -> None:
    with pytest.raises(UnrecognisedName, match=message):
        parse_path(Path("/data") / rel)


def test_unknown_names_return_none() -> None:
    for name in ["speech.wav", "1001_DFA_ANG.wav", "03-01-05-01.wav", "OA_bite_neutral.wav"]:
        assert parse_path(Path("/x") / name) is None


def test_mandarin_speakers_are_a_param() -> None:
    rec = parse_path("/d/0003/Happy/0003_000701.wav", esd_speakers=ESD_ENGLISH + ESD_MANDARIN)
    assert rec is not None and rec.emotion == "happy"


def test_calm_modes() -> None:
    assert harmonise_calm("calm", "class") == "calm"
    assert harmonise_calm("calm", "neutral") == "neutral"
    assert harmonise_calm("calm", "drop") is None
    assert harmonise_calm("sad", "drop") == "sad"
    with pytest.raises(ValueError, match="calm must be"):
        harmonise_calm("calm", "merge")


def test_discover_kaggle_layout_duplicates_and_skips(tmp_path: Path) -> None:
    root = tmp_path / "kaggle" / "input"
    a = _wav(root / "ravdess-emotional-speech-audio" / "Actor_02" / "03-01-02-01-01-01-02.wav")
    _wav(root / "ravdess-emotional-speech-audio" / "audio_speech_actors_01-24" / "Actor_02" / a.name)
    _wav(root / "cremad" / "AudioWAV" / "1076_MTI_SAD_XX.wav")
    _wav(root / "tess" / "TESS Toronto emotional speech set data" / "OAF_Sad" / "OAF_back_sad.wav", sr=24_414)
    _wav(root / "savee" / "ALL" / "DC_n01.wav", sr=44_100)
    _wav(root / "junk" / "recording.wav")
    (root / "savee" / "ALL" / "DC_n02.wav").write_bytes(b"")
    (root / "junk" / "notes.txt").write_text("not audio")
    (root / "cremad" / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    found = discover(root, calm="drop", progress=False)
    assert sorted(found.manifest["corpus"]) == ["CREMA-D", "SAVEE", "TESS"]
    reasons = dict(zip(found.skipped["path"].map(lambda p: Path(p).name), found.skipped["reason"], strict=True))
    assert reasons["recording.wav"] == "file name matches no corpus convention"
    assert "calm dropped" in reasons[a.name] or "duplicate" in reasons[a.name]
    assert "empty" in reasons["DC_n02.wav"]
    assert "1001_DFA_ANG_XX.wav" in reasons
    assert "notes.txt" not in reasons
    kept = discover(root, calm="class", progress=False)
    assert (kept.manifest["emotion"] == "calm").sum() == 1
    assert any("duplicate of" in r for r in kept.skipped["reason"])
    assert kept.manifest.loc[kept.manifest.corpus == "TESS", "sample_rate"].item() == 24_414


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        discover(tmp_path / "nope")


def test_manifest_cli(tmp_path: Path) -> None:
    _wav(tmp_path / "data" / "Actor_01" / "03-01-01-01-01-01-01.wav")
    out = tmp_path / "m.csv"
    res = subprocess.run(
        [sys.executable, "-m", "sefin_utils", "manifest", str(tmp_path / "data"), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert res.returncode == 0, res.stderr
    assert "1 recordings" in res.stdout and "0 files skipped" in res.stdout
    table = read_table(out)
    assert table.loc[0, "speaker"] == "01" and table.loc[0, "emotion"] == "neutral"
    assert {"path", "corpus", "speaker", "emotion"} <= set(table.columns)
