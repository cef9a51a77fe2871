"""The speed work (issue 14): resumable runs, feature caches, cached-input training paths that compute the same.

Tiny stand-ins: the fake ClipStore of test_ser and small FINs; models run eagerly so the file stays fast.
"""

from __future__ import annotations

import json

import keras
import pandas as pd

from sefin_utils import experiments, featcache
from tests.test_ser import fake_store


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
