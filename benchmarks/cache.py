"""Benchmark: clips per second for building a clip store (clips + copies, summary, per-frame labels).

Usage::

    python benchmarks/cache.py [DATA_ROOT] [--n N] [--workers 1 2] [--seed S]

DATA_ROOT defaults to the shared real sample (``../shared/data/ser-sample`` beside the repo). The recordings are
found with ``corpora.discover``, split with ``splits.make_splits`` (speaker protocol, so train recordings get two
augmented copies each), optionally cut to N recordings (seeded), and a store is built from scratch in a fresh
temporary folder once per worker count. Prints, per worker count, the wall time of each layer, clips per second for
the whole build, and the speed-up over the first worker count. The parent process is warmed up (imports, first
librosa calls) before the first timing; a pool's start-up (forkserver, preloaded imports) is part of its time, as
it is part of a real build. A second build of the same store is timed too (the read-back path).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sefin_utils import augment, cache, corpora, features, splits  # noqa: E402
from sefin_utils.constants import CLIP_SAMPLES  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ser-sample"


def _timed_layers() -> dict[str, float]:
    """Record when each layer's chunks finish by wrapping cache._after_chunk (first and last chunk times)."""
    marks: dict[str, float] = {}
    original = cache._after_chunk

    def hook(layer: str, n_done: int) -> None:
        marks[layer] = time.perf_counter()
        original(layer, n_done)

    cache._after_chunk = hook
    return marks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--n", type=int, default=0, help="use N recordings (0: all)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    found = corpora.discover(args.root, progress=False)
    df = splits.make_splits(found.manifest, seed=args.seed)
    if args.n and args.n < len(df):
        df = df.sample(n=args.n, random_state=args.seed).sort_values("recording_id")
    n_train = int((df["split"] == "train").sum())
    print(f"{len(df)} recordings from {args.root} ({n_train} train -> 2 copies each), {len(found.skipped)} skipped")
    print(
        f"{os.cpu_count()} CPUs; load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(other processes on the machine slow every figure)"
    )

    y = np.random.default_rng(0).standard_normal(CLIP_SAMPLES).astype(np.float32) * 0.1
    augment.stretch_pitch(y), features.frame_labels(y), features.summary_vector(y)  # warm up the parent

    marks = _timed_layers()
    base = None
    print(
        f"{'workers':>7} {'clips':>6} {'clips s':>8} {'summary s':>9} {'labels s':>8} {'total s':>8} "
        f"{'clips/s':>8} {'speed-up':>8} {'reread s':>8}"
    )
    for w in args.workers:
        with tempfile.TemporaryDirectory(prefix="sefin-bench-cache-") as tmp:
            marks.clear()
            t0 = time.perf_counter()
            store = cache.build(df, tmp, params={"seed": args.seed}, workers=w, progress=False)
            total = time.perf_counter() - t0
            t_clips = marks["clips"] - t0
            t_summary = marks["summary"] - marks["clips"]
            t_labels = marks["labels"] - marks["summary"]
            t1 = time.perf_counter()
            cache.build(df, tmp, params={"seed": args.seed}, workers=w, progress=False)
            reread = time.perf_counter() - t1
            rate = len(store) / total
            base = base or rate
            print(
                f"{w:>7} {len(store):>6} {t_clips:>8.1f} {t_summary:>9.1f} {t_labels:>8.1f} {total:>8.1f} "
                f"{rate:>8.2f} {rate / base:>7.2f}x {reread:>8.2f}"
            )
            print(f"        load average after: {os.getloadavg()[0]:.1f}")
            if len(store.skipped):
                print(f"        skipped {len(store.skipped)}: {store.skipped['reason'].head(3).tolist()}")


if __name__ == "__main__":
    main()
