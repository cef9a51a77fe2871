"""The run's report: results table (CSV + HTML) and ``reports/<profile>/index.html``.

The report stage notebook (06_report) gathers the stages' results with :func:`collect_results`, writes them with
:func:`write_results` and names its main figures with :func:`set_main_figures`; the runner then renders every executed
notebook to HTML and calls :func:`build_index`, which copies the figures and tables into the report folder and writes
an index that leads with the headline table and the main figures. A run on generated data says so in a banner.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

STUDY_RESULTS: pd.DataFrame = pd.DataFrame(
    [
        ("Kaggle notebook (162-d vector, Conv1D)", "kaggle (augmented rows split)", 0.607, None),
        ("baseline (162-d vector)", "study", 0.513, 0.48),
        ("FINs frozen", "study", 0.491, 0.47),
        ("FINs fine-tuned", "study", 0.616, 0.65),
        ("random init", "study", 0.520, 0.55),
    ],
    columns=["model", "protocol", "accuracy", "macro_f1"],
)
"""The published numbers ours are read beside (test sets of the study and of the public Kaggle notebook)."""

RESULT_SOURCES: tuple[str, ...] = ("baseline/results.csv", "ser/results.csv")
"""Run-folder tables that :func:`collect_results` concatenates (written by stages 02 and 05)."""
REPORT_SUBDIR = "report"
"""Run-folder subfolder the report notebook writes to (results, headline, main figure list)."""

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.banner{background:#fff3cd;border:2px solid #e0a800;padding:.8em 1em;font-weight:600;margin:1em 0}
.failed{color:#b00020;font-weight:600}figure{display:inline-block;margin:.5em;max-width:100%}
figure img{max-width:520px;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}
code{background:#f5f5f5;padding:0 .2em}
"""


def _read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def is_generated_run(run_dir: Path) -> bool:
    """True when the run's data is sefin's generated demo corpus (from its params.json)."""
    P = _read_json(Path(run_dir) / "params.json") or {}
    if not P.get("data_root"):
        return True
    root = Path(P["data_root"])
    return (root / "GENERATED.txt").is_file()


def banner_text(run_dir: Path) -> str | None:
    """The generated-data warning every report carries at the top, or None for real data."""
    if not is_generated_run(run_dir):
        return None
    return (
        "GENERATED DATA: this run used sefin's synthetic demo corpus (emotions rendered as prosody by a generator), "
        "not real speech. Its numbers show that the pipeline works; they say nothing about emotion recognition."
    )


def collect_results(run_dir: Path, *, sources: Sequence[str] = RESULT_SOURCES) -> pd.DataFrame:
    """Concatenate the stages' result tables (baseline and SER with FINs) found in the run folder."""
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


HEADLINE_METRICS: dict[str, str] = {
    "test_accuracy": "test accuracy",
    "test_macro_f1": "test macro-F1",
    "test_uar": "test UAR",
    "ood_accuracy": "ESD accuracy",
    "ood_macro_f1": "ESD macro-F1",
    "val_macro_f1": "val macro-F1",
}
"""Result columns (``ser.run_experiments``) the headline shows, with their labels."""
STUDY_BY_VARIANT: dict[str, tuple[float, float]] = {
    "baseline": (0.513, 0.48),
    "e2e_frozen": (0.491, 0.47),
    "e2e_finetuned": (0.616, 0.65),
    "e2e_random": (0.520, 0.55),
}
"""The study's logged test accuracy and macro-F1 per variant (file-level split, speakers shared, single runs)."""


def headline(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model (variant) and protocol: test and ESD metrics, mean and standard deviation over seeds,
    with the study's numbers beside. The ablation's models are summarised in one row (their spread)."""
    need = {"variant", *HEADLINE_METRICS}
    if missing := need - set(results.columns):
        raise ValueError(f"results lack columns {sorted(missing)} (expected ser.run_experiments' table)")
    df = results.copy()
    if "protocol" not in df.columns:
        df["protocol"] = "?"
    is_abl = df["kind"].eq("ablation") if "kind" in df.columns else pd.Series(False, index=df.index)
    rows = []
    for (variant, protocol), g in df[~is_abl].groupby(["variant", "protocol"], sort=False):
        row: dict[str, object] = {"model": variant, "protocol": protocol,
                                  "seeds": int(g["seed"].nunique()) if "seed" in g.columns else len(g)}
        for col, label in HEADLINE_METRICS.items():
            row[label] = float(g[col].mean())
            row[f"{label} sd"] = float(g[col].std(ddof=1)) if len(g) > 1 else float("nan")
        study = STUDY_BY_VARIANT.get("baseline" if str(variant).startswith("baseline") else str(variant))
        row["study accuracy"], row["study macro-F1"] = study if study else (float("nan"), float("nan"))
        rows.append(row)
    if is_abl.any():
        a = df[is_abl]
        row = {"model": f"ablation ({a['variant'].nunique()} source mixes, range)", "protocol": a["protocol"].iloc[0],
               "seeds": int(a["seed"].nunique()) if "seed" in a.columns else 1}
        for col, label in HEADLINE_METRICS.items():
            row[label] = float(a[col].mean())
            row[f"{label} sd"] = float(a[col].std(ddof=1)) if len(a) > 1 else float("nan")
        row["study accuracy"], row["study macro-F1"] = 0.598, float("nan")  # midpoint of the study's 57.8-61.8 %
        rows.append(row)
    return pd.DataFrame(rows)


def format_headline(head: pd.DataFrame) -> pd.DataFrame:
    """The headline for reading: ``mean ± sd`` strings, the study's numbers last."""
    out = head[["model", "protocol", "seeds"]].copy()
    for label in HEADLINE_METRICS.values():
        if label not in head.columns:
            continue
        sd = head.get(f"{label} sd", pd.Series(float("nan"), index=head.index))
        out[label] = [("" if pd.isna(m) else f"{m:.3f}" + ("" if pd.isna(s) else f" ± {s:.3f}"))
                      for m, s in zip(head[label], sd, strict=True)]
    for label in ("study accuracy", "study macro-F1"):
        if label in head.columns:
            out[label] = ["" if pd.isna(v) else f"{v:.3f}" for v in head[label]]
    return out


def write_table(df: pd.DataFrame, out_dir: Path, stem: str, *, title: str | None = None,
                banner: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and a standalone ``<stem>.html`` (with the banner when given)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.html"
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, csv_path)
    body = _table_html(df)
    page = _page(title or stem, (f'<div class="banner">{html.escape(banner)}</div>' if banner else "") + body)
    _write_text(html_path, page)
    return csv_path, html_path


def write_results(results: pd.DataFrame, run_dir: Path) -> dict[str, Path]:
    """Write the full results table and the headline table to ``<run_dir>/report/`` (CSV + HTML each)."""
    out = Path(run_dir) / REPORT_SUBDIR
    banner = banner_text(run_dir)
    res_csv, res_html = write_table(results, out, "results", title="sefin results", banner=banner)
    head = headline(results)
    head_csv = out / "headline.csv"
    write_table(head, out, "headline", title="sefin headline", banner=banner)
    head_html = out / "headline.html"
    _write_text(head_html, _page("sefin headline", (f'<div class="banner">{html.escape(banner)}</div>' if banner
                                                     else "") + _table_html(format_headline(head))))
    return {"results.csv": res_csv, "results.html": res_html, "headline.csv": head_csv, "headline.html": head_html}


def set_main_figures(run_dir: Path, figures: Sequence[str | os.PathLike]) -> Path:
    """Record which figures (paths or names under ``<run_dir>/figures``) lead the index, in order."""
    names = []
    for f in figures:
        p = Path(f)
        if not (Path(run_dir) / "figures" / p.name).is_file():
            raise FileNotFoundError(f"main figure {p.name} is not in {Path(run_dir) / 'figures'}")
        names.append(p.name)
    path = Path(run_dir) / REPORT_SUBDIR / "main_figures.json"
    _write_text(path, json.dumps(names, indent=2))
    return path


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="", border=0)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_index(run_dir: Path, report_dir: Path, *, stages: Sequence[Any] | None = None) -> Path:
    """Copy figures and tables into ``report_dir`` and write its ``index.html``.

    The index leads with the generated-data banner (when so), the headline table and the main figures, then links
    each stage's HTML (with and without code; a failed stage's kept notebook), the results, the skipped files,
    the params.
    """
    from sefin_utils.stages import STAGES

    run_dir, report_dir = Path(run_dir), Path(report_dir)
    stages = STAGES if stages is None else stages
    report_dir.mkdir(parents=True, exist_ok=True)
    fig_out = report_dir / "figures"
    figures = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    if figures:
        fig_out.mkdir(exist_ok=True)
        for f in figures:
            shutil.copy2(f, fig_out / f.name)
    for name in ("results.csv", "results.html", "headline.csv", "headline.html"):
        src = run_dir / REPORT_SUBDIR / name
        if src.is_file():
            shutil.copy2(src, report_dir / name)
    P = _read_json(run_dir / "params.json") or {}
    parts: list[str] = []
    banner = banner_text(run_dir)
    if banner:
        parts.append(f'<div class="banner">{html.escape(banner)}</div>')
    parts.append(
        f"<p>Profile <code>{html.escape(str(P.get('profile', '?')))}</code>; data "
        f"<code>{html.escape(str(P.get('data_root') or 'generated demo corpus'))}</code>; protocol "
        f"<code>{html.escape(str(P.get('protocol', '?')))}</code>; seed {P.get('seed', '?')}. "
        f"Written {time.strftime('%Y-%m-%d %H:%M')}.</p>"
    )
    head = run_dir / REPORT_SUBDIR / "headline.csv"
    parts.append("<h2>Headline</h2>")
    if head.is_file():
        parts.append(_table_html(format_headline(pd.read_csv(head))))
        parts.append("<p>Mean ± standard deviation over seeds. Test: unaugmented recordings of the run's protocol, "
                     "never trained on; ESD: out of domain, scored on the five classes it shares. The study's "
                     "numbers come from a file-level split that shares speakers between train and test.</p>")
        parts.append('<p>All results: <a href="results.html">results.html</a> (<a href="results.csv">CSV</a>).</p>')
    else:
        parts.append("<p><em>No results yet: the report stage has not run.</em></p>")
    parts.append("<h3>The study's numbers, for comparison</h3>" + _table_html(STUDY_RESULTS))
    main = _read_json(run_dir / REPORT_SUBDIR / "main_figures.json") or []
    if main:
        parts.append("<h2>Main figures</h2>")
        parts += [_figure(f"figures/{n}", n) for n in main if (fig_out / n).is_file()]
    parts.append("<h2>Stages</h2><table><tr><th>stage</th><th>report</th><th>status</th></tr>")
    for s in stages:
        stamp = _read_json(run_dir / "stages" / f"{s.name}.json") or {}
        links = []
        if (report_dir / f"{s.notebook}.nocode.html").is_file():
            links.append(f'<a href="{s.notebook}.nocode.html">report</a>')
        if (report_dir / f"{s.notebook}.html").is_file():
            links.append(f'<a href="{s.notebook}.html">with code</a>')
        status = f"done in {stamp['seconds']:.0f} s, {stamp.get('finished', '')}" if stamp else "not run"
        if (report_dir / f"{s.notebook}.failed.html").is_file():
            links.append(f'<a class="failed" href="{s.notebook}.failed.html">failed run</a>')
            status = '<span class="failed">failed</span>' if not stamp else status
        parts.append(f"<tr><td>{s.notebook}</td><td>{' | '.join(links)}</td><td>{status}</td></tr>")
    parts.append("</table>")
    skipped = run_dir / "skipped.csv"
    if skipped.is_file():
        sk = pd.read_csv(skipped)
        write_table(sk, report_dir, "skipped", title="Files skipped by discovery", banner=banner)
        parts.append(f'<h2>Skipped files</h2><p>{len(sk)} file(s) not used, each with its reason: '
                     f'<a href="skipped.html">skipped.html</a>.</p>')
    others = [f for f in figures if f.name not in main]
    if others:
        parts.append("<h2>All figures</h2>" + "".join(_figure(f"figures/{f.name}", f.name) for f in others))
    if P:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
                       for k, v in P.items())
        parts.append(f"<h2>Params</h2><details><summary>resolved params</summary><table>{rows}</table></details>")
    index = report_dir / "index.html"
    _write_text(index, _page(f"sefin report: {P.get('profile', run_dir.name)}", "\n".join(parts)))
    return index


def _figure(src: str, caption: str) -> str:
    return f'<figure><a href="{src}"><img src="{src}" alt="{html.escape(caption)}"></a>' \
           f"<figcaption>{html.escape(caption)}</figcaption></figure>"
