"""Tests for sefin_utils.features: framing, the registry, exact per-frame labels, the Kaggle summary vector."""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest

from sefin_utils import features as F
from sefin_utils import spectral
from sefin_utils.constants import CLIP_SAMPLES, DURATION_S, FRAME_LENGTH, HOP_LENGTH, N_FRAMES, OFFSET_S, SR

# Real files chosen for their edge cases (paths relative to the shared sample).
REAL_FILES = {
    "short": "tess/TESS Toronto emotional speech set data/OAF_angry/OAF_tip_angry.wav",  # 1.3 s: padded, silent tail
    "quiet": "CREMA-D/AudioWAV/1083_IOM_FEA_XX.wav",  # CREMA-D actor 1083, peak 0.066
    "quiet_stereo": "ravdess/Actor_01/03-01-02-01-01-02-01.wav",  # stereo, peak 0.032
    "loud": "CREMA-D/AudioWAV/1044_IEO_FEA_HI.wav",  # reaches digital full scale
    "float_16k": "esd/0011/Angry/0011_000372.wav",  # 32-bit float WAV at 16 kHz
}
LONG_FILE = "savee/ALL/JK_d14.wav"  # 6.3 s, labelled whole (not windowed): 270 frames


def _clip(path: Path) -> np.ndarray:
    """The study's window: 22,050 Hz, offset 0.6 s, 2.5 s, zero-padded to 55,125 samples."""
    y, _ = librosa.load(path, sr=SR, offset=OFFSET_S, duration=DURATION_S)
    return np.pad(y, (0, CLIP_SAMPLES - y.shape[0]))


def _assert_close_to_loop(y: np.ndarray, *, tail_frames: bool = False) -> dict[str, float]:
    """Assert frame_labels equals the per-frame librosa loop within 1e-4 of each feature's range."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on frames without pitch (tuning 0.0), both sides alike
        ref = F.reference_frame_labels(y, tail_frames=tail_frames)
        fast = F.frame_labels(y, tail_frames=tail_frames)
    rel = {}
    for name, feat in F.FEATURES.items():
        assert fast[name].dtype == np.float32
        assert fast[name].shape == ref[name].shape == (F.n_frames(y.shape[0], tail_frames=tail_frames), feat.dim)
        span = float(ref[name].max() - ref[name].min())
        err = float(np.max(np.abs(ref[name].astype(np.float64) - fast[name])))
        rel[name] = err / span if span > 0 else err
        assert err <= 1e-4 * max(span, 1e-12), f"{name}: max error {err:.3g} vs range {span:.3g}"
    return rel


# ---------------------------------------------------------------------------------------------------------------------
# framing
# ---------------------------------------------------------------------------------------------------------------------


def test_frame_counts_and_content() -> None:
    y = np.arange(CLIP_SAMPLES, dtype=np.float32)
    frames = F.frame(y)
    assert frames.shape == (N_FRAMES, FRAME_LENGTH) == (104, 2048)
    assert np.shares_memory(frames, y)  # a strided view, no copy
    np.testing.assert_array_equal(frames[7], y[7 * HOP_LENGTH : 7 * HOP_LENGTH + FRAME_LENGTH])
    np.testing.assert_array_equal(frames, librosa.util.frame(y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH).T)

    tail = F.frame(y, tail_frames=True)
    assert tail.shape == (108, 2048) and F.n_frames(CLIP_SAMPLES, tail_frames=True) == 108
    np.testing.assert_array_equal(tail[:104], frames)
    np.testing.assert_array_equal(tail[-1], y[-FRAME_LENGTH:])  # the last tail frame ends at the end of the signal
    for k in range(4):  # frames ending at len - 512 k
        np.testing.assert_array_equal(tail[107 - k], y[CLIP_SAMPLES - FRAME_LENGTH - k * HOP_LENGTH :][:FRAME_LENGTH])

    assert F.frame(np.zeros(FRAME_LENGTH, np.float32)).shape == (1, FRAME_LENGTH)
    assert F.frame(np.zeros(FRAME_LENGTH + HOP_LENGTH - 1, np.float32)).shape == (1, FRAME_LENGTH)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.zeros(2047, np.float32), ValueError, "2047 samples"),
        (np.zeros((2, 4096), np.float32), ValueError, r"shape \(2, 4096\)"),
        (np.zeros(4096, np.int16), TypeError, "int16"),
        (np.r_[np.zeros(3000), np.nan, np.zeros(1000)], ValueError, "nan at sample 3000"),
    ],
)
def test_invalid_waveforms_are_named(bad: np.ndarray, error: type, message: str) -> None:
    for fn in (F.frame, F.frame_labels, F.reference_frame_labels, F.summary_vector):
        with pytest.raises(error, match=message):
            fn(bad)


def test_one_framing_counts_starts_and_mask() -> None:
    """n_frames, frame_starts, frame and the valid-frame mask are one framing (the mask: a frame overlaps the real
    samples, i.e. frames of a 0/1 indicator of them hold a 1)."""
    assert F.n_frames(CLIP_SAMPLES) == N_FRAMES
    for n in (FRAME_LENGTH + 3 * HOP_LENGTH, 9_999, CLIP_SAMPLES):
        for tail in (False, True):
            y = np.arange(n, dtype=np.float32)
            frames = F.frame(y, tail_frames=tail)
            starts = F.frame_starts(n, tail_frames=tail)
            assert len(starts) == len(frames) == F.n_frames(n, tail_frames=tail)
            np.testing.assert_array_equal(frames[:, 0], starts)
            for valid in ((0, n), (0, 1), (n - 1, n), (1_000, 3_000), (2_100, 2_200), (500, 500)):
                indicator = np.zeros(n, np.float32)
                indicator[valid[0] : valid[1]] = 1.0
                want = F.frame(indicator, tail_frames=tail).any(axis=1)
                np.testing.assert_array_equal(F.valid_frame_mask(valid, n, tail_frames=tail), want)
    with pytest.raises(ValueError, match="valid range"):
        F.valid_frame_mask((10, 5), CLIP_SAMPLES)
    with pytest.raises(ValueError, match="shorter than one frame"):
        F.n_frames(FRAME_LENGTH - 1)


def test_labels_and_summary_do_not_depend_on_the_callers_blas_threads() -> None:
    """Labels and the clip summary pin BLAS to one thread themselves: the values are bit-identical whatever thread
    limit the caller runs under (the cache and prediction therefore agree exactly)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(4)
    clip = (0.1 * rng.standard_normal(CLIP_SAMPLES)).astype(np.float32)
    valid = (3_000, 50_000)
    results = []
    for limit in (1, 2, 4):
        with threadpool_limits(limits=limit, user_api="blas"):
            before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
            results.append((F.frame_labels(clip), F.clip_summary(clip, valid)))
            assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before  # restored
    for labels, summary in results[1:]:
        for name in F.FEATURE_NAMES:
            np.testing.assert_array_equal(labels[name], results[0][0][name])
        np.testing.assert_array_equal(summary, results[0][1])
    np.testing.assert_array_equal(results[0][1], F.summary_vector(clip[3_000:50_000]))
    with F.one_blas_thread(), F.one_blas_thread():  # re-entrant
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")


def test_tail_frames_need_room() -> None:
    with pytest.raises(ValueError, match="3000 samples; at least 3584"):
        F.frame(np.zeros(3000, np.float32), tail_frames=True)


# ---------------------------------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------------------------------


def test_registry() -> None:
    assert F.FEATURE_NAMES == ("rms", "zcr", "chroma", "mfcc", "mel")
    assert [f.dim for f in F.FEATURES.values()] == [1, 1, 12, 20, 128]
    for name, feat in F.FEATURES.items():
        assert feat.name == name and F.get_feature(name) is feat
        assert feat.loss in {"mse", "mae"} and feat.description and feat.units
        assert len(feat.component_names) == feat.dim
    assert F.FEATURES["chroma"].loss == "mae" and F.FEATURES["chroma"].component_names[9] == "A"
    with pytest.raises(KeyError, match="known features: rms, zcr"):
        F.get_feature("spectral_centroid")
    with pytest.raises(TypeError):
        F.FEATURES["x"] = F.FEATURES["rms"]  # type: ignore[index]


def test_names_and_tuning_options() -> None:
    y = np.random.default_rng(0).standard_normal(8192).astype(np.float32)
    out = F.frame_labels(y, names=["mel", "rms"])
    assert list(out) == ["mel", "rms"]
    with pytest.raises(KeyError, match="unknown feature 'pitch'"):
        F.frame_labels(y, names=["pitch"])
    with pytest.raises(ValueError, match="per_frame"):
        F.frame_labels(y, tuning="global")
    with pytest.raises(ValueError, match=r"\[-0.5, 0.5\)"):
        F.frame_labels(y, tuning=0.7)
    with pytest.raises(ValueError, match=r"shape \(n >= 1, 2048\)"):
        F.labels_from_frames(np.zeros((3, 1024), np.float32))


# ---------------------------------------------------------------------------------------------------------------------
# hand-checkable signals
# ---------------------------------------------------------------------------------------------------------------------


def test_rms_of_constant_and_zcr_of_alternating_signal() -> None:
    const = np.full(4096, -0.25, dtype=np.float32)
    labels = F.frame_labels(const, names=["rms", "zcr"])
    np.testing.assert_allclose(labels["rms"], 0.25, rtol=1e-6)
    np.testing.assert_array_equal(labels["zcr"], 0.0)

    alternating = np.tile(np.array([1.0, -1.0], dtype=np.float32), 2048)
    labels = F.frame_labels(alternating, names=["rms", "zcr"])
    np.testing.assert_allclose(labels["rms"], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(labels["zcr"], 2047 / 2048)  # every sample but the first crosses

    tiny = np.tile(np.array([1e-11, -1e-11], dtype=np.float32), 2048)  # below librosa's 1e-10 zero threshold
    np.testing.assert_array_equal(F.frame_labels(tiny, names=["zcr"])["zcr"], 0.0)


def test_sine_peaks_in_chroma_and_mel() -> None:
    t = np.arange(4 * FRAME_LENGTH) / SR
    y = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)  # A4
    labels = F.frame_labels(y, names=["chroma", "mel"])
    assert np.all(np.argmax(labels["chroma"], axis=1) == F.FEATURES["chroma"].component_names.index("A"))
    np.testing.assert_allclose(labels["chroma"].max(axis=1), 1.0)
    centres = librosa.mel_frequencies(n_mels=F.N_MELS + 2, fmax=SR / 2)[1:-1]
    peak_band = np.argmax(labels["mel"], axis=1)
    assert np.all(np.abs(centres[peak_band] - 440.0) < 20.0)


def test_silence_matches_loop() -> None:
    """Silent frames: RMS 0, unnormalised zero chroma, MFCC of a flat -100 dB spectrum, as librosa gives."""
    y = np.zeros(3 * FRAME_LENGTH, dtype=np.float32)
    _assert_close_to_loop(y)
    labels = F.frame_labels(y)
    np.testing.assert_array_equal(labels["chroma"], 0.0)
    np.testing.assert_array_equal(labels["rms"], 0.0)


# ---------------------------------------------------------------------------------------------------------------------
# exactness on real audio
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(REAL_FILES))
def test_labels_equal_per_frame_loop_on_real_clips(sample_root: Path, kind: str) -> None:
    y = _clip(sample_root / REAL_FILES[kind])
    rel = _assert_close_to_loop(y, tail_frames=kind == "loud")
    assert rel["rms"] < 1e-5 and rel["zcr"] == 0.0


def test_labels_equal_per_frame_loop_on_long_file(sample_root: Path) -> None:
    y, _ = librosa.load(sample_root / LONG_FILE, sr=SR)
    assert F.n_frames(y.shape[0]) > 250
    _assert_close_to_loop(y)


def test_stft_and_per_frame_tuning_are_bit_identical_to_librosa(sample_root: Path) -> None:
    y = _clip(sample_root / REAL_FILES["quiet_stereo"])
    mag = spectral.stft_mag(F.frame(y))
    ref = np.abs(librosa.stft(y, n_fft=FRAME_LENGTH, hop_length=HOP_LENGTH, center=False)).T
    np.testing.assert_array_equal(mag, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [librosa.estimate_tuning(S=m[:, None], sr=SR) for m in mag]
    np.testing.assert_array_equal(spectral.frame_tuning(mag), expected)


def test_fixed_tuning_variant_equals_librosa_with_tuning_0(sample_root: Path) -> None:
    """Per-frame tuning is what the loop does; a fixed tuning is a documented, different variant."""
    y = _clip(sample_root / REAL_FILES["loud"])
    frames = F.frame(y)[40:44]
    fixed = F.labels_from_frames(frames, names=["chroma"], tuning=0.0)["chroma"]
    for x, row in zip(frames, fixed, strict=True):
        mag = np.abs(librosa.stft(np.ascontiguousarray(x), n_fft=FRAME_LENGTH, hop_length=HOP_LENGTH, center=False))
        expected = librosa.feature.chroma_stft(S=mag, sr=SR, tuning=0.0)[:, 0]
        np.testing.assert_allclose(row, expected, atol=1e-5)
    per_frame = F.labels_from_frames(frames, names=["chroma"])["chroma"]
    assert not np.allclose(per_frame, fixed, atol=1e-3)


def test_feature_reference_is_one_loop_row(sample_root: Path) -> None:
    y = _clip(sample_root / REAL_FILES["quiet"])
    labels = F.frame_labels(y)
    x = F.frame(y)[50]
    for name, feat in F.FEATURES.items():
        np.testing.assert_allclose(feat.reference(x), labels[name][50], rtol=1e-4, atol=1e-6 * np.abs(x).max())


# ---------------------------------------------------------------------------------------------------------------------
# summary vector
# ---------------------------------------------------------------------------------------------------------------------


def test_summary_slices() -> None:
    slices = F.summary_slices()
    assert tuple(slices) == F.SUMMARY_ORDER == ("zcr", "chroma", "mfcc", "rms", "mel")
    assert [(s.start, s.stop) for s in slices.values()] == [(0, 1), (1, 13), (13, 33), (33, 34), (34, 162)]
    assert F.SUMMARY_DIM == 162


def test_summary_vector_equals_kaggle_librosa_calls(sample_root: Path) -> None:
    y = _clip(sample_root / REAL_FILES["loud"])
    vec = F.summary_vector(y)
    assert vec.shape == (162,) and vec.dtype == np.float32
    expected = np.hstack(
        [
            np.mean(librosa.feature.zero_crossing_rate(y=y).T, axis=0),
            np.mean(librosa.feature.chroma_stft(S=np.abs(librosa.stft(y)), sr=SR).T, axis=0),
            np.mean(librosa.feature.mfcc(y=y, sr=SR).T, axis=0),
            np.mean(librosa.feature.rms(y=y).T, axis=0),
            np.mean(librosa.feature.melspectrogram(y=y, sr=SR).T, axis=0),
        ]
    )
    np.testing.assert_allclose(vec, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(vec[F.summary_slices()["rms"]], expected[33:34])


def test_frame_summary_vector_stacks_in_summary_order() -> None:
    y = np.random.default_rng(1).standard_normal(CLIP_SAMPLES).astype(np.float32)
    labels = F.frame_labels(y)
    rows = F.frame_summary_vector(labels)
    assert rows.shape == (N_FRAMES, 162) and rows.dtype == np.float32
    for name, sl in F.summary_slices().items():
        np.testing.assert_array_equal(rows[:, sl], labels[name])
    with pytest.raises(KeyError, match="lack \\['mel'\\]"):
        F.frame_summary_vector({k: v for k, v in labels.items() if k != "mel"})
    with pytest.raises(ValueError, match="has 3 frames"):
        F.frame_summary_vector({**labels, "mel": labels["mel"][:3]})
