"""Publish rendered reports for the repository: ``python -m sefin_utils publish SRC [SRC ...] --to DEST``.

A run's report folder (``reports/<profile>/``, written by the runner) holds every stage page twice (with and without
code), the tables, the figures and the split table. What is committed (``reports/full/``, issue 16) is the readable
part only: ``index.html`` (its "with code" links dropped), every ``NN_stage.nocode.html``, the result tables
(``results.csv/html``, ``headline.csv/html``, ``anchors.csv``), ``splits.csv`` (recording ids and paths relative to
the data root, with their split, so that anyone can re-score a model on the same recordings), ``skipped.csv/html``
and ``figures/``. Failed-stage pages, executed notebooks and the pages with code stay behind. Several reports (one
per split protocol) go into sub-folders of ``DEST`` named by ``--names`` (default: each source folder's name), with
a small ``DEST/index.html`` linking them and stating the data's licences.

Nothing here reads the run folder or imports Keras: it copies files and rewrites one link list.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from sefin_utils.constants import CORPUS_LICENCES

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sefin_utils publish",
        description="Copy rendered reports (pages without code, tables, figures, splits) into a folder to commit.",
    )
    parser.add_argument("sources", nargs="+", help="rendered report folders (each with an index.html)")
    parser.add_argument("--to", required=True, help="destination folder, e.g. reports/full")
    parser.add_argument("--names", nargs="+", help="sub-folder name per source (default: the source folder names)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = args.names or [Path(s).name for s in args.sources]
    if len(names) != len(args.sources):
        print(f"--names gives {len(names)} names for {len(args.sources)} sources", flush=True)
        return 2
    dest = Path(args.to)
    for src, name in zip(args.sources, names, strict=True):
        try:
            files = publish_report(src, dest / name)
        except FileNotFoundError as err:
            print(f"error: {err}", flush=True)
            return 1
        size = sum(f.stat().st_size for f in files if f.is_file())
        print(f"{src} -> {dest / name}: {len(files)} files, {size / 1e6:.1f} MB")
    print(f"landing page: {write_landing(dest, names)}")
    return 0
