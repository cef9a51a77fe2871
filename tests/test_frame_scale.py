"""Per-frame vectors in decibels (``ser_frame_scale: db``): the in-model layer, its numpy twin, the classifiers."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from sefin_utils import classifiers
from sefin_utils.features import FEATURES, KAGGLE
from sefin_utils.layers import FramesToDb


def _slice(name: str) -> slice:
    at = 0
    for n in KAGGLE.order:
        if n == name:
            return slice(at, at + FEATURES[n].dim)
        at += FEATURES[n].dim
    raise KeyError(name)


def _frames(n: int = 3, t: int = 104) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, t, KAGGLE.dim)).astype("float32")
    x[..., _slice("mel")] = rng.exponential(2.0, size=(n, t, 128)).astype("float32")
    x[..., _slice("rms")] = rng.uniform(0, 0.3, size=(n, t, 1)).astype("float32")
    x[0, :5, _slice("mel")] = 0.0  # digital silence: the -100 dB floors
    x[0, :5, _slice("rms")] = 0.0
    return x


def test_db_factors_mark_mel_as_power_and_rms_as_amplitude() -> None:
    f = KAGGLE.db_factors()
    assert f.shape == (162,)
    assert (f[_slice("mel")] == 10).all() and (f[_slice("rms")] == 20).all()
    assert (np.delete(f, np.r_[_slice("mel"), _slice("rms")]) == 0).all()


def test_frames_to_db_is_librosa_power_to_db_on_mel_and_amplitude_to_db_on_rms() -> None:
    import librosa

    x = _frames()
    db = classifiers.frames_to_db(x, "db")
    mel, rms = x[..., _slice("mel")], x[..., _slice("rms")]
    np.testing.assert_allclose(
        db[..., _slice("mel")], librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None), atol=1e-4
    )
    np.testing.assert_allclose(
        db[..., _slice("rms")], librosa.amplitude_to_db(rms, ref=1.0, amin=1e-5, top_db=None), atol=1e-4
    )
    assert db[0, 0, _slice("mel")].max() == pytest.approx(-100.0) and db[0, 0, _slice("rms")][0] == pytest.approx(-100)
    others = np.ones(162, bool)
    others[_slice("mel")] = others[_slice("rms")] = False
    np.testing.assert_array_equal(db[..., others], x[..., others])
    np.testing.assert_array_equal(classifiers.frames_to_db(x, "linear"), x)


def test_the_layer_computes_what_the_numpy_function_computes_and_saves() -> None:
    x = _frames()
    layer = FramesToDb(KAGGLE.db_factors().tolist())
    np.testing.assert_allclose(np.asarray(layer(x)), classifiers.frames_to_db(x, "db"), atol=1e-4)
    again = FramesToDb.from_config(layer.get_config())
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(layer(x)))


def test_a_db_frame_classifier_reads_decibels_and_reloads(tmp_path) -> None:
    x = _frames()
    mask = np.ones(x.shape[:2], "float32")
    mask[1, 90:] = 0
    mean, var = classifiers.pooled_norm_stats(classifiers.frames_to_db(x, "db"), mask, "temporal")
    model = classifiers.build_frame_classifier(
        dim=162,
        pooling="temporal",
        head="kaggle",
        n_classes=8,
        norm_mean=mean,
        norm_var=var,
        frame_scale="db",
    )
    assert "frames_db" in {layer.name for layer in model.layers}
    linear = classifiers.build_frame_classifier(
        dim=162, pooling="temporal", head="kaggle", n_classes=8, norm_mean=mean, norm_var=var
    )
    assert "frames_db" not in {layer.name for layer in linear.layers}
    inputs = {"per_frame": x, "mask": mask}
    path = tmp_path / "m.keras"
    model.save(path)
    back = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(back(inputs)), np.asarray(model(inputs)), atol=1e-6)


def test_bad_frame_scales_and_db_factors_are_refused() -> None:
    with pytest.raises(ValueError, match="frame_scale"):
        classifiers.frames_to_db(_frames(), "log")
    with pytest.raises(ValueError, match="composition"):
        classifiers.frames_to_db(np.ones((2, 4, 10), "float32"), "db")
    with pytest.raises(ValueError, match="db_factor"):
        dataclasses.replace(FEATURES["mel"], db_factor=-10.0)
    with pytest.raises(ValueError, match="factors"):
        FramesToDb([10.0, -1.0])


def test_pooled_norm_stats_in_chunks_equals_the_whole_array() -> None:
    """Chunked statistics (the memory-bounded path) equal numpy's over every real frame / pooled vector at once."""
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 3.0, size=(7, 20, 162)).astype("float32")
    mask = np.ones((7, 20), "float32")
    mask[2, 12:] = 0
    mask[5, 3:] = 0
    db = classifiers.frames_to_db(x, "db").astype("float64")
    m = mask > 0
    cnt = m.sum(axis=1, keepdims=True)
    means = np.where(m[..., None], db, 0).sum(axis=1) / cnt
    stds = np.sqrt(np.maximum((np.where(m[..., None], db, 0) ** 2).sum(axis=1) / cnt - means**2, 0) + 1e-6)
    want = {"temporal": db[m], "mean": means, "stats": np.concatenate([means, stds], axis=1)}
    for pooling, ref in want.items():
        mean, var = classifiers.pooled_norm_stats(x, mask, pooling, frame_scale="db", chunk=3)
        np.testing.assert_allclose(mean, ref.mean(axis=0), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(var, ref.var(axis=0), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="frame_scale"):
        classifiers.pooled_norm_stats(x, mask, "temporal", frame_scale="log")
