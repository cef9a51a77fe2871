"""Frame store for the learnt FINs: frames of the full corpora (speaker split) and of ESD, their fixed front end and
exact labels, written once to ``.npy`` memmaps so that training epochs only read arrays.

Usage::

    nice -n 10 python benchmarks/learnt_data.py [--data-root data/full] [--out data/learnt-fins]
                                               [--per-rec train=40,val=16,test=32,ood=64] [--seed 0] [--workers 2]

Data: ``corpora.discover(data_root)`` split with ``splits.make_splits(protocol="speaker", seed)``; ESD (out of domain,
never trained on) is ``../shared/data/esd-0020`` plus the ESD files of ``../shared/data/ser-sample``. Every recording
is loaded whole at 22,050 Hz (``audio.load``), framed as librosa ``center=False`` (2048 / 512), and up to
``per_rec[split]`` frames are drawn without replacement (seeded by ``seed`` and the recording id). Written per split:

- ``frames.npy`` (n, 2048) float32 raw frames; ``power.npy`` (n, 1025) float32 ``|rfft(hann * frame)|**2`` (the fixed
  front end, the same formula as ``fins.PowerSpectrum``, computed in float64);
- ``<feature>.npy`` labels from ``features.labels_from_frames`` (per-frame tuning, per-frame 80 dB floor);
- ``rows.csv`` (recording_id, corpus, speaker_key, frame) and ``meta.json`` (counts, seconds, arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sefin_utils import audio, corpora, features, splits  # noqa: E402
from sefin_utils.constants import FRAME_LENGTH  # noqa: E402
from sefin_utils.io import write_csv, write_json  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"  # ../shared/data beside the repository (ESD 0020, the real sample)
NAMES = features.FEATURE_NAMES
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FRAME_LENGTH) / FRAME_LENGTH)


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """``|rfft(hann * frame)|**2`` per row (float64 FFT, float32 result); (n, 2048) -> (n, 1025)."""
    spec = np.fft.rfft(frames.astype(np.float64) * _WINDOW, axis=-1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def _one(job: tuple[str, str, int, int]) -> tuple[str, np.ndarray, np.ndarray, dict[str, np.ndarray]] | str:
    rid, path, k, seed = job
    try:
        y = audio.load(path)
    except audio.AudioError as err:
        return f"{rid}: {err}"
    frames = features.frame(y)
    n = frames.shape[0]
    rng = np.random.default_rng([seed, zlib.crc32(rid.encode())])
    idx = np.sort(rng.choice(n, size=min(k, n), replace=False))
    fr = np.ascontiguousarray(frames[idx])
    return rid, idx, fr, features.labels_from_frames(fr)


def build_split(name: str, df: pd.DataFrame, k: int, out: Path, seed: int, workers: int) -> dict:
    """Write one split's store under ``out/name``; returns its meta."""
    t0 = time.time()
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    cap = int(len(df)) * k
    mm = {
        "frames": np.lib.format.open_memmap(d / "frames.npy", "w+", np.float32, (cap, FRAME_LENGTH)),
        "power": np.lib.format.open_memmap(d / "power.npy", "w+", np.float32, (cap, FRAME_LENGTH // 2 + 1)),
    }
    for f in NAMES:
        mm[f] = np.lib.format.open_memmap(d / f"{f}.npy", "w+", np.float32, (cap, features.FEATURES[f].dim))
    jobs = [(r.recording_id, r.path, k, seed) for r in df.itertuples()]
    info = df.set_index("recording_id")
    rows, skipped, pos = [], [], 0
    with Pool(workers, initializer=features.warm_up) as pool:
        for i, res in enumerate(pool.imap(_one, jobs, chunksize=8)):
            if isinstance(res, str):
                skipped.append(res)
                continue
            rid, idx, fr, lab = res
            m = len(idx)
            mm["frames"][pos : pos + m] = fr
            mm["power"][pos : pos + m] = power_spectrum(fr)
            for f in NAMES:
                mm[f][pos : pos + m] = lab[f]
            rows += [(rid, info.at[rid, "corpus"], info.at[rid, "speaker_key"], int(j)) for j in idx]
            pos += m
            if i % 500 == 0:
                print(f"  {name}: {i}/{len(jobs)} recordings, {pos} frames, {time.time() - t0:.0f} s", flush=True)
    for a in mm.values():
        a.flush()
    del mm
    write_csv(pd.DataFrame(rows, columns=["recording_id", "corpus", "speaker_key", "frame"]), d / "rows.csv")
    meta = {
        "split": name,
        "n": pos,
        "cap": cap,
        "recordings": int(len(df) - len(skipped)),
        "per_recording": k,
        "skipped": skipped,
        "seconds": round(time.time() - t0, 1),
    }
    write_json(d / "meta.json", meta)
    print(f"{name}: {pos} frames from {meta['recordings']} recordings in {meta['seconds']} s", flush=True)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(ROOT / "data" / "full"))
    ap.add_argument("--out", default=str(ROOT / "data" / "learnt-fins"))
    ap.add_argument("--per-rec", default="train=40,val=16,test=32,ood=64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--splits", default="val,test,ood,train")
    a = ap.parse_args(argv)
    per = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in a.per_rec.split(",")}
    out = Path(a.out)
    man = splits.make_splits(corpora.discover(a.data_root, progress=False).manifest, protocol="speaker", seed=a.seed)
    man = man[man["split"] != "ood"]
    esd = pd.concat(
        [
            corpora.discover(SHARED / "esd-0020", progress=False).manifest,
            corpora.discover(SHARED / "ser-sample", progress=False).manifest,
        ]
    )
    esd = esd[esd["corpus"] == "ESD"].drop_duplicates("recording_id").sort_values("recording_id")
    esd = esd.assign(split="ood")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(pd.concat([man, esd])[["recording_id", "corpus", "speaker_key", "split", "path"]], out / "split.csv")
    for name in a.splits.split(","):
        df = esd if name == "ood" else man[man["split"] == name]
        build_split(name, df.reset_index(drop=True), per[name], out, a.seed, a.workers)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
