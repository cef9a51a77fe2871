"""Benchmark: does a scikit-learn anchor gain from the augmented copies as the temporal models do?

Usage::

    python benchmarks/anchor_copies.py RUN_DIR [--anchors mlp logreg] [--seeds 0]

RUN_DIR is a run folder whose clip store exists (``splits.csv``, the clips and summary layers). Each anchor
(``anchors.fit_anchor``: its grid chosen on validation macro-F1; the pipeline's own standardisation inside) is fitted
on the train split's 162-dim vectors twice: the original recordings only (what stage 02 does) and the originals with
their two augmented copies (noise, stretch_pitch: what ``benchmarks/temporal_inputs.py --train-augmentations``
gives the temporal model); both are scored on the same test originals (macro-F1 over the 8 classes) and ESD (its
five classes, ``experiments.evaluate``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sefin_utils import anchors, experiments, runs  # noqa: E402
from sefin_utils.classifiers import encode_labels  # noqa: E402
from sefin_utils.constants import ESD_EMOTIONS, class_names  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--anchors", nargs="+", default=["mlp"], choices=anchors.ANCHORS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument(
        "--train", nargs="+", choices=("orig", "copies"), default=["orig", "copies"], help="which train sets to fit on"
    )
    args = ap.parse_args()
    sets = {"orig": ["orig"], "copies": ["orig", "noise", "stretch_pitch"]}
    P = json.loads((args.run_dir / "params.json").read_text())
    P.setdefault("ser_frame_scale", "linear")
    store = runs.open_store(P, progress=False)
    classes = class_names("class" if P["calm"] == "class" else "neutral")
    idx = store.index.reset_index(drop=True)
    print(f"{P['protocol']} protocol; anchors on the 162-dim vector", flush=True)
    print(f"{'anchor':<8} {'train clips':<24} {'seed':>4} {'seconds':>7} {'val F1':>6} {'test F1':>7} {'ESD F1':>6}")
    for augs in (sets[t] for t in args.train):
        p = experiments._resolve({**runs.ser_params(P), "train_augmentations": augs})
        rows = experiments._split_rows(store, p)
        y = {s: encode_labels(idx["emotion"].to_numpy()[r], classes, calm=p["calm"]) for s, r in rows.items()}
        x = {s: np.asarray(store.summary[r], dtype="float64") for s, r in rows.items()}
        for name in args.anchors:
            for seed in args.seeds:
                t0 = time.perf_counter()
                fit = anchors.fit_anchor(
                    name,
                    x["train"],
                    y["train"],
                    x["val"],
                    y["val"],
                    n_classes=len(classes),
                    seed=seed,
                    class_weight=p["class_weight"],
                )
                secs = time.perf_counter() - t0
                f1 = {
                    s: experiments.evaluate(
                        None,
                        None,
                        y[s],
                        classes,
                        restrict_to=list(ESD_EMOTIONS) if s == "ood" else None,
                        proba=fit.predict_proba(x[s]),
                    )["overall"]["macro_f1"]
                    for s in ("val", "test", "ood")
                }
                label = f"{'+'.join(augs)} ({len(rows['train'])})"
                print(
                    f"{name:<8} {label:<24} {seed:>4} {secs:>7.0f} {f1['val']:>6.3f} {f1['test']:>7.3f} "
                    f"{f1['ood']:>6.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
