"""Deep models that train properly: on a learnable generated set no variant ends predicting one class; anchors
run inside run_experiments; pooling variants assemble into full end-to-end models that reload; epoch selection on
validation macro-F1.

Tiny stand-ins (a fake ClipStore whose labels, summaries and clips carry the class, small Dense FINs), eager runs.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest

from sefin_utils import classifiers, experiments, features, training
from sefin_utils.constants import CLIP_SAMPLES, ESD_EMOTIONS, N_FRAMES, class_names

CLASSES = class_names("class")


def _tile(onehot: np.ndarray, d: int) -> np.ndarray:
    return np.tile(onehot, (1, -(-d // onehot.shape[1])))[:, :d]


def learnable_store(n_per_class: dict[str, int], seed: int = 0) -> SimpleNamespace:
    """A ClipStore stand-in where the class shows in every input: label and summary offsets per class, clip loudness
    growing with the class index (so even random FINs see it)."""
    rng = np.random.default_rng(seed)
    recs = []
    for split, k in n_per_class.items():
        emos = ESD_EMOTIONS if split == "ood" else CLASSES
        for i in range(k * len(emos)):
            for aug in ("orig", "noise") if split == "train" else ("orig",):
                recs.append(
                    {
                        "split": split,
                        "augmentation": aug,
                        "emotion": emos[i % len(emos)],
                        "corpus": "ESD" if split == "ood" else ("RAVDESS" if i % 2 else "TESS"),
                    }
                )
    index = pd.DataFrame.from_records(recs)
    c = np.array([CLASSES.index(e) for e in index["emotion"]])
    n = len(index)
    mask = np.ones((n, N_FRAMES), dtype=bool)
    mask[::3, 80:] = False
    onehot = np.eye(len(CLASSES))[c]
    labels = {}
    for j, (k, d) in enumerate(classifiers.FEATURE_DIMS.items()):
        signal = _tile(onehot, d) if d >= len(CLASSES) else onehot[:, [j % len(CLASSES)]]
        labels[k] = (rng.random((n, N_FRAMES, d)) * 0.5 + signal[:, None, :]).astype("float32")
    summary = _tile(onehot, classifiers.N_SUMMARY) * 2 + rng.standard_normal((n, classifiers.N_SUMMARY))
    t = np.arange(CLIP_SAMPLES) / 22050
    clips = np.sin(2 * np.pi * (200 + 60 * c[:, None]) * t) * (0.05 + 0.1 * c[:, None])
    clips = clips + rng.standard_normal((n, CLIP_SAMPLES)) * 0.01
    return SimpleNamespace(
        index=index,
        clips=clips.astype("float32"),
        labels=labels,
        summary=summary.astype("float32"),
        mask=mask,
    )


def test_no_variant_collapses_to_one_class(fins: dict[str, keras.Model], tmp_path) -> None:
    """Every variant (random-init FINs included) predicts more than one class after a few epochs. Whether they reach
    twice chance is measured by the demo profile (benchmark), not here."""
    store = learnable_store({"train": 2, "val": 2, "test": 2, "ood": 1})
    # the stand-in FINs imitate the labels exactly (as pre-trained FINs do): the labels become their outputs
    vec = experiments.per_frame_vectors(store, np.arange(len(store.index)), classifiers.ALL_FIN, fins)["per_frame"]
    start = 0
    for name in features.KAGGLE.order:
        d = classifiers.FEATURE_DIMS[name]
        store.labels[name] = vec[..., start : start + d]
        start += d
    params = {
        "head": "kaggle",
        "heads": ["kaggle"],
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-3,
        "seeds": [0],
        "patience": 3,
        "variants": ["baseline", "frozen", "finetuned", "random"],
        "pooling": ["mean", "stats", "temporal"],
        "anchors": ["logreg"],
        "class_weight": "balanced",
        "progress": False,
        "run_eagerly": True,
        "finetune_epochs": 1,  # trainable FINs: the head first on the frozen FINs, then one epoch of everything
        "finetune_lr": 1e-3,
    }
    res = experiments.run_experiments(store, None, tmp_path, params=params, fins=fins)
    expected = {
        "anchor_logreg",
        "baseline_kaggle",
        "e2e_frozen",
        "e2e_finetuned",
        "e2e_random",
        "e2e_frozen_stats",
        "librosa_stats",
        "e2e_frozen_temporal",
        "librosa_temporal",
    }
    assert set(res["variant"]) == expected
    assert (res.loc[res["variant"].str.startswith("anchor_"), "kind"] == "anchor").all()
    for _, rec in res.iterrows():
        payload = json.loads((tmp_path / "metrics" / f"{rec['variant']}__seed{rec['seed']}.json").read_text())
        confusion = np.asarray(payload["reports"]["test"]["overall"]["confusion"])
        predicted = int((confusion.sum(axis=0) > 0).sum())
        assert predicted > 1, f"{rec['variant']} predicts one class for every test clip"
    warm = {
        v: json.loads((tmp_path / "metrics" / f"{v}__seed0.json").read_text())["warm_start"]
        for v in ("e2e_finetuned", "e2e_random")
    }
    assert warm["e2e_finetuned"]["reused"] is True  # e2e_frozen's head, same FINs and seed
    assert warm["e2e_random"]["reused"] is False and warm["e2e_random"]["epochs_run"] >= 1
    # every non-SVM model was saved and reloads as a full model of its input kind
    for v in expected:
        assert (tmp_path / "models" / f"{v}.keras").is_file()
    model = keras.saving.load_model(tmp_path / "models" / "e2e_frozen_temporal.keras")
    x = classifiers.make_inputs(store, np.arange(3), classifiers.ALL_FIN, clip_mode="clip")
    assert np.asarray(model(x, training=False)).shape == (3, len(CLASSES))


def test_random_fins_start_with_a_sane_loss(fins: dict[str, keras.Model]) -> None:
    """Standardised by their own pooled outputs, re-initialised FINs start near ln(8), not at hundreds."""
    store = learnable_store({"train": 2})
    rows = np.arange(len(store.index))
    x = classifiers.make_inputs(store, rows, classifiers.ALL_FIN, clip_mode="clip")
    args = dict(
        fins=fins, sources=classifiers.ALL_FIN, fin_trainable=True, head="kaggle", n_classes=8, fin_init="random"
    )
    mean, var = experiments.own_norm_stats(args, x)
    model = classifiers.build_end_to_end(**args, norm_mean=mean, norm_var=var)
    pooled = keras.Model(model.inputs, model.get_layer("standardize").output)
    z = np.asarray(pooled(x, training=False))
    assert np.abs(z.mean(axis=0)).max() < 1e-3 and np.abs(z.std(axis=0) - 1).max() < 1e-2
    y = classifiers.encode_labels(store.index["emotion"], CLASSES)
    loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(y, np.asarray(model(x, training=False)))))
    assert loss < 2 * np.log(8)


def test_selection_on_validation_macro_f1_restores_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    x = {"summary": rng.standard_normal((32, 162)).astype("float32")}
    y_train = np.arange(32) % 4
    y_val = (np.arange(32) + 1) % 4  # fitting train makes validation worse
    model = classifiers.build_baseline("kaggle", 8, norm_mean=np.zeros(162), norm_var=np.ones(162), seed=1)
    fit = training.train_classifier(
        model,
        x,
        y_train,
        x,
        y_val,
        epochs=4,
        batch_size=16,
        seed=0,
        patience=4,
        progress=False,
        run_eagerly=True,
        select="val_macro_f1",
    )
    f1 = fit["history"]["val_macro_f1"]
    assert len(f1) == fit["epochs_run"] and fit["best_epoch"] == 1 + int(np.argmax(f1))
    assert fit["best_val_macro_f1"] == max(f1)
    from sklearn.metrics import f1_score

    pred = np.argmax(np.asarray(model(x, training=False)), axis=1)
    assert f1_score(y_val, pred, labels=np.unique(y_val), average="macro", zero_division=0) == pytest.approx(max(f1))


def test_fine_tuning_a_warm_start_never_makes_validation_worse() -> None:
    """keep_initial with selection on validation macro-F1: when no epoch beats the starting weights (here a head that
    already fits the validation labels, fine-tuned towards conflicting ones), those weights are put back."""
    rng = np.random.default_rng(0)
    x = {"summary": rng.standard_normal((32, 162)).astype("float32")}
    y_val = np.arange(32) % 4
    y_conflict = (np.arange(32) + 1) % 4
    inp = keras.Input(shape=(162,), name="summary")  # a linear head: 32 points in 162 dimensions are separable
    out = keras.layers.Dense(8, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(1))(inp)
    model = keras.Model({"summary": inp}, out)
    args = dict(batch_size=8, seed=0, patience=2, progress=False, run_eagerly=True, select="val_macro_f1")
    training.train_classifier(model, x, y_val, x, y_val, epochs=20, lr=3e-2, **{**args, "patience": 20})
    before = np.asarray(model(x, training=False))
    start = training._macro_f1(model, training.make_dataset(x, None, batch_size=8), y_val)
    fit = training.train_classifier(model, x, y_conflict, x, y_val, epochs=2, lr=3e-2, keep_initial=True, **args)
    assert start == 1.0  # the set-up: nothing can beat the starting weights
    assert fit["initial_score"] == start and max(fit["history"]["val_macro_f1"]) < start
    assert fit["kept_initial"] and fit["best_epoch"] == 0 and fit["best_val_macro_f1"] == start
    np.testing.assert_allclose(np.asarray(model(x, training=False)), before, atol=1e-6)


def test_random_clone_of_a_fast_fin_redraws_its_filterbanks() -> None:
    """clone_fin(init="random") of a fast FIN draws it as fins.build_fin(init="random") does: its filterbanks (whose
    initializer, ones, no seed changes) are redrawn, so the mel bands differ instead of being 128 copies of one sum."""
    from sefin_utils import fins as fins_module

    fin = fins_module.build_fin("mel", arch="fast")
    clone = classifiers.clone_fin(fin, init="random", seed=3)
    again = classifiers.clone_fin(fin, init="random", seed=3)
    frames = np.random.default_rng(0).standard_normal((16, 2048)).astype("float32")
    out = np.asarray(clone(frames, training=False))
    assert out.shape == (16, 128) and np.ptp(out, axis=1).min() > 0  # the bands of a frame are not all equal
    assert np.linalg.matrix_rank(out) == 16
    np.testing.assert_array_equal(out, np.asarray(again(frames, training=False)))  # seeded
    assert not np.allclose(out, np.asarray(fin(frames, training=False)))


def test_anchors_train_on_the_original_recordings_only(tmp_path) -> None:
    """The baselines train on every train clip (copies too, when the params say so); the scikit-learn anchors on the
    train split's original recordings only, the same ones whatever the augmentations."""
    store = learnable_store({"train": 2, "val": 2, "test": 1})
    params = {
        "heads": ["kaggle"],
        "epochs": 1,
        "batch_size": 16,
        "seeds": [0],
        "variants": ["baseline"],
        "anchors": ["logreg"],
        "progress": False,
    }
    res = experiments.run_experiments(store, None, tmp_path, params=params).set_index("variant")
    train = store.index["split"] == "train"
    assert res.loc["baseline_kaggle", "n_train"] == train.sum()
    assert res.loc["anchor_logreg", "n_train"] == (train & (store.index["augmentation"] == "orig")).sum() > 0


def test_temporal_models_can_train_on_their_own_copies(fins: dict[str, keras.Model], tmp_path) -> None:
    """``temporal_train_augmentations``: the temporal-pooling models train on these copies, every other model on
    ``train_augmentations``; the results say which clips each model saw."""
    store = learnable_store({"train": 2, "val": 2, "test": 1})
    params = {
        "head": "kaggle",
        "heads": ["kaggle"],
        "epochs": 1,
        "batch_size": 16,
        "seeds": [0],
        "variants": ["baseline", "frozen"],
        "pooling": ["mean", "temporal"],
        "anchors": [],
        "progress": False,
        "run_eagerly": True,
        "train_augmentations": ["orig"],
        "temporal_train_augmentations": ["orig", "noise"],
    }
    res = experiments.run_experiments(store, None, tmp_path, params=params, fins=fins).set_index("variant")
    train = store.index["split"] == "train"
    orig = train & (store.index["augmentation"] == "orig")
    for v in ("baseline_kaggle", "e2e_frozen"):
        assert res.loc[v, "n_train"] == orig.sum() and res.loc[v, "train_augmentations"] == "orig"
    for v in ("librosa_temporal", "e2e_frozen_temporal"):
        assert res.loc[v, "n_train"] == train.sum() > orig.sum()
        assert res.loc[v, "train_augmentations"] == "orig+noise"


def test_mean_pooling_can_be_left_out() -> None:
    """``pooling`` without ``mean`` trains only the other poolings' models: no study-style ``e2e_<variant>``."""
    p = experiments._resolve({"variants": ["frozen", "finetuned"], "pooling": ["temporal"], "heads": []})
    assert [s["variant"] for s in experiments._specs(p)] == ["e2e_frozen_temporal", "librosa_temporal"]
    p = experiments._resolve({"variants": ["frozen"], "pooling": ["mean", "temporal"], "heads": []})
    assert [s["variant"] for s in experiments._specs(p)] == ["e2e_frozen", "e2e_frozen_temporal", "librosa_temporal"]


def test_anchors_alone_when_no_baseline_head_is_asked(tmp_path) -> None:
    """Stage 02 with ``heads: []`` trains the scikit-learn anchors only (no Conv1D baseline); with no anchor either,
    the params select nothing and say so."""
    store = learnable_store({"train": 2, "val": 1, "test": 1})
    params = {"heads": [], "variants": ["baseline"], "anchors": ["logreg"], "seeds": [0], "progress": False}
    res = experiments.run_experiments(store, None, tmp_path, params=params)
    assert list(res["variant"]) == ["anchor_logreg"]
    with pytest.raises(ValueError, match="select no model"):
        experiments.run_experiments(store, None, tmp_path / "none", params={**params, "anchors": []})
