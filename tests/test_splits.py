"""Splits: no speaker overlap under `speaker`, copies stay with their source, same seed -> same split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sefin_utils.corpora import discover
from sefin_utils.splits import check_no_leak, make_splits, summary


def _toy(n_speakers: dict[str, int], per_speaker: int = 6) -> pd.DataFrame:
    rows = []
    emotions = ["angry", "happy", "sad", "neutral", "fear", "disgust"]
    for corpus, n in n_speakers.items():
        for s in range(n):
            for i in range(per_speaker):
                rows.append({
                    "recording_id": f"{corpus}/{s}_{i}", "corpus": corpus, "speaker": str(s),
                    "speaker_key": f"{corpus}:{s}", "gender": "male" if s % 2 else "female",
                    "emotion": emotions[i % len(emotions)],
                })  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("protocol", ["speaker", "study"])
def test_real_sample_splits(sample_root: Path, protocol: str) -> None:
    manifest = discover(sample_root, progress=False).manifest
    df = make_splits(manifest, protocol=protocol, seed=0)
    assert set(df["split"]) == {"train", "val", "test", "ood"}
    assert (df.loc[df["corpus"] == "ESD", "split"] == "ood").all()
    check_no_leak(df)
    if protocol == "speaker":
        inside = df[df["split"] != "ood"]
        assert (inside.groupby("speaker_key")["split"].nunique() == 1).all()
    again = make_splits(manifest.sample(frac=1.0, random_state=1), protocol=protocol, seed=0)
    pd.testing.assert_series_equal(df["split"], again["split"])
    other = make_splits(manifest, protocol=protocol, seed=1)
    assert (other["split"] != df["split"]).any()
    assert summary(df).loc["CREMA-D", ("recordings", "train")] > 0


def test_few_speaker_corpora() -> None:
    df = make_splits(_toy({"TESS": 2, "SAVEE": 4, "CREMA-D": 20}), protocol="speaker", seed=3)
    spk = df.groupby(["corpus", "split"])["speaker_key"].nunique().unstack(fill_value=0)
    assert spk.loc["TESS"].to_dict() == {"test": 1, "train": 1, "val": 0}
    assert spk.loc["SAVEE", "test"] == 1 and spk.loc["SAVEE", "val"] == 1 and spk.loc["SAVEE", "train"] == 2
    assert spk.loc["CREMA-D", "test"] == 3 and spk.loc["CREMA-D", "val"] == 3
    one = make_splits(_toy({"RAVDESS": 1}), protocol="speaker")
    assert set(one["split"]) == {"train"}


def test_study_protocol_is_per_corpus_and_emotion() -> None:
    df = make_splits(_toy({"CREMA-D": 10}, per_speaker=12), protocol="study", seed=0)
    counts = df.groupby(["emotion", "split"]).size().unstack()
    assert (counts["train"] == 14).all() and (counts["val"] == 3).all() and (counts["test"] == 3).all()


def test_leaks_are_detected() -> None:
    df = make_splits(_toy({"CREMA-D": 10}), protocol="speaker")
    copies = df.assign(source=df["recording_id"])
    moved = copies.copy()
    moved.loc[moved.index[0], "split"] = "test" if moved.loc[moved.index[0], "split"] != "test" else "train"
    with pytest.raises(ValueError, match="more than one split"):
        check_no_leak(pd.concat([copies, moved.iloc[[0]]]))
    with pytest.raises(ValueError, match="protocol must be"):
        make_splits(df, protocol="random")
    with pytest.raises(ValueError, match="twice"):
        make_splits(pd.concat([df, df.iloc[[0]]]))
