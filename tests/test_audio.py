"""Audio loading: every real sample file, stereo and odd rates, and each bad-input case."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from sefin_utils import audio
from sefin_utils.constants import CLIP_SAMPLES, N_FRAMES, SR
from sefin_utils.corpora import discover


def _write(path: Path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


def _tone(sr: int, seconds: float, f: float = 220.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_every_real_sample_file_loads(sample_root: Path) -> None:
    manifest = discover(sample_root, progress=False).manifest
    assert set(manifest["sample_rate"]) >= {16_000, 24_414, 44_100, 48_000}
    assert (manifest["channels"] == 2).sum() == 2
    for row in manifest.itertuples():
        y = audio.load(row.path)
        assert y.dtype == np.float32 and y.ndim == 1
        assert abs(len(y) - row.duration * SR) <= 2
        clip = audio.window(y)
        assert clip.samples.shape == (CLIP_SAMPLES,)
        start, stop = clip.valid
        assert 0 <= start < stop <= CLIP_SAMPLES


def test_matches_librosa_load(sample_root: Path) -> None:
    stereo = sample_root / "ravdess" / "Actor_01" / "03-01-02-01-01-02-01.wav"
    for path in [stereo, next((sample_root / "tess").rglob("*.wav")), next((sample_root / "esd").rglob("*.wav"))]:
        ref, _ = librosa.load(path, sr=SR)
        np.testing.assert_array_equal(audio.load(path), ref)


def test_stereo_and_odd_rates_are_handled(tmp_path: Path) -> None:
    mono = _tone(11_025, 1.0)
    path = _write(tmp_path / "s.wav", np.stack([mono, mono], axis=1), 11_025)
    y = audio.load(path)
    assert len(y) == SR and y.dtype == np.float32
    np.testing.assert_allclose(y, audio.load(_write(tmp_path / "m.wav", mono, 11_025)), atol=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.with_suffix(".wav").write_bytes(b""), "empty file"),
        (lambda p: p.with_suffix(".wav").write_bytes(b"this is not audio at all" * 10), "unreadable"),
        (lambda p: _write(p.with_suffix(".wav"), np.zeros(30_000, np.float32), 22_050), "all-silent"),
        (lambda p: _write(p.with_suffix(".wav"), _tone(22_050, 0.05), 22_050), "too short"),
        (lambda p: _write(p.with_suffix(".wav"), np.full(4096, np.nan, np.float32), 22_050, "FLOAT"), "NaN"),
        (lambda p: p.with_suffix(".xyz").write_bytes(b"abc"), "unknown audio extension"),
        (lambda p: _write(p.with_suffix(".wav"), np.zeros((0,), np.float32), 22_050), "zero-length|unreadable"),
    ],
)
def test_bad_input_errors_name_the_file(tmp_path: Path, make, message: str) -> None:
    make(tmp_path / "bad")
    path = next(tmp_path.iterdir())
    with pytest.raises(audio.AudioError, match=message) as info:
        audio.load(path)
    assert str(path) in str(info.value)


def test_truncated_wav(tmp_path: Path) -> None:
    good = _write(tmp_path / "t.wav", _tone(16_000, 1.0), 16_000)
    data = good.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(audio.AudioError, match="truncated"):
        audio.load(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(audio.AudioError, match="no such file"):
        audio.load(tmp_path / "none.wav")


def test_window_offset_and_padding() -> None:
    y = np.arange(1, 4 * SR + 1, dtype=np.float32)
    clip = audio.window(y)
    assert clip.valid == (0, CLIP_SAMPLES) and clip.samples[0] == y[int(0.6 * SR)]
    short = audio.window(y[: int(1.5 * SR)])
    n_real = int(1.5 * SR) - int(0.6 * SR)
    start, stop = short.valid
    assert stop - start == n_real and abs(start - (CLIP_SAMPLES - stop)) <= 1
    assert short.samples[:start].sum() == 0 and short.samples[stop:].sum() == 0
    tiny = audio.window(y[: int(0.65 * SR)])  # less than a frame after the offset: the window starts at 0
    assert tiny.source_start == 0 and tiny.valid[1] - tiny.valid[0] == int(0.65 * SR)
    custom = audio.window(y, offset=0.0, duration=1.0)
    assert custom.samples.shape == (SR,) and custom.samples[0] == 1


def test_valid_frame_mask() -> None:
    mask = audio.valid_frame_mask((0, CLIP_SAMPLES), CLIP_SAMPLES)
    assert mask.shape == (N_FRAMES,) and mask.all()
    mask = audio.valid_frame_mask((20_000, 30_000), CLIP_SAMPLES)
    begins = np.arange(N_FRAMES) * 512
    expected = (begins + 2048 > 20_000) & (begins < 30_000)
    np.testing.assert_array_equal(mask, expected)
    assert 0 < mask.sum() < N_FRAMES
