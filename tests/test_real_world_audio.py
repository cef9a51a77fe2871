"""Issue 11 (real-world audio, part 2): each kind of input fault, on generated inputs written into tmp_path."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sefin_utils import audio
from sefin_utils.constants import SR
from sefin_utils.corpora import discover, parse_path, read_table

REPO = Path(__file__).resolve().parents[1]


def tone(seconds: float, sr: int = SR, f: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t))).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), y, sr, subtype=subtype, format="WAV")
    return path


def encode(path: Path, y: np.ndarray, sr: int, codec: str) -> Path:
    """Write a compressed file through PyAV (FFmpeg's encoders in the wheel)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def load_warns(path: Path) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = audio.load(path)
    return y, [str(w.message) for w in caught if issubclass(w.category, audio.AudioWarning)]


# ---------------------------------------------------------------------------------------------- 1. channels
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_polarity_inverted_channel_uses_one_channel(tmp_path: Path, subtype: str) -> None:
    left = tone(1.5)
    path = write(tmp_path / "inverted.wav", np.stack([left, -left], axis=1), subtype=subtype)
    ref = audio.load(write(tmp_path / "left.wav", left, subtype=subtype))
    y, notes = load_warns(path)
    np.testing.assert_array_equal(y, ref)  # the left channel alone, not the rounding residue of the mix
    assert len(notes) == 1 and "cancel" in notes[0] and str(path) in notes[0]


def test_dead_channel_is_left_out_of_the_mix(tmp_path: Path) -> None:
    left = tone(1.5)
    path = write(tmp_path / "dead.wav", np.stack([np.zeros_like(left), left], axis=1), subtype="FLOAT")
    y, notes = load_warns(path)
    np.testing.assert_allclose(y, left, atol=1e-7)  # full level, not halved
    assert len(notes) == 1 and "channel(s) 1 of 2 silent" in notes[0] and str(path) in notes[0]
    # four channels, one inverted among identical ones: no cancellation, plain mean, no warning
    quad = np.stack([left, left, left, -left], axis=1)
    y4, notes4 = load_warns(write(tmp_path / "quad.wav", quad, subtype="FLOAT"))
    np.testing.assert_allclose(y4, quad.mean(axis=1), atol=1e-7)
    assert notes4 == []


def test_ordinary_stereo_is_averaged_without_a_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = tone(1.0), (0.2 * rng.standard_normal(SR)).astype(np.float32)  # uncorrelated: the mix is -3 dB
    data = np.stack([a, b], axis=1)
    y, notes = load_warns(write(tmp_path / "stereo.wav", data, subtype="FLOAT"))
    np.testing.assert_array_equal(y, data.mean(axis=1))
    assert notes == []


def test_stream_equals_load(tmp_path: Path) -> None:
    for name, data, rate in (
        ("inv48k.wav", np.stack([tone(4, 48_000), -tone(4, 48_000)], 1), 48_000),
        ("dead16k.wav", np.stack([tone(4, 16_000), np.zeros(64_000, np.float32)], 1), 16_000),
        ("mono22k.wav", tone(4), SR),
    ):
        path = write(tmp_path / name, data, rate, subtype="FLOAT")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", audio.AudioWarning)
            ref = audio.load(path)
        found = audio.scan(path)
        got = np.concatenate(list(audio.stream(path, found, block_s=0.7)))
        assert found.n_samples == len(ref)
        np.testing.assert_array_equal(got, ref)


# ---------------------------------------------------------------------------------------------- 2. one recording
def test_lossless_original_wins_and_blank_twins_never_replace(tmp_path: Path) -> None:
    root = tmp_path / "CREMA-D"
    y = tone(2.0, 16_000)
    write(root / "AudioWAV" / "1001_DFA_ANG_XX.wav", y, 16_000)  # both good: the WAV is kept
    encode(root / "AudioMP3" / "1001_DFA_ANG_XX.mp3", y, 16_000, "libmp3lame")
    write(root / "AudioWAV" / "1002_DFA_HAP_XX.wav", y, 16_000)  # blank MP3 twin (as the README lists)
    encode(root / "AudioMP3" / "1002_DFA_HAP_XX.mp3", np.zeros_like(y), 16_000, "libmp3lame")
    cut = write(root / "AudioWAV" / "1003_DFA_SAD_XX.wav", y, 16_000)  # broken WAV: the good MP3 is kept
    cut.write_bytes(cut.read_bytes()[:1000])
    encode(root / "AudioMP3" / "1003_DFA_SAD_XX.mp3", y, 16_000, "libmp3lame")
    encode(root / "AudioMP3" / "1004_DFA_NEU_XX.mp3", y, 16_000, "libmp3lame")  # only an MP3: kept
    write(root / "AudioWAV" / "1005_DFA_FEA_XX.wav", y, 16_000)  # a copy made by a file manager
    write(root / "AudioWAV" / "1005_DFA_FEA_XX (1).wav", y, 16_000)
    write(root / "AudioWAV" / "1006_DFA_FEA_XX.wav", np.zeros_like(y), 16_000)  # a blank WAV: the good MP3 wins
    encode(root / "AudioMP3" / "1006_DFA_FEA_XX.mp3", y, 16_000, "libmp3lame")
    found = discover(root, progress=False)
    kept = {Path(p).name for p in found.manifest["path"]}
    assert kept == {
        "1001_DFA_ANG_XX.wav",
        "1002_DFA_HAP_XX.wav",
        "1003_DFA_SAD_XX.mp3",
        "1004_DFA_NEU_XX.mp3",
        "1005_DFA_FEA_XX.wav",
        "1006_DFA_FEA_XX.mp3",
    }
    assert found.manifest["recording_id"].is_unique
    reasons = {Path(p).name: (k, r) for p, k, r in found.skipped.itertuples(index=False)}
    assert set(reasons) == {
        "1001_DFA_ANG_XX.mp3",
        "1002_DFA_HAP_XX.mp3",
        "1003_DFA_SAD_XX.wav",
        "1005_DFA_FEA_XX (1).wav",
        "1006_DFA_FEA_XX.wav",
    }
    assert all(k == "duplicate" for k, _ in reasons.values())
    assert "lossless original" in reasons["1001_DFA_ANG_XX.mp3"][1]
    assert "lossless original" in reasons["1002_DFA_HAP_XX.mp3"][1]
    blank_wav, cut_wav = reasons["1006_DFA_FEA_XX.wav"][1], reasons["1003_DFA_SAD_XX.wav"][1]
    assert "silent" in blank_wav and "1006_DFA_FEA_XX.mp3" in blank_wav
    assert "truncated" in cut_wav and "1003_DFA_SAD_XX.mp3" in cut_wav


def test_one_performance_whatever_the_name() -> None:
    wav = parse_path("/d/Actor_01/03-01-05-01-02-01-01.wav")
    av_file = parse_path("/d/Video_Speech_Actor_01/Actor_01/01-01-05-01-02-01-01.mp4")  # RAVDESS audio-video
    copy = parse_path("/d/Actor_01/03-01-05-01-02-01-01 - Copy.wav")
    assert wav and av_file and copy
    assert wav.performance == av_file.performance == copy.performance
    assert av_file.recording_id == wav.recording_id and copy.copy and not wav.copy
    tess = [parse_path(f"/d/OAF_angry/{n}.wav") for n in ("OAF_back_angry", "OAF_Back_Angry")]
    assert tess[0] and tess[1] and tess[0].performance == tess[1].performance


# ---------------------------------------------------------------------------------------------- 4. stale headers
def _set_data_size(path: Path, value: int) -> None:
    data = bytearray(path.read_bytes())
    pos = data.index(b"data")
    data[pos + 4 : pos + 8] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("declared", ["zero", "ffff", "plus16"])
def test_stale_wav_header_is_read_with_a_warning(tmp_path: Path, declared: str) -> None:
    y = tone(3.0, 16_000)
    path = write(tmp_path / f"stream_{declared}.wav", y, 16_000)
    n_bytes = len(y) * 2
    _set_data_size(path, {"zero": 0, "ffff": 0xFFFFFFFF, "plus16": n_bytes + 16}[declared])
    got, notes = load_warns(path)
    ref = audio.load(write(tmp_path / "ok.wav", y, 16_000))
    np.testing.assert_array_equal(got, ref)  # every sample, as libsndfile/librosa read them
    assert len(notes) == 1 and "stale WAV header" in notes[0] and str(path) in notes[0]
    info = audio.info(path)
    assert info.frames == len(y) and info.notes
    row = discover(tmp_path, progress=False)  # the probe agrees (names match no corpus: look at the skip list)
    assert not any("no samples" in r or "truncated" in r for r in row.skipped["reason"])


def test_file_cut_in_half_stays_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.wav", tone(2.0, 16_000), 16_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 1])  # ends inside a sample
    with pytest.raises(audio.AudioError, match="truncated.*mid-sample") as info:
        audio.load(path)
    assert str(path) in str(info.value) and info.value.kind == "truncated"


# ---------------------------------------------------------------------------------------------- 6. formats
@pytest.mark.parametrize(
    ("ext", "codec", "rate"),
    [
        (".m4a", "aac", 22_050),
        (".mp4", "aac", 16_000),
        (".aac", "aac", 16_000),
        (".opus", "libopus", 48_000),
        (".webm", "libopus", 48_000),
        (".mp3", "libmp3lame", 22_050),
    ],
)
def test_phone_and_browser_formats_decode_without_ffmpeg(tmp_path: Path, ext: str, codec: str, rate: int) -> None:
    y = tone(2.0, rate)
    path = encode(tmp_path / f"voice{ext}", y, rate, codec)
    got = audio.load(path)
    ref = audio.load(write(tmp_path / "ref.wav", y, rate, subtype="FLOAT"))
    assert abs(len(got) - len(ref)) <= 0.15 * SR  # encoder priming and padding only (AAC: 1024 + up to a frame)
    rms = lambda v: float(np.sqrt(np.mean(v**2)))  # noqa: E731
    assert rms(got) == pytest.approx(rms(ref), rel=0.1)
    spectrum = np.abs(np.fft.rfft(got))
    assert abs(np.fft.rfftfreq(len(got), 1 / SR)[np.argmax(spectrum)] - 220) < 3  # the tone survives the codec
    assert audio.info(path).frames > 0


def test_folder_scan_lists_every_file(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    encode(root / "AudioWAV" / "1001_DFA_ANG_XX.m4a", tone(2.0, 16_000), 16_000, "aac")
    encode(root / "AudioWAV" / "1001_DFA_DIS_XX.webm", tone(2.0, 48_000), 48_000, "libopus")
    (root / "AudioWAV" / "README.md").write_text("about")
    (root / "AudioWAV" / "._1001_DFA_ANG_XX.wav").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    (root / "AudioWAV" / "1001_DFA_FEA_XX.xyz").write_bytes(b"??")
    found = discover(root, progress=False)
    assert sorted(found.manifest["source_label"]) == ["ANG", "DIS"]
    listed = (
        set(found.manifest["path"].map(lambda p: Path(p).name))
        | set(found.skipped["path"].map(lambda p: Path(p).name))
        | set(found.other["path"].map(lambda p: Path(p).name))
    )
    assert listed == {p.name for p in (root / "AudioWAV").iterdir()}
    other = dict(zip(found.other["path"].map(lambda p: Path(p).name), found.other["reason"], strict=True))
    assert "not an audio file (.md)" in other["README.md"] and "AppleDouble" in other["._1001_DFA_ANG_XX.wav"]
    assert "not audio" in found.summary()


# ---------------------------------------------------------------------------------------------- 7. file names
@pytest.mark.parametrize("locale", ["C", "C.UTF-8", "en_US.UTF-8"])
def test_latin1_file_names_under_any_locale(tmp_path: Path, locale: str) -> None:
    folder = tmp_path / os.fsdecode(b"d\xe9mo")  # a Latin-1 byte in a folder and a file name
    target = os.fsdecode(b"1001_DFA_ANG_XX_caf\xe9.wav")
    write(folder / "AudioWAV" / "1001_DFA_ANG_XX.wav", tone(1.0, 16_000), 16_000)
    write(folder / "AudioWAV" / target, tone(1.0, 16_000), 16_000)
    out = tmp_path / "m.csv"
    env = {**os.environ, "LC_ALL": locale, "LANG": locale, "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    res = subprocess.run(
        [sys.executable, "-m", "sefin_utils", "manifest", os.fsencode(folder), "-o", str(out)],
        capture_output=True,
        check=False,
        cwd=REPO,
        env=env,
    )
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert b"Traceback" not in res.stderr and b"1 recordings" in res.stdout
    table = read_table(out)
    assert os.fsencode(table.loc[0, "path"]).startswith(os.fsencode(folder))  # the exact bytes come back
    audio.load(table.loc[0, "path"])  # and the path opens
    skipped = read_table(out.with_suffix(".skipped.csv"))
    assert [os.fsencode(Path(p).name) for p in skipped["path"]] == [b"1001_DFA_ANG_XX_caf\xe9.wav"]


# ---------------------------------------------------------------------------------------------- 8. skip summaries
def test_skip_summary_is_grouped_by_kind(tmp_path: Path) -> None:
    root = tmp_path / "ravdess-emotional-speech-audio"
    for actor in (1, 2):
        for emo in range(1, 9):
            name = f"03-01-{emo:02d}-01-01-01-{actor:02d}.wav"
            write(root / f"Actor_{actor:02d}" / name, tone(0.5), SR)
            write(root / "audio_speech_actors_01-24" / f"Actor_{actor:02d}" / name, tone(0.5), SR)
    lfs = root / "Actor_01" / "03-01-01-01-02-01-01.wav"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 391786\n")
    found = discover(root, progress=False)
    assert len(found.manifest) == 16 and len(found.skipped) == 17
    lines = found.summary().splitlines()
    skip_lines = lines[lines.index("17 files skipped") + 1 :]
    assert len(skip_lines) == 2  # one line per kind of reason, not one per file
    assert skip_lines[0].split()[:2] == ["16", "duplicate"]
    assert skip_lines[1].split()[:2] == ["1", "placeholder"] and "git lfs pull" in skip_lines[1]
    with pytest.raises(audio.AudioError, match="Git LFS pointer.*git lfs pull"):
        audio.load(lfs)


# ---------------------------------------------------------------------------------------------- 10. misnamed file
def test_tess_file_with_a_misnamed_speaker_is_recovered(tmp_path: Path) -> None:
    root = tmp_path / "TESS Toronto emotional speech set data"
    write(root / "OAF_neutral" / "OA_bite_neutral.wav", tone(1.5, 24_414), 24_414)
    write(root / "OAF_neutral" / "OAF_back_neutral.wav", tone(1.5, 24_414), 24_414)
    write(root / "YAF_neutral" / "YAF_bite_neutral.wav", tone(1.5, 24_414), 24_414)
    write(root / "YAF_neutral" / "OA_bite_angry.wav", tone(1.5, 24_414), 24_414)  # emotion disagrees: not guessed
    found = discover(root, progress=False)
    row = found.manifest.set_index("recording_id").loc["TESS/OAF_bite_neutral"]
    assert (row["speaker"], row["emotion"]) == ("OAF", "neutral") and "from folder 'OAF_neutral'" in row["note"]
    assert len(found.manifest) == 3 and list(found.skipped["path"].map(lambda p: Path(p).name)) == ["OA_bite_angry.wav"]


def test_latin1_names_open_in_every_decoder(tmp_path: Path) -> None:
    y = tone(1.0, 16_000)
    wav = write(tmp_path / os.fsdecode(b"caf\xe9.wav"), y, 16_000)
    m4a = encode(tmp_path / "plain.m4a", y, 16_000, "aac").rename(tmp_path / os.fsdecode(b"caf\xe9.m4a"))
    for path in (wav, m4a):
        assert audio.info(path).frames >= len(y) and len(audio.load(path)) >= SR
        found = audio.scan(path)
        assert sum(len(b) for b in audio.stream(path, found)) == found.n_samples


def test_header_declaring_less_than_the_audio_that_follows(tmp_path: Path) -> None:
    y = tone(3.0, 16_000)
    path = write(tmp_path / "early_header.wav", y, 16_000)
    _set_data_size(path, 16_000 * 2)  # updated after 1 s, never again
    got, notes = load_warns(path)
    np.testing.assert_array_equal(got, audio.load(write(tmp_path / "ok.wav", y, 16_000)))
    assert len(notes) == 1 and "3 s" not in notes[0] and "follow" in notes[0] and str(path) in notes[0]
    # a chunk, an ID3 tag or zero padding after the data is not audio: read as declared, no note
    for name, extra in (("list.wav", b"LIST\x04\x00\x00\x00INFO"), ("id3.wav", b"ID3\x03\x00" + bytes(40)),
                        ("pad.wav", bytes(8192))):  # fmt: skip
        other = write(tmp_path / name, y, 16_000)
        other.write_bytes(other.read_bytes() + extra)
        got, notes = load_warns(other)
        assert notes == [] and len(got) == len(audio.load(tmp_path / "ok.wav"))
