"""Results tables of the emotion classifiers: mean ± std over seeds beside the study's numbers, the HTML page, the
model selection. Plain pandas (no Keras): figures and reports read them directly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sefin_utils import study
from sefin_utils.features import KAGGLE

FEATURE_NAMES: tuple[str, ...] = KAGGLE.features
"""Order of the ablation codes' letters (rms, zcr, chroma, mfcc, mel)."""

SUMMARY_METRICS: tuple[str, ...] = (
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "test_weighted_f1",
    "test_uar",
    "ood_accuracy",
    "ood_macro_f1",
)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per variant (``<metric>_mean``, ``<metric>_std``), with the study's numbers."""
    if results.empty:
        return pd.DataFrame()
    g = results.groupby("variant", sort=False)
    out = g[["kind", "head", "sources", "protocol", "n_params"]].first()
    out["n_seeds"] = g.size()
    out["s_per_epoch"] = g["s_per_epoch"].mean()
    for m in SUMMARY_METRICS:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1) if g.size().max() > 1 else np.nan
    study_key = {v: ("baseline" if v.startswith("baseline") and not v.endswith("_raw") else v) for v in out.index}
    published = study.SER_RESULTS
    out["study_accuracy"] = [published.get(study_key[v], {}).get("accuracy", np.nan) for v in out.index]
    out["study_macro_f1"] = [published.get(study_key[v], {}).get("macro_f1", np.nan) for v in out.index]
    return out.reset_index()


def results_html(results: pd.DataFrame) -> str:
    """The results page: our mean ± std per variant beside the study's logged numbers, then the ablation."""
    summary = summary_table(results)
    protocol = ", ".join(sorted(set(results["protocol"]))) if not results.empty else "?"

    def pm(row: pd.Series, m: str) -> str:
        mean, std = row[f"{m}_mean"], row[f"{m}_std"]
        if pd.isna(mean):
            return "–"
        return f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")

    head = summary[summary["kind"] != "ablation"] if not summary.empty else summary
    table = (
        pd.DataFrame(
            {
                "variant": head["variant"],
                "head": head["head"],
                "seeds": head["n_seeds"],
                f"test accuracy ({protocol})": [pm(r, "test_accuracy") for _, r in head.iterrows()],
                f"test macro-F1 ({protocol})": [pm(r, "test_macro_f1") for _, r in head.iterrows()],
                "test UAR": [pm(r, "test_uar") for _, r in head.iterrows()],
                "ESD accuracy (5 shared classes)": [pm(r, "ood_accuracy") for _, r in head.iterrows()],
                "ESD macro-F1": [pm(r, "ood_macro_f1") for _, r in head.iterrows()],
                f"study accuracy ({study.PROTOCOL})": [
                    ("–" if pd.isna(v) else f"{v:.3f}") for v in head["study_accuracy"]
                ],
                f"study macro-F1 ({study.PROTOCOL})": [
                    ("–" if pd.isna(v) else f"{v:.2f}") for v in head["study_macro_f1"]
                ],
                "s/epoch": [f"{v:.2f}" for v in head["s_per_epoch"]],
            }
        )
        if not head.empty
        else pd.DataFrame()
    )
    parts = [
        "<html><head><meta charset='utf-8'><title>sefin emotion classifiers</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:right}</style></head><body>",
        "<h1>Emotion classifiers: results</h1>",
        f"<p>Our protocol: <b>{protocol}</b> split; trained on augmented train clips, epoch chosen on validation "
        "loss, tested once on unaugmented test recordings; ESD scored on the 5 classes it shares. Values are mean "
        f"± std over seeds. The study's numbers come from a different protocol (<b>{study.PROTOCOL}</b>, 1,825 "
        "unaugmented files, single runs, last epoch) and are not directly comparable.</p>",
        table.to_html(index=False, escape=True),
    ]
    abl = results[results["kind"] == "ablation"] if not results.empty else results
    if not abl.empty:
        cols = ["sources", "val_macro_f1", "test_accuracy", "test_macro_f1", "ood_accuracy", "ood_macro_f1"]
        a = abl[cols].sort_values("test_accuracy", ascending=False)
        lo, hi = study.ABLATION_ACCURACY
        parts += [
            f"<h2>Ablation: {len(a)} source mixes (F = FIN, L = librosa; order {', '.join(FEATURE_NAMES)})</h2>",
            f"<p>Our test accuracy spread: {a['test_accuracy'].min():.3f}–{a['test_accuracy'].max():.3f}. "
            f"The study's: {lo:.3f}–{hi:.3f} ({study.PROTOCOL}, single runs).</p>",
            a.to_html(index=False, float_format=lambda v: f"{v:.3f}"),
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def best_model(results: pd.DataFrame, *, metric: str = "val_macro_f1") -> str:
    """Name of the variant with the best mean validation score (selection never looks at test)."""
    if results.empty:
        raise ValueError("no results to choose from")
    if metric not in results.columns:
        raise ValueError(f"results have no column {metric!r}")
    means = results.groupby("variant", sort=False)[[metric, "val_accuracy"]].mean()
    means = means.sort_values([metric, "val_accuracy"], ascending=False, kind="stable")
    return str(means.index[0])
