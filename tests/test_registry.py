"""A sixth imitated feature, registered for one test and removed again: labels -> FIN -> end-to-end model.

Spectral centroid is added through ``features.register_feature`` alone (no other module is edited): the vectorised
labels, the fast FIN family, FIN training, the end-to-end classifier (on a composition that includes it) and the
FIN figures all take it from the registry, while the Kaggle 162-dim vector and its 32 ablation mixes stay as they are.
"""

from __future__ import annotations

import keras
import librosa
import numpy as np
import pytest

from sefin_utils import classifiers, features, fins, layers, training
from sefin_utils.constants import CLIP_SAMPLES, FRAME_LENGTH, HOP_LENGTH, N_FRAMES, SR

_FREQS = librosa.fft_frequencies(sr=SR, n_fft=FRAME_LENGTH).astype(np.float32)


def _centroid_frame(x: np.ndarray) -> np.ndarray:
    """librosa's definition on one frame (center=False, 2048/512)."""
    return librosa.feature.spectral_centroid(y=x, sr=SR, n_fft=FRAME_LENGTH, hop_length=HOP_LENGTH, center=False)[:, 0]


def _centroid_labels(ctx: features.FrameContext) -> np.ndarray:
    """All frames at once from the shared |STFT|: sum(f * |S|) / sum(|S|) (librosa normalises |S| to unit L1)."""
    total = ctx.mag.sum(axis=1, keepdims=True)
    return (ctx.mag @ _FREQS[:, None]) / np.maximum(total, np.finfo(np.float32).tiny)


def _centroid_fin(x: keras.KerasTensor) -> keras.KerasTensor:
    """A small fast FIN: magnitude spectrum (no weights) -> Dense (learnt)."""
    mag = layers.SafeSqrt(name="magnitude")(layers.PowerSpectrum(name="power")(x))
    return keras.layers.Dense(1, name="out")(keras.layers.Dense(8, activation="relu", name="hidden")(mag))


CENTROID = features.Feature(
    "centroid",
    1,
    "spectral centroid of |STFT|",
    "Hz",
    _centroid_frame,
    _centroid_labels,
    "mse",
    ("centroid",),
    fin=_centroid_fin,
)


def _clips(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP_SAMPLES) / SR
    f0 = rng.uniform(150, 900, size=(n, 1))
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal((n, CLIP_SAMPLES))).astype(np.float32)


def test_a_sixth_feature_runs_labels_fin_and_end_to_end_model() -> None:
    clips = _clips(3)
    with features.register_feature(CENTROID):
        assert tuple(features.FEATURES)[-1] == "centroid"
        # labels: the vectorised function agrees with librosa's per-frame definition
        lab = features.frame_labels(clips[0])
        assert set(lab) == set(features.FEATURES) and lab["centroid"].shape == (N_FRAMES, 1)
        ref = features.reference_frame_labels(clips[0], names=["centroid"])["centroid"]
        np.testing.assert_allclose(lab["centroid"], ref, rtol=1e-4)
        # the Kaggle vector and its ablation did not change
        assert (
            features.KAGGLE.dim == features.SUMMARY_DIM == classifiers.N_SUMMARY == 162
            and len(classifiers.ABLATION) == 32
        )
        assert features.summary_vector(clips[0]).shape == (162,)

        # FIN: built from the registry entry, trained on a few frames (standardised linear targets)
        frames = features.frame(clips[0])
        fin, hist = training.train_fin(
            "centroid", frames[:80], lab["centroid"][:80], frames[80:], lab["centroid"][80:], epochs=1, verbose=0
        )
        assert fin.output_shape == (None, 1) and hist["target_stats"]["kind"] == "linear"
        with pytest.raises(ValueError, match="no FIN topology for 'centroid'"):
            fins.build_fin("centroid", arch="study")

        # end-to-end model on a composition that adds the sixth feature: 163 values per frame
        comp = features.Composition("kaggle+centroid", features.KAGGLE.order + ("centroid",))
        assert comp.dim == 163 and len(comp.ablation()) == 64
        sources = {n: "librosa" for n in comp.order} | {"centroid": "fin", "rms": "fin"}
        model = classifiers.build_end_to_end(
            fins={"centroid": fin, "rms": fins.build_fin("rms")},
            sources=sources,
            fin_trainable=False,
            head="kaggle",
            n_classes=3,
            norm_mean=np.zeros(comp.dim),
            norm_var=np.ones(comp.dim),
            composition=comp,
        )
        assert model.get_layer("per_frame_vector").output.shape[-1] == 163
        mask = np.stack([features.valid_frame_mask((0, CLIP_SAMPLES), CLIP_SAMPLES)] * len(clips)).astype(np.float32)
        inputs = classifiers.inputs_from_clips(clips, mask, sources, progress=False, composition=comp)
        assert inputs["mfcc"].shape == (3, N_FRAMES, 20) and "centroid" not in inputs
        probs = np.asarray(model(inputs, training=False))
        assert probs.shape == (3, 3) and np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        with pytest.raises(ValueError, match="sources must name exactly"):
            classifiers.build_end_to_end(
                fins={},
                sources=classifiers.ALL_FIN,
                fin_trainable=False,
                head="kaggle",
                n_classes=3,
                norm_mean=np.zeros(163),
                norm_var=np.ones(163),
                composition=comp,
            )

        # figures read the plot kind from the registry
        from sefin_utils.plots import fins as fin_plots

        fig = fin_plots.pred_vs_true({"centroid": (lab["centroid"], lab["centroid"] * 1.01)})
        assert fig.axes[0].get_title().startswith("centroid")
    assert "centroid" not in features.FEATURES and features.FEATURE_NAMES == ("rms", "zcr", "chroma", "mfcc", "mel")


def test_unknown_names_raise_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known features: rms, zcr, chroma, mfcc, mel"):
        features.get_feature("centroid")
    with pytest.raises(ValueError, match="unknown FIN 'centroid'"):
        fins.build_fin("centroid")
    with pytest.raises(KeyError, match="unknown feature 'centroid'"):
        features.frame_labels(_clips(1)[0], names=["centroid"])
    from sefin_utils.plots import fins as fin_plots

    with pytest.raises(KeyError, match="unknown feature 'pitch'"):
        fin_plots.pred_vs_true({"pitch": (np.zeros((4, 1)), np.zeros((4, 1)))})
    with features.register_feature(CENTROID), pytest.raises(ValueError, match="already registered"):
        features.register_feature(CENTROID)
    assert "centroid" not in features.FEATURES
    with pytest.raises(ValueError, match="target must be one of"):
        features.Feature("x", 1, "", "", _centroid_frame, _centroid_labels, "mse", ("x",), target="sqrt")


def test_figures_results_and_features_never_import_keras() -> None:
    """plots/*, results and features are read by reports: importing them must not load Keras or TensorFlow."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import sefin_utils.features, sefin_utils.results, sefin_utils.study\n"
        "import sefin_utils.plots.data, sefin_utils.plots.fins, sefin_utils.plots.predict, sefin_utils.plots.ser\n"
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
