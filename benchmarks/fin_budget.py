"""The study's FIN topologies beside the learnt ones at an equal CPU budget (issue 13): for each of the five features,
both start at random, train on the same frames for the same wall-clock seconds, and are scored on the same frames of
unseen speakers (test) and of ESD.

Usage::

    nice -n 10 python benchmarks/fin_budget.py [--store data/learnt-fins] [--seconds 120] [--train-frames 20000]
        [--eval-frames 2000] [--names rms,zcr,chroma,mfcc,mel] [--seed 0] [--out benchmarks/results/fin_budget.json]

Data: the frame store of ``benchmarks/learnt_data.py`` (full corpora split by speaker with
``splits.make_splits(protocol="speaker", seed=0)``; ESD never trained on). Per feature, one seeded subset of
``--train-frames`` train frames is the training set of both models, and one seeded subset of ``--eval-frames`` test
frames and of ``--eval-frames`` ESD frames scores both (the study's stride-1 convolutions cost 200-400 million
multiply-adds per frame, so scoring all frames would take longer than training).

Protocol (the same for both families, per feature):

- the study's topology: ``fins.build_fin(name, arch="study", target_stats=...)`` (the published layers and parameter
  counts, ending in the fixed inverse of the feature's standardised training space, as sefin's other families
  do), raw frames in, batch 64, Adam from ``lr`` 1e-3;
- the learnt topology: ``learnt.train_head`` on the fixed FFT front end (the power spectra are computed from the raw
  frames inside the budget; chroma's tuning gate too), each FIN's batch and ``lr`` of ``benchmarks/learnt_fins.py``
  (``HPARAMS``), random start (MFCC not warm-started from mel);
- the same loss (``learnt.loss_for``: MSE in a standardised space; for mel in log space plus a power term), the
  learning rate decaying on a cosine over the wall-clock budget (``learnt.WallClockCosine``), training stopped at the
  first batch past ``--seconds``, final weights scored (no validation, no early stopping).

Printed per model: R² on the test and ESD frames (uniform; variance-weighted; mel also in dB), frames seen, epochs
(frames seen / training frames), parameters, multiply-adds per frame, seconds, and the machine's load average at the
start and end of its budget (the machine is shared: read the seconds as an equal share of a loaded machine, not as
the speed of an idle one).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import keras  # noqa: E402
from learnt_data import power_spectrum  # noqa: E402
from learnt_fins import HPARAMS, load_split, predict, subset  # noqa: E402

from sefin_utils import experiments, fins, learnt  # noqa: E402
from sefin_utils.io import write_json  # noqa: E402
from sefin_utils.study import FIN_R2  # noqa: E402

STUDY_BATCH: int = 64
STUDY_LR: float = 1e-3


def train_study(name: str, x: np.ndarray, y: np.ndarray, seconds: float, seed: int) -> tuple[keras.Model, dict]:
    """The study's topology from random, trained on raw frames ``x`` for ``seconds`` of wall clock."""
    t0 = time.time()
    keras.utils.set_random_seed(seed)
    stats = fins.TargetStats.fit(name, y)
    model = fins.build_fin(name, arch="study", target_stats=stats, seed=seed)
    clock = learnt.WallClockCosine(STUDY_LR, seconds, t0, n=len(y), batch_size=STUDY_BATCH)
    model.compile(optimizer=keras.optimizers.Adam(STUDY_LR), loss=learnt.loss_for(name, y))
    hist = model.fit(x, y, epochs=100_000, batch_size=STUDY_BATCH, shuffle=True, callbacks=[clock], verbose=0)
    return model, {"seconds": time.time() - t0, "frames_seen": clock.frames, "loss": hist.history["loss"][-1]}


def train_learnt(name: str, x: np.ndarray, y: np.ndarray, seconds: float, seed: int) -> tuple[keras.Model, dict]:
    """The learnt topology from random; its fixed front end is computed from the raw frames inside the budget."""
    t0 = time.time()
    hp = HPARAMS[name]
    front = power_spectrum(x) if learnt.FRONT_ENDS[name] == "power" else x
    left = seconds - (time.time() - t0)
    head, log = learnt.train_head(
        name, front, y, None, None, seed=seed, epochs=100_000, batch_size=hp["batch"], lr=hp["lr"],
        budget_seconds=left, verbose=0,
    )  # fmt: skip
    model = learnt.build_learnt_fin(name, head)
    return model, {"seconds": time.time() - t0, "frames_seen": log["frames_seen"], "loss": log["loss"][-1]}


def score(model: keras.Model, data: dict[str, np.ndarray], name: str) -> dict[str, float]:
    pred = predict(model, data["frames"], batch=512)
    return experiments.evaluate_fin(np.asarray(data[name]), pred, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default=str(ROOT / "data" / "learnt-fins"))
    ap.add_argument("--names", default="rms,zcr,chroma,mfcc,mel")
    ap.add_argument("--seconds", type=float, default=120.0, help="wall-clock budget per model per feature")
    ap.add_argument("--train-frames", type=int, default=20_000)
    ap.add_argument("--eval-frames", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fin_budget.json"))
    a = ap.parse_args(argv)
    store = Path(a.store)
    train, test, ood = load_split(store, "train"), load_split(store, "test"), load_split(store, "ood")
    tr = subset(len(train["frames"]), a.train_frames, a.seed)
    ev = {"test": subset(len(test["frames"]), a.eval_frames, a.seed + 2)}
    ev["ood"] = subset(len(ood["frames"]), a.eval_frames, a.seed + 2)
    evals = {
        s: {k: np.asarray(v[ev[s]]) for k, v in d.items() if k != "power"} for s, d in (("test", test), ("ood", ood))
    }
    x_tr = np.asarray(train["frames"][tr])
    print(
        f"FIN topologies at an equal CPU budget: {a.seconds:.0f} s of wall clock per model per feature, "
        f"{platform.machine()} with {os.cpu_count()} CPU cores shared with other jobs (nice -n 10 recommended); "
        f"{len(tr):,} training frames (seeded subset of {len(train['frames']):,} train-speaker frames), scored on "
        f"{a.eval_frames:,} test frames (speakers never trained on) and {a.eval_frames:,} ESD frames; seed {a.seed}",
        flush=True,
    )
    rows = []
    for name in a.names.split(","):
        y_tr = np.asarray(train[name][tr])
        for family, fit in (("study", train_study), ("learnt", train_learnt)):
            load0 = os.getloadavg()[0]
            print(f"== {name} / {family}: training {a.seconds:.0f} s, load {load0:.1f}", flush=True)
            model, log = fit(name, x_tr, y_tr, a.seconds, a.seed)
            load1 = os.getloadavg()[0]
            scores = {s: score(model, evals[s], name) for s in ("test", "ood")}
            row = {
                "feature": name,
                "family": family,
                "params": int(model.count_params()),
                "macs": fins.count_macs(model),
                "seconds": round(log["seconds"], 1),
                "frames_seen": int(log["frames_seen"]),
                "epochs": round(log["frames_seen"] / len(tr), 2),
                "final_loss": float(log["loss"]),
                "load_start": round(load0, 2),
                "load_end": round(load1, 2),
                **{f"{k}_{s}": round(float(v), 5) for s, sc in scores.items() for k, v in sc.items()},
            }
            rows.append(row)
            print(f"   {row}", flush=True)
            keras.backend.clear_session()
    _table(rows, a)
    write_json(
        Path(a.out),
        {
            "protocol": {
                "seconds_per_model": a.seconds,
                "train_frames": len(tr),
                "eval_frames": a.eval_frames,
                "seed": a.seed,
                "store": "benchmarks/learnt_data.py (full corpora, speaker split seed 0; ESD never trained on)",
                "study": f"fins.build_fin(arch='study'), batch {STUDY_BATCH}, Adam lr {STUDY_LR}",
                "learnt": "learnt.train_head, HPARAMS of benchmarks/learnt_fins.py, random start",
                "schedule": "cosine over the wall-clock budget (learnt.WallClockCosine), final weights",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs",
            },
            "results": rows,
        },
    )
    return 0


def _table(rows: list[dict], a: argparse.Namespace) -> None:
    print(
        f"\nR² at an equal budget of {a.seconds:.0f} s per model per feature (test = unseen speakers, ESD = out of "
        "domain; mel: variance-weighted, then dB); study's published R² in the last column"
    )
    head = (
        f"{'feature':7} {'family':7} {'test':>7} {'ESD':>7} {'frames':>9} {'epochs':>7} {'params':>8} "
        f"{'MACs/frame':>12} {'s':>5} {'load':>9}  published"
    )
    print(head)
    for r in rows:
        s = FIN_R2[r["feature"]]
        mel = r["feature"] == "mel"
        pub = f"{s['r2_vw_test']} / {s['r2_vw_ood']}" if mel else f"{s['r2_test']} / {s['r2_ood']}"
        key = "r2_vw" if mel else "r2"
        print(
            f"{r['feature']:7} {r['family']:7} {r[key + '_test']:7.4f} {r[key + '_ood']:7.4f} {r['frames_seen']:9,} "
            f"{r['epochs']:7.2f} {r['params']:8,} {r['macs']:12,} {r['seconds']:5.0f} "
            f"{r['load_start']:4.1f}-{r['load_end']:<4.1f}  {pub if r['family'] == 'study' else ''}"
        )
        if mel:
            print(f"{'mel dB':7} {r['family']:7} {r['r2_db_test']:7.4f} {r['r2_db_ood']:7.4f}")
    for family in ("study", "learnt"):
        macs = sum(r["macs"] for r in rows if r["family"] == family)
        print(f"{family}: {macs:,} multiply-adds per frame for the {len(rows) // 2} together")


if __name__ == "__main__":
    raise SystemExit(main())
