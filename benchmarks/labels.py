"""Benchmark: per-frame librosa loop (the study's labels) vs sefin's vectorised ``frame_labels``, on real files.

Usage::

    python benchmarks/labels.py [DATA_ROOT] [--n N] [--seed S] [--tuning per_frame|0.0] [--tail-frames]

DATA_ROOT defaults to the shared real sample (``../shared/data/ser-sample`` beside the repo). N files are drawn from
its ``manifest.csv`` (or, without a manifest, from its ``*.wav`` files) with a seeded RNG, loaded the study's way
(22,050 Hz, offset 0.6 s, 2.5 s, zero-padded to 55,125 samples), and labelled both ways on the same frames in the same
run. Prints per feature: max absolute error, error / feature range (range of the loop's values over all files), loop
time, sefin time and the speed ratio, then the five together and clips per second of the label stage, on one core.
Times are CPU seconds of this process (``time.process_time``, one thread), so that other load on a shared machine
does not skew the ratios; the label stage is also timed by the wall clock.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: set before numpy/scipy/numba are imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import librosa  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sefin_utils import features  # noqa: E402
from sefin_utils.constants import CLIP_SAMPLES, DURATION_S, OFFSET_S, SR  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ser-sample"


def _list_files(root: Path) -> list[Path]:
    manifest = root / "manifest.csv"
    if manifest.is_file():
        import csv

        with manifest.open(newline="") as fh:
            return [root / row["path"] for row in csv.DictReader(fh)]
    files = sorted(root.rglob("*.wav"))
    if not files:
        raise SystemExit(f"no manifest.csv and no .wav files under {root}")
    return files


def _load(path: Path) -> np.ndarray:
    try:
        from sefin_utils import audio  # the project's loader, once it exists

        return audio.load_clip(path).samples
    except (ImportError, AttributeError):  # audio.py not there yet
        y, _ = librosa.load(path, sr=SR, offset=OFFSET_S, duration=DURATION_S)
        return np.pad(y, (0, max(0, CLIP_SAMPLES - y.shape[0])))[:CLIP_SAMPLES].astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", nargs="?", type=Path, default=DEFAULT_ROOT, help="folder of audio files")
    parser.add_argument("--n", type=int, default=40, help="number of files (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file draw")
    parser.add_argument("--tuning", default="per_frame", help="chroma tuning: per_frame (default) or a float")
    parser.add_argument("--tail-frames", action="store_true", help="also label the four re-anchored tail frames")
    args = parser.parse_args(argv)
    tuning: str | float = args.tuning if args.tuning == "per_frame" else float(args.tuning)

    root = args.data_root.resolve()
    if not root.is_dir():
        raise SystemExit(f"DATA_ROOT {root} is not a folder")
    files = _list_files(root)
    rng = np.random.default_rng(args.seed)
    picked = [files[i] for i in sorted(rng.choice(len(files), size=min(args.n, len(files)), replace=False))]
    warnings.simplefilter("ignore")  # librosa warns on frames without pitch; both sides handle it the same way

    clips = [_load(p) for p in tqdm(picked, desc="load", unit="file")]
    # warm up both sides (numba compilation, filterbanks) outside the timings
    features.reference_frame_labels(clips[0][: features.FRAME_LENGTH * 2])
    features.frame_labels(clips[0])

    names = features.FEATURE_NAMES
    t_loop = dict.fromkeys(names, 0.0)
    t_sefin = dict.fromkeys(names, 0.0)
    t_loop_all = t_sefin_all = 0.0
    err = dict.fromkeys(names, 0.0)
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    n_frames = 0
    for y in tqdm(clips, desc="label", unit="clip"):
        for n in names:
            t = time.process_time()
            ref = features.reference_frame_labels(y, names=[n], tail_frames=args.tail_frames)[n]
            t_loop[n] += time.process_time() - t
            t = time.process_time()
            fast = features.frame_labels(y, names=[n], tuning=tuning, tail_frames=args.tail_frames)[n]
            t_sefin[n] += time.process_time() - t
            err[n] = max(err[n], float(np.max(np.abs(ref.astype(np.float64) - fast))))
            lo[n], hi[n] = min(lo[n], float(ref.min())), max(hi[n], float(ref.max()))
        t = time.process_time()
        features.reference_frame_labels(y, tail_frames=args.tail_frames)
        t_loop_all += time.process_time() - t
        t = time.process_time()
        labels = features.frame_labels(y, tuning=tuning, tail_frames=args.tail_frames)
        t_sefin_all += time.process_time() - t
        n_frames += labels["rms"].shape[0]

    n = len(clips)
    print(f"\n{n} files from {root} ({n_frames} frames, {n_frames / n:.0f} per clip), tuning={tuning!r}, one core")
    print(f"{'feature':8} {'max abs err':>12} {'err/range':>10} {'loop s':>8} {'sefin s':>8} {'loop/sefin':>10}")
    worst = 0.0
    for name in names:
        rel = err[name] / (hi[name] - lo[name]) if hi[name] > lo[name] else err[name]
        worst = max(worst, rel)
        print(
            f"{name:8} {err[name]:12.3e} {rel:10.2e} {t_loop[name]:8.2f} {t_sefin[name]:8.3f} "
            f"{t_loop[name] / t_sefin[name]:9.1f}x"
        )
    print(f"{'all five':8} {'':12} {worst:10.2e} {t_loop_all:8.2f} {t_sefin_all:8.3f} {t_loop_all / t_sefin_all:9.1f}x")
    print(f"label stage, all five features: sefin {n / t_sefin_all:.1f} clips/s, loop {n / t_loop_all:.2f} clips/s")
    wall = time.perf_counter()
    for y in clips:
        features.frame_labels(y, tuning=tuning, tail_frames=args.tail_frames)
    wall = time.perf_counter() - wall
    print(f"label stage, wall clock (the machine may be shared): {n / wall:.1f} clips/s")
    summary_t = time.process_time()
    for y in clips:
        features.summary_vector(y)
    summary_t = time.process_time() - summary_t
    print(f"summary_vector (162-dim, whole clip): {n / summary_t:.1f} clips/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
