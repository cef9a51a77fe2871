"""Leak-free, seeded splits of a manifest.

Two protocols:

``speaker`` (default): speaker-independent. Within each corpus, speakers are shuffled (seeded; men and women
interleaved so each split keeps a gender mix) and assigned whole to test, val and train by the fractions. Corpora with
few speakers are handled so that no speaker is ever in two splits: with 2 speakers (TESS) one trains and one tests
(no TESS in val); with 3-4 (SAVEE) one tests, one validates, the rest train; a corpus with a single speaker only
trains. The fraction of recordings in each split therefore follows the speakers, not exactly 70/15/15.

``study``: the seed study's scheme: per corpus and emotion, 70/15/15 by recording (speakers shared across splits).

ESD (and any corpus outside ``TRAIN_CORPORA``) is always ``ood``: an out-of-domain test set, never trained on.
Augmented copies are made after splitting (``cache.build``) and inherit their source recording's split.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sefin_utils.constants import TRAIN_CORPORA

PROTOCOLS: tuple[str, ...] = ("speaker", "study")


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator derived from the seed and stable string keys (independent of row order and process)."""
    return np.random.default_rng([int(seed), *(zlib.crc32(k.encode()) for k in keys)])


def _counts(n: int, fractions: Sequence[float], *, min_val: int, min_test: int) -> tuple[int, int, int]:
    """Split n items into (train, val, test) counts, guaranteeing small minimums where n allows."""
    _, f_val, f_test = fractions
    n_test = max(min_test, int(round(f_test * n))) if n >= 2 else 0
    n_val = max(min_val, int(round(f_val * n))) if n >= 3 else 0
    n_test = min(n_test, n - 1) if n >= 2 else 0
    n_val = min(n_val, n - n_test - 1) if n >= 3 else 0
    return n - n_val - n_test, n_val, n_test


def _interleave_genders(speakers: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    """Shuffle speakers within each gender, then alternate genders (start chosen by the rng)."""
    groups = []
    for _, g in sorted(speakers.groupby("gender"), key=lambda kv: str(kv[0])):
        keys = sorted(g["speaker_key"].astype(str))
        groups.append([keys[i] for i in rng.permutation(len(keys))])
    rng.shuffle(groups)
    order: list[str] = []
    while any(groups):
        for grp in groups:
            if grp:
                order.append(grp.pop(0))
    return order


def make_splits(
    manifest: pd.DataFrame,
    *,
    protocol: str = "speaker",
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
) -> pd.DataFrame:
    """Assign every recording to ``train``, ``val``, ``test`` or ``ood``.

    Parameters
    ----------
    manifest : DataFrame
        Output of ``corpora.discover`` (needs recording_id, corpus, speaker_key, gender, emotion).
    protocol : {"speaker", "study"}
        Speaker-independent (default) or the study's per corpus and emotion split by recording.
    seed : int
        Same seed, same manifest -> the same split, whatever the row order.
    fractions : (train, val, test)
        Target fractions (of speakers for ``speaker``, of recordings for ``study``).

    Returns
    -------
    DataFrame
        The manifest sorted by recording_id with a ``split`` column and the ``protocol`` used.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    need = {"recording_id", "corpus", "speaker_key", "gender", "emotion"}
    if missing := need - set(manifest.columns):
        raise ValueError(f"manifest lacks columns {sorted(missing)}")
    if manifest["recording_id"].duplicated().any():
        dup = manifest.loc[manifest["recording_id"].duplicated(), "recording_id"].iloc[0]
        raise ValueError(f"manifest lists recording {dup!r} twice")
    df = manifest.sort_values("recording_id", kind="stable").reset_index(drop=True).copy()
    split = pd.Series("ood", index=df.index, dtype=object)
    for corpus, part in df.groupby("corpus", sort=True):
        if corpus not in TRAIN_CORPORA:
            continue
        if protocol == "speaker":
            speakers = part.drop_duplicates("speaker_key")[["speaker_key", "gender"]]
            order = _interleave_genders(speakers, _rng(seed, "speaker", str(corpus)))
            n_train, n_val, n_test = _counts(len(order), fractions, min_val=1, min_test=1)
            which = dict.fromkeys(order[:n_test], "test")
            which.update(dict.fromkeys(order[n_test : n_test + n_val], "val"))
            which.update(dict.fromkeys(order[n_test + n_val :], "train"))
            split[part.index] = part["speaker_key"].map(which).to_numpy()
        else:
            for emotion, cell in part.groupby("emotion", sort=True):
                idx = cell.index.to_numpy()[_rng(seed, "study", str(corpus), str(emotion)).permutation(len(cell))]
                n_train, n_val, n_test = _counts(len(idx), fractions, min_val=0, min_test=0)
                split[idx[:n_train]] = "train"
                split[idx[n_train : n_train + n_val]] = "val"
                split[idx[n_train + n_val :]] = "test"
    df["split"] = split.astype(str)
    df["protocol"] = protocol
    check_no_leak(df)
    return df


def check_no_leak(df: pd.DataFrame) -> None:
    """Raise ValueError if a recording (or its augmented copies) or, under ``speaker``, a speaker crosses splits.

    Works on split tables and on clip indexes with a ``source`` column (augmented copies name their source).
    ``ood`` rows must come from corpora outside ``TRAIN_CORPORA`` and vice versa.
    """
    key = "source" if "source" in df.columns else "recording_id"
    per_recording = df.groupby(key)["split"].nunique()
    if (per_recording > 1).any():
        bad = per_recording[per_recording > 1].index[0]
        raise ValueError(f"recording {bad!r} (or a copy of it) appears in more than one split")
    if "protocol" in df.columns and (df["protocol"] == "speaker").all():
        inside = df[df["split"] != "ood"]
        per_speaker = inside.groupby("speaker_key")["split"].nunique()
        if (per_speaker > 1).any():
            bad = per_speaker[per_speaker > 1].index[0]
            raise ValueError(f"speaker {bad!r} appears in more than one split")
    in_domain = df["corpus"].isin(TRAIN_CORPORA)
    if (df.loc[~in_domain, "split"] != "ood").any() or (df.loc[in_domain, "split"] == "ood").any():
        raise ValueError("out-of-domain corpora (ESD) must be exactly the 'ood' split")


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Recordings and speakers per corpus and split (a table for reports)."""
    rec = pd.crosstab(df["corpus"], df["split"])
    spk = df.groupby(["corpus", "split"])["speaker_key"].nunique().unstack(fill_value=0)
    return pd.concat({"recordings": rec, "speakers": spk}, axis=1).fillna(0).astype(int)
