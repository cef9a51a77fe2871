"""Benchmark: training time per epoch of the emotion classifiers on this machine (synthetic arrays).

Usage::

    python benchmarks/ser.py [--n-train 256] [--n-val 64] [--epochs 3] [--batch-size 32] [--heads kaggle study]
                             [--study-fins] [--study-n 16]

Data: ``--n-train`` random 2.5 s clips (55,125 samples, float32, scaled like speech) with full frame masks,
random per-frame "librosa" labels and random summary vectors; ``--n-val`` more for validation. Nothing is learnt:
the point is the time per epoch. Models: the baseline (summary vector -> head) and the end-to-end models with the
five ``fast`` FINs from ``fins.build_fin`` (frozen, fine-tuned, random init) and one ablation mix, for each head.
The first epoch (graph tracing/compilation) is reported apart; "s/epoch" is the median of the later epochs.
Ratios are against the baseline with the same head, measured in the same run. ``--study-fins`` adds the frozen
end-to-end model with the study-architecture FINs on ``--study-n`` clips (their Conv1D kernels of 512 make
them very slow on a CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from sefin_utils import classifiers, training  # noqa: E402
from sefin_utils.constants import CLIP_SAMPLES, N_FRAMES  # noqa: E402


def synthetic(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every input any model can take, for n clips."""
    out = {
        "clip": (rng.standard_normal((n, CLIP_SAMPLES)) * 0.1).astype("float32"),
        "mask": np.ones((n, N_FRAMES), dtype="float32"),
        "summary": rng.standard_normal((n, classifiers.N_SUMMARY)).astype("float32"),
    }
    for name, dim in classifiers.FEATURE_DIMS.items():
        out[name] = rng.random((n, N_FRAMES, dim)).astype("float32")
    return out


def time_model(model, train, val, y_tr, y_va, args) -> dict[str, float]:  # noqa: ANN001
    names = list(model.input) if isinstance(model.input, dict) else ["summary"]
    fit = training.train_classifier(
        model,
        {k: train[k] for k in names},
        y_tr,
        {k: val[k] for k in names},
        y_va,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-4,
        seed=0,
        patience=args.epochs + 1,
        progress=False,
    )
    return {"first": fit["first_epoch_s"], "epoch": fit["s_per_epoch"], "params": model.count_params()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--heads", nargs="+", default=["kaggle", "study"], choices=list(classifiers.HEADS))
    ap.add_argument("--study-fins", action="store_true", help="also time the study-architecture FINs (slow)")
    ap.add_argument("--study-n", type=int, default=16, help="clips for the study-FIN model")
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from sefin_utils import fins as fin_module

    rng = np.random.default_rng(0)
    train, val = synthetic(args.n_train, rng), synthetic(args.n_val, rng)
    y_tr, y_va = rng.integers(0, 8, args.n_train), rng.integers(0, 8, args.n_val)
    mean, var = np.zeros(classifiers.N_SUMMARY, "float32"), np.ones(classifiers.N_SUMMARY, "float32")
    fast = {n: fin_module.build_fin(n, arch="fast") for n in classifiers.FEATURE_NAMES}
    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, devices {devices}; "
        f"keras {keras.__version__}, tensorflow {tf.__version__}"
    )
    print(
        f"data: {args.n_train} train + {args.n_val} val synthetic clips of {CLIP_SAMPLES} samples, "
        f"batch {args.batch_size}, {args.epochs} epochs per model\n"
    )
    print(f"{'model':<48}{'params':>12}{'1st epoch s':>13}{'s/epoch':>10}{'clips/s':>10}{'x baseline':>12}")
    baselines: dict[str, float] = {}
    for head in args.heads:
        rows: list[tuple[str, dict[str, float]]] = []
        model = classifiers.build_baseline(head, 8, norm_mean=mean, norm_var=var)
        rows.append((f"baseline_{head}", time_model(model, train, val, y_tr, y_va, args)))
        variants = {
            "e2e_frozen": (classifiers.ALL_FIN, "pretrained", False),
            "e2e_finetuned": (classifiers.ALL_FIN, "pretrained", True),
            "e2e_random": (classifiers.ALL_FIN, "random", True),
            "ablation_F-L-F-L-F (frozen)": (classifiers.ABLATION["F-L-F-L-F"], "pretrained", False),
        }
        for name, (sources, init, trainable) in variants.items():
            keras.backend.clear_session(free_memory=True)
            model = classifiers.build_end_to_end(
                fins=fast,
                sources=sources,
                fin_trainable=trainable,
                fin_init=init,
                head=head,
                n_classes=8,
                norm_mean=mean,
                norm_var=var,
            )
            rows.append((f"{name} [{head}, fast FINs]", time_model(model, train, val, y_tr, y_va, args)))
        ref = baselines[head] = rows[0][1]["epoch"]
        for name, r in rows:
            print(
                f"{name:<48}{r['params']:>12,}{r['first']:>13.2f}{r['epoch']:>10.2f}"
                f"{args.n_train / r['epoch']:>10.1f}{r['epoch'] / ref:>12.1f}"
            )
    if args.study_fins:
        try:
            study = {n: fin_module.build_fin(n, arch="study") for n in classifiers.FEATURE_NAMES}
        except (ValueError, NotImplementedError) as err:
            print(f"\nstudy FINs unavailable: {err}")
            return
        n = args.study_n
        sub_tr = {k: v[:n] for k, v in train.items()}
        sub_va = {k: v[: max(2, n // 4)] for k, v in val.items()}
        model = classifiers.build_end_to_end(
            fins=study,
            sources=classifiers.ALL_FIN,
            fin_trainable=False,
            head=args.heads[0],
            n_classes=8,
            norm_mean=mean,
            norm_var=var,
        )
        r = time_model(model, sub_tr, sub_va, y_tr[:n], y_va[: len(sub_va["mask"])], args)
        print(
            f"\ne2e_frozen [{args.heads[0]}, study FINs] on {n} clips: {r['params']:,} params, first epoch "
            f"{r['first']:.1f} s, {r['epoch']:.1f} s/epoch = {n / r['epoch']:.2f} clips/s "
            f"(x{(args.n_train / n) * r['epoch'] / baselines[args.heads[0]]:.0f} the baseline_{args.heads[0]} "
            f"time per clip)"
        )


if __name__ == "__main__":
    main()
