"""Figures of the emotion-classifier stage: confusion matrices, per-class F1, the ablation, training curves.

Every function returns a matplotlib Figure and saves it as PNG when ``path`` is given. Inputs are what
``ser.run_experiments`` writes: ``results.csv`` rows and the ``metrics/<variant>__seed<k>.json`` payloads
(``reports[split]["overall"]`` is a ``metrics.classification_report`` dict; ``history`` is the Keras history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sefin_utils import study, tables
from sefin_utils.features import KAGGLE

FEATURE_NAMES: tuple[str, ...] = KAGGLE.features
sources_from_code = KAGGLE.sources_from_code


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def _report(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept a classification report or an ``evaluate`` result (``{"overall": report, ...}``)."""
    return report["overall"] if "overall" in report else report


def confusion_matrix(
    report: Mapping[str, Any],
    *,
    title: str | None = None,
    normalize: bool = True,
    path: str | Path | None = None,
) -> Figure:
    """Heat map of a confusion matrix (rows = true class), rows normalised to 1 by default, counts annotated."""
    rep = _report(report)
    cm = np.asarray(rep["confusion"], dtype=float)
    classes = list(rep["classes"])
    if cm.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(classes)} classes")
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    size = 1.0 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black",
                )
    acc, f1 = rep.get("accuracy"), rep.get("macro_f1")
    sub = f"accuracy {acc:.3f}, macro-F1 {f1:.3f}, n={rep.get('n', int(cm.sum()))}" if acc is not None else ""
    ax.set_title(f"{title}\n{sub}" if title else sub, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def per_class_f1(
    reports: Mapping[str, Mapping[str, Any]], *, title: str | None = None, path: str | Path | None = None
) -> Figure:
    """Grouped bars of per-class F1, one bar per model (``{model name: report}``)."""
    if not reports:
        raise ValueError("per_class_f1 needs at least one report")
    reps = {k: _report(v) for k, v in reports.items()}
    classes: list[str] = []
    for r in reps.values():
        classes += [c for c in r["classes"] if c not in classes]
    width = 0.8 / len(reps)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(classes) + 0.4 * len(reps)), 3.8))
    x = np.arange(len(classes))
    for i, (name, r) in enumerate(reps.items()):
        vals = [r["per_class_f1"].get(c, np.nan) for c in classes]
        ax.bar(x + (i - (len(reps) - 1) / 2) * width, vals, width, label=f"{name} (macro {r['macro_f1']:.2f})")
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(reps) > 3 else 1)
    ax.set_title(title or "per-class F1", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def ablation_table(results: pd.DataFrame, *, metric: str = "test_macro_f1") -> pd.DataFrame:
    """The ablation rows with one source column per feature (FIN / librosa), best ``metric`` first."""
    abl = results[results["kind"] == "ablation"].copy()
    if abl.empty:
        raise ValueError("results hold no ablation rows (kind == 'ablation')")
    src = pd.DataFrame([sources_from_code(c) for c in abl["sources"]], index=abl.index)
    cols = [
        c
        for c in ("val_macro_f1", "test_accuracy", "test_macro_f1", "test_uar", "ood_accuracy", "ood_macro_f1")
        if c in abl.columns
    ]
    out = pd.concat([abl[["sources"]].rename(columns={"sources": "code"}), src, abl[cols]], axis=1)
    out["n_fin"] = (src == "fin").sum(axis=1)
    return out.sort_values(metric, ascending=False).reset_index(drop=True)


def ablation_design(codes: Sequence[str], n_features: int = len(FEATURE_NAMES)) -> str:
    """What the ablation's mixes (codes like ``"F-L-F-F-L"``, one letter per feature) form: ``"full factorial"``
    (all 2**n), ``"half fraction"`` (the 2**(n-1) mixes with an even, or all with an odd, number of librosa
    sources: defining relation I = ABCDE, resolution V for n = 5, so each feature's main effect is free of the
    two-factor interactions; Montgomery, *Design and Analysis of Experiments*, ch. 8) or ``"partial"`` (anything
    else: the difference of means of the two sides is then biased by the missing mixes; the paired differences of
    :func:`ablation_marginals_table` are not)."""
    codes = set(codes)
    if len(codes) == 2**n_features:
        return "full factorial"
    parity = {c.count("L") % 2 for c in codes}
    if len(codes) == 2 ** (n_features - 1) and len(parity) == 1:
        return "half fraction"
    return "partial"


def ablation_paired_differences(tab: pd.DataFrame, metric: str) -> dict[str, list[float]]:
    """Per feature, ``metric`` of each mix taking it from its FIN minus that of the same mix taking it from librosa,
    for every such pair present in ``tab`` (:func:`ablation_table`'s rows)."""
    by_code = dict(zip(tab["code"], tab[metric], strict=True))
    out: dict[str, list[float]] = {}
    for i, f in enumerate(FEATURE_NAMES):
        out[f] = []
        for code, value in by_code.items():
            parts = code.split("-")
            if parts[i] == "F" and (other := "-".join([*parts[:i], "L", *parts[i + 1 :]])) in by_code:
                out[f].append(value - by_code[other])
    return out


def ablation_marginals_table(results: pd.DataFrame, *, metric: str = "test_macro_f1") -> pd.DataFrame:
    """Per feature, the effect of taking it from its FIN instead of librosa on ``metric``, two ways.

    ``fin_mean``/``fin_std``/``fin_n`` and ``librosa_*``: ``metric`` over the mixes on each side, and
    ``fin_minus_librosa`` their difference of means (the factorial main effect: unbiased on a full factorial or a half
    fraction, see :func:`ablation_design`). ``paired_mean``/``paired_std``/``pairs_n``: the difference over the pairs
    of mixes that differ in this feature only, both present (16 pairs on a full factorial, where ``paired_mean``
    equals ``fin_minus_librosa``; none on a half fraction; whatever pairs exist on a partial design); the std is the
    spread of the effect across the other features' sources. ``design``: :func:`ablation_design` of the mixes."""
    tab = ablation_table(results, metric=metric)
    design = ablation_design(tab["code"])
    paired = ablation_paired_differences(tab, metric)
    rows = []
    for f in FEATURE_NAMES:
        fin, lib = tab.loc[tab[f] == "fin", metric], tab.loc[tab[f] == "librosa", metric]
        diffs = paired[f]
        rows.append(
            {
                "feature": f,
                "fin_mean": fin.mean(),
                "fin_std": fin.std(ddof=1),
                "fin_n": len(fin),
                "librosa_mean": lib.mean(),
                "librosa_std": lib.std(ddof=1),
                "librosa_n": len(lib),
                "fin_minus_librosa": fin.mean() - lib.mean(),
                "paired_mean": float(np.mean(diffs)) if diffs else np.nan,
                "paired_std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else np.nan,
                "pairs_n": len(diffs),
                "design": design,
            }
        )
    return pd.DataFrame(rows)


def ablation_marginals(
    results: pd.DataFrame, *, metric: str = "test_macro_f1", path: str | Path | None = None
) -> Figure:
    """The ablation in two panels. Left: ``metric`` of the mixes taking each feature from its FIN vs from librosa
    (every mix a dot; mean ± std). Right: the effect, FIN minus librosa: the paired differences (mixes that differ in
    that feature only) as dots with their mean ± std; where no pair exists but the design is balanced (a half
    fraction), the difference of means ± its standard error (sqrt(s1²/n1 + s2²/n2)); nothing on a partial design
    without pairs. The design (:func:`ablation_design`) is in the title."""
    tab = ablation_table(results, metric=metric)
    marg = ablation_marginals_table(results, metric=metric)
    design = marg["design"].iloc[0]
    paired = ablation_paired_differences(tab, metric)
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    rng = np.random.default_rng(0)
    labelled: set[str] = set()
    for i, f in enumerate(FEATURE_NAMES):
        row = marg.iloc[i]
        for k, (src, color) in enumerate((("fin", "tab:blue"), ("librosa", "tab:orange"))):
            vals = tab.loc[tab[f] == src, metric].to_numpy()
            xpos = i + (k - 0.5) * 0.35
            ax.scatter(xpos + rng.uniform(-0.06, 0.06, len(vals)), vals, s=10, color=color, alpha=0.4)
            if len(vals):
                ax.errorbar(
                    xpos,
                    row[f"{src}_mean"],
                    yerr=0 if np.isnan(row[f"{src}_std"]) else row[f"{src}_std"],
                    fmt="o",
                    color=color,
                    capsize=4,
                    ms=7,
                    label=None if src in labelled else ("FIN" if src == "fin" else "librosa"),
                )
                labelled.add(src)
        diffs = paired[f]
        if diffs:
            ax_d.scatter(i + rng.uniform(-0.08, 0.08, len(diffs)), diffs, s=10, color="tab:green", alpha=0.5)
            sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
            ax_d.errorbar(i, np.mean(diffs), yerr=sd, fmt="o", color="tab:green", capsize=4, ms=7)
        elif design != "partial" and row["fin_n"] and row["librosa_n"]:
            se = float(np.sqrt(row["fin_std"] ** 2 / row["fin_n"] + row["librosa_std"] ** 2 / row["librosa_n"]))
            ax_d.errorbar(i, row["fin_minus_librosa"], yerr=se, fmt="s", color="tab:green", capsize=4, ms=7)
        else:
            ax_d.text(i, 0, "no pair\nyet", ha="center", va="center", fontsize=7, color="grey")
    if metric == "test_accuracy":
        lo, hi = study.ABLATION_ACCURACY
        ax.axhspan(lo, hi, color="grey", alpha=0.12, label=f"study spread ({study.PROTOCOL})")
    ax.set_xticks(range(len(FEATURE_NAMES)), FEATURE_NAMES)
    ax.set_ylabel(tables.readable(metric))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="feature taken from", fontsize=8)
    ax.set_title(f"ablation: {len(tab)} mixes ({design})", fontsize=10)
    ax_d.axhline(0, color="grey", lw=1)
    ax_d.set_xlim(-0.5, len(FEATURE_NAMES) - 0.5)
    ax_d.set_xticks(range(len(FEATURE_NAMES)), FEATURE_NAMES)
    ax_d.set_ylabel(f"FIN - librosa, {tables.readable(metric)}")
    ax_d.grid(axis="y", alpha=0.3)
    what = "paired differences" if (marg["pairs_n"] > 0).any() else "difference of means ± s.e."
    ax_d.set_title(f"effect of taking the feature from its FIN ({what})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def training_curves(
    history: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    best_epoch: int | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Loss and accuracy per epoch, train vs validation; a dashed line marks the restored (best) epoch."""
    if "loss" not in history:
        raise ValueError(f"history lacks 'loss' (has {sorted(history)})")
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            if f"{prefix}{key}" in history:
                ax.plot(epochs, history[f"{prefix}{key}"], marker=".", label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label="restored epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def headline(summary: pd.DataFrame, *, metric: str = "test_macro_f1", path: str | Path | None = None) -> Figure:
    """Bars of ``<metric>_mean`` ± std per non-ablation variant, with the study's logged number as a marker."""
    rows = summary[summary["kind"] != "ablation"]
    if rows.empty:
        raise ValueError("summary holds no baseline/end-to-end rows")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows)), 3.6))
    x = np.arange(len(rows))
    std = rows[f"{metric}_std"].fillna(0).to_numpy()
    ax.bar(x, rows[f"{metric}_mean"], yerr=std, capsize=4, color="tab:blue", alpha=0.8, label="ours")
    key = "macro_f1" if metric.endswith("macro_f1") else "accuracy" if metric.endswith("accuracy") else None
    if key and metric.startswith("test"):
        published = [
            study.SER_RESULTS.get("baseline" if v.startswith("baseline") and not v.endswith("_raw") else v, {}).get(
                key, np.nan
            )
            for v in rows["variant"]
        ]
        ax.scatter(x, published, marker="D", color="tab:red", zorder=3, label=f"study ({study.PROTOCOL})")
    ax.set_xticks(x, rows["variant"], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(tables.readable(metric))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def stage_figures(ser_dir: str | Path, fig_dir: str | Path, *, prefix: str = "ser") -> list[Path]:
    """Every figure of a ``ser.run_experiments`` output folder, as PNGs under ``fig_dir``; returns their paths.

    Headline bars (test macro-F1 and accuracy, mean ± std over seeds, the study's numbers as markers); per
    baseline/end-to-end variant the test confusion matrix and the training curves of its first seed; per-class F1
    of those variants; the ESD confusion matrix (5 shared classes) of the variant chosen on validation; with the
    ablation, its marginal-effect plot (test macro-F1 and accuracy) and ``<prefix>_ablation.csv`` (the table).
    """
    import json

    from sefin_utils.results import best_model, summary_table

    ser_dir, fig_dir = Path(ser_dir), Path(fig_dir)
    results = pd.read_csv(ser_dir / "results.csv")
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def keep(fig: Figure, name: str) -> None:
        path = fig_dir / f"{prefix}_{name}.png"
        _save(fig, path)
        plt.close(fig)
        paths.append(path)

    main = results[results["kind"] != "ablation"]
    if not main.empty:
        summary = summary_table(results)
        for metric in ("test_macro_f1", "test_accuracy"):
            keep(headline(summary, metric=metric), f"headline_{metric}")
        reports = {}
        for variant, rows in main.groupby("variant", sort=False):
            seed = int(rows["seed"].iloc[0])
            payload = json.loads((ser_dir / "metrics" / f"{variant}__seed{seed}.json").read_text())
            if payload["reports"].get("test"):
                reports[variant] = payload["reports"]["test"]
                keep(
                    confusion_matrix(payload["reports"]["test"], title=f"{variant} (test, seed {seed})"),
                    f"confusion_{variant}",
                )
            if payload.get("history"):  # anchors (scikit-learn) have no epochs
                keep(
                    training_curves(
                        payload["history"], best_epoch=payload.get("best_epoch"), title=f"{variant} (seed {seed})"
                    ),
                    f"curves_{variant}",
                )
        if reports:
            keep(per_class_f1(reports, title="per-class F1 (test, first seed)"), "per_class_f1")
        best = best_model(main)
        seed = int(main.loc[main["variant"] == best, "seed"].iloc[0])
        payload = json.loads((ser_dir / "metrics" / f"{best}__seed{seed}.json").read_text())
        if payload["reports"].get("ood"):
            keep(
                confusion_matrix(payload["reports"]["ood"], title=f"{best} on ESD (5 shared classes)"),
                f"confusion_ood_{best}",
            )
    if (results["kind"] == "ablation").any():
        for metric in ("test_macro_f1", "test_accuracy"):
            keep(ablation_marginals(results, metric=metric), f"ablation_{metric}")
        table = ablation_table(results)
        path = fig_dir / f"{prefix}_ablation.csv"
        table.to_csv(path, index=False)
        paths.append(path)
    return paths
