"""Benchmark the five FINs on the shared real sample: R² beside the study's, parameters, multiply-adds, time per epoch.

Usage::

    python benchmarks/fins.py [--arch fast|study|both|random] [--epochs N] [--random-init]
                              [--study-epochs N] [--study-clips N] [--study-eval-clips N]

Data: every file of ``../shared/data/ser-sample`` as a 2.5 s clip (``audio.load_clip``), split by speaker
(``splits.make_splits``, or where it is missing a seeded per-corpus speaker split made here); train recordings get
the ``noise`` and ``stretch_pitch`` copies (``augment.augment``); ESD is ``ood`` and never trained on. Frame labels
come from ``features.frame_labels`` (or a per-frame librosa loop here). Clips and labels are cached under
``--cache`` (default ``/tmp/sefin_bench_fins/<split source>``) so a second run starts training at once. The
benchmark keeps this small in-memory store (the ``ClipStore`` interface) rather than ``cache.build`` so that it
depends only on audio/augment/features.

Fast FINs train up to ``--epochs`` (early stopping); the study's are trained ``--study-epochs`` on a subset of
``--study-clips`` train clips and scored on ``--study-eval-clips`` clips per split (their convolutions cost 200-400
million multiply-adds per frame). ``--random-init`` adds the fast topology trained from random weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sefin_utils.constants import CLIP_SAMPLES, FRAME_LENGTH, HOP_LENGTH, N_FRAMES, SR  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "ser-sample"
FEATURE_DIMS = {"rms": 1, "zcr": 1, "chroma": 12, "mfcc": 20, "mel": 128}
CORPUS_NAMES = {"CREMA-D": "CREMA-D", "RAVDESS": "RAVDESS", "SAVEE": "SAVEE", "TESS": "TESS", "ESD": "ESD"}


class ArrayStore:
    """A ClipStore look-alike held in memory: ``index``, ``clips``, ``labels``, ``mask``, ``select``."""

    def __init__(self, index: pd.DataFrame, clips: np.ndarray, labels: dict[str, np.ndarray], mask: np.ndarray):
        self.index = index.reset_index(drop=True)
        self.clips = clips
        self.labels = labels
        self.mask = mask

    def select(self, *, split: str | None = None, augmentation: str | None = None) -> np.ndarray:
        """Row numbers of clips in ``split`` (and ``augmentation``), in index order."""
        keep = np.ones(len(self.index), dtype=bool)
        if split is not None:
            keep &= (self.index["split"] == split).to_numpy()
        if augmentation is not None:
            keep &= (self.index["augmentation"] == augmentation).to_numpy()
        return np.flatnonzero(keep)


def per_frame_labels(y: np.ndarray) -> dict[str, np.ndarray]:
    """Reference labels with a per-frame librosa loop (center=False, n_fft 2048, hop 512)."""
    import librosa

    frames = librosa.util.frame(y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH, axis=0)
    kw = {"frame_length": FRAME_LENGTH, "hop_length": HOP_LENGTH, "center": False}
    sk = {"sr": SR, "n_fft": FRAME_LENGTH, "hop_length": HOP_LENGTH, "center": False}
    out: dict[str, list[np.ndarray]] = {k: [] for k in FEATURE_DIMS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in frames:
            f = np.ascontiguousarray(f)
            out["rms"].append(librosa.feature.rms(y=f, **kw)[:, 0])
            out["zcr"].append(librosa.feature.zero_crossing_rate(y=f, **kw)[:, 0])
            out["chroma"].append(librosa.feature.chroma_stft(y=f, **sk)[:, 0])
            out["mfcc"].append(librosa.feature.mfcc(y=f, n_mfcc=20, **sk)[:, 0])
            out["mel"].append(librosa.feature.melspectrogram(y=f, **sk)[:, 0])
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def _labels_fn():
    try:
        from sefin_utils import features

        return lambda y: features.frame_labels(y), "features.frame_labels"
    except ImportError:
        return per_frame_labels, "per-frame librosa loop (benchmarks/fins.py)"


def speaker_split(manifest: pd.DataFrame, *, seed: int = 0) -> pd.Series:
    """Per corpus, shuffle speakers and give ~70/15/15 % to train/val/test (at least one to train); ESD -> ood."""
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=manifest.index, dtype=object)
    for corpus, df in manifest.groupby("corpus"):
        if corpus == "ESD":
            split[df.index] = "ood"
            continue
        spk = sorted(df["speaker"].astype(str).unique())
        rng.shuffle(spk)
        n = len(spk)
        n_test = max(1, round(0.15 * n)) if n >= 2 else 0
        n_val = max(1, round(0.15 * n)) if n >= 3 else 0
        roles = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
        for s, role in zip(spk, roles, strict=True):
            split[df.index[df["speaker"].astype(str) == s]] = role
    return split


def build_store(cache: Path, *, seed: int = 0, limit: int | None = None) -> tuple[ArrayStore, dict]:
    """Clips + labels of the real sample (cached as ``store.npz`` + ``index.csv`` under ``cache``)."""
    from tqdm.auto import tqdm

    from sefin_utils import audio, augment

    cache.mkdir(parents=True, exist_ok=True)
    npz, csv, info_path = cache / "store.npz", cache / "index.csv", cache / "info.json"
    if npz.is_file() and csv.is_file() and info_path.is_file():
        z = np.load(npz)
        labels = {k: z[k] for k in FEATURE_DIMS}
        return ArrayStore(pd.read_csv(csv), z["clips"], labels, z["mask"]), json.loads(info_path.read_text())
    m = pd.read_csv(SAMPLE / "manifest.csv").rename(columns={"dataset": "corpus"})
    m["speaker"] = m["speaker"].astype(str)
    if limit:
        m = m.groupby("corpus", group_keys=False).head(limit)
    m["recording_id"] = m["corpus"] + "/" + m["path"].str.replace(".wav", "", regex=False)
    m["speaker_key"] = m["corpus"] + ":" + m["speaker"]
    try:
        from sefin_utils import splits

        m = splits.make_splits(m, protocol="speaker", seed=seed)
        split_src = "splits.make_splits (speaker)"
    except ImportError:
        m["split"] = speaker_split(m, seed=seed)
        split_src = "benchmark speaker split"
    labels_fn, labels_src = _labels_fn()
    rows, clips, masks = [], [], []
    labels: dict[str, list[np.ndarray]] = {k: [] for k in FEATURE_DIMS}
    for rec in tqdm(m.itertuples(), total=len(m), desc="clips + labels"):
        clip = audio.load_clip(SAMPLE / rec.path)
        kinds = ["orig", "noise", "stretch_pitch"] if rec.split == "train" else ["orig"]
        for kind in kinds:
            y = augment.augment(clip.samples, kind, seed_key=(seed, rec.recording_id), valid=clip.valid)
            y = np.asarray(y, dtype=np.float32)[:CLIP_SAMPLES]
            lab = labels_fn(y)
            for k in FEATURE_DIMS:
                labels[k].append(np.asarray(lab[k], dtype=np.float32).reshape(N_FRAMES, FEATURE_DIMS[k]))
            clips.append(y)
            masks.append(audio.valid_frame_mask(clip.valid, CLIP_SAMPLES))
            rows.append(
                {
                    "clip_id": f"{rec.recording_id}#{kind}",
                    "recording_id": rec.recording_id,
                    "split": rec.split,
                    "augmentation": kind,
                    "emotion": rec.emotion,
                    "corpus": rec.corpus,
                    "speaker_key": rec.speaker_key,
                    "valid_start": clip.valid[0],
                    "valid_stop": clip.valid[1],
                }
            )
    store = ArrayStore(
        pd.DataFrame(rows), np.stack(clips), {k: np.stack(v) for k, v in labels.items()}, np.stack(masks)
    )
    info = {"labels": labels_src, "split": f"{split_src}, seed {seed}", "seed": seed}
    np.savez(cache / "store.tmp.npz", clips=store.clips, mask=store.mask, **store.labels)
    os.replace(cache / "store.tmp.npz", npz)
    store.index.to_csv(csv, index=False)
    info_path.write_text(json.dumps(info))
    return store, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--arch", choices=["fast", "study", "both", "random"], default="fast", help="random: fast from random init"
    )
    ap.add_argument("--epochs", type=int, default=30, help="max epochs of the fast FINs")
    ap.add_argument("--study-epochs", type=int, default=1, help="epochs of the study FINs (CPU: hours each)")
    ap.add_argument("--study-clips", type=int, default=40, help="train clips for the study FINs (subset)")
    ap.add_argument("--study-eval-clips", type=int, default=20, help="val/test/ood clips for the study FINs")
    ap.add_argument("--random-init", action="store_true", help="also train the fast FINs from random init")
    ap.add_argument("--study-standardise", action="store_true", help="study topologies on standardised (log) targets")
    ap.add_argument("--features", nargs="*", default=None)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/sefin_bench_fins"))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_fins")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    try:
        import sefin_utils.splits  # noqa: F401

        cache = args.cache / "make_splits"
    except ImportError:
        cache = args.cache / "bench_split"
    store, info = build_store(cache, seed=args.seed)
    print(f"store: {len(store.index)} clips ({time.perf_counter() - t0:.1f} s); labels from {info['labels']}")
    print(store.index.groupby(["split", "augmentation"]).size().to_string())
    if args.prepare_only:
        return 0

    from sefin_utils import experiments, features, fins
    from sefin_utils.plots import fins as fin_plots

    study_label = "study_std" if args.study_standardise else "study"
    runs = {"fast": [("fast", "fast")], "study": [(study_label, "study")], "random": [("fast_random", "fast")]}.get(
        args.arch, [("fast", "fast"), (study_label, "study")]
    )
    if args.random_init and args.arch != "random":
        runs.insert(1, ("fast_random", "fast"))
    tables, models = [], {}
    for label, arch in runs:
        kw: dict = {"epochs": args.epochs, "init": "random" if label == "fast_random" else "librosa"}
        if arch == "study":
            train = store.select(split="train")
            rng = np.random.default_rng(args.seed)
            subset = np.sort(rng.choice(train, size=min(args.study_clips, len(train)), replace=False))
            kw = {"epochs": args.study_epochs, "train_rows": subset, "max_eval_clips": args.study_eval_clips}
            kw["standardise"] = args.study_standardise
        t = time.perf_counter()
        res = experiments.train_all(store, args.out / label, arch=arch, seed=args.seed, features=args.features, **kw)
        print(f"{label}: trained and evaluated in {time.perf_counter() - t:.0f} s", flush=True)
        tables.append(res["table"])
        models[label] = fins.load_fins(args.out / label)
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(args.out / f"metrics_{args.arch}.csv", index=False)
    show = ["feature", "arch", "init", "targets", "params", "trainable", "macs", "epochs", "epoch_s"]
    show += [c for c in ("r2_test", "r2_vw_test", "r2_ood", "r2_vw_ood", "r2_db_test", "r2_db_ood") if c in table]
    show += ["study_r2_test", "study_r2_vw_test", "study_r2_ood", "study_r2_vw_ood"]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(table[show].to_string(index=False))
    macs = table.drop_duplicates(["arch", "feature"]).groupby("arch")["macs"].sum()
    study_total = sum(fins.count_macs(fins.build_fin(n, arch="study")) for n in features.FEATURE_NAMES)
    for arch, total in macs.items():
        share = total / study_total
        print(f"MACs per frame, {arch}, these FINs: {total:,} ({share:.4f} of the study's five: {study_total:,})")

    # figures: pred vs true on test and ood frames, and one test utterance
    fig_dir = args.out / "figures"
    test_rows = store.select(split="test", augmentation="orig")
    for arch, fm in models.items():
        for split in ("test", "ood"):
            rows = store.select(split=split, augmentation="orig")
            if arch.startswith("study"):
                rows = rows[: args.study_eval_clips]
            res = {n: experiments.predict_store(m, store, rows, n)[::-1] for n, m in fm.items()}
            fin_plots.pred_vs_true(
                res, title=f"{arch} FINs, {split} frames", path=fig_dir / f"pred_vs_true_{arch}_{split}.png"
            )
        row = int(test_rows[0])
        clip_id = store.index.iloc[row]["clip_id"]
        labels = {n: np.asarray(store.labels[n][row]) for n in fm}
        fin_plots.utterance(
            np.asarray(store.clips[row]),
            fm,
            labels=labels,
            title=f"{arch} FINs vs librosa: {clip_id}",
            path=fig_dir / f"utterance_{arch}.png",
        )
    print(f"figures in {fig_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
