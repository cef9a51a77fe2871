"""The speed work (issue 14): resumable runs, feature caches, cached-input training paths that compute the same.

Tiny stand-ins: the fake ClipStore of test_ser and small FINs; models run eagerly so the file stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd

from sefin_utils import experiments, featcache
from sefin_utils.constants import SR, class_names
from tests.test_ser import fake_store

CLASSES = class_names("class")


def _params(**extra: object) -> dict:
    return {
        "head": "kaggle",
        "heads": ["kaggle"],
        "epochs": 1,
        "batch_size": 16,
        "seeds": [0, 1],
        "patience": 1,
        "progress": False,
        "run_eagerly": True,
        **extra,
    }


def test_second_run_trains_nothing_and_gives_the_same_table(
    fins: dict[str, keras.Model], tmp_path, monkeypatch
) -> None:
    store = fake_store({"train": 8, "val": 4, "test": 4, "ood": 5})
    params = _params(variants=["baseline", "frozen"], anchors=["logreg"])
    first = experiments.run_experiments(store, None, tmp_path, params=params, fins=fins)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "metrics").iterdir()}

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(experiments, "train_classifier", no_training)
    monkeypatch.setattr(experiments._anchors, "fit_anchor", no_training)
    again = experiments.run_experiments(store, None, tmp_path, params=params, fins=fins)
    pd.testing.assert_frame_equal(first, again)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "metrics").iterdir()} == stamps
    monkeypatch.undo()

    # one more seed: only it is trained; a changed param that affects the models retrains them all
    more = experiments.run_experiments(store, None, tmp_path, params={**params, "seeds": [0, 1, 2]}, fins=fins)
    assert len(more) == len(first) + 2  # baseline and e2e_frozen seed 2 (logreg is fitted once)
    pd.testing.assert_frame_equal(more[more["seed"] < 2].reset_index(drop=True), first)
    key0 = json.loads((tmp_path / "metrics" / "baseline_kaggle__seed0.json").read_text())["resume_key"]
    changed = {**params, "lr": 5e-4, "variants": ["baseline"], "anchors": [], "seeds": [0]}
    experiments.run_experiments(store, None, tmp_path, params=changed, fins=fins)
    assert json.loads((tmp_path / "metrics" / "baseline_kaggle__seed0.json").read_text())["resume_key"] != key0


def test_a_resumed_run_warm_starts_fine_tuning_from_the_saved_head(fins: dict[str, keras.Model], tmp_path) -> None:
    store = fake_store({"train": 8, "val": 4, "test": 4, "ood": 5})
    params = _params(variants=["frozen", "finetuned"], finetune_epochs=1, save_models=False, seeds=[0])
    first = experiments.run_experiments(store, None, tmp_path, params=params, fins=fins)
    assert list((tmp_path / "heads").iterdir()) == [tmp_path / "heads" / "kaggle_FFFFF_pretrained__seed0.npz"]
    warm = json.loads((tmp_path / "metrics" / "e2e_finetuned__seed0.json").read_text())["warm_start"]
    assert warm["reused"] is True  # the same run: e2e_frozen's head, in memory
    (tmp_path / "metrics" / "e2e_finetuned__seed0.json").unlink()  # stopped before fine-tuning finished
    again = experiments.run_experiments(store, None, tmp_path, params=params, fins=fins)
    warm = json.loads((tmp_path / "metrics" / "e2e_finetuned__seed0.json").read_text())["warm_start"]
    assert warm["reused"] is True  # e2e_frozen was read back: its head came from heads/, not trained again
    scores = [c for c in first.columns if c.endswith(("macro_f1", "accuracy", "uar"))]
    pd.testing.assert_frame_equal(first[scores], again[scores])  # the same fine-tuned model as in one sitting
    # a head saved for other inputs is not used
    assert experiments._load_head(tmp_path, ("kaggle", "F-F-F-F-F", "pretrained", 0), "another key") is None


def test_fingerprints_follow_content(fins: dict[str, keras.Model], tmp_path) -> None:
    fin = fins["mel"]
    fin.save(tmp_path / "mel.keras")
    reloaded = keras.saving.load_model(tmp_path / "mel.keras")
    assert featcache.fin_hash(reloaded) == featcache.fin_hash(fin)
    other = keras.models.clone_model(fin)
    other.set_weights([w + 1.0 for w in fin.get_weights()])
    assert featcache.fin_hash(other) != featcache.fin_hash(fin)
    a, b = fake_store({"train": 2, "val": 1}), fake_store({"train": 2, "val": 1})
    assert featcache.store_key(a) == featcache.store_key(b)
    b.summary[0, 0] += 1
    assert featcache.store_key(a) != featcache.store_key(b)
    assert featcache.code_hash(["experiments"]) == featcache.code_hash(["experiments"])


def _tonal_store(tmp_path: Path, fins: dict[str, keras.Model]) -> SimpleNamespace:
    """The fake store with tonal clips (two sines and a little noise): librosa's per-frame tuning estimate (the chroma
    FINs' gate, an argmax over a histogram) has a clear winner, so that rounding differences between execution paths
    cannot flip it as they can on white noise; ``path`` puts its feature caches on disk under ``tmp_path``."""
    store = fake_store({"train": 4, "val": 2, "test": 2})
    n, t = len(store.index), np.arange(store.clips.shape[1]) / SR
    rng = np.random.default_rng(0)
    f1, f2 = rng.uniform(100, 1000, (n, 1)), rng.uniform(100, 2000, (n, 1))
    tones = 0.3 * np.sin(2 * np.pi * f1 * t) + 0.1 * np.sin(2 * np.pi * f2 * t)
    gain = rng.uniform(0.1, 1.0, (n, 1))  # loudness varies: no near-constant feature for standardisation to inflate
    store.clips[:] = (gain * (tones + 0.3 * store.clips)).astype("float32")  # noise 0.03 rms: every mel band varies
    for name, fin in fins.items():  # labels on the FINs' own scale (fast FINs start at librosa's formulas)
        store.labels[name] = np.asarray(featcache.fin_outputs(store, name, fin, root=None)["frames"])
    store.path = tmp_path / "cache" / "store"
    return store


def test_cached_paths_predict_as_the_direct_path(tmp_path) -> None:
    """Every variant trained on cached inputs (frozen FINs' pooled outputs, cached power spectra for fine-tuned and
    random-init FINs, cached per-frame outputs for a pooling variant, an ablation mix) ends with the model the direct
    path (the end-to-end model on the clip) trains: same predictions on every clip."""
    from sefin_utils import classifiers, training
    from sefin_utils import fins as fin_module

    fins = {n: fin_module.build_fin(n, arch="fast") for n in classifiers.FEATURE_NAMES}
    store = _tonal_store(tmp_path, fins)
    params = _params(
        variants=["frozen", "finetuned", "random"],
        pooling=["mean", "stats"],
        ablation=True,
        ablation_codes=["F-L-F-L-F"],
        seeds=[0],
        batch_size=8,
        resume=False,
        save_models=True,
    )
    cached = experiments.run_experiments(store, None, tmp_path / "cached", params=params, fins=fins)
    direct_params = {**params, "frozen_shortcut": False, "cached_spectra": False}
    direct = experiments.run_experiments(store, None, tmp_path / "direct", params=direct_params, fins=fins)
    kinds = dict(zip(cached["variant"], cached["inputs"], strict=True))
    assert kinds["e2e_frozen"] == "pooled" and kinds["ablation_F-L-F-L-F"] == "pooled"
    assert kinds["e2e_finetuned"] == "spectra" and kinds["e2e_random"] == "spectra"
    assert set(direct.loc[direct["variant"].isin(["e2e_frozen", "e2e_finetuned", "e2e_random"]), "inputs"]) == {"clip"}
    assert any(p.name.startswith("spectra-") for p in (tmp_path / "cache").iterdir())  # memmapped on disk

    rows = np.arange(len(store.index))
    diffs = {}
    for variant in ["e2e_frozen", "e2e_finetuned", "e2e_random", "ablation_F-L-F-L-F"]:
        a = keras.saving.load_model(tmp_path / "cached" / "models" / f"{variant}.keras")
        b = keras.saving.load_model(tmp_path / "direct" / "models" / f"{variant}.keras")
        sources = classifiers.ABLATION["F-L-F-L-F"] if variant.startswith("ablation") else classifiers.ALL_FIN
        x = classifiers.make_inputs(store, rows, sources, clip_mode="clip")
        diffs[variant] = float(np.abs(np.asarray(a(x, training=False)) - np.asarray(b(x, training=False))).max())
    print("max difference in class probabilities after one epoch, cached vs direct:", diffs)
    # Both paths compute the same sums in another order (per-feature means, a linear bank before the mean, FFTs in
    # other batches); on this well-conditioned store the trained models agree to ~1e-7 (measured <= 1.2e-7)
    for variant, diff in diffs.items():
        assert diff < 1e-5, (variant, diff)

    # the stats-pooling variant (trained on cached per-frame FIN outputs) against the end-to-end model trained on clips
    split = experiments._split_rows(store, experiments._resolve(params))
    train = split["train"]
    y = {s: classifiers.encode_labels(store.index["emotion"].to_numpy()[r], CLASSES) for s, r in split.items()}
    vec = experiments.per_frame_vectors(store, train, classifiers.ALL_FIN, fins)
    db = classifiers.frames_to_db(vec["per_frame"], "db")  # the pipeline's default ser_frame_scale
    mean, var = classifiers.pooled_norm_stats(db, vec["mask"], "stats")
    model = classifiers.build_end_to_end(
        fins=fins,
        sources=classifiers.ALL_FIN,
        fin_trainable=False,
        head="kaggle",
        n_classes=len(CLASSES),
        norm_mean=mean,
        norm_var=var,
        seed=0,
        pooling="stats",
        name="e2e_frozen_stats",
        frame_scale="db",
    )
    x = {s: classifiers.make_inputs(store, r, classifiers.ALL_FIN, clip_mode="clip") for s, r in split.items()}
    training.train_classifier(
        model,
        x["train"],
        y["train"],
        x["val"],
        y["val"],
        epochs=1,
        batch_size=8,
        seed=0,
        patience=1,
        progress=False,
        run_eagerly=True,
        select="val_macro_f1",
    )
    a = keras.saving.load_model(tmp_path / "cached" / "models" / "e2e_frozen_stats.keras")
    xa = classifiers.make_inputs(store, rows, classifiers.ALL_FIN, clip_mode="clip")
    got, want = np.asarray(a(xa, training=False)), np.asarray(model(xa, training=False))
    print("stats pooling: max difference in class probabilities", np.abs(got - want).max())
    # MaskedStats computes the std in two passes: the one-pass E[x^2] - E[x]^2 cancelled digits on mel power and
    # measured 5.6e-5 and 1.32e-4 here (one suite run failed on this bound)
    assert np.allclose(got, want, atol=1e-4), np.abs(got - want).max()


def test_cached_model_computes_the_same_loss_and_gradients(tmp_path) -> None:
    """At the same weights, the model on cached spectra and the end-to-end model on the clip give the same loss and
    the same gradient for every FIN and head weight (fine-tuned and random-init FINs; float tolerance)."""
    import tensorflow as tf

    from sefin_utils import classifiers
    from sefin_utils import fins as fin_module

    fins = {n: fin_module.build_fin(n, arch="fast") for n in classifiers.FEATURE_NAMES}
    store = _tonal_store(tmp_path, fins)
    rows = np.arange(len(store.index))
    y = tf.constant(np.arange(len(rows)) % len(CLASSES))
    mean, var = classifiers.norm_stats(classifiers.pooled_label_vectors(store, rows))
    for init in ("pretrained", "random"):
        args = dict(
            fins=fins,
            sources=classifiers.ALL_FIN,
            fin_trainable=True,
            head="kaggle",
            n_classes=len(CLASSES),
            norm_mean=mean,
            norm_var=var,
            fin_init=init,
            seed=1,
        )
        full = classifiers.build_end_to_end(**args)
        cached, wrappers = featcache.build_cached_end_to_end(**args)
        x_full = classifiers.make_inputs(store, rows, classifiers.ALL_FIN, clip_mode="clip")
        x_cached = {k: np.asarray(v) for k, v in featcache.cached_inputs(store, rows, list(cached.input), fins).items()}
        pairs = [(wrappers[n].trainable_variables, full.get_layer(f"fin_{n}").trainable_variables) for n in wrappers]
        pairs += [
            (layer.trainable_variables, full.get_layer(layer.name).trainable_variables)
            for layer in cached.layers
            if layer.trainable_variables and not layer.name.startswith("fin_")
        ]
        grads, losses = [], []
        for model, x, side in ((cached, x_cached, 0), (full, x_full, 1)):
            variables = [v for pair in pairs for v in pair[side]]
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=False)))
            grads.append([np.asarray(g) for g in tape.gradient(loss, variables)])
            losses.append(float(loss))
        assert np.isclose(losses[0], losses[1], rtol=1e-5), (init, losses)
        assert len(grads[0]) == len(grads[1]) > 10
        for ga, gb in zip(*grads, strict=True):
            scale = max(np.abs(gb).max(), 1e-12)
            assert np.abs(ga - gb).max() <= 1e-4 * scale, (init, np.abs(ga - gb).max(), scale)  # measured <= 1.5e-6


def test_frozen_fin_outputs_from_cached_spectra_equal_those_from_clips(tmp_path) -> None:
    """A FIN that starts with the power spectrum gives the same per-frame and pooled outputs from the shared cached
    spectra (one FFT and one tuning estimate for every FIN) as from the clip; the caches land on disk, keyed."""
    from sefin_utils import classifiers
    from sefin_utils import fins as fin_module

    fins = {n: fin_module.build_fin(n, arch="fast") for n in classifiers.FEATURE_NAMES}
    store = _tonal_store(tmp_path, fins)
    tunings = featcache.tuning_layers(fins)
    for name, fin in fins.items():
        direct = featcache.fin_outputs(store, name, fin, root=None)
        cached = featcache.fin_outputs(store, name, fin, root=tmp_path / "c", spectra_of=tunings)
        assert isinstance(cached["frames"], np.memmap)
        for key in ("frames", "pooled"):
            assert np.allclose(direct[key], cached[key], rtol=1e-6, atol=1e-7), (name, key)
    layers = sorted(p.name.split("-")[0] for p in (tmp_path / "c").iterdir() if not p.name.startswith("."))
    assert layers == ["finout"] * 5 + ["spectra"]  # one spectra layer serves every FIN
