"""Benchmark: what the temporal-pooling classifier sees per frame: raw librosa values, log-compressed energies, or
log-compressed and mean-normalised per clip (CMN).

Usage::

    python benchmarks/temporal_inputs.py RUN_DIR [--transforms raw log log_cmn] [--seeds 0] [--sources librosa]
        [--filters 64] [--kernel 5]

RUN_DIR is a run folder whose clip store and label cache exist (``python -m sefin_utils run --profile full --only
data frames_labels``); its ``params.json`` gives the split, epochs, batch size, patience, class weights and
selection, as stage 05 uses them. The model is the one of ``librosa_temporal`` / ``e2e_frozen_temporal``
(``classifiers.build_frame_classifier(pooling="temporal")``: per-frame standardisation from the train frames, two
masked Conv1D, attentive pooling), trained by ``training.train_classifier`` on the train split's clips (the run's
``ser_train_augmentations``) and scored by ``experiments.evaluate`` on test (macro-F1 over the 8 classes) and ESD
(its five classes). Only the per-frame input changes:

- ``raw``: the 162 per-frame values as librosa gives them (mel power, RMS amplitude; ``ser_frame_scale: linear``,
  what stage 05 fed before this benchmark);
- ``log``: what stage 05 feeds now (``ser_frame_scale: db``; ``classifiers.frames_to_db``): mel power in dB
  (``10 log10(max(mel, 1e-10))``, librosa's ``power_to_db`` without ``top_db``) and RMS in dB
  (``20 log10(max(rms, 1e-5))``); ZCR, chroma and MFCC unchanged (MFCC is already on a log scale);
- ``log_cmn``: ``log``, then each clip's mean over its real frames subtracted from every frame (cepstral mean
  normalisation: removes a clip's constant channel and level offsets, and with them its average level);
- ``log_cmn_mean``: ``log_cmn`` frames with the clip's mean (``log``) appended to every frame (324 values).

``--filters`` and ``--kernel`` change the width of the two Conv1D layers and their kernel (stage 05: 64 and 5,
``classifiers.TEMPORAL_FILTERS`` / ``TEMPORAL_KERNEL``), to measure a wider model before changing the model code.

Sources: ``librosa`` (the cached labels, as ``librosa_temporal``) or ``fin`` (the run's frozen learnt FINs' cached
outputs, as ``e2e_frozen_temporal``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sefin_utils import classifiers, experiments, runs  # noqa: E402
from sefin_utils.classifiers import build_frame_classifier, encode_labels, frames_to_db, pooled_norm_stats  # noqa: E402
from sefin_utils.constants import ESD_EMOTIONS, class_names  # noqa: E402
from sefin_utils.features import FEATURE_NAMES  # noqa: E402
from sefin_utils.training import balanced_class_weight, train_classifier  # noqa: E402

TRANSFORMS = ("raw", "log", "log_cmn", "log_cmn_mean")


def transform(per_frame: np.ndarray, mask: np.ndarray, kind: str) -> np.ndarray:
    """``per_frame`` (n, T, 162) in ``KAGGLE.order`` and ``mask`` (n, T) -> the input of ``kind`` (see the module)."""
    if kind == "raw":
        return per_frame
    x = frames_to_db(per_frame, "db")
    if kind == "log":
        return x
    m = mask[..., None] > 0
    mean = np.where(m, x, 0).sum(1, keepdims=True) / np.maximum(m.sum(1, keepdims=True), 1)
    cmn = np.where(m, x - mean, 0).astype("float32")
    if kind == "log_cmn":
        return cmn
    return np.concatenate([cmn, np.broadcast_to(mean, x.shape).astype("float32")], axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--transforms", nargs="+", default=list(TRANSFORMS), choices=TRANSFORMS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--sources", choices=("librosa", "fin"), default="librosa")
    ap.add_argument("--out", type=Path, default=None, help="append one JSON line per model here")
    ap.add_argument(
        "--train-augmentations",
        nargs="+",
        default=None,
        help="train on these copies (e.g. orig noise speed_pitch); default: the run's ser_train_augmentations",
    )
    ap.add_argument("--filters", type=int, default=None, help="Conv1D filters (stage 05: TEMPORAL_FILTERS, 64)")
    ap.add_argument("--kernel", type=int, default=None, help="Conv1D kernel in frames (stage 05: TEMPORAL_KERNEL, 5)")
    args = ap.parse_args()
    if args.filters:
        classifiers.TEMPORAL_FILTERS = args.filters
    if args.kernel:
        classifiers.TEMPORAL_KERNEL = args.kernel

    P = json.loads((args.run_dir / "params.json").read_text())
    P.setdefault("ser_frame_scale", "linear")  # runs made before the param existed (unused here: see --transforms)
    if args.train_augmentations:
        P["ser_train_augmentations"] = list(args.train_augmentations)
    p = experiments._resolve(runs.ser_params(P))
    store = runs.open_store(P, progress=False)
    classes = class_names("class" if p["calm"] == "class" else "neutral")
    rows = experiments._split_rows(store, p)
    idx = store.index.reset_index(drop=True)
    y = {s: encode_labels(idx["emotion"].to_numpy()[r], classes, calm=p["calm"]) for s, r in rows.items()}
    corpus = {s: idx["corpus"].to_numpy()[r] for s, r in rows.items()}
    cw = balanced_class_weight(y["train"], len(classes)) if p["class_weight"] == "balanced" else None
    sources = dict.fromkeys(FEATURE_NAMES, args.sources)
    fins = experiments._load_fins(args.run_dir / "fins") if args.sources == "fin" else {}
    root = experiments.featcache.cache_root(store)
    raw = {
        s: experiments.per_frame_vectors(store, r, sources, fins, batch_size=int(p["batch_size"]), root=root)
        for s, r in rows.items()
    }
    print(
        f"{P['protocol']} protocol, {args.sources} per-frame inputs: "
        + ", ".join(f"{s} {len(r)}" for s, r in rows.items())
        + " clips",
        flush=True,
    )
    print(
        f"{'input':<14} {'seed':>4} {'epochs':>6} {'s/epoch':>7} {'val F1':>6} {'test F1':>7} {'ESD F1':>6}", flush=True
    )
    for kind in args.transforms:
        data = {s: {"per_frame": transform(d["per_frame"], d["mask"], kind), "mask": d["mask"]} for s, d in raw.items()}
        mean, var = pooled_norm_stats(data["train"]["per_frame"], data["train"]["mask"], "temporal")
        for seed in args.seeds:
            model = build_frame_classifier(
                dim=int(data["train"]["per_frame"].shape[-1]),
                pooling="temporal",
                head="temporal",
                n_classes=len(classes),
                norm_mean=mean,
                norm_var=var,
                seed=seed,
                dropout=p["dropout"],
                name=f"temporal_{kind}",
            )
            t0 = time.perf_counter()
            fit = train_classifier(
                model,
                data["train"],
                y["train"],
                data["val"],
                y["val"],
                epochs=int(p["epochs"]),
                lr=float(p["lr"]),
                batch_size=int(p["batch_size"]),
                seed=seed,
                patience=int(p["patience"]),
                class_weight=cw,
                progress=False,
                select=p["select"],
                weight_decay=float(p["weight_decay"] or 0.0),
                lr_schedule=p["lr_schedule"],
            )
            secs = time.perf_counter() - t0
            n_ep = int(fit["epochs_run"])
            rep = {
                s: experiments.evaluate(
                    model,
                    data[s],
                    y[s],
                    classes,
                    corpus=corpus[s],
                    restrict_to=list(ESD_EMOTIONS) if s == "ood" else None,
                )
                for s in ("val", "test", "ood")
            }
            f1 = {s: rep[s]["overall"]["macro_f1"] for s in rep}
            print(
                f"{kind:<14} {seed:>4} {n_ep:>6} {secs / max(n_ep, 1):>7.1f} "
                f"{f1['val']:>6.3f} {f1['test']:>7.3f} {f1['ood']:>6.3f}",
                flush=True,
            )
            if args.out:
                line = {"input": kind, "sources": args.sources, "seed": seed, "protocol": P["protocol"], **f1}
                line["filters"], line["kernel"] = classifiers.TEMPORAL_FILTERS, classifiers.TEMPORAL_KERNEL
                line["train_augmentations"] = p["train_augmentations"]
                line["epochs_run"], line["seconds"] = n_ep, round(secs, 1)
                line["per_corpus_test"] = {c: r["macro_f1"] for c, r in rep["test"]["per_corpus"].items()}
                with args.out.open("a") as fh:
                    fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
