"""Benchmark: does standardising the 162-dim vector per domain (corpus, speaker) help, in domain and on ESD?

Usage::

    python benchmarks/domain_norm.py RUN_DIR [--max-iter 300]

RUN_DIR is a run folder whose data stage and clip cache exist (``splits.csv``, ``cache/clips-*``,
``cache/summary-*``; e.g. ``python -m sefin_utils run --profile full --only data frames_labels``). A logistic
regression (scikit-learn, balanced class weights, C=1) is trained on the train split's clips (originals and augmented
copies) and scored on the test originals (macro-F1 over the training classes) and on ESD (its five classes: argmax
over their probabilities, as ``experiments.evaluate`` does). Three standardisations of the vector:

- global: the train clips' mean and standard deviation (what the pipeline does);
- per corpus: each corpus' train clips (ESD, never trained on, its own clips: label-free, transductive);
- per speaker: each speaker's own clips (label-free, transductive: needs several recordings of the speaker at test
  time, e.g. a folder of one person's recordings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

ESD = ["angry", "happy", "neutral", "sad", "surprise"]


def _layer(run: Path, name: str) -> Path:
    found = [d for d in sorted((run / "cache").glob(f"{name}-*")) if not d.name.endswith(".partial")]
    if not found:
        raise FileNotFoundError(f"no finished {name} layer under {run / 'cache'}: build the run's cache first")
    return found[0]


def standardise(x: np.ndarray, groups: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Standardise ``x`` (n, d) per group with the group's ``fit`` rows (all its rows when it has none)."""
    z = np.empty(x.shape, dtype=np.float64)
    for g in np.unique(groups):
        m = groups == g
        ref = m & fit if (m & fit).any() else m
        z[m] = (x[m] - x[ref].mean(0)) / (x[ref].std(0) + 1e-8)
    return z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--max-iter", type=int, default=300)
    args = ap.parse_args()
    rows = pd.read_csv(_layer(args.run_dir, "clips") / "rows.csv")
    x = np.load(_layer(args.run_dir, "summary") / "summary.npy", mmap_mode="r")[:]
    sp = pd.read_csv(args.run_dir / "splits.csv").set_index("recording_id")
    rows = rows.join(sp[["corpus", "speaker_key", "emotion", "split", "protocol"]], on="recording_id")
    y = rows["emotion"].to_numpy()
    tr = (rows["split"] == "train").to_numpy()
    te = ((rows["split"] == "test") & (rows["augmentation"] == "orig")).to_numpy()
    od = ((rows["split"] == "ood") & rows["emotion"].isin(ESD) & (rows["augmentation"] == "orig")).to_numpy()
    print(f"protocol {rows['protocol'].iloc[0]}: {tr.sum()} train clips, {te.sum()} test, {od.sum()} ESD")
    print(f"{'standardisation':<14} {'test macro-F1':>13} {'ESD macro-F1':>12}")
    for name, groups, fit in (
        ("global", np.zeros(len(x)), tr),
        ("per corpus", rows["corpus"].to_numpy(), tr),
        ("per speaker", rows["speaker_key"].fillna(rows["corpus"]).to_numpy(), np.ones(len(x), bool)),
    ):
        z = standardise(x, groups, fit)
        clf = LogisticRegression(max_iter=args.max_iter, class_weight="balanced").fit(z[tr], y[tr])
        p = clf.predict_proba(z)
        cl = list(clf.classes_)
        f_te = f1_score(y[te], np.array(cl)[p[te].argmax(1)], average="macro")
        f_od = f1_score(y[od], np.array(ESD)[p[od][:, [cl.index(c) for c in ESD]].argmax(1)], average="macro")
        print(f"{name:<14} {f_te:>13.3f} {f_od:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
