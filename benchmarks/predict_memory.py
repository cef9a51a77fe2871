"""Peak memory of ``predict`` on a long recording against a short one (issue 11, kind 9).

Writes a generated speech-like recording of ``--short`` seconds and one of ``--long`` seconds (default 4 s and 30 min,
44.1 kHz mono 16-bit WAV) into a temporary folder, saves a tiny summary-kind bundle, then classifies each file in a
fresh Python process (``EmotionClassifier.classify_file``: the file is read in blocks and scored ``batch_size``
windows at a time) and prints each process's peak resident memory (``ru_maxrss``) and the difference. The target:
the long file costs at most 250 MB more than the short one (memory bounded by the batch, not by the file).

Usage: ``python benchmarks/predict_memory.py [--long 1800] [--short 4] [--rate 44100] [--channels 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LIMIT_MB = 250.0

CHILD = """
import json, resource, sys, time
from sefin_utils.inference import EmotionClassifier
clf = EmotionClassifier.from_bundle(sys.argv[1])
t = time.perf_counter()
p = clf.classify_file(sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "windows": len(p.windows), "emotion": p.emotion,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_speechlike(path: Path, seconds: float, rate: int, channels: int, *, block_s: float = 60.0) -> None:
    """A voiced, amplitude-modulated harmonic signal with noise, written block by block (never whole in memory)."""
    rng = np.random.default_rng(0)
    n_total = int(round(seconds * rate))
    with sf.SoundFile(path, "w", rate, channels, subtype="PCM_16") as fh:
        done, phase = 0, 0.0
        while done < n_total:
            n = min(int(block_s * rate), n_total - done)
            t = (done + np.arange(n)) / rate
            f0 = 140 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
            ph = phase + 2 * np.pi * np.cumsum(f0) / rate
            phase = float(ph[-1])
            y = sum(np.sin(k * ph) / k for k in range(1, 25))
            y = y * (0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t)) + 0.05 * rng.standard_normal(n)
            y = (0.3 * y / 3.0).astype(np.float32)
            fh.write(np.repeat(y[:, None], channels, axis=1) if channels > 1 else y)
            done += n


def make_bundle(out: Path) -> Path:
    """A Normalization + Dense softmax model over the 162-dim summary vector (weights from a fixed seed)."""
    import keras

    from sefin_utils.constants import class_names
    from sefin_utils.inference import save_bundle

    classes = class_names("class")
    rng = np.random.default_rng(0)
    inp = keras.Input((162,), name="summary")
    norm = keras.layers.Normalization(mean=np.zeros(162), variance=np.full(162, 100.0), name="summary_norm")
    dense = keras.layers.Dense(len(classes), activation="softmax", name="probs")
    model = keras.Model({"summary": inp}, dense(norm(inp)), name="bench_baseline")
    w, b = dense.get_weights()
    dense.set_weights([0.3 * rng.standard_normal(w.shape).astype("float32"), b])
    return save_bundle(out, classifier=model, kind="summary", classes=classes)


def measure(bundle: Path, path: Path) -> dict[str, float]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(path)], capture_output=True, text=True,
                         cwd=REPO, env=env, check=True)  # fmt: skip
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=float, default=1800.0, help="seconds of the long file (default 30 min)")
    parser.add_argument("--short", type=float, default=4.0, help="seconds of the short file")
    parser.add_argument("--rate", type=int, default=44_100, help="sample rate of the files")
    parser.add_argument("--channels", type=int, default=1, help="channels of the files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sefin-bench-") as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        short, long_ = tmp_path / "short.wav", tmp_path / "long.wav"
        write_speechlike(short, args.short, args.rate, args.channels)
        write_speechlike(long_, args.long, args.rate, args.channels)
        bundle = make_bundle(tmp_path / "model")
        print(f"files: {args.short:g} s and {args.long:g} s, {args.rate} Hz, {args.channels} ch, 16-bit WAV "
              f"({long_.stat().st_size / 1e6:.0f} MB); written in {time.perf_counter() - t:.0f} s")  # fmt: skip
        a = measure(bundle, short)
        b = measure(bundle, long_)
    for label, r in (("short", a), ("long", b)):
        print(f"{label:>5}: peak RSS {r['maxrss_mb']:7.0f} MB, {r['windows']:5d} windows, {r['seconds']:6.1f} s")
    diff = b["maxrss_mb"] - a["maxrss_mb"]
    verdict = "within" if diff <= LIMIT_MB else "OVER"
    print(f"long - short: {diff:.0f} MB ({verdict} the {LIMIT_MB:.0f} MB target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
