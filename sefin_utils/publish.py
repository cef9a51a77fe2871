"""Publish rendered reports for the repository: ``python -m sefin_utils publish SRC [SRC ...] --to DEST``.

A run's report folder (``reports/<profile>/``, written by the runner) holds every stage page twice (with and without
code), the tables, the figures and the split table. What is committed (``reports/full/``, issue 16) is the readable
part only: ``index.html`` (its "with code" links dropped), every ``NN_stage.nocode.html``, the result tables
(``results.csv/html``, ``headline.csv/html``, ``anchors.csv``), ``splits.csv`` (recording ids and paths relative to
the data root, with their split, so that anyone can re-score a model on the same recordings), ``skipped.csv/html``
and ``figures/``. Failed-stage pages, executed notebooks and the pages with code stay behind. Several reports (one
per split protocol) go into sub-folders of ``DEST`` named by ``--names`` (default: each source folder's name), with
a small ``DEST/index.html`` linking them and stating the data's licences.

``--model RUN/model`` also ships a run's predict bundle as the repository's classifier (``models/sefin-ser/`` by
default, :func:`ship_model`): the bundle's files, its card with the corpora's licences added, and a ``README.md``
model card written from the card (what won and how it was chosen, protocol, clips per split, test scores per corpus,
ESD out of domain, licences). ``python -m sefin_utils predict`` uses it when no local run exists.

Nothing here reads the run folder or imports Keras: it copies files and writes text.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from sefin_utils import tables
from sefin_utils.constants import CORPUS_LICENCES, TRAIN_CORPORA

KEEP_FILES: tuple[str, ...] = (
    "index.html",
    "results.csv",
    "results.html",
    "headline.csv",
    "headline.html",
    "anchors.csv",
    "splits.csv",
    "skipped.csv",
    "skipped.html",
    "fins.csv",
)
"""Files of a report folder that are published when present (besides the stage pages and ``figures/``)."""

LICENCES: str = (
    "Licences of the data behind these results: "
    + "; ".join(f"{k}: {v}" for k, v in CORPUS_LICENCES.items())
    + ". The results and any model trained on these corpora keep their terms."
)
"""The corpora's licences, as stated wherever results or models trained on them are published."""

_CODE_LINK = re.compile(r'\s*\|\s*<a href="[0-9]{2}_[A-Za-z0-9_]+\.html">with code</a>')
_STAGE_PAGE = re.compile(r"^[0-9]{2}_[A-Za-z0-9_]+\.nocode\.html$")


def parse_renames(pairs: Sequence[str]) -> dict[str, str]:
    """``["OLD=NEW", ...]`` (the ``--rename`` options) -> ``{OLD: NEW}``; raises ``ValueError`` naming a pair
    without ``=`` or with an empty OLD."""
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old:
            raise ValueError(f"--rename {pair!r}: expected OLD=NEW, e.g. /home/me/sefin/data/full=data/full")
        out[old] = new
    return out


def _renamed(text: str, renames: dict[str, str]) -> str:
    """``text`` with each OLD replaced by its NEW, longest OLD first (so a folder and its sub-folder both apply)."""
    for old in sorted(renames, key=len, reverse=True):
        text = text.replace(old, renames[old])
    return text


def _rename_in_text(paths: Sequence[Path], renames: dict[str, str]) -> None:
    """Apply :func:`_renamed` to the published text files (html, csv) among ``paths``."""
    for path in paths:
        if renames and path.suffix in (".html", ".csv") and path.is_file():
            text = path.read_text(encoding="utf-8")
            new = _renamed(text, renames)
            if new != text:
                path.write_text(new, encoding="utf-8")


def publish_report(src: str | Path, dest: str | Path, *, renames: dict[str, str] | None = None) -> list[Path]:
    """Copy the readable part of one rendered report folder ``src`` into ``dest`` (created; files already there
    with the same names are replaced, others are removed so that ``dest`` mirrors ``src``). Returns the written paths.

    ``renames`` ({OLD: NEW}, the command's ``--rename OLD=NEW``) replaces text in the published pages and tables:
    for the machine's local paths (data root, run folder), which mean nothing to a reader, e.g.
    ``{"/home/me/sefin/data/full": "data/full"}``.

    Raises ``FileNotFoundError`` naming ``src`` when it holds no ``index.html`` (not a rendered report)."""
    src, dest = Path(src), Path(dest)
    if not (src / "index.html").is_file():
        raise FileNotFoundError(f"{src}: no index.html here; render the run's report first (python -m sefin_utils run)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    written: list[Path] = []
    for name in KEEP_FILES:
        if (src / name).is_file():
            written.append(Path(shutil.copy2(src / name, dest / name)))
    for page in sorted(src.iterdir()):
        if _STAGE_PAGE.match(page.name):
            written.append(Path(shutil.copy2(page, dest / page.name)))
    if (src / "figures").is_dir():
        shutil.copytree(src / "figures", dest / "figures")
        written += sorted((dest / "figures").iterdir())
    index = dest / "index.html"
    index.write_text(_CODE_LINK.sub("", index.read_text(encoding="utf-8")), encoding="utf-8")
    _rename_in_text(written, renames or {})
    return written


def write_landing(dest: str | Path, names: Sequence[str], *, title: str = "sefin: the study at full scale") -> Path:
    """``dest/index.html``: one link per published report (``dest/<name>/index.html``) and :data:`LICENCES`."""
    dest = Path(dest)
    items = "".join(
        f'<li><a href="{html.escape(n)}/index.html">{html.escape(n)}</a></li>'
        for n in names
        if (dest / n / "index.html").is_file()
    )
    body = (
        f"<h1>{html.escape(title)}</h1><p>One report per split protocol "
        "(<code>speaker</code>: no speaker in two splits; <code>study</code>: the study's file-level split, speakers "
        f"shared):</p><ul>{items}</ul><p>{html.escape(LICENCES)}</p>"
    )
    page = dest / "index.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:60em;margin:2em auto'>{body}</body></html>",
        encoding="utf-8",
    )
    return page


SHIPPED_MODEL_DIR: Path = Path(__file__).resolve().parents[1] / "models" / "sefin-ser"
"""Where ``--model`` ships a bundle by default (``predict.SHIPPED_MODEL``)."""

BUNDLE_FILES: tuple[str, ...] = ("classifier.keras", "preprocess.json", "card.json")


def _score_rows(metrics: dict, split: str, label: str) -> str:
    m = {k[len(split) + 1 :]: v for k, v in metrics.items() if k.startswith(f"{split}_")}
    if not m:
        return ""

    def fmt(key: str) -> str:
        v = m.get(key)
        return tables.fmt(None if v is None else float(v)) or "–"

    return f"| {label} | {int(m.get('n', 0)):,} | {fmt('accuracy')} | {fmt('macro_f1')} | {fmt('uar')} |\n"


def model_card(card: dict) -> str:
    """A markdown model card written from a bundle's ``card.json`` (``inference.save_bundle``): the variant and how
    it was chosen, its protocol and data, validation / test (overall and per corpus) / ESD scores, and licences."""
    metrics = card.get("metrics", {})
    data = card.get("data", {})
    rows = _score_rows(metrics, "val", "validation") + _score_rows(metrics, "test", "test (all corpora)")
    for corpus in TRAIN_CORPORA:
        rows += _score_rows(metrics, f"test_{corpus}", f"test, {corpus}")
    rows += _score_rows(metrics, "ood", "ESD (out of domain; its 5 classes, chance .20)")
    clips = data.get("clips_per_split") or {}
    lines = [
        f"# sefin-ser: `{card.get('variant')}`",
        "",
        "The emotion classifier that `python -m sefin_utils predict` uses when no local run exists "
        f"({len(card.get('classes', []))} classes: {', '.join(card.get('classes', []))}).",
        "",
        f"- **What won:** {card.get('won')}",
        f"- **Chosen by:** {card.get('chosen_by')}",
        f"- **Protocol:** `{card.get('protocol')}`"
        + (" (no speaker in two splits)" if card.get("protocol") == "speaker" else " (the study's file-level split)"),
        f"- **Data:** {data.get('data_root')}; clips per split in the run's cache: "
        + ", ".join(f"{k} {int(v):,}" for k, v in sorted(clips.items()))
        + " (train counts the augmented copies; the anchors, and classifiers trained with `ser_train_augmentations:"
        " [orig]`, learn from the original recordings only)",
        f"- **Seeds:** {card.get('seeds')}; parameters: {int(card.get('params', 0)):,}; written {card.get('created')}",
        "",
        "| split | clips | accuracy | macro-F1 | UAR |",
        "|---|---|---|---|---|",
        rows.rstrip("\n"),
        "",
        "Scores are means over the seeds above; the test split was never used to choose the model.",
        "",
        "## Licences",
        "",
        *[f"- {k}: {v}" for k, v in CORPUS_LICENCES.items()],
        "",
        "This model was trained on these corpora and keeps their terms: non-commercial use only.",
        "",
    ]
    return "\n".join(lines)


def ship_model(
    bundle: str | Path, dest: str | Path = SHIPPED_MODEL_DIR, *, renames: dict[str, str] | None = None
) -> list[Path]:
    """Copy a run's predict bundle (``<run_dir>/model``: classifier.keras, preprocess.json, card.json) into ``dest``
    (replaced), add the corpora's licences to its card and write ``README.md`` (:func:`model_card`); ``renames``
    ({OLD: NEW}) replaces local paths in the card's strings, as in :func:`publish_report`. Returns the written
    paths. Raises ``FileNotFoundError`` naming the bundle when one of its files is missing."""
    bundle, dest = Path(bundle), Path(dest)
    missing = [n for n in BUNDLE_FILES if not (bundle / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{bundle}: not a complete predict bundle (missing {', '.join(missing)})")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    written = [Path(shutil.copy2(bundle / n, dest / n)) for n in BUNDLE_FILES if n != "card.json"]
    card = json.loads(_renamed((bundle / "card.json").read_text(encoding="utf-8"), renames or {}))
    card["licences"] = dict(CORPUS_LICENCES)
    (dest / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")  # last: marks complete
    (dest / "README.md").write_text(model_card(card), encoding="utf-8")
    return [*written, dest / "card.json", dest / "README.md"]


RESULTS_START = "<!-- results:start (python -m sefin_utils publish --readme README.md) -->"
RESULTS_END = "<!-- results:end -->"


def results_markdown(dest: str | Path, names: Sequence[str]) -> str:
    """The README's Results section, computed from the published reports ``dest/<name>/`` (one per protocol): the
    headline (test and ESD macro-F1, mean ± sd over seeds, n seeds, per protocol, the study's logged number beside),
    the FIN R² beside the study's (``fins.csv`` of the first report that has one) and the ablation's marginal effect
    of each feature's source (``results.csv`` rows of kind ``ablation``), each with where it came from."""
    import pandas as pd

    from sefin_utils.plots.ser import ablation_marginals_table

    dest = Path(dest)
    heads = {n: pd.read_csv(dest / n / "headline.csv") for n in names if (dest / n / "headline.csv").is_file()}
    out = [RESULTS_START, "", "## Results", ""]
    if not heads:
        return "\n".join([*out, "No published full-scale run yet.", "", RESULTS_END])
    models = list(dict.fromkeys(m for h in heads.values() for m in h["model"]))
    cols = [f"{n}: test macro-F1 (seeds)" for n in heads] + [f"{n}: ESD macro-F1" for n in heads]
    out += [
        "Test macro-F1 on the four corpora's held-out recordings and ESD macro-F1 (speaker 0020, its five classes, "
        "out of domain), mean ± sd over seeds (n in brackets); the study's logged macro-F1 (its file-level split) "
        "beside. Every number comes from the reports in `reports/full/` (8 classes, chance .125; ESD chance .20).",
        "",
        "| model | " + " | ".join(cols) + " | study (logged) |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for m in models:
        cells, ood, logged = [], [], "–"
        for h in heads.values():
            r = h[h["model"] == m]
            if r.empty:
                cells.append("–")
                ood.append("–")
                continue
            r = r.iloc[0]
            cells.append(f"{tables.pm(r['test macro-F1'], r['test macro-F1 sd'], missing='–')} ({int(r['seeds'])})")
            ood.append(tables.pm(r["ESD macro-F1"], r["ESD macro-F1 sd"], missing="–"))
            if r.get("study macro-F1") == r.get("study macro-F1"):
                logged = f"{r['study macro-F1']:.2f}"
        out.append(f"| `{m}` | " + " | ".join(cells + ood) + f" | {logged} |")
    fins = next((dest / n / "fins.csv" for n in names if (dest / n / "fins.csv").is_file()), None)
    if fins is not None:
        t = pd.read_csv(fins)
        out += [
            "",
            f"FIN R² (variance-weighted; the run's test frames / ESD frames), from the `{fins.parent.name}` report:",
            "",
            "| FIN | learnt (used) | analytic | study |",
            "|---|---|---|---|",
        ]
        for f in dict.fromkeys(t["feature"]):
            row = [f"`{f}`"]
            for fam in ("learnt", "analytic"):
                r = t[(t["feature"] == f) & (t["family"] == fam)]
                row.append(f"{r['r2_vw_test'].iloc[0]:.4f} / {r['r2_vw_ood'].iloc[0]:.4f}" if len(r) else "–")
            st = t[t["feature"] == f].iloc[0]
            test = st["study_r2_vw_test"] if st["study_r2_vw_test"] == st["study_r2_vw_test"] else st["study_r2_test"]
            ood = st["study_r2_vw_ood"] if st["study_r2_vw_ood"] == st["study_r2_vw_ood"] else st["study_r2_ood"]
            row.append(f"{test:.3f} / {ood:.3f}")
            out.append("| " + " | ".join(row) + " |")
    for n in names:
        res = dest / n / "results.csv"
        if not res.is_file():
            continue
        r = pd.read_csv(res)
        if not (r.get("kind") == "ablation").any():
            out += ["", f"Ablation ({n} protocol): not run yet."]
            continue
        m = ablation_marginals_table(r)
        n_mix, design = int(m["fin_n"].iloc[0] + m["librosa_n"].iloc[0]), m["design"].iloc[0]
        what = {
            "full factorial": "all 32 mixes of FIN or librosa per feature",
            "half fraction": "the 16 mixes of a half fraction of resolution V, each feature's main effect free of "
            "two-factor interactions; the other 16 not trained yet",
        }.get(design, f"{n_mix} of the 32 mixes so far, not a balanced design: only the paired differences are fair")
        out += [
            "",
            f"Ablation ({n} protocol, {what}; first seed): test macro-F1 of the mixes taking each feature from its "
            "FIN vs from librosa (mean ± sd, n mixes), their difference, and the difference over the pairs of mixes "
            "that differ in that feature only (mean ± sd over pairs: the spread across the other features' sources).",
            "",
            "| feature | from its FIN | from librosa | FIN - librosa | paired FIN - librosa (pairs) |",
            "|---|---|---|---|---|",
        ]
        for x in m.itertuples():
            diff = f"{x.fin_minus_librosa:+.3f}" if design != "partial" else "–"
            paired = f"{tables.pm(x.paired_mean, x.paired_std, missing='–')} ({x.pairs_n})" if x.pairs_n else "–"
            out.append(
                f"| `{x.feature}` | {tables.pm(x.fin_mean, x.fin_std, missing='–')} ({x.fin_n}) | "
                f"{tables.pm(x.librosa_mean, x.librosa_std, missing='–')} ({x.librosa_n}) | {diff} | {paired} |"
            )
    return "\n".join([*out, "", RESULTS_END])


def update_readme(readme: str | Path, section: str) -> Path:
    """Replace the block between :data:`RESULTS_START` and :data:`RESULTS_END` of ``readme`` with ``section`` (or
    append it when the file has no such block)."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if RESULTS_START in text and RESULTS_END in text:
        a, b = text.index(RESULTS_START), text.index(RESULTS_END) + len(RESULTS_END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text, encoding="utf-8")
    return readme


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sefin_utils publish",
        description="Copy rendered reports (pages without code, tables, figures, splits) into a folder to commit.",
    )
    parser.add_argument("sources", nargs="*", help="rendered report folders (each with an index.html)")
    parser.add_argument("--to", help="destination folder of the reports, e.g. reports/full")
    parser.add_argument("--names", nargs="+", help="sub-folder name per source (default: the source folder names)")
    parser.add_argument("--readme", help="write the Results section computed from the published reports into this file")
    parser.add_argument("--model", help="a run's predict bundle (<run_dir>/model) to ship as the repository's model")
    parser.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="replace OLD by NEW in the published pages and tables (local paths: --rename /home/me/data=data)",
    )
    parser.add_argument("--model-to", default=str(SHIPPED_MODEL_DIR), help="where --model goes (models/sefin-ser)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.sources and not args.model:
        parser.error("give report folders (with --to) and/or --model")
    if args.sources and not args.to:
        parser.error("--to is required with report folders")
    names = args.names or [Path(s).name for s in args.sources]
    if len(names) != len(args.sources):
        parser.error(f"--names gives {len(names)} names for {len(args.sources)} sources")
    try:
        renames = parse_renames(args.rename)
    except ValueError as err:
        parser.error(str(err))
    try:
        for src, name in zip(args.sources, names, strict=True):
            dest = Path(args.to) / name
            files = publish_report(src, dest, renames=renames)
            size = sum(f.stat().st_size for f in files if f.is_file())
            print(f"{src} -> {dest}: {len(files)} files, {size / 1e6:.1f} MB")
        if args.sources:
            print(f"landing page: {write_landing(args.to, names)}")
            if args.readme:
                print(f"results section: {update_readme(args.readme, results_markdown(args.to, names))}")
        if args.model:
            files = ship_model(args.model, args.model_to, renames=renames)
            size = sum(f.stat().st_size for f in files)
            print(f"{args.model} -> {args.model_to}: {len(files)} files, {size / 1e6:.1f} MB")
    except FileNotFoundError as err:
        print(f"error: {err}", flush=True)
        return 1
    return 0
