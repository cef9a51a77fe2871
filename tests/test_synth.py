"""Tests of the generated demo corpus (sefin_utils.synth): names, counts, formats, determinism, learnability."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sefin_utils import synth
from sefin_utils.constants import DURATION_S, EMOTIONS, OFFSET_S, SR

CORPUS_EMOTIONS = {
    "RAVDESS": set(EMOTIONS),
    "CREMA-D": set(EMOTIONS) - {"calm", "surprise"},
    "TESS": set(EMOTIONS) - {"calm"},
    "SAVEE": set(EMOTIONS) - {"calm"},
    "ESD": {"angry", "happy", "neutral", "sad", "surprise"},
}
SPEAKERS = {"RAVDESS": 8, "CREMA-D": 6, "TESS": 2, "SAVEE": 4, "ESD": 2}
PER_CELL = {"RAVDESS": 2, "CREMA-D": 2, "TESS": 3, "SAVEE": 2, "ESD": 2}
RATES = {"RAVDESS": 48_000, "CREMA-D": 16_000, "TESS": 24_414, "SAVEE": 44_100, "ESD": 16_000}

RAVDESS_RE = re.compile(r"ravdess/Actor_(\d\d)/03-01-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)\.wav")
CREMA_RE = re.compile(r"CREMA-D/AudioWAV/(10\d\d)_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(XX|LO|MD|HI)\.wav")
TESS_RE = re.compile(r"tess/TESS Toronto emotional speech set data/(OAF|YAF)_(\w+)/(OAF|YAF)_([a-z]+)_([a-z]+)\.wav")
SAVEE_RE = re.compile(r"savee/ALL/(DC|JE|JK|KL)_(a|d|f|h|n|sa|su)(\d\d)\.wav")
ESD_RE = re.compile(r"esd/(00\d\d)/(Neutral|Angry|Happy|Sad|Surprise)/(00\d\d)_(\d{6})\.wav")
RAVDESS_EMOTION = dict(
    zip(
        ("01", "02", "03", "04", "05", "06", "07", "08"),
        ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"),
        strict=True,
    )
)
ESD_FIRST = {"Neutral": 1, "Angry": 351, "Happy": 701, "Sad": 1051, "Surprise": 1401}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus at seed 0, scale 1, written once for the module."""
    return synth.write_demo_corpus(tmp_path_factory.mktemp("synth") / "demo", seed=0, progress=False)


@pytest.fixture(scope="module")
def manifest(demo_root: Path) -> list[dict[str, str]]:
    return synth.read_demo_manifest(demo_root)


def _check_name(f: synth.DemoFile) -> None:
    """The file name alone gives back speaker and emotion, by each corpus' convention."""
    spk = f.speaker
    if spk.corpus == "RAVDESS":
        m = RAVDESS_RE.fullmatch(f.path)
        assert m, f.path
        assert m[1] == m[6] == spk.speaker and RAVDESS_EMOTION[m[2]] == f.emotion
        assert spk.gender == ("male" if int(m[6]) % 2 else "female")
        assert not (m[2] == "01" and m[3] == "02"), f"{f.path}: RAVDESS neutral has no strong intensity"
    elif spk.corpus == "CREMA-D":
        m = CREMA_RE.fullmatch(f.path)
        assert m, f.path
        assert m[1] == spk.speaker and m[3] == f.source_label
        assert m[4] == "XX" or (m[2] == "IEO" and m[3] != "NEU"), f"{f.path}: only IEO has levels"
    elif spk.corpus == "TESS":
        m = TESS_RE.fullmatch(f.path)
        assert m, f.path
        assert m[1] == m[3] == spk.speaker and m[5] == ("ps" if f.emotion == "surprise" else f.emotion)
        folder = m[2].lower()
        assert folder.startswith("pleasant_surprise") if f.emotion == "surprise" else folder == f.emotion
    elif spk.corpus == "SAVEE":
        m = SAVEE_RE.fullmatch(f.path)
        assert m, f.path
        assert m[1] == spk.speaker and 1 <= int(m[3]) <= (30 if m[2] == "n" else 15)
    else:
        m = ESD_RE.fullmatch(f.path)
        assert m, f.path
        assert m[1] == m[3] == spk.speaker and m[2].lower() == f.emotion
        assert ESD_FIRST[m[2]] <= int(m[4]) < ESD_FIRST[m[2]] + 350


def test_plan_counts_names_and_rates() -> None:
    files = synth.plan_demo_corpus(seed=0)
    assert len(files) == 318
    assert len({f.path for f in files}) == len(files)
    assert [f.path for f in files] == sorted(f.path for f in files)
    for f in files:
        _check_name(f)
        assert f.sample_rate == RATES[f.speaker.corpus]
    cells = Counter((f.speaker.corpus, f.speaker.speaker, f.emotion) for f in files)
    for corpus, n_speakers in SPEAKERS.items():
        speakers = {s for c, s, _ in cells if c == corpus}
        assert len(speakers) == n_speakers, corpus
        for speaker in speakers:
            for emotion in CORPUS_EMOTIONS[corpus]:
                assert cells[(corpus, speaker, emotion)] == PER_CELL[corpus], (corpus, speaker, emotion)
        assert {e for c, _, e in cells if c == corpus} == CORPUS_EMOTIONS[corpus]
    assert {f.speaker.gender for f in files if f.speaker.corpus in ("RAVDESS", "CREMA-D", "ESD")} == {"male", "female"}
    stereo = [f for f in files if f.channels == 2]
    assert len(stereo) == 2 and all(f.speaker.corpus == "RAVDESS" for f in stereo)
    # The study's window (0.6 s + 2.5 s) fits most files; the shorter ones get padded.
    fits = np.mean([f.duration_s >= OFFSET_S + DURATION_S for f in files])
    assert 0.7 < fits < 1.0
    assert min(f.duration_s for f in files) > 2.0


def test_plan_scale() -> None:
    full = {f.path for f in synth.plan_demo_corpus(seed=0)}
    half = synth.plan_demo_corpus(seed=0, scale=0.5)
    assert len(half) == 166  # one file per (speaker, emotion) cell; TESS round(1.5) = 2
    assert {f.path for f in half} <= full
    big = synth.plan_demo_corpus(seed=0, scale=3.0)
    cells = Counter((f.speaker.corpus, f.speaker.speaker, f.emotion) for f in big)
    assert cells[("RAVDESS", "01", "neutral")] == 4  # capped: RAVDESS neutral has 4 names per actor
    assert cells[("RAVDESS", "01", "angry")] == 6
    assert cells[("TESS", "OAF", "sad")] == 9
    assert {f.path for f in synth.plan_demo_corpus(seed=1)} != full
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="scale"):
            synth.plan_demo_corpus(scale=bad)


def test_written_files_match_manifest(demo_root: Path, manifest: list[dict[str, str]]) -> None:
    assert synth.is_generated(demo_root)
    assert "NOT REAL SPEECH" in (demo_root / synth.GENERATED_MARKER).read_text()
    on_disk = sorted(p.relative_to(demo_root).as_posix() for p in demo_root.rglob("*.wav"))
    assert on_disk == [r["path"] for r in manifest]
    assert not list(demo_root.rglob("*.part"))
    plan = {f.path: f for f in synth.plan_demo_corpus(seed=0)}
    for row in manifest:
        f = plan[row["path"]]
        assert (row["corpus"], row["speaker"], row["gender"], row["emotion"]) == (
            f.speaker.corpus,
            f.speaker.speaker,
            f.speaker.gender,
            f.emotion,
        )
        info = sf.info(demo_root / row["path"])
        assert (info.samplerate, info.channels, info.subtype) == (f.sample_rate, f.channels, "PCM_16"), row["path"]
        assert info.frames == round(f.duration_s * f.sample_rate)
        assert int(row["sample_rate"]) == info.samplerate and int(row["channels"]) == info.channels


def test_signal_sanity(demo_root: Path, manifest: list[dict[str, str]]) -> None:
    for row in manifest[::15]:
        y, sr = sf.read(demo_root / row["path"], always_2d=True)
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        head = y[: int(0.2 * sr)]  # lead-in: only the faint background noise
        assert np.sqrt(np.mean(head**2)) < 0.1 * np.sqrt(np.mean(y**2)), row["path"]
        assert np.mean(np.abs(y) >= 0.999) < 0.01, f"{row['path']}: clipped"
    stereo = [r for r in manifest if r["channels"] == "2"]
    y, _ = sf.read(demo_root / stereo[0]["path"])
    assert y.shape[1] == 2 and not np.allclose(y[:, 0], 0) and np.corrcoef(y[:, 0], y[:, 1])[0, 1] > 0.99


def test_deterministic_bytes(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A second write (of every 10th file, to keep the test fast) gives byte-identical files: each file's random
    # numbers come from the seed and its own name only.
    subset = synth.plan_demo_corpus(seed=0)[::10]
    assert {f.speaker.corpus for f in subset} == set(SPEAKERS)
    monkeypatch.setattr(synth, "plan_demo_corpus", lambda **_: subset)
    other = synth.write_demo_corpus(tmp_path / "again", seed=0, progress=False)
    written = sorted(other.rglob("*.wav"))
    assert len(written) == len(subset) == 32
    for path in written:
        assert path.read_bytes() == (demo_root / path.relative_to(other)).read_bytes(), path
    f = synth.plan_demo_corpus(seed=0)[0]
    assert np.array_equal(synth.render(f, seed=0), synth.render(f, seed=0))
    assert not np.array_equal(synth.render(f, seed=0), synth.render(f, seed=1))


def test_stale_files_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = synth.plan_demo_corpus(seed=0)
    monkeypatch.setattr(synth, "plan_demo_corpus", lambda **_: [files[0], files[-1]])
    root = synth.write_demo_corpus(tmp_path / "demo", progress=False)
    stale = root / "savee" / "ALL" / "DC_a99.wav"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"")
    synth.write_demo_corpus(root, progress=False, force=True)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav")) == [files[0].path, files[-1].path]
    assert [r["path"] for r in synth.read_demo_manifest(root)] == [files[0].path, files[-1].path]


def test_up_to_date_is_not_rewritten(demo_root: Path) -> None:
    path = next(demo_root.rglob("*.wav"))
    before = path.stat().st_mtime_ns
    assert synth.write_demo_corpus(demo_root, seed=0, progress=False) == demo_root
    assert path.stat().st_mtime_ns == before


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "real.wav").write_bytes(b"RIFF")
    with pytest.raises(FileExistsError, match="GENERATED.txt"):
        synth.write_demo_corpus(tmp_path, progress=False)
    assert not synth.is_generated(tmp_path)
    with pytest.raises(FileNotFoundError, match="demo_manifest.csv"):
        synth.read_demo_manifest(tmp_path)
    assert synth.main([str(tmp_path), "--quiet"]) == 2


def test_cli(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sefin_utils.__main__ import main as cli

    assert cli(["demo-data", str(demo_root), "--quiet"]) == 0  # up to date: prints the summary only
    out = capsys.readouterr().out
    assert "318 files" in out and "GENERATED" in out
    assert re.search(r"RAVDESS\s+16\s+16\s+16\s+16\s+16\s+16\s+16\s+16\s+128\s+8", out), out


def test_discover_agrees_with_manifest(demo_root: Path, manifest: list[dict[str, str]]) -> None:
    corpora = pytest.importorskip("sefin_utils.corpora", reason="sefin_utils.corpora not written yet")
    found = corpora.discover(demo_root, progress=False)
    got = {
        Path(r.path).resolve().relative_to(demo_root.resolve()).as_posix(): (
            r.corpus,
            str(r.speaker),
            r.emotion,
            r.gender,
        )
        for r in found.manifest.itertuples()
    }
    want = {r["path"]: (r["corpus"], r["speaker"], r["emotion"], r["gender"]) for r in manifest}
    assert got == want
    skipped_wavs = [p for p in found.skipped["path"].astype(str) if p.endswith(".wav")]
    assert skipped_wavs == []


def _clip_features(path: Path) -> list[float]:
    """Per-clip mean/std of RMS, ZCR, spectral centroid and YIN pitch on the study's window."""
    import librosa

    y, sr = librosa.load(path, sr=SR, offset=OFFSET_S, duration=DURATION_S)
    y = librosa.util.fix_length(y, size=int(round(DURATION_S * SR)))
    rms = librosa.feature.rms(y=y)[0]
    zcr = librosa.feature.zero_crossing_rate(y)[0]
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr)[0]
    f0 = librosa.yin(y, fmin=65, fmax=600, sr=sr, frame_length=1024, hop_length=512)
    voiced = rms[: len(f0)] > 0.3 * rms.max()
    semitones = 12 * np.log2(f0[voiced] / 100.0)
    return [
        np.log(rms.mean() + 1e-6),
        rms.std() / (rms.mean() + 1e-9),
        zcr.mean(),
        zcr.std(),
        np.log(centroid.mean() + 1e-6),
        centroid.std() / (centroid.mean() + 1e-9),
        semitones.mean(),
        semitones.std(),
    ]


def test_learnable_speaker_independent(demo_root: Path, manifest: list[dict[str, str]]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = [r for r in manifest if r["corpus"] != "ESD"]
    x = np.array([_clip_features(demo_root / r["path"]) for r in rows])
    y = np.array([r["emotion"] for r in rows])
    groups = np.array([f"{r['corpus']}:{r['speaker']}" for r in rows])
    # Prosody goes the intended way on average.
    mean = {e: x[y == e].mean(axis=0) for e in EMOTIONS}
    assert mean["angry"][0] > mean["neutral"][0] > mean["sad"][0]  # loudness
    assert mean["fear"][6] > mean["neutral"][6] > mean["sad"][6]  # pitch level
    assert mean["happy"][7] > mean["neutral"][7] > mean["sad"][7]  # pitch range
    # Speaker-independent (no speaker in both train and test folds), 8 classes: chance is 1/8.
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pred = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(n_splits=5))
    macro_f1 = f1_score(y, pred, average="macro")
    print(f"demo corpus, 8 simple features, logistic regression, speaker-independent 5-fold: macro-F1 {macro_f1:.3f}")
    chance = 1 / len(EMOTIONS)
    assert macro_f1 > 2 * chance
    assert macro_f1 < 0.95  # learnable, not trivial
