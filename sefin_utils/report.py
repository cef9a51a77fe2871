"""The run's report: banner, tables and computed summaries for the stage pages, and ``reports/<profile>/index.html``.

Every stage notebook shows :func:`banner` at its top (a run on generated data says so on every page) and ends with
a computed "What the numbers say" (:func:`say_splits`, :func:`say_labels`, :func:`say_fins`, :func:`say_models`),
so that no sentence about the run's numbers can contradict its tables. The report stage (06_report) gathers the
stages' results with :func:`collect_results`, writes them with :func:`write_results` and names its main figures
with :func:`set_main_figures`; the runner then renders every executed notebook to HTML and calls
:func:`build_index`, which copies the figures and tables into the report folder and writes an index: banner, the
run's profile, data, machine, date and wall time per stage, the headline beside the study's logged numbers, what a
user would pick instead (the scikit-learn anchors beside the best sefin model, :func:`anchors_table`), and the main
figures in an even grid.

This module never imports Keras or the runner: it reads the run folder (``params.json``, ``environment.json``,
``stages/*.json``, the result tables) only.
"""

from __future__ import annotations

import html
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sefin_utils import study, tables
from sefin_utils.io import atomic_write_text, read_json, to_json, write_csv
from sefin_utils.stages import STAGE_HISTORY

RESULT_SOURCES: tuple[str, ...] = ("baseline/results.csv", "ser/results.csv")
"""Run-folder tables that :func:`collect_results` concatenates (written by stages 02 and 05)."""
REPORT_SUBDIR = "report"
"""Run-folder subfolder the report notebook writes to (results, headline, main figure list)."""

GENERATED_WORD = "GENERATED DATA"
"""The words every page and figure of a run on generated data carries."""

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
caption{caption-side:bottom;text-align:left;font-size:.85em;color:#555;padding-top:.3em}
.banner{background:#fff3cd;border:2px solid #e0a800;padding:.8em 1em;font-weight:600;margin:1em 0}
.facts td{text-align:left}
.failed{color:#b00020;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1.2em;align-items:start}
.grid figure.wide{grid-column:1/-1}
figure{margin:0;text-align:center}figure img{max-width:100%;max-height:460px;height:auto;border:1px solid #ddd}
figure.wide img{max-height:none}figcaption{text-align:left}
figcaption{font-size:.88em;color:#444;margin-top:.3em}
code{background:#f5f5f5;padding:0 .2em}
"""

HEADLINE_METRICS: dict[str, str] = {
    "test_accuracy": "test accuracy",
    "test_macro_f1": "test macro-F1",
    "test_uar": "test UAR",
    "ood_accuracy": "ESD accuracy",
    "ood_macro_f1": "ESD macro-F1",
    "val_macro_f1": "val macro-F1",
}
"""Result columns (``experiments.run_experiments``) the headline shows, with their labels."""

FIGURE_CAPTIONS: dict[str, str] = {
    "01_counts.png": "Recordings per emotion, stacked by corpus: look for classes that only some corpora have "
    "(calm: RAVDESS only).",
    "02_baseline_headline.png": "Baseline test macro-F1 per model beside the study's logged number (red).",
    "05_ser_headline.png": "Test macro-F1 per model beside the study's logged numbers (red): compare the bars with "
    "each other and with their error bars (spread over seeds).",
    "04_fins_pred_vs_true.png": "Each FIN's output against librosa's value on test frames: points on the diagonal "
    "are perfect imitation.",
    "05_ser_ablation.png": "Ablation. Left: test score of the mixes taking each feature from its FIN (blue) or from "
    "librosa (orange). Right: the change when that one feature comes from its FIN instead of librosa (above the grey "
    "line: the FIN helps); its spread is over the other features' sources.",
    "06_predict.png": "The run's model on a few test recordings: class probabilities, the top class in red.",
}
"""What to look at in each main figure (confusion matrices are captioned by :func:`figure_caption`)."""


# --------------------------------------------------------------------------------------------------- the data


def _params(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "params.json"
    return read_json(path) if path.is_file() else {}


def is_generated_run(run_dir: Path) -> bool:
    """True when the run's data is sefin's generated demo corpus (from its ``params.json``: a null ``data_root``,
    or one holding the generator's ``GENERATED.txt`` marker)."""
    P = _params(run_dir)
    if not P.get("data_root"):
        return True
    return (Path(P["data_root"]) / "GENERATED.txt").is_file()


def banner_text(run_dir: Path) -> str | None:
    """The generated-data warning every page of such a run carries at the top, or None for real data."""
    if not is_generated_run(run_dir):
        return None
    return (
        f"{GENERATED_WORD}: this run used sefin's synthetic demo corpus (emotions rendered as prosody by a "
        "generator, file names borrowed from the real corpora), not real speech. Its numbers test that the "
        "pipeline runs end to end; they say nothing about recognising emotion in speech."
    )


def banner_html(run_dir: Path) -> str:
    """``<div class="banner">...</div>`` for a generated run, else an empty string."""
    text = banner_text(run_dir)
    style = "background:#fff3cd;border:2px solid #e0a800;padding:.8em 1em;font-weight:600;margin:1em 0"
    return f'<div class="banner" style="{style}">{html.escape(text)}</div>' if text else ""


class _HTML:
    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return ""


class _Markdown:
    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def banner(run_dir: Path) -> _HTML:
    """The banner as a displayable object (a notebook's cell shows it; nothing for real data)."""
    return _HTML(banner_html(run_dir))


def label_figures(run_dir: Path) -> bool:
    """On a generated run, stamp every matplotlib figure made from now on with "GENERATED DATA" (top right, in
    the figure's margin), so that no figure of generated audio can pass for one of real speech. Returns whether
    figures are stamped."""
    import matplotlib as mpl

    hook = "sefin_utils.plots:stamp_generated"
    hooks = list(mpl.rcParams.get("figure.hooks", []))
    generated = is_generated_run(run_dir)
    if generated and hook not in hooks:
        mpl.rcParams["figure.hooks"] = [*hooks, hook]
    elif not generated and hook in hooks:
        mpl.rcParams["figure.hooks"] = [h for h in hooks if h != hook]
    return generated


def start_page(run_dir: Path) -> _HTML:
    """What every stage page does first: stamp the figures of a generated run and return the banner to show."""
    label_figures(run_dir)
    return banner(run_dir)


def data_label(run_dir: Path) -> str:
    """``"generated data"`` for a generated run, else the data root's name: for figure titles."""
    if is_generated_run(run_dir):
        return "generated data"
    return Path(str(_params(run_dir).get("data_root", "data"))).name


def collect_results(run_dir: Path, *, sources: Sequence[str] = RESULT_SOURCES) -> pd.DataFrame:
    """Concatenate the stages' result tables (baseline and SER with FINs) found in the run folder.

    Raises
    ------
    FileNotFoundError
        When none of ``sources`` exists (stages 02 and 05 have not run).
    """
    frames = []
    for rel in sources:
        path = Path(run_dir) / rel
        if path.is_file():
            df = pd.read_csv(path)
            df.insert(0, "stage", rel.split("/")[0])
            frames.append(df)
    if not frames:
        raise FileNotFoundError(f"no results in {run_dir}: expected one of {list(sources)} (run stages 02 and 05)")
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------- headline


def _study_numbers(variant: str) -> tuple[float, float]:
    key = study.study_key(str(variant))
    if key is None:
        return float("nan"), float("nan")
    s = study.SER_RESULTS[key]
    return float(s["accuracy"]), float(s["macro_f1"])


def headline(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model (variant) and protocol: metrics' mean and sample sd over seeds (NaN with one seed), the
    number of seeds, and the study's logged numbers beside (:mod:`sefin_utils.study`). The ablation's models are
    summarised in one row (mean and sd over its mixes), beside the midpoint of the study's ablation range.

    Raises
    ------
    ValueError
        When ``results`` lacks ``variant`` or a metric of :data:`HEADLINE_METRICS`.
    """
    need = {"variant", *HEADLINE_METRICS}
    if missing := need - set(results.columns):
        raise ValueError(f"results lack columns {sorted(missing)} (expected experiments.run_experiments' table)")
    df = results.copy()
    if "protocol" not in df.columns:
        df["protocol"] = "?"
    is_abl = df["kind"].eq("ablation") if "kind" in df.columns else pd.Series(False, index=df.index)

    def summarise(g: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any]:
        for col, label in HEADLINE_METRICS.items():
            row[label] = float(g[col].mean())
            row[f"{label} sd"] = float(g[col].std(ddof=1)) if len(g) > 1 else float("nan")
        return row

    rows = []
    for (variant, protocol), g in df[~is_abl].groupby(["variant", "protocol"], sort=False):
        row = summarise(
            g,
            {
                "model": variant,
                "protocol": protocol,
                "seeds": int(g["seed"].nunique()) if "seed" in g.columns else len(g),
            },
        )
        row["study accuracy"], row["study macro-F1"] = _study_numbers(str(variant))
        rows.append(row)
    if is_abl.any():
        a = df[is_abl]
        row = summarise(
            a,
            {
                "model": f"ablation ({a['variant'].nunique()} source mixes: mean ± sd over mixes)",
                "protocol": a["protocol"].iloc[0],
                "seeds": int(a["seed"].nunique()) if "seed" in a.columns else 1,
            },
        )
        # the study logged a range over its mixes, not one number: format_headline shows it
        row["study accuracy"], row["study macro-F1"] = float("nan"), float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


ANCHOR_WHAT: dict[str, str] = {
    "anchor_logreg": "logistic regression (scikit-learn)",
    "anchor_svm_rbf": "RBF-kernel SVM (scikit-learn)",
    "anchor_mlp": "one-hidden-layer MLP (scikit-learn)",
}
"""What each anchor is, in words, for the "what a user would pick instead" table."""


def best_sefin_model(results: pd.DataFrame, *, metric: str = "val_macro_f1") -> str | None:
    """The sefin model (not an anchor, not the ablation) with the best mean validation score: the one a reader
    compares with the anchors (the test split is never looked at to choose it). None when the run has none."""
    df = results
    if "kind" in df.columns:
        df = df[~df["kind"].isin(["anchor", "ablation"])]
    if df.empty:
        return None
    means = df.groupby("variant", sort=False)[metric].mean().sort_values(ascending=False, kind="stable")
    return str(means.index[0])


def anchors_beside(results: pd.DataFrame) -> pd.DataFrame:
    """What a user would pick instead: the scikit-learn anchors (``kind == "anchor"``) and the best sefin model
    (:func:`best_sefin_model`) in the headline's rows and columns (:func:`headline`), each with what it is and its
    test macro-F1 minus the best sefin model's (``vs best sefin``). Empty when the run trained no anchor.

    Model names are the run's variant names, as in every other table and figure.
    """
    if "kind" not in results.columns or not results["kind"].eq("anchor").any():
        return pd.DataFrame()
    best = best_sefin_model(results)
    keep = results["kind"].eq("anchor") | (results["variant"] == best)
    head = headline(results[keep])
    anchors_first = head["model"].map(lambda v: 0 if v in ANCHOR_WHAT else 1)
    head = head.assign(_order=anchors_first).sort_values("_order", kind="stable").drop(columns="_order")
    what = [ANCHOR_WHAT.get(m, "best sefin model on validation macro-F1") for m in head["model"]]
    head.insert(1, "what", what)
    ref = head.loc[head["model"] == best, "test macro-F1"]
    head["vs best sefin"] = head["test macro-F1"] - (float(ref.iloc[0]) if len(ref) else float("nan"))
    return head.drop(columns=["study accuracy", "study macro-F1"], errors="ignore").reset_index(drop=True)


def anchors_table(results: pd.DataFrame) -> tables.Table:
    """:func:`anchors_beside` as a people table (mean ± sd where a model has two seeds or more)."""
    beside = anchors_beside(results)
    if beside.empty:
        return tables.Table(pd.DataFrame({"": ["this run trained no anchor (param anchors is empty)"]}))
    shown = format_headline(beside)
    shown.insert(1, "what", beside["what"])
    shown["test macro-F1 vs best sefin"] = [
        "" if pd.isna(v) or m not in ANCHOR_WHAT else ("+" if v > 0 else "") + tables.fmt(float(v))
        for v, m in zip(beside["vs best sefin"], beside["model"], strict=True)
    ]
    cap = (
        f"The scikit-learn anchors on the standardised 162-dim vector, {_train_clips_said(results)} and scored on "
        "the same test and ESD recordings, beside the sefin model with the best validation macro-F1; last "
        "column: test macro-F1 minus that model's (negative: the anchor is worse)."
    )
    return tables.Table(shown, caption=cap, rename={c: c for c in shown.columns})


def _train_clips_said(results: pd.DataFrame) -> str:
    """How the anchors' train clips compare with the best sefin model's, from ``n_train`` and
    ``train_augmentations`` (results of runs before those columns: "trained on the same train split")."""
    best = best_sefin_model(results)
    if best is None or "n_train" not in results.columns:
        return "trained on the same train split"

    def clips(rows: pd.DataFrame) -> tuple[int, str]:
        r = rows.iloc[0]
        aug = "" if pd.isna(r.get("train_augmentations")) else str(r.get("train_augmentations"))
        copies = [a for a in aug.split("+") if a and a != "orig"]
        said = "original recordings" if aug == "orig" else "clips"
        if copies:
            said += f", {'the originals with their' if 'orig' in aug else 'only the'} {' and '.join(copies)} copies"
        return int(r["n_train"]), said

    anchors = results[results["kind"] == "anchor"]
    (na, aa), (nb, ab) = clips(anchors), clips(results[results["variant"] == best])
    if (na, aa) == (nb, ab):
        return f"trained on the same {na:,} train clips ({aa})"
    return f"trained on the train split's {na:,} {aa} ({best}: {nb:,} {ab})"


def say_anchors(results: pd.DataFrame, *, metric: str = "test_macro_f1") -> _Markdown:
    """ "What the numbers say" about the anchors: the best sefin model (on validation) against the best anchor and
    the logistic regression in test macro-F1, and whether each difference exceeds the larger sd over seeds."""
    if "kind" not in results.columns or not results["kind"].eq("anchor").any():
        return _Markdown("This run trained no anchor, so there is nothing to compare sefin's models with.")
    best = best_sefin_model(results)
    if best is None:
        return _Markdown("This run trained only anchors.")
    label = tables.readable(metric)

    def stats(v: str) -> tuple[float, float]:
        x = results.loc[results["variant"] == v, metric]
        return float(x.mean()), (float(x.std(ddof=1)) if len(x) > 1 else float("nan"))

    anchors = results[results["kind"] == "anchor"].groupby("variant", sort=False)[metric].mean()
    top = str(anchors.idxmax())
    m, sd = stats(best)
    shown = tables.mean_sd(results.loc[results["variant"] == best, metric])
    parts = [f"The best sefin model on validation, {best}, scores {label} {shown}."]
    for anchor in dict.fromkeys([a for a in ("anchor_logreg",) if a in anchors.index] + [top]):
        am, asd = stats(anchor)
        diff = m - am
        where = "above" if diff > 0 else "below" if diff < 0 else "level with"
        spread = np.nanmax([sd, asd]) if not (np.isnan(sd) and np.isnan(asd)) else float("nan")
        tail = (
            "with one seed there is no spread to compare the difference with"
            if np.isnan(spread)
            else f"the difference {'exceeds' if abs(diff) > spread else 'does not exceed'} the larger sd over seeds "
            f"({tables.fmt(float(spread))})"
        )
        best_word = " (the best anchor)" if anchor == top else ""
        parts.append(
            f"{anchor}{best_word} scores {tables.mean_sd(results.loc[results['variant'] == anchor, metric])}: "
            f"{best} is {tables.fmt(abs(diff))} {where} it; {tail}."
        )
    return _Markdown(" ".join(parts))


def format_headline(head: pd.DataFrame) -> pd.DataFrame:
    """The headline for reading: ``mean ± sd`` where a model has two seeds or more, and for the ablation's row (its
    spread over mixes), the bare mean otherwise; 3 decimals, the number of seeds, the study's numbers last (for the
    ablation, the range of test accuracy over its mixes, :data:`sefin_utils.study.ABLATION_ACCURACY`)."""
    out = head[["model", "protocol", "seeds"]].copy()
    spread = [n >= 2 or str(m).startswith("ablation (") for m, n in zip(head["model"], head["seeds"], strict=True)]
    for label in HEADLINE_METRICS.values():
        if label not in head.columns:
            continue
        sd = head.get(f"{label} sd", pd.Series(float("nan"), index=head.index))
        out[label] = [tables.pm(m, s if k else None) for m, s, k in zip(head[label], sd, spread, strict=True)]
    for label in ("study accuracy", "study macro-F1"):
        if label in head.columns:
            out[label] = [tables.fmt(v) for v in head[label]]
    if "study accuracy" in out.columns:
        lo, hi = study.ABLATION_ACCURACY
        is_abl = head["model"].astype(str).str.startswith("ablation (")
        out.loc[is_abl, "study accuracy"] = f"{tables.fmt(lo)}–{tables.fmt(hi)} (range)"
    return out


def headline_table(head: pd.DataFrame, *, caption: str | None = None) -> tables.Table:
    """:func:`format_headline` as a people table (keeps its column names)."""
    shown = format_headline(head)
    return tables.Table(shown, caption=caption, rename={c: c for c in shown.columns})


def write_table(
    df: pd.DataFrame,
    out_dir: Path,
    stem: str,
    *,
    title: str | None = None,
    banner: str | None = None,
    people: bool = True,
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (raw values) and a standalone ``<stem>.html`` (a people table, with the banner when
    given)."""
    out_dir = Path(out_dir)
    csv_path, html_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.html"
    write_csv(df, csv_path)
    shown = tables.people(df) if people else tables.Table(df, rename={c: c for c in df.columns})
    body = (f'<div class="banner">{html.escape(banner)}</div>' if banner else "") + shown.to_html()
    atomic_write_text(html_path, _page(title or stem, body))
    return csv_path, html_path


def write_results(results: pd.DataFrame, run_dir: Path) -> dict[str, Path]:
    """Write the full results table and the headline table to ``<run_dir>/report/`` (CSV + HTML each), and
    ``anchors.csv`` (:func:`anchors_beside`) when the run trained anchors."""
    out = Path(run_dir) / REPORT_SUBDIR
    text = banner_text(run_dir)
    res_csv, res_html = write_table(results, out, "results", title="sefin results: every model and seed", banner=text)
    head = headline(results)
    head_csv, _ = write_table(head, out, "headline", title="sefin headline", banner=text)
    beside = anchors_beside(results)
    written = {}
    if not beside.empty:
        written["anchors.csv"] = write_csv(beside, out / "anchors.csv")
    head_html = out / "headline.html"
    atomic_write_text(
        head_html,
        _page(
            "sefin headline",
            (f'<div class="banner">{html.escape(text)}</div>' if text else "") + headline_table(head).to_html(),
        ),
    )
    return {
        "results.csv": res_csv,
        "results.html": res_html,
        "headline.csv": head_csv,
        "headline.html": head_html,
        **written,
    }


def set_main_figures(run_dir: Path, figures: Sequence[str | os.PathLike]) -> Path:
    """Record which figures (paths or names under ``<run_dir>/figures``) lead the index, in order.

    Raises
    ------
    FileNotFoundError
        When a figure is not in the run's ``figures/`` folder.
    """
    names = []
    for f in figures:
        p = Path(f)
        if not (Path(run_dir) / "figures" / p.name).is_file():
            raise FileNotFoundError(f"main figure {p.name} is not in {Path(run_dir) / 'figures'}")
        names.append(p.name)
    path = Path(run_dir) / REPORT_SUBDIR / "main_figures.json"
    atomic_write_text(path, to_json(names))
    return path


# ------------------------------------------------------------------------------------------- what the numbers say


def _n_seeds(results: pd.DataFrame) -> int:
    return int(results["seed"].nunique()) if "seed" in results.columns else 1


def predicted_shares(run_dir: Path, variants: Sequence[str], *, dirs: Sequence[str] = ("ser", "baseline")) -> dict:
    """For each model, the class it predicts most often on the test split and how often: ``{variant: (class,
    count, n)}``, read from the confusion matrix of its first seed's metrics JSON (``<dir>/metrics/<variant>__seed*
    .json``, written by ``experiments.run_experiments``). Models without such a file are left out."""
    out = {}
    for v in variants:
        for d in dirs:
            files = sorted((Path(run_dir) / d / "metrics").glob(f"{v}__seed*.json"))
            if not files:
                continue
            payload = read_json(files[0])
            test = (payload.get("reports") or {}).get("test") or {}
            overall = test.get("overall", test)
            conf = np.asarray(overall.get("confusion") or [], dtype=float)
            classes = overall.get("classes") or payload.get("classes") or []
            if conf.ndim == 2 and conf.size and len(classes) == conf.shape[1]:
                col = conf.sum(axis=0)
                k = int(np.argmax(col))
                out[str(v)] = (str(classes[k]), int(col[k]), int(conf.sum()))
            break
    return out


def at_epoch_cap(results: pd.DataFrame, *, patience: int | None = None) -> pd.DataFrame:
    """Rows of a results table whose training ended at its epoch cap while the validation score still improved.

    Early stopping ends a run ``patience`` epochs after its best epoch; a run that ended sooner after it
    (``epochs_run - best_epoch < patience``, best epoch > 0) was cut by the cap (``ser_epochs``, or
    ``ser_finetune_epochs`` for the epochs through the FINs). Without ``patience``, only runs whose best epoch is
    their last. Returns the matching rows (empty where the table lacks ``best_epoch`` or ``epochs_run``).
    """
    if not {"best_epoch", "epochs_run", "variant", "seed"} <= set(results.columns):
        return results.iloc[:0]
    best = pd.to_numeric(results["best_epoch"], errors="coerce")
    ran = pd.to_numeric(results["epochs_run"], errors="coerce")
    ended = (ran - best < patience) if patience is not None else (best == ran)
    return results[(best > 0) & ended]


def say_models(
    results: pd.DataFrame,
    *,
    metric: str = "test_macro_f1",
    n_classes: int | None = None,
    kind: str | None = None,
    run_dir: Path | None = None,
    patience: int | None = None,
) -> _Markdown:
    """ "What the numbers say" about classifiers, computed from a results table (one row per model and seed).

    States the protocol, the number of seeds, each model's mean (± sd over seeds where there are two or more),
    the chance level (``1 / n_classes``) and, for the best model against the runner-up, whether their difference
    exceeds the larger spread; with one seed it says that no difference can be told from seed noise. With
    ``run_dir``, models that put most test recordings in one class are named (:func:`predicted_shares`). Models
    still improving when their epochs ran out are named (:func:`at_epoch_cap`, with the run's ``patience``).
    """
    df = results if kind is None or "kind" not in results.columns else results[results["kind"] == kind]
    if "kind" in df.columns:
        df = df[df["kind"] != "ablation"]
    if df.empty:
        return _Markdown("No classifier results in this run.")
    label = tables.readable(metric)
    protocol = ", ".join(str(p) for p in dict.fromkeys(df.get("protocol", pd.Series(["?"])).astype(str)))
    seeds = _n_seeds(df)
    g = df.groupby("variant", sort=False)[metric]
    stats = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count()}).sort_values("mean", ascending=False)
    parts = [
        f"Protocol `{protocol}`; {seeds} seed{'s' if seeds != 1 else ''} per model; "
        f"{label} on the test split (unaugmented recordings, never trained on)."
    ]
    listed = "; ".join(f"{v} {tables.mean_sd(df.loc[df['variant'] == v, metric])}" for v in stats.index)
    parts.append(f"By model, best first: {listed}.")
    if n_classes and "test_accuracy" in df.columns:
        chance = 1.0 / n_classes
        acc = df.groupby("variant", sort=False)["test_accuracy"].mean()
        above = int((acc > chance).sum())
        parts.append(
            f"A uniform random guess has accuracy {tables.fmt(chance)} ({n_classes} classes): {above} of {len(acc)} "
            "model(s) beat it in test accuracy."
        )
    if run_dir is not None:
        skewed = {v: t for v, t in predicted_shares(run_dir, list(stats.index)).items() if t[2] and t[1] > t[2] / 2}
        if skewed:
            listed = "; ".join(f"{v} says {c} for {k} of {n} ({k / n:.0%})" for v, (c, k, n) in skewed.items())
            parts.append(
                f"Most test recordings get one class, so these models have not learnt to tell the emotions "
                f"apart: {listed}."
            )
    if {"fin_trainable", "best_epoch"} <= set(df.columns):
        trainable = df["fin_trainable"].astype(str).str.lower() == "true"
        kept = df[trainable & (pd.to_numeric(df["best_epoch"], errors="coerce") == 0)]
        if not kept.empty:
            which = ", ".join(f"{v} (seed {s})" for v, s in zip(kept["variant"], kept["seed"], strict=True))
            parts.append(
                f"Fine-tuning kept its warm start for {which}: no epoch of training through the FINs beat, on "
                "validation macro-F1, the head trained first on the frozen FINs, so such a model equals that warm "
                "start (for e2e_finetuned: e2e_frozen of the same seed)."
            )
    capped = at_epoch_cap(df, patience=patience)
    if not capped.empty:
        which = ", ".join(
            f"{v} (seed {s}: best epoch {int(b)} of {int(n)})"
            for v, s, b, n in zip(
                capped["variant"], capped["seed"], capped["best_epoch"], capped["epochs_run"], strict=True
            )
        )
        parts.append(
            f"Still improving when their epochs ran out: {which}. These models may gain from more epochs "
            "(`ser_epochs`; `ser_finetune_epochs` for the training through the FINs)."
        )
    if {"train_augmentations", "n_train"} <= set(df.columns):
        seen = df.dropna(subset=["train_augmentations"]).groupby("train_augmentations", sort=False)
        if seen.ngroups > 1:
            groups = [
                f"{', '.join(dict.fromkeys(g['variant']))} on {a} ({int(g['n_train'].max()):,} clips)"
                for a, g in sorted(seen, key=lambda t: -len(t[1]))
            ]
            parts.append(
                "The models did not all train on the same clips (originals, augmented copies): "
                + "; ".join(groups)
                + "."
            )
    if len(stats) >= 2:
        (a, b) = stats.index[:2]
        diff = float(stats.loc[a, "mean"] - stats.loc[b, "mean"])
        if seeds < 2 or stats["sd"].isna().all():
            parts.append(
                f"{a} leads {b} by {tables.fmt(diff)}; with one seed there is no spread to compare it with, "
                "so this difference may be seed noise (run with more `seeds` to tell)."
            )
        else:
            spread = float(np.nanmax([stats.loc[a, "sd"], stats.loc[b, "sd"]]))
            verdict = "exceeds" if diff > spread else "does not exceed"
            parts.append(
                f"{a} leads {b} by {tables.fmt(diff)}, which {verdict} the larger of their standard "
                f"deviations over seeds ({tables.fmt(spread)})."
            )
    return _Markdown(" ".join(parts))


def say_splits(chosen: pd.DataFrame, protocol: str) -> _Markdown:
    """ "What the numbers say" about a split table: recordings and speakers per split, corpora whose split has no
    speaker (so that no sentence promises one), and whether a speaker sits in two splits."""
    df = chosen
    per = df.groupby("split")["recording_id" if "recording_id" in df.columns else df.columns[0]].count()
    order = [s for s in ("train", "val", "test", "ood") if s in per.index]
    counts = ", ".join(f"{s} {int(per[s])}" for s in order)
    parts = [f"Protocol `{protocol}`: {len(df)} recordings, {counts}."]
    if "speaker_key" in df.columns:
        spk = df.groupby(["corpus", "split"])["speaker_key"].nunique().unstack(fill_value=0)
        gaps = []
        for corpus, row in spk.iterrows():
            present = [s for s in ("train", "val", "test") if s in row.index and row[s] > 0]
            missing = [s for s in ("train", "val", "test") if s not in present]
            if present and missing:
                gaps.append(f"{corpus} has no speaker in {' and '.join(missing)}")
        if gaps:
            parts.append("Corpora with too few speakers for three splits: " + "; ".join(gaps) + ".")
        else:
            parts.append("Every corpus has a speaker in train, val and test.")
        shared = df[df["split"].isin(["train", "val", "test"])].groupby("speaker_key")["split"].nunique()
        n_shared = int((shared > 1).sum())
        parts.append(
            "No speaker is in two splits."
            if n_shared == 0
            else f"{n_shared} speaker(s) are in more than one split (as the `study` protocol allows)."
        )
    return _Markdown(" ".join(parts))


def say_labels(errors: pd.DataFrame, *, bound: float = 1e-4) -> _Markdown:
    """ "What the numbers say" about the label spot check: the worst relative error per feature against ``bound``."""
    worst = errors.groupby("feature", sort=False)["rel_error"].max()
    n = int(errors["clip_id"].nunique()) if "clip_id" in errors.columns else len(errors)
    over = [f for f, v in worst.items() if v > bound]
    listed = ", ".join(f"{f} {tables.fmt(float(v))}" for f, v in worst.items())
    verdict = (
        "every feature is within the bound"
        if not over
        else f"{', '.join(over)} exceed{'s' if len(over) == 1 else ''} it"
    )
    return _Markdown(
        f"On {n} clip(s), the largest error relative to the feature's range: "
        f"{listed}; the bound is {bound:g}, and {verdict}."
    )


def say_fins(table: pd.DataFrame) -> _Markdown:
    """ "What the numbers say" about the FINs' R²: each FIN in domain and on ESD beside the study's, and which are
    below it. One training run per FIN (no seeds to spread over)."""
    parts = [
        "One training run per FIN (no spread over seeds); R² on test frames of the "
        "training corpora and on ESD (out of domain), uniform over output dimensions."
    ]
    rows = []
    below = []
    for r in table.itertuples(index=False):
        d = r._asdict()
        ours, theirs = d.get("r2_test"), d.get("study_r2_test")
        ood = d.get("r2_ood")
        text = f"{d['feature']} {tables.fmt(ours)}"
        if ood is not None and not pd.isna(ood):
            text += f" (ESD {tables.fmt(ood)})"
        if theirs is not None and not pd.isna(theirs):
            text += f" against the study's {tables.fmt(theirs)}"
            if ours is not None and not pd.isna(ours) and ours < theirs:
                below.append(str(d["feature"]))
        rows.append(text)
    parts.append("; ".join(rows) + ".")
    parts.append(f"Below the study: {', '.join(below)}." if below else "None is below the study's number.")
    if "init" in table.columns and "r2_test" in table.columns:
        kept = table[(table["init"].astype(str) == "librosa") & (table["r2_test"] >= 0.999)]
        if len(kept):
            parts.append(
                f"{', '.join(map(str, kept['feature']))} start{'s' if len(kept) == 1 else ''} at librosa's own "
                "computation (`fin_init: librosa`), so an R² near 1 shows that training kept it, not that a network "
                "learnt the feature from scratch (`fin_init: random` tests that)."
            )
    return _Markdown(" ".join(parts))


# --------------------------------------------------------------------------------------------------- the index


def figure_caption(name: str, *, generated: bool = False) -> str:
    """The caption of a figure of the run: what to look at (:data:`FIGURE_CAPTIONS`; confusion matrices and
    training curves by their model), marked as generated data when so."""
    stem = name.removesuffix(".png")
    if name in FIGURE_CAPTIONS:
        text = FIGURE_CAPTIONS[name]
    elif "_confusion_" in stem:
        text = (
            f"Confusion matrix of {stem.split('_confusion_', 1)[1]} (test split, rows sum to 1): the diagonal "
            "is correct; a full column is a class the model predicts for everything."
        )
    elif "_curves_" in stem:
        text = (
            f"Training curves of {stem.split('_curves_', 1)[1]}: loss and accuracy per epoch on train and "
            "validation; the marked epoch is the one kept."
        )
    else:
        text = stem.replace("_", " ")
    return f"{text} ({GENERATED_WORD.lower()})" if generated else text


def machine() -> dict[str, str]:
    """The machine the report is written on: CPU cores and the accelerator (``nvidia-smi -L``, else none)."""
    info = {"cores": str(os.cpu_count() or "?"), "platform": f"{platform.system()} {platform.machine()}"}
    device = "CPU only (no GPU found)"
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
            gpus = [line.split(" (UUID")[0] for line in out.stdout.splitlines() if line.startswith("GPU")]
            if gpus:
                device = "; ".join(gpus)
        except (OSError, subprocess.SubprocessError):
            pass
    info["device"] = device
    return info


def _stage_list(run_dir: Path, report_dir: Path, stages: Sequence[Any] | None) -> list[tuple[str, str]]:
    """(name, notebook) of the stages: as given, else from the stamps and the pages found."""
    if stages is not None:
        return [(s.name, s.notebook) for s in stages]
    found: dict[str, str] = {}
    for stamp in sorted((run_dir / "stages").glob("*.json")) if (run_dir / "stages").is_dir() else []:
        d = read_json(stamp)
        nb = Path(str(d.get("notebook", stamp.stem))).stem
        found[nb] = str(d.get("stage", stamp.stem))
    for page in report_dir.glob("[0-9][0-9]_*.html"):
        nb = page.name.split(".")[0]
        found.setdefault(nb, nb.split("_", 1)[1])
    return [(name, nb) for nb, name in sorted(found.items())]


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def _facts_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="table-wrap"><table class="facts">{body}</table></div>'


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def stage_history(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Every recorded execution of each stage of a run folder, summed: one row per stage with ``executions``,
    ``failed`` (how many of them failed) and ``seconds`` (their wall time, seconds, failed ones included). Read from
    :data:`sefin_utils.stages.STAGE_HISTORY`; empty (those columns) when the run has none. Unreadable lines raise
    ``ValueError`` naming the file and line."""
    path = Path(run_dir) / STAGE_HISTORY
    cols = ["stage", "executions", "failed", "seconds"]
    if not path.is_file():
        return pd.DataFrame(columns=cols)
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {i}: not JSON ({exc})") from None
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    out = df.groupby("stage", sort=False).agg(
        executions=("seconds", "size"),
        failed=("status", lambda x: int((x == "failed").sum())),
        seconds=("seconds", "sum"),
    )
    return out.reset_index()[cols]


def _wall_time_fact(total: float, history: pd.DataFrame) -> str:
    """The index's wall-time line: the stages' last executions, and every recorded execution when there were more."""
    if not total:
        return "no stage stamped"
    text = f"{_fmt_seconds(total)} over the stages' last executions (a skipped stage keeps its earlier time)"
    n = int(history["executions"].sum()) if len(history) else 0
    if n > len(history):
        text += (
            f"; {_fmt_seconds(float(history['seconds'].sum()))} over all {n} recorded executions of "
            f"{len(history)} stages (the run in parts, failed, stopped and killed executions included)"
        )
    return html.escape(text)


def build_index(run_dir: Path, report_dir: Path, *, stages: Sequence[Any] | None = None) -> Path:
    """Copy figures and tables into ``report_dir`` and write its ``index.html``.

    The index leads with the generated-data banner (when so) and the run's facts (profile, data, protocol, seeds,
    machine, date, wall time per stage with links to each stage's page with and without code), then the headline
    beside the study's logged numbers, the anchors beside the best sefin model (:func:`anchors_table`, when the run
    trained anchors), the main figures in a two-column grid with captions, the skipped files, the
    other figures and the params. ``stages`` (objects with ``name`` and ``notebook``) default to the stamps in
    ``<run_dir>/stages`` and the pages in ``report_dir``.
    """
    run_dir, report_dir = Path(run_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    trained_seeds: list[Any] = []
    try:  # the tables of whatever classifier stages ran (a run in parts: stage 02 alone has a headline too)
        results = collect_results(run_dir)
        write_results(results, run_dir)
        if "seed" in results.columns:
            trained_seeds = sorted(int(x) for x in results["seed"].dropna().unique())
    except FileNotFoundError:
        pass
    fig_out = report_dir / "figures"
    figures = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    if figures:
        fig_out.mkdir(exist_ok=True)
        for f in figures:
            shutil.copy2(f, fig_out / f.name)
    for name in ("results.csv", "results.html", "headline.csv", "headline.html", "anchors.csv"):
        src = run_dir / REPORT_SUBDIR / name
        if src.is_file():
            shutil.copy2(src, report_dir / name)
    if (run_dir / "fins" / "families.csv").is_file():  # both FIN families' R² (stage 04), for the README's results
        shutil.copy2(run_dir / "fins" / "families.csv", report_dir / "fins.csv")
    P = _params(run_dir)
    env = read_json(run_dir / "environment.json") if (run_dir / "environment.json").is_file() else {}
    generated = is_generated_run(run_dir)
    parts: list[str] = [banner_html(run_dir)]
    mach = machine()
    # the seeds of the models in the tables (a run stopped or resumed with more seeds: what the numbers come from)
    seeds = trained_seeds or P.get("seeds") or [P.get("seed", "?")]
    data = "generated demo corpus (synthetic)" if generated else str(P.get("data_root"))
    stage_rows = []
    total = 0.0
    history = stage_history(run_dir).set_index("stage")
    for name, nb in _stage_list(run_dir, report_dir, stages):
        stamp_path = run_dir / "stages" / f"{name}.json"
        stamp = read_json(stamp_path) if stamp_path.is_file() else {}
        links = []
        if (report_dir / f"{nb}.nocode.html").is_file():
            links.append(f'<a href="{nb}.nocode.html">report</a>')
        if (report_dir / f"{nb}.html").is_file():
            links.append(f'<a href="{nb}.html">with code</a>')
        status = "not run"
        if stamp:
            total += float(stamp.get("seconds", 0.0))
            finished = str(stamp.get("finished", "")).replace("T", " ")
            status = f"{_fmt_seconds(float(stamp['seconds']))}, finished {finished}"
            if name in history.index and int(history.at[name, "executions"]) > 1:
                h = history.loc[name]
                status += (
                    f"<br><small>{int(h['executions'])} executions (a run in parts), "
                    f"{_fmt_seconds(float(h['seconds']))} in all</small>"
                )
        if (report_dir / f"{nb}.failed.html").is_file():
            links.append(f'<a class="failed" href="{nb}.failed.html">failed run</a>')
            status = '<span class="failed">failed</span>' if not stamp else status
        stage_rows.append(f"<tr><td>{html.escape(nb)}</td><td>{' | '.join(links)}</td><td>{status}</td></tr>")
    facts = [
        ("profile", f"<code>{html.escape(str(P.get('profile', run_dir.name)))}</code>"),
        ("data", html.escape(data)),
        ("split protocol", f"<code>{html.escape(str(P.get('protocol', '?')))}</code>"),
        ("seeds", html.escape(f"{len(seeds)} ({', '.join(str(s) for s in seeds)})")),
        (
            "machine",
            html.escape(
                f"{mach['cores']} CPU cores, {mach['device']}; {mach['platform']}"
                + (f"; Python {env['python']}" if env.get("python") else "")
                + (
                    f", TensorFlow {env.get('tensorflow') or env.get('tensorflow-cpu')}"
                    if env.get("tensorflow") or env.get("tensorflow-cpu")
                    else ""
                )
            ),
        ),
        ("written", time.strftime("%Y-%m-%d %H:%M %Z")),
        ("wall time", _wall_time_fact(total, history)),
    ]
    parts.append(_facts_table(facts))
    head = run_dir / REPORT_SUBDIR / "headline.csv"
    parts.append("<h2>Headline</h2>")
    if head.is_file():
        hd = pd.read_csv(head)
        parts.append(headline_table(hd).to_html())
        many = bool((hd["seeds"] > 1).any()) if "seeds" in hd.columns else False
        parts.append(
            "<p>"
            + (
                "Mean ± standard deviation over seeds where a model has two seeds or more; "
                if many
                else "One seed per model: no spread is shown, so small differences may be seed noise. "
            )
            + "Test: unaugmented recordings of the run's protocol, never trained on; ESD: out of domain, scored on "
            f"the five classes it shares. The study's columns are its logged numbers ({html.escape(study.PROTOCOL)}"
            f"; single runs); the public Kaggle notebook reported {tables.fmt(study.KAGGLE_NOTEBOOK_ACCURACY)} test "
            "accuracy on a split that shares augmented rows of one recording.</p>"
        )
        parts.append(
            '<p>Every model and seed: <a href="results.html">results.html</a> (<a href="results.csv">CSV</a>).</p>'
        )
        res_csv = run_dir / REPORT_SUBDIR / "results.csv"
        if res_csv.is_file():
            res = pd.read_csv(res_csv)
            if "kind" in res.columns and res["kind"].eq("anchor").any():
                parts.append("<h2>What a user would pick instead</h2>")
                parts.append(anchors_table(res).to_html())
                parts.append(f"<p>{html.escape(say_anchors(res).text)}</p>")
    else:
        parts.append("<p><em>No results yet: the report stage has not run.</em></p>")
    main_path = run_dir / REPORT_SUBDIR / "main_figures.json"
    main = read_json(main_path) if main_path.is_file() else []
    shown = [n for n in main if (fig_out / n).is_file()]
    if shown:
        parts.append(
            "<h2>Main figures</h2><div class='grid'>"
            + "".join(_figure(fig_out / n, f"figures/{n}", figure_caption(n, generated=generated)) for n in shown)
            + "</div>"
        )
    parts.append(
        "<h2>Stages</h2><div class='table-wrap'><table><tr><th>stage</th><th>pages</th>"
        "<th>wall time</th></tr>" + "".join(stage_rows) + "</table></div>"
    )
    skipped = run_dir / "skipped.csv"
    if skipped.is_file():
        sk = pd.read_csv(skipped)
        write_table(sk, report_dir, "skipped", title="Files skipped by discovery", banner=banner_text(run_dir))
        parts.append(
            f"<h2>Skipped files</h2><p>{len(sk)} file(s) under the data root not used, each with its "
            f'reason: <a href="skipped.html">skipped.html</a>.</p>'
        )
    others = [f for f in figures if f.name not in shown]
    if others:
        parts.append(
            f"<h2>Other figures</h2><details><summary>{len(others)} more figure(s) from the stage pages"
            "</summary><div class='grid'>"
            + "".join(
                _figure(fig_out / f.name, f"figures/{f.name}", figure_caption(f.name, generated=generated))
                for f in others
            )
            + "</div></details>"
        )
    if P:
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(to_json(v, indent=None))}</td></tr>"
            for k, v in P.items()
        )
        parts.append(
            "<h2>Params</h2><details><summary>resolved params</summary>"
            f"<div class='table-wrap'><table class='facts'>{rows}</table></div></details>"
        )
    index = report_dir / "index.html"
    atomic_write_text(index, _page(f"sefin report: {P.get('profile', run_dir.name)}", "\n".join(p for p in parts if p)))
    return index


WIDE_ASPECT = 2.5
"""Figures at least this many times wider than tall take a whole row of the index's grid."""


def _figure(path: Path, src: str, caption: str, *, inline: bool = False) -> str:
    """A grid cell: the image (linked to itself) and its caption; a wide figure spans the row. ``inline`` styles
    the cell itself (for pages without the index's CSS)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            wide = im.width >= WIDE_ASPECT * im.height
    except OSError:
        wide = False
    fig_style = img_style = cap_style = ""
    if inline:
        fig_style = ' style="margin:0;text-align:center' + (';grid-column:1/-1"' if wide else '"')
        img_style = ' style="max-width:100%;height:auto;border:1px solid #ddd' + ('"' if wide else ';max-height:460px"')
        cap_style = ' style="text-align:left;font-size:.88em;color:#444"'
    link = f'<a href="{src}">' if not src.startswith("data:") else "<a>"
    return (
        f'<figure class="{"wide" if wide else "half"}"{fig_style}>{link}<img src="{src}"{img_style} '
        f'alt="{html.escape(caption)}"></a><figcaption{cap_style}>{html.escape(caption)}</figcaption></figure>'
    )


def figure_grid(paths: Sequence[Path], *, generated: bool = False) -> _HTML:
    """Figures (PNG paths) laid out as on the index, embedded in the page (for a notebook): two per row, a wide one
    alone, each with its caption (:func:`figure_caption`)."""
    import base64

    cells = []
    for p in paths:
        data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        caption = figure_caption(Path(p).name, generated=generated)
        cells.append(_figure(Path(p), f"data:image/png;base64,{data}", caption, inline=True))
    grid = "display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1.2em;align-items:start"
    return _HTML(f'<div class="grid" style="{grid}">' + "".join(cells) + "</div>")


# --------------------------------------------------------------------------------------------------- page checks

STDERR_MARKERS: tuple[str, ...] = ('data-mime-type="application/vnd.jupyter.stderr"', 'class="output_stderr')
"""How nbconvert's HTML marks a stderr output block (lab template; classic template)."""


def page_problems(page: str, *, generated: bool) -> list[str]:
    """What a reader must not see on a rendered page (HTML text): stderr output blocks, a missing generated-data
    banner on a generated run, the same image twice. Returns one message per problem (empty: the page is clean).

    Images are compared by their ``src`` (a file path, or the embedded base64 data of a notebook's figure).
    """
    import re
    from collections import Counter

    problems = []
    n_err = sum(page.count(m) for m in STDERR_MARKERS)
    if n_err:
        problems.append(f"{n_err} stderr output block(s)")
    if generated and GENERATED_WORD not in page:
        problems.append(f"no {GENERATED_WORD} banner on a generated run")
    srcs = Counter(re.findall(r"<img[^>]*?\ssrc=\"([^\"]+)\"", page))
    repeated = [s for s, n in srcs.items() if n > 1]
    if repeated:
        problems.append(
            f"{len(repeated)} image(s) shown more than once: "
            + ", ".join(s[:60] + ("..." if len(s) > 60 else "") for s in repeated)
        )
    return problems
