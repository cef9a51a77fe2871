"""Train, score and ship the learnt FINs (issue 13): random start, full corpora's train speakers, scored on unseen
speakers and on ESD; prints R² (uniform, variance-weighted, mel in dB), multiply-adds and training minutes.

Usage::

    nice -n 10 python benchmarks/learnt_fins.py [--store data/learnt-fins] [--names rms,zcr,chroma,mfcc,mel]
        [--train-frames 300000] [--epochs 30] [--minutes 30] [--out models/fins] [--no-save] [--chroma-gate tuning]

The store is written first by ``benchmarks/learnt_data.py`` (frames, power spectra and exact labels of the full
corpora split by speaker with ``splits.make_splits(protocol="speaker", seed=0)``; ESD never trained on). Each FIN's
learnt part trains on the precomputed front end (``learnt.train_head``; early stopping on the ``val`` speakers); the
full model (raw frame in, fixed FFT front end inside) is then scored on the ``test`` and ``ood`` frames and saved as
``<out>/<feature>.keras`` with its JSON card. ``--minutes`` is the budget for the five together (split evenly over
the FINs still to train).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from sefin_utils import experiments, fins, learnt  # noqa: E402
from sefin_utils.constants import CORPUS_LICENCES  # noqa: E402
from sefin_utils.io import read_json, write_json  # noqa: E402
from sefin_utils.study import FIN_R2  # noqa: E402

LICENCES = {k: v for k, v in CORPUS_LICENCES.items() if k != "ESD"}  # the FINs' training corpora
HPARAMS: dict[str, dict] = learnt.HPARAMS
"""Per-FIN training settings (``frames``: train frames drawn from the store's train split; None = all)."""
SHARE: dict[str, float] = {"rms": 0.05, "zcr": 0.05, "chroma": 0.2, "mel": 0.25, "mfcc": 0.45}
"""Share of the time budget per FIN (what one leaves unused goes to the ones after it)."""
MEL_NOTE = (
    "Uniform R² in power units on ESD is not meaningful: ESD is recorded at 16 kHz, so its mel bands above 8 kHz are "
    "~0 with near-zero variance and tiny absolute errors give huge negative per-band R². The variance-weighted R² "
    "(power) and the dB R² (10 log10(max(y, 1e-10)), element-wise) are the scores to read."
)
OOD_NOTE = (
    "ESD speaker 0020 (../shared/data/esd-0020) plus the ESD files of ../shared/data/ser-sample; never trained on"
)


def load_split(store: Path, split: str) -> dict[str, np.ndarray]:
    """Memmaps of one split (``frames``, ``power``, the five labels), cut to the frames written."""
    n = int(read_json(store / split / "meta.json")["n"])
    out = {k: np.load(store / split / f"{k}.npy", mmap_mode="r")[:n] for k in ("frames", "power", *learnt.LEARNT_NAMES)}
    return out


def subset(n: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted seeded sample of ``k`` of ``n`` rows (all when ``k`` is None or >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def predict(model, frames: np.ndarray, batch: int = 4096) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(model.predict_on_batch(np.asarray(frames[i : i + batch])), np.float32)
            for i in range(0, len(frames), batch)
        ]
    )


def score(model, data: dict[str, np.ndarray], name: str) -> dict[str, float]:
    pred = predict(model, data["frames"])
    return {k: round(v, 5) for k, v in experiments.evaluate_fin(np.asarray(data[name]), pred, name).items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default=str(ROOT / "data" / "learnt-fins"))
    ap.add_argument("--names", default="rms,zcr,chroma,mel,mfcc", help="in this order (mfcc after mel: warm start)")
    ap.add_argument(
        "--no-mfcc-warm", action="store_true", help="train MFCC's bank from random instead of from the mel FIN's"
    )
    ap.add_argument("--train-frames", type=int, default=None)
    ap.add_argument("--val-frames", type=int, default=20000)
    ap.add_argument("--eval-frames", type=int, default=None, help="test/ood frames scored (default all)")
    ap.add_argument("--epochs", type=int, default=None, help="override every FIN's epochs (default HPARAMS)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chroma-gate", default="tuning", choices=learnt.CHROMA_GATES)
    ap.add_argument("--chroma-banks", type=int, default=11)
    ap.add_argument("--out", default=str(ROOT / "models" / "fins"))
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument(
        "--mfcc-from-mel",
        default=None,
        help="warm-start the MFCC FIN's bank from this learnt mel FIN (.keras; itself trained from random)",
    )
    a = ap.parse_args(argv)
    store = Path(a.store)
    names = a.names.split(",")
    train, val = load_split(store, "train"), load_split(store, "val")
    test, ood = load_split(store, "test"), load_split(store, "ood")
    tr = subset(len(train["power"]), a.train_frames, a.seed)
    va = subset(len(val["power"]), a.val_frames, a.seed + 1)
    ev = {s: subset(len(d["power"]), a.eval_frames, a.seed + 2) for s, d in (("test", test), ("ood", ood))}
    test = {k: v[ev["test"]] if a.eval_frames else v for k, v in test.items()}
    ood = {k: v[ev["ood"]] if a.eval_frames else v for k, v in ood.items()}
    rows_tr = pd.read_csv(store / "train" / "rows.csv")
    corpora = sorted(rows_tr["corpus"].unique())
    load0 = os.getloadavg()
    t_all = time.time()
    results, heads = [], {}
    for i, name in enumerate(names):
        left = a.minutes * 60 - (time.time() - t_all)
        budget = left * SHARE[name] / sum(SHARE[n] for n in names[i:])
        hp = {**HPARAMS[name], **({"epochs": a.epochs} if a.epochs else {})}
        front = learnt.FRONT_ENDS[name]
        t_load = time.time()
        rows = tr if hp.get("frames") is None else tr[subset(len(tr), hp["frames"], a.seed + 3)]
        x_tr, y_tr = np.asarray(train[front][rows]), np.asarray(train[name][rows])
        x_va, y_va = np.asarray(val[front][va]), np.asarray(val[name][va])
        t_load = time.time() - t_load
        warm, warm_from = None, None
        if name == "mfcc" and a.mfcc_from_mel:
            mel_fin = keras.models.load_model(a.mfcc_from_mel, compile=False)
            warm, warm_from = {"mel_bank": mel_fin.get_layer("mel_bank").get_weights()}, Path(a.mfcc_from_mel).name
        elif name == "mfcc" and "mel" in heads and not a.no_mfcc_warm:
            warm, warm_from = {"mel_bank": heads["mel"].get_layer("mel_bank").get_weights()}, "this run's mel FIN"
        kw = {"chroma_gate": a.chroma_gate, "chroma_banks": a.chroma_banks} if name == "chroma" else {}
        print(
            f"== {name}: {len(x_tr)} train frames, budget {budget / 60:.1f} min, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        head, log = learnt.train_head(
            name,
            x_tr,
            y_tr,
            x_va,
            y_va,
            seed=a.seed,
            epochs=hp["epochs"],
            batch_size=hp["batch"],
            lr=hp["lr"],
            max_seconds=budget,
            warm_start=warm,
            **kw,
        )
        heads[name] = head
        model = learnt.build_learnt_fin(name, head)
        r_test, r_ood = score(model, test, name), score(model, ood, name)
        macs = fins.count_macs(model)
        row = {
            "feature": name,
            "macs": macs,
            "params": int(model.count_params()),
            "epochs": log["epochs"],
            "train_min": round(log["seconds"] / 60, 2),
            "test": r_test,
            "ood": r_ood,
        }
        results.append(row)
        print(
            f"   {name}: test {r_test}  ood {r_ood}  macs {macs:,}  {log['seconds'] / 60:.1f} min "
            f"({log['epochs']} epochs)",
            flush=True,
        )
        if not a.no_save:
            card = {
                "feature": name,
                "family": "learnt",
                "summary": "learnt FIN: every weight started at random (seeded); fixed declared DSP front end",
                "front_end": {"frames": "raw 2048-sample frame", "power": "|rfft(hann * frame)|**2, 1025 bins"}[front],
                "fixed_dsp": _fixed_dsp(name, a.chroma_gate),
                "r2_test": r_test,
                "r2_ood": r_ood,
                "study_r2": dict(FIN_R2[name]),
                "data": {
                    "train_corpora": corpora,
                    "split": "sefin_utils.splits.make_splits(manifest, protocol='speaker', seed=0) of "
                    "corpora.discover('data/full')",
                    "train_frames": int(len(x_tr)),
                    "val_frames": int(len(x_va)),
                    "test_frames": int(len(test["power"])),
                    "ood_frames": int(len(ood["power"])),
                    "ood": OOD_NOTE,
                    "frames": "librosa center=False frames (2048 / 512 at 22,050 Hz) sampled per recording, seeded "
                    "(benchmarks/learnt_data.py)",
                    "labels": "features.labels_from_frames (exact per-frame librosa: per-frame tuning, 80 dB floor)",
                    "seed": a.seed,
                },
                "licences": {c: LICENCES.get(c, "see corpus") for c in corpora},
                "params": row["params"],
                "macs_per_frame": macs,
                "training": {
                    **{k: log[k] for k in ("epochs", "seconds")},
                    "val_loss": log["val_loss"],
                    "batch": hp["batch"],
                    "lr": hp["lr"],
                    "optimizer": "Adam, cosine decay",
                    "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared)",
                    "load_avg_1min_start": round(load0[0], 2),
                },
                "chroma": {"banks": a.chroma_banks, "gate": a.chroma_gate} if name == "chroma" else None,
                "load": "import sefin_utils.learnt; keras.models.load_model(path)",
                "notes": MEL_NOTE if name == "mel" else None,
                "warm_start": (
                    f"mel_bank from the learnt mel FIN ({warm_from}; itself trained from random on mel labels, "
                    "no librosa matrix), then all layers trained on MFCC labels"
                    if warm
                    else None
                ),
            }
            fins.save_fin(model, Path(a.out) / f"{name}.keras", card)
        del x_tr, y_tr, x_va, y_va
    total = time.time() - t_all
    _table(results, total, load0)
    if not a.no_save:
        write_json(
            Path(a.out) / "summary.json",
            {
                "results": results,
                "total_minutes": round(total / 60, 2),
                "load_avg_start": load0,
                "load_avg_end": os.getloadavg(),
            },
        )
    return 0


def _fixed_dsp(name: str, gate: str) -> list[str]:
    base = {
        "rms": ["element-wise square", "square root"],
        "zcr": ["soft sign tanh(g x / rms(x) + o) and neighbour products (SoftZeroCrossingRate; 4 learnt scalars)"],
        "mel": ["Hann-windowed real FFT power spectrum"],
        "mfcc": ["Hann-windowed real FFT power spectrum", "power_to_db with the per-frame 80 dB floor, / 100"],
        "chroma": ["Hann-windowed real FFT power spectrum", "square root (magnitude)", "max-normalisation per bank"],
    }[name]
    if name == "chroma" and gate == "tuning":
        base.append(
            "librosa's per-frame tuning estimate (piptrack peaks, median, 100-bin histogram; TuningWeights) "
            "as interpolation weights over the K banks' tunings"
        )
    if name in ("rms", "mfcc"):
        base.append("output de-standardisation with the training targets' mean and std (constants)")
    return base


def _table(results: list[dict], total: float, load0: tuple) -> None:
    print("\nlearnt FINs: R² on unseen speakers (test) and on ESD (ood); study's in brackets")
    print(
        f"{'feature':8} {'test r2':>8} {'test vw':>8} {'ood r2':>8} {'ood vw':>8}  {'study test/ood':>15} "
        f"{'params':>8} {'MACs':>10} {'min':>5}"
    )
    macs = 0
    for r in results:
        s = FIN_R2[r["feature"]]
        st = s["r2_vw_test"] if r["feature"] == "mel" else s["r2_test"]
        so = s["r2_vw_ood"] if r["feature"] == "mel" else s["r2_ood"]
        print(
            f"{r['feature']:8} {r['test']['r2']:8.4f} {r['test']['r2_vw']:8.4f} {r['ood']['r2']:8.4f} "
            f"{r['ood']['r2_vw']:8.4f}  {st:>7} / {so:<6} {r['params']:8,} {r['macs']:10,} {r['train_min']:5.1f}"
        )
        if r["feature"] == "mel":
            print(
                f"{'mel dB':8} {r['test']['r2_db']:8.4f} {r['test']['r2_vw_db']:8.4f} {r['ood']['r2_db']:8.4f} "
                f"{r['ood']['r2_vw_db']:8.4f}"
            )
        macs += r["macs"]
    print(
        f"total: {macs:,} multiply-adds per frame (budget 8,000,000); {total / 60:.1f} min wall for training and "
        f"scoring; load average {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end, {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    raise SystemExit(main())
