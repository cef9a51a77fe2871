"""Emotion classifiers: models build/train/save/reload, ablation registry, masked pooling, ESD scoring, experiments.

Tiny stand-ins throughout: a fake ClipStore of random arrays and small Dense FINs (2048 -> dim); models run
eagerly (no graph tracing) so the whole file stays fast.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest

from sefin_utils import classifiers, experiments, features, results, runs, training
from sefin_utils import layers as sefin_layers
from sefin_utils.constants import CLIP_SAMPLES, ESD_EMOTIONS, N_FRAMES, class_names

CLASSES = class_names("class")


def fake_store(n_per_split: dict[str, int], seed: int = 0) -> SimpleNamespace:
    """Random arrays shaped like a ClipStore; train has orig + noise copies, ood holds ESD's classes only."""
    rng = np.random.default_rng(seed)
    recs = []
    for split, n in n_per_split.items():
        for i in range(n):
            emo = (ESD_EMOTIONS if split == "ood" else CLASSES)[i % (5 if split == "ood" else len(CLASSES))]
            augs = ("orig", "noise") if split == "train" else ("orig",)
            for aug in augs:
                recs.append(
                    {
                        "clip_id": len(recs),
                        "recording_id": f"{split}/{i}",
                        "split": split,
                        "augmentation": aug,
                        "emotion": emo,
                        "corpus": "ESD" if split == "ood" else ("RAVDESS" if i % 2 else "TESS"),
                        "speaker_key": f"s{i % 3}",
                    }
                )
    index = pd.DataFrame.from_records(recs)
    n = len(index)
    mask = np.ones((n, N_FRAMES), dtype=bool)
    mask[::3, 80:] = False  # some clips padded at the end
    return SimpleNamespace(
        index=index,
        clips=rng.standard_normal((n, CLIP_SAMPLES)).astype("float32") * 0.1,
        labels={k: rng.random((n, N_FRAMES, d)).astype("float32") for k, d in classifiers.FEATURE_DIMS.items()},
        summary=rng.standard_normal((n, classifiers.N_SUMMARY)).astype("float32") * 3 + 1,
        mask=mask,
    )


# ------------------------------------------------------------------------------------------------ registry / heads
def test_ablation_enumerates_32_unique_mixes() -> None:
    assert len(classifiers.ABLATION) == 32
    combos = {tuple(v[n] for n in classifiers.FEATURE_NAMES) for v in classifiers.ABLATION.values()}
    assert len(combos) == 32
    assert set(classifiers.FEATURE_NAMES) == {"rms", "zcr", "chroma", "mfcc", "mel"}
    for code, sources in classifiers.ABLATION.items():
        assert classifiers.ablation_code(sources) == code and classifiers.sources_from_code(code) == sources
    assert classifiers.ABLATION["F-F-F-F-F"] == classifiers.ALL_FIN
    assert classifiers.ABLATION["F-L-F-L-L"] == {
        "rms": "fin",
        "zcr": "librosa",
        "chroma": "fin",
        "mfcc": "librosa",
        "mel": "librosa",
    }
    with pytest.raises(ValueError, match="ablation code"):
        classifiers.sources_from_code("F-F-X-F-F")


def test_feature_dims_follow_the_registry() -> None:

    assert classifiers.N_SUMMARY == 162
    assert tuple(features.SUMMARY_ORDER) == ("zcr", "chroma", "mfcc", "rms", "mel") == tuple(features.SUMMARY_ORDER)
    assert classifiers.FEATURE_DIMS == {"rms": 1, "zcr": 1, "chroma": 12, "mfcc": 20, "mel": 128}


def test_head_parameter_counts() -> None:
    z, o = np.zeros(162), np.ones(162)
    study = classifiers.build_baseline("study", 8, norm_mean=z, norm_var=o)
    assert study.count_params() == 1_283_720  # the study's "new CNN" for 8 classes and 162 inputs
    kaggle = classifiers.build_baseline("kaggle", 8, norm_mean=z, norm_var=o)
    assert kaggle.count_params() == 557_288
    assert study.count_params() == classifiers.build_baseline("study", 8, standardize=False).count_params()
    with pytest.raises(ValueError, match="head must be one of"):
        classifiers.build_baseline("resnet", 8, norm_mean=z, norm_var=o)
    with pytest.raises(ValueError, match="norm_mean"):
        classifiers.build_baseline("kaggle", 8)


def test_norm_stats_and_standardisation_inside_the_model() -> None:
    x = np.random.default_rng(0).standard_normal((50, 162)) * 5 + 2
    x[:, 3] = 7.0  # a constant column is left unscaled rather than divided by ~0
    mean, var = classifiers.norm_stats(x)
    assert var[3] == 1.0 and np.allclose(mean, x.mean(0), atol=1e-5)
    model = classifiers.build_baseline("kaggle", 8, norm_mean=mean, norm_var=var)
    z = np.asarray(model.get_layer("standardize")(x.astype("float32")))
    assert np.allclose(z[:, [0, 5, 100]].mean(0), 0, atol=1e-4) and np.allclose(z[:, 5].std(), 1, atol=1e-3)


# ------------------------------------------------------------------------------------------------- masked pooling
def test_masked_mean_ignores_padding_frames() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    m = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0]], dtype="float32")
    out = np.asarray(sefin_layers.MaskedMean()([x, m]))
    assert np.allclose(out[0], x[0, :3].mean(0), atol=1e-6)
    assert np.allclose(out[1], x[1, [0, 2, 4]].mean(0), atol=1e-6)
    x2 = x.copy()
    x2[m == 0] = np.nan  # even NaN in padding frames must not leak
    assert np.allclose(np.asarray(sefin_layers.MaskedMean()([x2, m])), out, atol=1e-6)


def test_end_to_end_output_ignores_padded_frames(fins: dict[str, keras.Model]) -> None:
    sources = classifiers.ABLATION["F-L-F-L-F"]
    model = classifiers.build_end_to_end(
        fins=fins,
        sources=sources,
        fin_trainable=False,
        head="kaggle",
        n_classes=8,
        norm_mean=np.zeros(162),
        norm_var=np.ones(162),
    )
    store = fake_store({"train": 2})
    x = classifiers.make_inputs(store, np.arange(2), sources, clip_mode="clip")
    x["mask"][:, 60:] = 0.0
    ref = np.asarray(model(x, training=False))
    # samples from 59 * 512 + 2048 on lie only in frames >= 60; librosa labels of those frames too
    y = {k: v.copy() for k, v in x.items()}
    y["clip"][:, 59 * 512 + 2048 :] = 100.0
    for name in ("zcr", "mfcc"):
        y[name][:, 60:] = -1e3
    assert np.allclose(np.asarray(model(y, training=False)), ref, atol=1e-6)
    y["clip"][:, 59 * 512 + 2047] = 100.0  # one sample inside frame 59 (real) does change it
    assert not np.allclose(np.asarray(model(y, training=False)), ref, atol=1e-6)


def test_frame_clips_matches_features_frame() -> None:

    y = np.random.default_rng(2).standard_normal((1, CLIP_SAMPLES)).astype("float32")
    frames = np.asarray(sefin_layers.FrameClips()(y))[0]
    assert frames.shape == (N_FRAMES, 2048)
    assert np.array_equal(frames, features.frame(y[0]))


# ---------------------------------------------------------------------------------- build, train, save, reload
MODELS = {
    "baseline_kaggle": {"kind": "baseline", "head": "kaggle"},
    "baseline_study": {"kind": "baseline", "head": "study"},
    "e2e_frozen": {"kind": "e2e", "sources": classifiers.ALL_FIN, "fin_init": "pretrained", "fin_trainable": False},
    "e2e_finetuned": {"kind": "e2e", "sources": classifiers.ALL_FIN, "fin_init": "pretrained", "fin_trainable": True},
    "e2e_random": {"kind": "e2e", "sources": classifiers.ALL_FIN, "fin_init": "random", "fin_trainable": True},
    "ablation_L-F-L-F-L": {
        "kind": "e2e",
        "sources": classifiers.ABLATION["L-F-L-F-L"],
        "fin_init": "pretrained",
        "fin_trainable": False,
    },
}


@pytest.mark.parametrize("variant", list(MODELS))
def test_every_model_trains_saves_and_reloads(variant: str, fins: dict[str, keras.Model], tmp_path) -> None:
    spec = MODELS[variant]
    store = fake_store({"train": 4, "val": 2})
    rows = np.arange(len(store.index))
    y = classifiers.encode_labels(store.index["emotion"], CLASSES)
    fin_before = {k: [w.copy() for w in m.get_weights()] for k, m in fins.items()}
    if spec["kind"] == "baseline":
        mean, var = classifiers.norm_stats(store.summary)
        model = classifiers.build_baseline(spec["head"], 8, norm_mean=mean, norm_var=var)
        x = classifiers.make_inputs(store, rows, clip_mode="summary")
    else:
        mean, var = classifiers.norm_stats(classifiers.pooled_label_vectors(store, rows))
        model = classifiers.build_end_to_end(
            fins=fins,
            sources=spec["sources"],
            fin_trainable=spec["fin_trainable"],
            fin_init=spec["fin_init"],
            head="kaggle",
            n_classes=8,
            norm_mean=mean,
            norm_var=var,
            seed=3,
        )
        x = classifiers.make_inputs(store, rows, spec["sources"], clip_mode="clip")
        assert sorted(x) == sorted(classifiers.model_input_names(spec["sources"]))
    fin_layers = {
        n: model.get_layer(f"fin_{n}") for n in classifiers.FEATURE_NAMES if spec.get("sources", {}).get(n) == "fin"
    }
    start = {n: [w.copy() for w in m.get_weights()] for n, m in fin_layers.items()}
    fit = training.train_classifier(
        model, x, y, x, y, epochs=1, batch_size=len(y), lr=1e-2, seed=0, patience=2, progress=False, run_eagerly=True
    )
    assert fit["epochs_run"] == 1 and np.isfinite(fit["history"]["loss"][0])
    for n, layer in fin_layers.items():
        moved = any(not np.array_equal(a, b) for a, b in zip(start[n], layer.get_weights(), strict=True))
        assert moved == spec["fin_trainable"], f"{n}: FIN weights moved={moved} with trainable={spec['fin_trainable']}"
        same_as_given = all(np.array_equal(a, b) for a, b in zip(fin_before[n], start[n], strict=True))
        assert same_as_given == (spec["fin_init"] == "pretrained")
    for k, m in fins.items():  # the caller's FINs are never trained in place
        assert all(np.array_equal(a, b) for a, b in zip(fin_before[k], m.get_weights(), strict=True))
    before = np.asarray(model(x, training=False))
    assert before.shape == (len(y), 8) and np.allclose(before.sum(1), 1, atol=1e-5)
    path = tmp_path / f"{variant}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert np.allclose(np.asarray(reloaded(x, training=False)), before, atol=1e-6)


def test_early_stopping_restores_the_best_epoch_not_the_last() -> None:
    rng = np.random.default_rng(0)
    x = {"summary": rng.standard_normal((16, 162)).astype("float32")}
    y_train = np.zeros(16, dtype=int)
    y_val = np.ones(16, dtype=int)  # learning the train labels makes validation loss rise every epoch
    model = classifiers.build_baseline("kaggle", 8, norm_mean=np.zeros(162), norm_var=np.ones(162), seed=1)
    fit = training.train_classifier(
        model,
        x,
        y_train,
        x,
        y_val,
        epochs=4,
        batch_size=16,
        lr=1e-3,
        seed=0,
        patience=2,
        progress=False,
        run_eagerly=True,
    )
    losses = fit["history"]["val_loss"]
    assert losses[-1] > losses[0] and fit["best_epoch"] == 1 + int(np.argmin(losses))
    proba = np.asarray(model(x, training=False))
    val_loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(y_val, proba)))
    assert val_loss == pytest.approx(min(losses), rel=1e-4)


# --------------------------------------------------------------------------------------------------- evaluation
def test_ood_evaluation_scores_only_shared_classes() -> None:
    shared = [CLASSES.index(c) for c in ESD_EMOTIONS]
    y = np.array(shared * 2)
    proba = np.full((len(y), 8), 0.01)
    proba[:, CLASSES.index("calm")] = 0.5  # calm wins overall but is not an ESD class
    proba[np.arange(len(y)), y] = 0.2
    full = experiments.evaluate(None, None, y, CLASSES, proba=proba)
    assert full["overall"]["accuracy"] == 0.0
    res = experiments.evaluate(None, None, y, CLASSES, proba=proba, restrict_to=ESD_EMOTIONS, corpus=["ESD"] * len(y))
    assert res["scored_classes"] == list(ESD_EMOTIONS)
    assert res["overall"]["accuracy"] == 1.0 and res["overall"]["macro_f1"] == 1.0
    assert np.array(res["overall"]["confusion"]).shape == (5, 5)
    assert res["per_corpus"]["ESD"]["n"] == len(y)
    with pytest.raises(ValueError, match="outside restrict_to"):
        experiments.evaluate(
            None, None, np.array([CLASSES.index("calm")]), CLASSES, proba=proba[:1], restrict_to=ESD_EMOTIONS
        )


def test_evaluate_per_corpus_hand_computed() -> None:
    y = np.array([0, 1, 0, 1])
    proba = np.eye(8)[[0, 1, 1, 1]]
    res = experiments.evaluate(None, None, y, CLASSES, proba=proba, corpus=["A", "A", "B", "B"])
    assert res["overall"]["accuracy"] == 0.75
    assert res["per_corpus"]["A"]["accuracy"] == 1.0 and res["per_corpus"]["B"]["accuracy"] == 0.5


def test_encode_labels_calm_modes() -> None:
    assert list(classifiers.encode_labels(["calm", "sad"], CLASSES)) == [1, 6]
    seven = class_names("neutral")
    assert list(classifiers.encode_labels(["calm", "sad"], seven, calm="neutral")) == [seven.index("neutral"), 5]
    with pytest.raises(ValueError, match="not one of the classes"):
        classifiers.encode_labels(["bored"], CLASSES)


def test_inputs_from_clips_uses_librosa_labels() -> None:

    clips = np.random.default_rng(3).standard_normal((2, CLIP_SAMPLES)).astype("float32") * 0.1
    mask = np.ones((2, N_FRAMES), dtype="float32")
    sources = classifiers.ABLATION["L-F-F-F-L"]
    x = classifiers.inputs_from_clips(clips, mask, sources, progress=False)
    assert sorted(x) == sorted(classifiers.model_input_names(sources)) == ["clip", "mask", "mel", "rms"]
    ref = features.frame_labels(clips[1], names=["rms", "mel"])
    assert np.allclose(x["mel"][1], ref["mel"]) and x["rms"].shape == (2, N_FRAMES, 1)
    only_lib = classifiers.inputs_from_clips(clips, mask, classifiers.ABLATION["L-L-L-L-L"], progress=False)
    assert "clip" not in only_lib


# -------------------------------------------------------------------------------------------------- experiments
def test_run_experiments_writes_results(fins: dict[str, keras.Model], tmp_path) -> None:
    store = fake_store({"train": 8, "val": 4, "test": 4, "ood": 5})
    params = {
        "head": "kaggle",
        "heads": ["kaggle"],
        "epochs": 1,
        "batch_size": 16,
        "seeds": [0, 1],
        "patience": 1,
        "variants": ["baseline", "frozen"],
        "ablation": True,
        "ablation_codes": ["F-L-L-L-F"],
        "progress": False,
        "run_eagerly": True,
    }
    res = experiments.run_experiments(store, None, tmp_path, params=params, fins=fins)
    expected = {"baseline_kaggle", "e2e_frozen", "ablation_F-L-L-L-F"}
    assert set(res["variant"]) == expected
    assert (res.groupby("variant").size().loc[["baseline_kaggle", "e2e_frozen"]] == 2).all()
    assert (res.groupby("variant").size().loc[["ablation_F-L-L-L-F"]] == 1).all()  # ablation: first seed only
    assert (res["n_train"] == 16).all()  # orig + noise copies of the 8 train recordings
    assert res["test_n"].eq(4).all() and res["ood_n"].eq(5).all() and res["val_n"].eq(4).all()
    assert (res["test_RAVDESS_n"] + res["test_TESS_n"]).eq(4).all()
    for name in ("results.csv", "summary.csv", "results.html"):
        assert (tmp_path / name).is_file()
    html = (tmp_path / "results.html").read_text()
    assert "study file-level split, speakers shared" in html and "0.513" in html
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert {"test_accuracy_mean", "test_accuracy_std"} <= set(summary.columns)
    for v in expected:
        assert (tmp_path / "models" / f"{v}.keras").is_file()
    import matplotlib

    matplotlib.use("Agg")
    from sefin_utils.plots import ser as plots

    figs = plots.stage_figures(tmp_path, tmp_path / "figs", prefix="05")
    names = {p.name for p in figs}
    assert {
        "05_headline_test_macro_f1.png",
        "05_confusion_e2e_frozen.png",
        "05_curves_baseline_kaggle.png",
        "05_ablation_test_macro_f1.png",
        "05_ablation.csv",
        "05_per_class_f1.png",
    } <= names
    assert any(n.startswith("05_confusion_ood_") for n in names) and all(p.is_file() for p in figs)
    payload = json.loads((tmp_path / "metrics" / "e2e_frozen__seed1.json").read_text())
    assert payload["reports"]["ood"]["scored_classes"] == list(ESD_EMOTIONS)
    assert set(payload["reports"]["test"]["per_corpus"]) == {"RAVDESS", "TESS"}
    assert results.best_model(res) in expected
    reloaded = keras.saving.load_model(tmp_path / "models" / "ablation_F-L-L-L-F.keras")
    x = classifiers.make_inputs(store, np.arange(3), classifiers.ABLATION["F-L-L-L-F"], clip_mode="clip")
    assert np.asarray(reloaded(x, training=False)).shape == (3, 8)


def test_best_model_selects_on_validation_only() -> None:
    res = pd.DataFrame(
        {
            "variant": ["a", "a", "b"],
            "val_macro_f1": [0.5, 0.7, 0.65],
            "val_accuracy": [0.5] * 3,
            "test_macro_f1": [0.1, 0.1, 0.9],
        }
    )
    assert results.best_model(res) == "b"  # mean val 0.60 vs 0.65; test never consulted


# ------------------------------------------------------------------------------------------------------- figures
def test_figures(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from sefin_utils.plots import ser as plots

    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 40)
    rep = experiments.evaluate(None, None, y, CLASSES, proba=np.eye(8)[np.where(rng.random(40) < 0.6, y, 0)])
    plots.confusion_matrix(rep, title="t", path=tmp_path / "cm.png")
    plots.per_class_f1({"a": rep, "b": rep}, path=tmp_path / "f1.png")
    plots.training_curves(
        {"loss": [2, 1.5], "val_loss": [2, 1.8], "accuracy": [0.2, 0.3], "val_accuracy": [0.1, 0.2]},
        best_epoch=2,
        path=tmp_path / "curves.png",
    )
    rows = [
        {
            "variant": f"ablation_{c}",
            "kind": "ablation",
            "sources": c,
            "val_macro_f1": 0.5,
            "test_accuracy": 0.5,
            "test_macro_f1": 0.4 + 0.1 * (c[0] == "F") + rng.normal(0, 0.01),
        }
        for c in classifiers.ABLATION
    ]
    res = pd.DataFrame(rows)
    tab = plots.ablation_table(res)
    assert len(tab) == 32 and list(tab.columns[1:6]) == list(classifiers.FEATURE_NAMES)
    marg = plots.ablation_marginals_table(res).set_index("feature")
    assert marg.loc["rms", "fin_minus_librosa"] == pytest.approx(0.1, abs=0.02)  # rms is the first code letter
    assert abs(marg.loc["mel", "fin_minus_librosa"]) < 0.02 and (marg["fin_n"] == 16).all()
    assert (marg["design"] == "full factorial").all() and (marg["pairs_n"] == 16).all()
    assert np.allclose(marg["paired_mean"], marg["fin_minus_librosa"])  # on the full factorial the two agree
    plots.ablation_marginals(res, path=tmp_path / "abl.png")
    half = res[[c.count("L") % 2 == 0 for c in res["sources"]]]  # what runs.ablation_order trains first
    assert list(half["sources"]) == runs.ablation_order()[:16]
    hm = plots.ablation_marginals_table(half).set_index("feature")
    assert (hm["design"] == "half fraction").all() and (hm["pairs_n"] == 0).all() and (hm["fin_n"] == 8).all()
    assert hm.loc["rms", "fin_minus_librosa"] == pytest.approx(0.1, abs=0.02)  # main effects still estimated
    assert abs(hm.loc["mel", "fin_minus_librosa"]) < 0.02
    few = res[res["sources"].isin(["F-F-F-F-F", "F-F-F-F-L", "F-F-F-L-F"])]
    fm = plots.ablation_marginals_table(few).set_index("feature")
    assert (fm["design"] == "partial").all() and list(fm["pairs_n"]) == [0, 0, 0, 1, 1]
    assert fm.loc["mel", "paired_mean"] == pytest.approx(res["test_macro_f1"][0] - res["test_macro_f1"][1])
    assert runs.ablation_order(["F-L-F-F-F", "F-F-F-F-F", "F-F-F-F-F"]) == ["F-F-F-F-F", "F-L-F-F-F"]
    summary = pd.DataFrame(
        {
            "variant": ["baseline_kaggle", "e2e_frozen"],
            "kind": ["baseline", "e2e"],
            "test_macro_f1_mean": [0.5, 0.4],
            "test_macro_f1_std": [0.02, np.nan],
        }
    )
    plots.headline(summary, path=tmp_path / "headline.png")
    for name in ("cm", "f1", "curves", "abl", "headline"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_frozen_shortcut_matches_training_the_full_model(fins: dict[str, keras.Model], tmp_path) -> None:
    store = fake_store({"train": 8, "val": 4, "test": 4})
    params = {
        "head": "kaggle",
        "epochs": 2,
        "batch_size": 8,
        "seeds": [0],
        "patience": 3,
        "variants": ["frozen"],
        "progress": False,
        "run_eagerly": True,
    }
    fast = experiments.run_experiments(store, None, tmp_path / "a", params=params, fins=fins)
    slow = experiments.run_experiments(
        store, None, tmp_path / "b", params={**params, "frozen_shortcut": False}, fins=fins
    )
    assert bool(fast["shortcut"].iloc[0]) and not bool(slow["shortcut"].iloc[0])
    x = classifiers.make_inputs(store, np.arange(len(store.index)), classifiers.ALL_FIN, clip_mode="clip")
    a = keras.saving.load_model(tmp_path / "a" / "models" / "e2e_frozen.keras")
    b = keras.saving.load_model(tmp_path / "b" / "models" / "e2e_frozen.keras")
    assert a.count_params() == b.count_params()
    assert np.allclose(np.asarray(a(x, training=False)), np.asarray(b(x, training=False)), atol=1e-4)


def test_large_inputs_stream_from_numpy_in_the_same_batches() -> None:
    rng = np.random.default_rng(0)
    x = {"summary": rng.standard_normal((10, 162)).astype("float32")}
    y = np.arange(10)
    streamed = training.make_dataset(x, y, batch_size=4, shuffle=True, seed=1, max_tensor_bytes=0)
    seen = [np.asarray(yb) for _, yb in streamed]
    assert [len(b) for b in seen] == [4, 4, 2] and sorted(np.concatenate(seen)) == list(range(10))
    again = np.concatenate([np.asarray(yb) for _, yb in streamed])
    assert sorted(again) == list(range(10)) and not np.array_equal(again, np.concatenate(seen))  # new epoch order
    xb, yb = next(iter(streamed))
    assert np.allclose(np.asarray(xb["summary"]), x["summary"][np.asarray(yb)])
    plain = training.make_dataset(x, None, batch_size=4, max_tensor_bytes=0)
    assert np.allclose(np.concatenate([np.asarray(b["summary"]) for b in plain]), x["summary"])
