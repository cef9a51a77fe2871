"""Benchmark: training speed of the emotion classifiers, the direct path ("today") beside the cached paths (issue 14).

Usage::

    python benchmarks/ser.py [--n-train 256] [--n-val 64] [--epochs 3] [--batch-size 32] [--heads kaggle study]
                             [--fins fast|learnt] [--skip-old] [--study-fins] [--study-n 16]

Data: ``--n-train`` random 2.5 s clips (55,125 samples, float32, scaled like speech) with full frame masks, random
per-frame "librosa" labels and summary vectors; ``--n-val`` more for validation; held as a stand-in ClipStore whose
feature caches (``featcache``) are written to a temporary folder and read back memory-mapped, as in a run. Nothing is
learnt: the point is the time per epoch. FINs: the ``fast`` family (``fins.build_fin``) or the shipped ``learnt``
ones (``models/fins``).

For each head, one run measures, in this order: the baseline (162-dim vector -> head); the direct path of today
(the end-to-end model on the clip: frozen, fine-tuned, random-init FINs, one frozen ablation mix); the cached paths
that ``experiments.run_experiments`` now takes: frozen FINs and the frozen ablation train the same head on the FINs'
cached pooled outputs (``featcache.fin_outputs``); fine-tuned and random-init FINs train from the cached power
spectra (``featcache.spectra``, ``featcache.build_cached_end_to_end``); the stats-pooling variant on cached per-frame
FIN outputs. "s/epoch" is the median of the epochs after the first (which traces the graph); clips/s is n_train over
it; ratios are against the baseline with the same head, measured in the same run. One-off cache builds are timed
apart (seconds per 1,000 clips).

Multiply-adds per clip (``fins.count_macs`` of each part, batch of one): the fine-tuned cached path runs the FINs'
layers after the power spectrum on every frame (per clip for the linear mel bank, see ``featcache.LINEAR_LAYERS``),
the raw-frame FINs on every frame, and the head once. Training costs about 3 times the forward multiply-adds (forward,
backward to activations, backward to weights), 2 FLOP each: implied FLOP/s = 6 x MACs x clips/s.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sefin_utils import classifiers, featcache, training  # noqa: E402
from sefin_utils.constants import CLIP_SAMPLES, N_FRAMES  # noqa: E402


def synthetic_store(n_train: int, n_val: int, rng: np.random.Generator) -> SimpleNamespace:
    """A stand-in ClipStore of random arrays: rows [0, n_train) train, the rest val."""
    n = n_train + n_val
    index = pd.DataFrame({"split": ["train"] * n_train + ["val"] * n_val, "clip_id": np.arange(n)})
    return SimpleNamespace(
        index=index,
        clips=(rng.standard_normal((n, CLIP_SAMPLES)) * 0.1).astype("float32"),
        mask=np.ones((n, N_FRAMES), dtype=bool),
        summary=rng.standard_normal((n, classifiers.N_SUMMARY)).astype("float32"),
        labels={k: rng.random((n, N_FRAMES, d)).astype("float32") for k, d in classifiers.FEATURE_DIMS.items()},
    )


def time_fit(model, train, val, y_tr, y_va, args) -> dict[str, float]:  # noqa: ANN001
    fit = training.train_classifier(
        model,
        train,
        y_tr,
        val,
        y_va,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-4,
        seed=0,
        patience=args.epochs + 1,
        progress=False,
    )
    return {"first": fit["first_epoch_s"], "epoch": fit["s_per_epoch"], "params": model.count_params()}


def cached_macs(model, wrappers: dict, n_frames: int) -> dict[str, int]:  # noqa: ANN001
    """Multiply-adds per clip of a ``build_cached_end_to_end`` model: per FIN (per frame x frames, or once for a
    linear FIN on ``power_mean``) and the head (everything else, once)."""
    from sefin_utils.fins import count_macs

    out: dict[str, int] = {}
    for name in wrappers:
        for layer in model.layers:
            if layer.name == f"fin_{name}":  # a raw-frame FIN, run on every frame
                out[name] = count_macs(layer) * n_frames
            elif layer.name == f"fin_{name}_on_power":  # after the cached spectrum: per frame, or once if linear
                linear = featcache.fin_front(wrappers[name]) == "linear"
                out[name] = count_macs(layer) * (1 if linear else n_frames)
    out["head"] = count_macs(model)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--heads", nargs="+", default=["kaggle", "study"], choices=list(classifiers.HEADS))
    ap.add_argument("--fins", default="fast", choices=["fast", "learnt"])
    ap.add_argument("--skip-old", action="store_true", help="do not time today's direct path")
    ap.add_argument("--study-fins", action="store_true", help="also time the study-architecture FINs (slow)")
    ap.add_argument("--study-n", type=int, default=16, help="clips for the study-FIN model")
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from sefin_utils import fins as fin_module

    rng = np.random.default_rng(0)
    store = synthetic_store(args.n_train, args.n_val, rng)
    tr, va = np.arange(args.n_train), np.arange(args.n_train, args.n_train + args.n_val)
    y_tr, y_va = rng.integers(0, 8, args.n_train), rng.integers(0, 8, args.n_val)
    mean, var = np.zeros(classifiers.N_SUMMARY, "float32"), np.ones(classifiers.N_SUMMARY, "float32")
    if args.fins == "fast":
        fins = {n: fin_module.build_fin(n, arch="fast") for n in classifiers.FEATURE_NAMES}
    else:
        fins = fin_module.load_learnt_fins()
    devices = [d.device_type for d in tf.config.list_physical_devices()]
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, devices {devices}; "
        f"keras {keras.__version__}, tensorflow {tf.__version__}; load average at start {load[0]:.1f}"
    )
    print(
        f"data: {args.n_train} train + {args.n_val} val synthetic clips of {CLIP_SAMPLES} samples, "
        f"batch {args.batch_size}, {args.epochs} epochs per model, {args.fins} FINs\n"
    )
    root = Path(tempfile.mkdtemp(prefix="sefin-bench-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # the caches are scratch: removed however the run ends
    t0 = time.perf_counter()
    tunings = featcache.tuning_layers(fins)
    featcache.spectra(store, tunings, root=root)
    t_spec = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = {n: featcache.fin_outputs(store, n, f, root=root, spectra_of=tunings) for n, f in fins.items()}
    t_fin = time.perf_counter() - t0
    n_all = len(store.index)
    print(
        f"one-off caches (as a run builds them): power spectra and tuning {1000 * t_spec / n_all:.1f} s per 1,000 "
        f"clips, then the frozen FINs' outputs (spectral FINs from those spectra) {1000 * t_fin / n_all:.1f} s per "
        f"1,000 clips (written to {root}, read back memory-mapped, removed at exit)\n"
    )

    def pooled(sources: dict) -> dict[str, np.ndarray]:
        parts = {("fin", n): np.asarray(v["pooled"]) for n, v in outs.items()}
        lab = classifiers.pooled_label_parts(store, np.arange(n_all))
        parts.update({("librosa", n): v for n, v in lab.items()})
        return {"summary": classifiers.assemble_pooled(parts, sources)}

    print(f"{'model':<52}{'params':>12}{'1st epoch s':>13}{'s/epoch':>10}{'clips/s':>10}{'x baseline':>12}")
    abl = classifiers.ABLATION["F-L-F-L-F"]
    for head in args.heads:
        rows: list[tuple[str, dict[str, float]]] = []

        def run(label: str, model, inputs: dict, rows: list = rows) -> None:  # noqa: ANN001
            train = {k: training.RowView(v, tr) for k, v in inputs.items()}
            val = {k: training.RowView(v, va) for k, v in inputs.items()}
            rows.append((label, time_fit(model, train, val, y_tr, y_va, args)))
            keras.backend.clear_session(free_memory=True)

        base_in = {"summary": store.summary}
        run(f"baseline_{head}", classifiers.build_baseline(head, 8, norm_mean=mean, norm_var=var), base_in)
        variants = {
            "e2e_frozen": (classifiers.ALL_FIN, "pretrained", False),
            "e2e_finetuned": (classifiers.ALL_FIN, "pretrained", True),
            "e2e_random": (classifiers.ALL_FIN, "random", True),
            "ablation_F-L-F-L-F (frozen)": (abl, "pretrained", False),
        }
        if not args.skip_old:
            for name, (sources, init, trainable) in variants.items():
                model = classifiers.build_end_to_end(
                    fins=fins,
                    sources=sources,
                    fin_trainable=trainable,
                    fin_init=init,
                    head=head,
                    n_classes=8,
                    norm_mean=mean,
                    norm_var=var,
                )
                x = classifiers.make_inputs(store, np.arange(n_all), sources, clip_mode="clip")
                run(f"today: {name}", model, x)
        for name, (sources, init, trainable) in variants.items():
            if not trainable:  # the head alone on the frozen FINs' cached pooled outputs (run_experiments' shortcut)
                model = classifiers.build_baseline(head, 8, norm_mean=mean, norm_var=var)
                run(f"cached: {name}", model, pooled(sources))
                continue
            model, wrappers = featcache.build_cached_end_to_end(
                fins=fins,
                sources=sources,
                fin_trainable=True,
                fin_init=init,
                head=head,
                n_classes=8,
                norm_mean=mean,
                norm_var=var,
            )
            if name == "e2e_finetuned":
                macs = cached_macs(model, wrappers, N_FRAMES)
            x = featcache.cached_inputs(store, np.arange(n_all), list(model.input), fins, root=root)
            run(f"cached: {name}", model, {k: getattr(v, "array", v) for k, v in x.items()})
        frames = np.concatenate([np.asarray(outs[n]["frames"]) for n in classifiers.KAGGLE.order], axis=-1)
        model = classifiers.build_frame_classifier(
            dim=frames.shape[-1],
            pooling="stats",
            head=head,
            n_classes=8,
            norm_mean=np.zeros(2 * frames.shape[-1]),
            norm_var=np.ones(2 * frames.shape[-1]),
        )
        run("cached: e2e_frozen_stats", model, {"per_frame": frames, "mask": store.mask})
        ref = rows[0][1]["epoch"]
        for name, r in rows:
            print(
                f"{name + f' [{head}]':<52}{r['params']:>12,}{r['first']:>13.2f}{r['epoch']:>10.2f}"
                f"{args.n_train / r['epoch']:>10.1f}{r['epoch'] / ref:>12.2f}"
            )
        by = dict(rows)
        speed = args.n_train / by["cached: e2e_finetuned"]["epoch"]
        total = sum(macs.values())
        parts = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in macs.items())
        print(
            f"  fine-tuned cached path: {total / 1e6:.1f} M multiply-adds per clip forward ({parts}); training "
            f"~{6 * total / 1e9:.2f} GFLOP per clip; at {speed:.0f} clips/s that is {6 * total * speed / 1e9:.1f} "
            f"GFLOP/s; the head alone ({macs['head'] / 1e6:.1f} M) caps it at the baseline's speed"
        )
        if not args.skip_old:
            old = args.n_train / by["today: e2e_finetuned"]["epoch"]
            print(f"  fine-tuned: {old:.1f} -> {speed:.1f} clips/s ({speed / old:.1f}x)\n")
    print(f"load average at the end {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    if args.study_fins:
        try:
            study = {n: fin_module.build_fin(n, arch="study") for n in classifiers.FEATURE_NAMES}
        except (ValueError, NotImplementedError) as err:
            print(f"\nstudy FINs unavailable: {err}")
            return
        n = args.study_n
        model = classifiers.build_end_to_end(
            fins=study,
            sources=classifiers.ALL_FIN,
            fin_trainable=False,
            head=args.heads[0],
            n_classes=8,
            norm_mean=mean,
            norm_var=var,
        )
        x = classifiers.make_inputs(store, np.arange(n), classifiers.ALL_FIN, clip_mode="clip")
        xv = classifiers.make_inputs(store, np.arange(n, n + max(2, n // 4)), classifiers.ALL_FIN, clip_mode="clip")
        r = time_fit(model, x, xv, y_tr[:n], y_va[: len(xv["mask"])], args)
        print(
            f"\ne2e_frozen [{args.heads[0]}, study FINs] on {n} clips: {r['params']:,} params, first epoch "
            f"{r['first']:.1f} s, {r['epoch']:.1f} s/epoch = {n / r['epoch']:.2f} clips/s"
        )


if __name__ == "__main__":
    main()
