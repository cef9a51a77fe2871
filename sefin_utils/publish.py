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


def publish_report(src: str | Path, dest: str | Path) -> list[Path]:
    """Copy the readable part of one rendered report folder ``src`` into ``dest`` (created; files already there
    with the same names are replaced, others are removed so that ``dest`` mirrors ``src``). Returns the written paths.

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
        return "–" if v is None or v != v else f"{float(v):.3f}"

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
        f"- **Data:** {data.get('data_root')}; clips per split: "
        + ", ".join(f"{k} {int(v):,}" for k, v in sorted(clips.items())),
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


def ship_model(bundle: str | Path, dest: str | Path = SHIPPED_MODEL_DIR) -> list[Path]:
    """Copy a run's predict bundle (``<run_dir>/model``: classifier.keras, preprocess.json, card.json) into ``dest``
    (replaced), add the corpora's licences to its card and write ``README.md`` (:func:`model_card`). Returns the
    written paths. Raises ``FileNotFoundError`` naming the bundle when one of its files is missing."""
    bundle, dest = Path(bundle), Path(dest)
    missing = [n for n in BUNDLE_FILES if not (bundle / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{bundle}: not a complete predict bundle (missing {', '.join(missing)})")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    written = [Path(shutil.copy2(bundle / n, dest / n)) for n in BUNDLE_FILES if n != "card.json"]
    card = json.loads((bundle / "card.json").read_text(encoding="utf-8"))
    card["licences"] = dict(CORPUS_LICENCES)
    (dest / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")  # last: marks complete
    (dest / "README.md").write_text(model_card(card), encoding="utf-8")
    return [*written, dest / "card.json", dest / "README.md"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sefin_utils publish",
        description="Copy rendered reports (pages without code, tables, figures, splits) into a folder to commit.",
    )
    parser.add_argument("sources", nargs="*", help="rendered report folders (each with an index.html)")
    parser.add_argument("--to", help="destination folder of the reports, e.g. reports/full")
    parser.add_argument("--names", nargs="+", help="sub-folder name per source (default: the source folder names)")
    parser.add_argument("--model", help="a run's predict bundle (<run_dir>/model) to ship as the repository's model")
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
        for src, name in zip(args.sources, names, strict=True):
            dest = Path(args.to) / name
            files = publish_report(src, dest)
            size = sum(f.stat().st_size for f in files if f.is_file())
            print(f"{src} -> {dest}: {len(files)} files, {size / 1e6:.1f} MB")
        if args.sources:
            print(f"landing page: {write_landing(args.to, names)}")
        if args.model:
            files = ship_model(args.model, args.model_to)
            size = sum(f.stat().st_size for f in files)
            print(f"{args.model} -> {args.model_to}: {len(files)} files, {size / 1e6:.1f} MB")
    except FileNotFoundError as err:
        print(f"error: {err}", flush=True)
        return 1
    return 0
