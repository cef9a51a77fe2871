"""The published split table: paths relative to the data root, the public columns, every recording once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sefin_utils import corpora, runs, splits


def test_published_splits_are_relative_and_complete(tmp_path: Path, sample_root: Path) -> None:
    manifest = corpora.discover(sample_root).manifest
    chosen = splits.make_splits(manifest, protocol="speaker", seed=0)
    out = runs.publish_splits(chosen, sample_root, tmp_path / "report" / "splits.csv")
    pub = pd.read_csv(out, dtype=str)
    assert list(pub.columns) == list(runs.PUBLIC_SPLIT_COLUMNS)
    assert len(pub) == len(chosen) and pub["recording_id"].is_unique
    assert not pub["path"].str.startswith("/").any()
    assert all((sample_root / p).is_file() for p in pub["path"])  # each path finds its file again
    assert (pub["split"].to_numpy() == chosen["split"].astype(str).to_numpy()).all()


def test_a_recording_outside_the_root_is_an_error(tmp_path: Path, sample_root: Path) -> None:
    chosen = splits.make_splits(corpora.discover(sample_root).manifest, protocol="study", seed=0)
    with pytest.raises(ValueError, match="not under the data root"):
        runs.publish_splits(chosen, tmp_path, tmp_path / "splits.csv")
