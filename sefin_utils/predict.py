"""The ``predict`` command: find the audio files to score and the default bundle, score them with
:class:`sefin_utils.inference.EmotionClassifier`, and write a table, CSV or JSON lines.

``python -m sefin_utils predict PATH... [--model BUNDLE] [--json | --csv] [--windows] [--hop S]``

Like :mod:`sefin_utils.inference`, never imports training code at module level: predicting needs only a bundle.

Examples
--------
>>> clf = EmotionClassifier.from_run("runs/demo")                     # doctest: +SKIP
>>> print(format_table(predict_paths(["my_voices/"], clf), clf.classes))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from sefin_utils import audio, console
from sefin_utils.audio import AUDIO_EXTENSIONS, AudioError, display_path
from sefin_utils.inference import CARD_FILE, BundleError, EmotionClassifier, Prediction, load_bundle
from sefin_utils.io import json_default

RUNS_ENV = "SEFIN_RUNS"
"""Environment variable naming the folder of run folders searched for the default bundle."""
REPO_RUNS: Path = Path(__file__).resolve().parents[1] / "runs"
"""The repository's ``runs/`` folder, where ``python -m sefin_utils run`` writes by default."""
SHIPPED_MODEL: Path = Path(__file__).resolve().parents[1] / "models" / "sefin-ser"
"""The classifier shipped with the repository (trained on the full corpora, speaker protocol; its card says on what
and under which licences). :func:`find_latest_bundle` falls back to it when no local run has a bundle."""
PROGRESS_MIN_FILES: int = 4
"""Show a progress bar (on stderr) from this many files on."""
HOW_TO_MAKE = (
    "Train one with `python -m sefin_utils run` (the default demo profile trains on a generated corpus and writes "
    "runs/demo/model/), or `python -m sefin_utils run --profile sample` for the real sample; then run predict from "
    f"the folder that holds runs/, set {RUNS_ENV}=<folder of run folders>, or pass --model runs/<profile>/model."
)


class NoBundleError(BundleError):
    """No completed bundle was found where the default model is looked for."""


# --------------------------------------------------------------------------------------------------------------------
# Finding inputs and the default bundle
# --------------------------------------------------------------------------------------------------------------------


def scan_inputs(paths: Iterable[str | Path]) -> tuple[list[tuple[str, str | None]], list[tuple[str, str]]]:
    """Expand files and folders into ``(path, error)`` pairs to score, and ``(path, reason)`` pairs skipped.

    Folders are walked recursively in sorted order for :data:`sefin_utils.audio.AUDIO_EXTENSIONS` (any case); every
    other entry found there is skipped with its reason (not audio, hidden file, hidden folder not searched), so no
    file is left out silently. A file named explicitly is kept whatever its extension (loading then says what is
    wrong). ``error`` is set for a path that does not exist or a folder without audio; duplicates (same resolved
    file) are kept once.
    """
    out: list[tuple[str, str | None]] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append((str(p), None))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(p):
                for d in sorted(d for d in dirnames if d.startswith(".")):
                    skipped.append((str(Path(dirpath) / d), "hidden folder, not searched"))
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for f in sorted(filenames):
                    path = Path(dirpath) / f
                    if f.startswith("._"):
                        skipped.append((str(path), "macOS AppleDouble metadata ('._' twin), not audio"))
                    elif f.startswith("."):
                        skipped.append((str(path), "hidden file"))
                    elif Path(f).suffix.lower() in AUDIO_EXTENSIONS:
                        found.append(path)
                    else:
                        skipped.append((str(path), f"not an audio file ({Path(f).suffix.lower() or 'no extension'})"))
            if not found:
                out.append((str(p), f"{display_path(p)}: no audio files ({' '.join(AUDIO_EXTENSIONS)}) in this folder"))
            for f in found:
                add(f)
        elif p.exists():
            add(p)
        else:
            out.append((str(p), f"{display_path(p)}: no such file or folder"))
    return out, skipped


def collect_audio_files(paths: Iterable[str | Path]) -> list[tuple[str, str | None]]:
    """The ``(path, error)`` pairs of :func:`scan_inputs` (files to score, in a stable order)."""
    return scan_inputs(paths)[0]


def _card_time(model_dir: Path) -> tuple[str, float]:
    try:
        created = str(json.loads((model_dir / CARD_FILE).read_text()).get("created", ""))
    except (OSError, ValueError):
        created = ""
    return created, (model_dir / CARD_FILE).stat().st_mtime


def default_run_roots() -> list[Path]:
    """Where the default bundle is looked for: ``$SEFIN_RUNS`` alone when set, else ``./runs`` and the repository's
    ``runs/`` (the pipeline's default ``run_dir`` parent), once each."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return [Path(env)]
    roots: list[Path] = []
    for r in (Path.cwd() / "runs", REPO_RUNS):
        if r.resolve() not in {x.resolve() for x in roots}:
            roots.append(r)
    return roots


def find_latest_bundle(root: str | Path | Sequence[str | Path] | None = None) -> Path:
    """The bundle of the last completed run: ``<runs>/*/model`` with the newest ``card.json`` ``created`` time.

    Parameters
    ----------
    root : str, Path or a sequence of them, optional
        Folder(s) of run folders (a run folder itself is accepted too). Default: :func:`default_run_roots`, and
        when none of them holds a bundle, the shipped classifier :data:`SHIPPED_MODEL` (if the checkout has it).

    Raises
    ------
    NoBundleError
        No ``*/model/card.json`` there (the message says how to make one). Only a complete bundle has a card:
        an interrupted run's ``model/`` is never picked.
    """
    if root is None:
        roots = default_run_roots()
    elif isinstance(root, str | Path):
        roots = [Path(root)]
    else:
        roots = [Path(r) for r in root]
    candidates: list[Path] = []
    for r in roots:
        candidates += [c.parent for c in sorted(r.glob(f"*/model/{CARD_FILE}"))]
        if (r / "model" / CARD_FILE).is_file():  # r is itself a run folder
            candidates.append(r / "model")
    if not candidates and root is None and (SHIPPED_MODEL / CARD_FILE).is_file():
        return SHIPPED_MODEL
    if not candidates:
        where = " or ".join(f"{r}/*/model/{CARD_FILE}" for r in roots)
        raise NoBundleError(f"no trained model bundle found (looked for {where}). {HOW_TO_MAKE}")
    return max(candidates, key=_card_time)


# --------------------------------------------------------------------------------------------------------------------
# Library call
# --------------------------------------------------------------------------------------------------------------------


def _error_message(path: str, err: Exception) -> str:
    """``<path>: <reason>`` for audio problems; other failures also name the exception type."""
    shown = display_path(path)
    msg = str(err) if shown in str(err) else f"{shown}: {err}"
    return msg if isinstance(err, AudioError) else f"{msg} ({type(err).__name__})"


def predict_paths(
    paths: Iterable[str | Path], classifier: EmotionClassifier, *, progress: bool | None = None
) -> list[Prediction]:
    """Classify every audio file in ``paths`` (files or folders); never raises for a bad file.

    Parameters
    ----------
    paths : iterable of str or Path
    classifier : EmotionClassifier
    progress : bool, optional
        tqdm bar on stderr; default: from :data:`PROGRESS_MIN_FILES` files on.

    Returns
    -------
    list of Prediction
        One per file to score (in :func:`scan_inputs` order; failed ones carry ``error``), then one per file skipped
        in a folder (``skipped`` set): every input appears.
    """
    from tqdm.auto import tqdm

    items, skipped = scan_inputs(paths)
    show = len(items) >= PROGRESS_MIN_FILES if progress is None else progress
    results: list[Prediction] = []
    for path, error in tqdm(items, desc="predict", unit="file", disable=not show, file=sys.stderr):
        if error is not None:
            results.append(Prediction.failed(path, error, warning=classifier.warning))
            continue
        try:
            results.append(classifier.classify_file(path))
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
            results.append(Prediction.failed(path, _error_message(path, err), warning=classifier.warning))
    results += [Prediction.skip(p, reason) for p, reason in skipped]
    return results


# --------------------------------------------------------------------------------------------------------------------
# Output formats
# --------------------------------------------------------------------------------------------------------------------


def write_json(predictions: Sequence[Prediction], out: TextIO, *, windows: bool = False) -> None:
    """One JSON object per line and file (ASCII; a path that is not UTF-8 keeps its bytes as ``\\udcXX``)."""
    for p in predictions:
        out.write(json.dumps(p.to_dict(windows=windows), default=json_default) + "\n")


CSV_TAIL: tuple[str, ...] = ("error", "windows_used", "windows_skipped", "notes", "warning", "skipped")
"""The CSV columns after the class probabilities."""


def write_csv(predictions: Sequence[Prediction], out: TextIO, classes: Sequence[str], *, windows: bool = False) -> None:
    """CSV: ``path, window, start_s, end_s, emotion, <class probabilities...>,`` then :data:`CSV_TAIL`.

    ``window`` is ``all`` for the file's overall row and the window index for window rows (with ``windows``).
    ``path`` holds the file's exact name (bytes that are not UTF-8 written as they are).
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "window", "start_s", "end_s", "emotion", *classes, *CSV_TAIL])
    for p in predictions:
        probs = [f"{p.probabilities[c]:.6f}" if c in p.probabilities else "" for c in classes]
        end = "" if p.duration_s is None else f"{p.duration_s:.4f}"
        tail = [p.error or "", len(p.windows) if p.ok else "", p.n_skipped if p.ok else "", "; ".join(p.notes),
                p.warning or "", p.skipped or ""]  # fmt: skip
        writer.writerow([p.path, "all", "0.0000" if p.ok else "", end, p.emotion or "", *probs, *tail])
        if windows:
            for i, w in enumerate(p.windows):
                row = [f"{w.probabilities[c]:.6f}" for c in classes]
                win_tail = ["", "", "", "", p.warning or "", ""]
                writer.writerow([p.path, i, f"{w.start_s:.4f}", f"{w.end_s:.4f}", w.emotion, *row, *win_tail])


def format_table(predictions: Sequence[Prediction], classes: Sequence[str], *, windows: bool = False) -> str:
    """A readable table: path, top emotion, windows used (+ silent ones skipped) and the probability of every class;
    errors, skips and notes on their own lines; a bundle trained on generated data puts its warning above and below.
    """
    names = {id(p): display_path(p.path or "") for p in predictions}
    width = min(max([len("file")] + [len(n) for n in names.values()]), 60)
    emo_w = max(len("emotion"), *(len(c) for c in classes))
    col_w = [max(5, len(c)) for c in classes]
    win_w = len("windows")
    header = f"{'file':<{width}}  {'emotion':<{emo_w}}  {'windows':>{win_w}}  " + "  ".join(
        f"{c:>{w}}" for c, w in zip(classes, col_w, strict=True)
    )
    warning = next((p.warning for p in predictions if p.warning), None)
    lines = [f"WARNING: {warning}"] if warning else []
    lines += [header, "-" * len(header)]

    def short(path: str) -> str:
        return path if len(path) <= width else "..." + path[-(width - 3) :]

    def row(label: str, emotion: str, win: str, probs: dict[str, float]) -> str:
        cells = "  ".join(f"{probs[c]:>{w}.3f}" for c, w in zip(classes, col_w, strict=True))
        return f"{label:<{width}}  {emotion:<{emo_w}}  {win:>{win_w}}  {cells}"

    for p in predictions:
        name = short(names[id(p)])
        if p.skipped is not None:
            lines.append(f"{name}  SKIPPED  {p.skipped}")
            continue
        if p.error is not None:
            lines.append(f"{name}  ERROR  {p.error}")
            continue
        win = f"{len(p.windows)}" + (f"+{p.n_skipped}s" if p.n_skipped else "")
        lines.append(row(name, (p.emotion or "") + ("!" if p.warning else ""), win, p.probabilities))
        lines += [f"{'':<{width}}  note: {note}" for note in p.notes]
        if windows:
            for w in p.windows:
                lines.append(row(f"  [{w.start_s:6.2f}-{w.end_s:6.2f} s]", w.emotion, "", w.probabilities))
    if any(p.n_skipped for p in predictions):
        lines.append("windows: used (+N s: N windows of digital silence skipped)")
    if warning:
        lines.append(f"! WARNING: {warning}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``predict`` command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m sefin_utils predict",
        description="Classify the emotion in audio files (any format, rate, channels and length).",
        epilog=f"Exit codes: 0 all files scored, 1 some file failed, 2 usage/bundle problem. {HOW_TO_MAKE}",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    parser.add_argument(
        "--model",
        metavar="BUNDLE",
        help=f"bundle folder (runs/<profile>/model) or run folder; default: the newest under ${RUNS_ENV}, else "
        "./runs and the repository's runs/",
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per line and file")
    fmt.add_argument("--csv", action="store_true", help="CSV with one row per file (and per window with --windows)")
    parser.add_argument("--windows", action="store_true", help="also report every sliding window's probabilities")
    parser.add_argument("--hop", type=float, default=None, help="seconds between windows (default: half a window)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``predict`` command; returns the exit code (0 ok, 1 some file failed, 2 usage/bundle problem).

    Output: a table (top emotion, windows used, the probability of every class), ``--json`` (one object per line
    and file, :meth:`Prediction.to_dict`) or ``--csv`` (:func:`write_csv`). A file that cannot be scored gets its own
    error line and never stops the batch; files in folders that are not audio are listed as skipped.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    console.import_tensorflow_quietly()
    audio.safe_output(sys.stdout)
    try:
        model_path = Path(args.model) if args.model else find_latest_bundle()
        bundle = load_bundle(model_path)
    except NoBundleError as err:
        print(f"predict: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - any bundle failure is reported, not raised
        print(f"predict: cannot load the model bundle: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    try:
        classifier = EmotionClassifier(bundle, hop=args.hop)
    except ValueError as err:
        print(f"predict: --hop: {err}", file=sys.stderr)
        return 2
    if not args.json and not args.csv:
        info = f"{classifier.bundle.path} ({classifier.kind}, {len(classifier.classes)} classes)"
        print(f"model: {info}", file=sys.stderr)
    if classifier.warning:
        print(f"predict: WARNING: {classifier.warning}", file=sys.stderr)
    progress = False if args.no_progress else None
    predictions = predict_paths(args.paths, classifier, progress=progress)
    if args.json:
        write_json(predictions, sys.stdout, windows=args.windows)
    elif args.csv:
        write_csv(predictions, sys.stdout, classifier.classes, windows=args.windows)
    else:
        print(format_table(predictions, classifier.classes, windows=args.windows))
    scored = [p for p in predictions if p.skipped is None]
    failed = sum(p.error is not None for p in scored)
    n_skip = len(predictions) - len(scored)
    if n_skip:
        print(
            f"predict: {n_skip} file(s) in the folders are not audio and were skipped (listed in the output)",
            file=sys.stderr,
        )
    if failed:
        print(f"predict: {failed} of {len(scored)} file(s) could not be scored", file=sys.stderr)
    sys.stdout.flush()
    return 1 if failed else 0


__all__ = [
    "CSV_TAIL",
    "NoBundleError",
    "build_parser",
    "collect_audio_files",
    "default_run_roots",
    "find_latest_bundle",
    "format_table",
    "main",
    "predict_paths",
    "scan_inputs",
    "write_csv",
    "write_json",
]


if __name__ == "__main__":
    sys.exit(main())
