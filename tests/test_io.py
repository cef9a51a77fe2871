"""io: atomic writes keep non-UTF-8 file names (surrogate-escaped) byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from sefin_utils import io


def test_table_of_a_latin1_path_round_trips(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.wav")  # what os.listdir gives for a Latin-1 byte under a UTF-8 file system
    out = io.write_csv(pd.DataFrame({"path": [name]}), tmp_path / "t.csv")
    assert b"caf\xe9.wav" in out.read_bytes()
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
