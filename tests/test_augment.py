"""Augmentation: determinism, independence of order and process, lengths, valid range, the study's maths."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sefin_utils import augment
from sefin_utils.constants import CLIP_SAMPLES, SR


def _sine(freq: float = 440.0, n: int = CLIP_SAMPLES, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def _peak_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=8 * len(y)))
    return float(np.argmax(spec) * SR / (8 * len(y)))


def test_registry_names() -> None:
    assert list(augment.AUGMENTATIONS) == ["noise", "stretch_pitch"]
    assert augment.ORIGINAL == "orig"


def test_noise_same_key_identical_other_key_different() -> None:
    y = _sine()
    a = augment.augment(y, "noise", seed_key=(0, "RAVDESS/a"))
    b = augment.augment(y, "noise", seed_key=(0, "RAVDESS/a"))
    other_rec = augment.augment(y, "noise", seed_key=(0, "RAVDESS/b"))
    other_seed = augment.augment(y, "noise", seed_key=(1, "RAVDESS/a"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, other_rec)
    assert not np.array_equal(a, other_seed)
    assert a.dtype == np.float32 and a.shape == y.shape


def test_rng_for_is_stable_across_processes() -> None:
    here = augment.rng_for(0, "CREMA-D/1001_DFA_ANG_XX", "noise").integers(0, 2**62, size=3).tolist()
    code = (
        "from sefin_utils.augment import rng_for;"
        "print(rng_for(0, 'CREMA-D/1001_DFA_ANG_XX', 'noise').integers(0, 2**62, size=3).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(here)
    same = augment.rng_for(np.int64(0), "CREMA-D/1001_DFA_ANG_XX", "noise").integers(0, 2**62, size=3).tolist()
    assert same == here


def test_noise_amplitude_follows_the_study() -> None:
    y = _sine(amp=0.8)
    for rid in ("a", "b", "c", "d"):
        rng = augment.rng_for(7, rid, "noise")
        expected_amp = augment.NOISE_FACTOR * rng.uniform() * 0.8  # the first draw is the amplitude factor
        diff = augment.augment(y, "noise", seed_key=(7, rid)) - y
        assert np.std(diff) == pytest.approx(expected_amp, rel=0.03, abs=1e-5)
        assert np.std(diff) <= augment.NOISE_FACTOR * 0.8 * 1.03


def test_noise_only_touches_valid_range() -> None:
    y = np.zeros(CLIP_SAMPLES, np.float32)
    y[10_000:30_000] = _sine(n=20_000)
    out = augment.augment(y, "noise", seed_key=(0, "x"), valid=(10_000, 30_000))
    assert out.shape == y.shape
    assert not np.any(out[:10_000]) and not np.any(out[30_000:])
    assert not np.array_equal(out[10_000:30_000], y[10_000:30_000])


def test_stretch_pitch_keeps_length_and_shifts_pitch() -> None:
    y = _sine(440.0)
    out = augment.stretch_pitch(y)
    assert out.shape == y.shape and out.dtype == np.float32
    # a stretch keeps the pitch; +0.7 semitone multiplies the frequency by 2 ** (0.7 / 12)
    assert _peak_hz(out[5000:-5000]) == pytest.approx(440.0 * 2 ** (0.7 / 12), rel=0.005)
    np.testing.assert_array_equal(out, augment.stretch_pitch(y))  # deterministic


def test_stretch_pitch_centre_crop_slows_down() -> None:
    # A chirp whose frequency rises linearly: after a 0.8 stretch, the centre keeps the centre frequency
    # (pitch-shifted) and the rise is slower.
    n = CLIP_SAMPLES
    t = np.arange(n) / SR
    f0, f1 = 300.0, 900.0
    chirp = (0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))).astype(np.float32)
    out = augment.stretch_pitch(chirp)
    shift = 2 ** (0.7 / 12)
    mid = slice(n // 2 - 2048, n // 2 + 2048)
    assert _peak_hz(out[mid]) == pytest.approx((f0 + f1) / 2 * shift, rel=0.02)
    early = slice(n // 2 - 12_000 - 2048, n // 2 - 12_000 + 2048)
    f_src = f0 + (f1 - f0) * (n // 2 - 12_000) / n
    f_slowed = (f0 + f1) / 2 + ((f_src - (f0 + f1) / 2) * 0.8)
    assert _peak_hz(out[early]) == pytest.approx(f_slowed * shift, rel=0.02)


def test_augment_with_valid_keeps_padding_zero_and_length() -> None:
    y = np.zeros(CLIP_SAMPLES, np.float32)
    y[20_000:40_000] = _sine(n=20_000)
    out = augment.augment(y, "stretch_pitch", seed_key=(0, "x"), valid=(20_000, 40_000))
    assert out.shape == y.shape
    assert not np.any(out[:20_000]) and not np.any(out[40_000:])
    assert np.max(np.abs(out[20_000:40_000])) > 0.1


def test_orig_is_an_unchanged_copy() -> None:
    y = _sine()
    out = augment.augment(y, "orig", seed_key=(0, "x"))
    np.testing.assert_array_equal(out, y)
    assert out is not y


def test_errors_name_the_problem() -> None:
    y = _sine()
    with pytest.raises(ValueError, match="unknown augmentation 'reverb'"):
        augment.augment(y, "reverb", seed_key=(0, "x"))
    with pytest.raises(ValueError, match="valid range"):
        augment.augment(y, "noise", seed_key=(0, "x"), valid=(0, CLIP_SAMPLES + 1))
    with pytest.raises(ValueError, match="1-D"):
        augment.noise(np.zeros((2, 10), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-finite"):
        augment.stretch_pitch(np.array([0.0, np.nan], np.float32))


def test_real_clip_copies_deterministic(sample_root) -> None:
    from sefin_utils import audio

    wav = sorted(sample_root.glob("ravdess/**/*.wav"))[0]
    clip = audio.load_clip(wav)
    for kind in augment.AUGMENTATIONS:
        a = augment.augment(clip.samples, kind, seed_key=(0, "r"), valid=clip.valid)
        b = augment.augment(clip.samples, kind, seed_key=(0, "r"), valid=clip.valid)
        np.testing.assert_array_equal(a, b)
        assert a.shape == (CLIP_SAMPLES,)
        assert not np.array_equal(a, clip.samples)
