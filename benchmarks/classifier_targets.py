"""Benchmark: the classifiers' targets of issue 12, read from finished runs, and the table of every model.

Usage::

    python benchmarks/classifier_targets.py RUN_DIR [RUN_DIR ...] [--out reports/sample-tables.md]

Each ``RUN_DIR`` is a run folder of ``python -m sefin_utils run`` (its ``params.json``, ``baseline/results.csv``,
``ser/results.csv`` and ``model/card.json``). For each run it prints, in markdown: the data, protocol and seeds
(from ``params.json``), one row per model (anchors included) with mean ± sd over seeds and the number of seeds, and
the targets:

- the run's bundle (``model/card.json``) at or above the logistic-regression anchor in test macro-F1 (both as means
  over the run's seeds, the anchor trained in the same run on the same split);
- no model below twice chance in test UAR (chance = 1 / number of classes);
- (demo) every model at or above twice chance in test macro-F1;
- (full corpora, issues 12 and 16) the best non-anchor model at least .05 above the best anchor in test macro-F1, and
  the bundle's ESD macro-F1 at least .05 above the best anchor's.

Nothing is trained: the numbers are the runs' own. ``--out`` writes the same markdown to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sefin_utils import tables  # noqa: E402

METRICS: dict[str, str] = {
    "val_macro_f1": "val macro-F1",
    "test_macro_f1": "test macro-F1",
    "test_accuracy": "test accuracy",
    "test_uar": "test UAR",
    "ood_accuracy": "ESD accuracy",
    "ood_macro_f1": "ESD macro-F1",
}
"""Result columns shown, with their labels."""


def load(run_dir: Path) -> tuple[dict, pd.DataFrame, dict]:
    """(params, results of stages 02 and 05 with a ``stage`` column, bundle card or {})."""
    params = json.loads((run_dir / "params.json").read_text())
    frames = []
    for d in ("baseline", "ser"):
        if (run_dir / d / "results.csv").is_file():
            frames.append(pd.read_csv(run_dir / d / "results.csv").assign(stage=d))
        elif (run_dir / d / "metrics").is_dir():  # a stage still running: the models it has finished so far
            recs = [json.loads(f.read_text())["record"] for f in sorted((run_dir / d / "metrics").glob("*.json"))]
            if recs:
                frames.append(pd.DataFrame(recs).assign(stage=f"{d} (running: {len(recs)} models so far)"))
    if not frames:
        raise FileNotFoundError(f"{run_dir}: no baseline/results.csv or ser/results.csv (has the run finished?)")
    card_path = run_dir / "model" / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return params, pd.concat(frames, ignore_index=True), card


def model_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model: kind, seeds, each metric as mean ± sd over seeds (the bare value with one seed)."""
    rows = []
    for variant, g in results.groupby("variant", sort=False):
        row = {"model": variant, "kind": g["kind"].iloc[0], "seeds": int(g["seed"].nunique())}
        for col, label in METRICS.items():
            row[label] = tables.mean_sd(g[col]) if col in g.columns else ""
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """A plain markdown table (no index)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines)


def targets(params: dict, results: pd.DataFrame, card: dict) -> list[str]:
    """The targets as sentences with their numbers (``holds`` / ``does NOT hold``)."""
    n_classes = int(results["n_classes"].iloc[0]) if "n_classes" in results.columns else 8
    chance = 1.0 / n_classes
    means = results[results["kind"] != "ablation"].groupby("variant", sort=False).mean(numeric_only=True)
    out = []
    bundle = card.get("variant")
    if bundle and "anchor_logreg" in means.index and bundle in means.index:
        b, a = float(means.loc[bundle, "test_macro_f1"]), float(means.loc["anchor_logreg", "test_macro_f1"])
        verdict = "holds" if b >= a else "does NOT hold"
        out.append(
            f"Bundle at or above the logistic-regression anchor (test macro-F1): {verdict}: bundle {bundle} "
            f"{b:.3f}, anchor_logreg {a:.3f} (difference {b - a:+.3f})."
        )
    anchors = means[means.index.str.startswith("anchor_")]
    ours = means[~means.index.str.startswith("anchor_")]
    if len(anchors) and len(ours):
        a, b = anchors["test_macro_f1"].idxmax(), ours["test_macro_f1"].idxmax()
        fa, fb = float(anchors.at[a, "test_macro_f1"]), float(ours.at[b, "test_macro_f1"])
        verdict = "holds" if fb >= fa + 0.05 else "does NOT hold"
        out.append(
            f"Best sefin model at least .05 above the best anchor (test macro-F1, full-corpora target): {verdict}: "
            f"{b} {fb:.3f}, {a} {fa:.3f} (difference {fb - fa:+.3f})."
        )
    if (
        bundle in means.index
        and len(anchors)
        and "ood_macro_f1" in means.columns
        and anchors["ood_macro_f1"].notna().any()
    ):
        a = anchors["ood_macro_f1"].idxmax()
        fa, fb = float(anchors.at[a, "ood_macro_f1"]), float(means.at[bundle, "ood_macro_f1"])
        verdict = "holds" if fb >= fa + 0.05 else "does NOT hold"
        out.append(
            f"Bundle's ESD macro-F1 at least .05 above the best anchor's (out of domain): {verdict}: bundle {bundle} "
            f"{fb:.3f}, {a} {fa:.3f} (difference {fb - fa:+.3f}; the issue aims for .40)."
        )
    low = means[means["test_uar"] < 2 * chance]["test_uar"]
    verdict = "holds" if low.empty else "does NOT hold"
    listed = ", ".join(f"{v} {u:.3f}" for v, u in low.items()) or "none"
    out.append(
        f"No model below 2x chance test UAR ({2 * chance:.3f}): {verdict}; below: {listed}; lowest "
        f"{means['test_uar'].idxmin()} {means['test_uar'].min():.3f}."
    )
    low = means[means["test_macro_f1"] < 2 * chance]["test_macro_f1"]
    verdict = "holds" if low.empty else "does NOT hold"
    listed = ", ".join(f"{v} {u:.3f}" for v, u in low.items()) or "none"
    out.append(f"Every model at or above 2x chance test macro-F1 ({2 * chance:.3f}): {verdict}; below: {listed}.")
    return out


def describe(run_dir: Path) -> str:
    """The markdown section of one run: data, protocol, seeds, the table of every model, the targets."""
    params, results, card = load(run_dir)
    data = "GENERATED demo corpus" if not params.get("data_root") else str(params["data_root"])
    n = results.groupby("stage")["n_train"].first().to_dict() if "n_train" in results.columns else {}
    running = sorted(st for st in results["stage"].unique() if "running" in st)
    lines = [
        f"## {params.get('profile', '?')} profile, {params.get('protocol', '?')} protocol",
        "",
        f"Run folder `{run_dir}`; data `{data}`; protocol `{params.get('protocol')}`; seeds {params.get('seeds')} "
        f"(anchors: logistic regression and SVM deterministic, trained once; the MLP once per seed); train clips per "
        f"model {sorted(set(n.values()))}; bundle: **{card.get('variant', '?')}** ({card.get('won', '')}).",
        *([f"**Partial**: {'; '.join(running)} when this was written (the run had not finished)."] if running else []),
        "",
        markdown(model_table(results)),
        "",
        "Targets:",
        "",
        *[f"- {t}" for t in targets(params, results, card)],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    ap.add_argument("--title", default="Every model, mean ± sd over seeds (test: unaugmented recordings)")
    args = ap.parse_args(argv)
    text = f"# {args.title}\n\n" + "\n".join(describe(r) for r in args.runs)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
