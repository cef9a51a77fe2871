"""``python -m sefin_utils predict PATH... [--model BUNDLE] [--json | --csv] [--windows]``: emotions of audio files.

PATHs are files or folders (searched recursively for ``.wav .flac .ogg .oga .mp3 .m4a .aiff .aif``, any case;
hidden files and folders are skipped). Any sample rate, mono or stereo, any length: files longer than the model's
window are scored over sliding windows (see :mod:`sefin_utils.bundle` for the rule) and summarised by the mean of
the window probabilities.

Without ``--model`` the bundle of the last completed run is used: the ``runs/*/model`` whose ``card.json`` has the
newest ``created`` time, under ``$SEFIN_RUNS`` when set, else under ``./runs`` and the repository's ``runs/``.

Output: a table (top emotion and the probability of every class), ``--json`` (one object per line and file:
``path``, ``emotion``, ``probabilities`` (class -> probability), ``error`` (null or the message), ``duration_s``,
``n_windows`` and, with ``--windows``, ``windows``) or ``--csv`` (one row per file, plus one per window with
``--windows``). A file that cannot be scored gets its own error line and never stops the batch.

Exit codes: 0 every file scored, 1 at least one file failed, 2 usage or bundle problem.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm

from sefin_utils.bundle import CARD_FILE, BundleError, EmotionClassifier, Prediction, load_bundle

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aiff", ".aif")
"""Extensions collected from folders (files named explicitly are always tried)."""
NEEDS_FFMPEG: tuple[str, ...] = (".m4a", ".aac", ".mp4")
"""Extensions libsndfile cannot read: decoded by audioread, which needs ffmpeg."""
RUNS_ENV = "SEFIN_RUNS"
"""Environment variable naming the folder of run folders searched for the default bundle."""
REPO_RUNS: Path = Path(__file__).resolve().parents[1] / "runs"
"""The repository's ``runs/`` folder, where ``python -m sefin_utils run`` writes by default."""
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


def collect_audio_files(paths: Iterable[str | Path]) -> list[tuple[str, str | None]]:
    """Expand files and folders into ``(path, error)`` pairs in a stable order.

    Folders are walked recursively (sorted, hidden entries skipped) for :data:`AUDIO_EXTENSIONS`; a file named
    explicitly is kept whatever its extension (loading then says what is wrong). ``error`` is set for a path that
    does not exist or a folder without audio; duplicates (same resolved file) are kept once.
    """
    out: list[tuple[str, str | None]] = []
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
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [
                    Path(dirpath) / f
                    for f in sorted(filenames)
                    if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS
                ]
            if not found:
                out.append((str(p), f"{p}: no audio files ({' '.join(AUDIO_EXTENSIONS)}) in this folder"))
            for f in found:
                add(f)
        elif p.exists():
            add(p)
        else:
            out.append((str(p), f"{p}: no such file or folder"))
    return out


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
        Folder(s) of run folders (a run folder itself is accepted too). Default: :func:`default_run_roots`.

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
    if not candidates:
        where = " or ".join(f"{r}/*/model/{CARD_FILE}" for r in roots)
        raise NoBundleError(f"no trained model bundle found (looked for {where}). {HOW_TO_MAKE}")
    return max(candidates, key=_card_time)


# --------------------------------------------------------------------------------------------------------------------
# Library call
# --------------------------------------------------------------------------------------------------------------------


def _error_message(path: str, err: Exception) -> str:
    """``<path>: <reason>`` for audio problems; other failures also name the exception type."""
    from sefin_utils.audio import AudioError

    msg = str(err) if path in str(err) else f"{path}: {err}"
    if not isinstance(err, AudioError):
        return f"{msg} ({type(err).__name__})"
    if Path(path).suffix.lower() in NEEDS_FFMPEG and "unreadable" in msg and shutil.which("ffmpeg") is None:
        suffix = Path(path).suffix
        msg += f" [{suffix} is decoded through ffmpeg, which is not installed: install it or convert to wav/flac]"
    return msg


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
        One per file (in :func:`collect_audio_files` order); failed ones carry ``error``.
    """
    items = collect_audio_files(paths)
    show = len(items) >= PROGRESS_MIN_FILES if progress is None else progress
    results: list[Prediction] = []
    for path, error in tqdm(items, desc="predict", unit="file", disable=not show, file=sys.stderr):
        if error is not None:
            results.append(Prediction.failed(path, error))
            continue
        try:
            results.append(classifier.classify_file(path))
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
            results.append(Prediction.failed(path, _error_message(path, err)))
    return results


# --------------------------------------------------------------------------------------------------------------------
# Output formats
# --------------------------------------------------------------------------------------------------------------------


def write_json(predictions: Sequence[Prediction], out: TextIO, *, windows: bool = False) -> None:
    """One JSON object per line and file."""
    for p in predictions:
        out.write(json.dumps(p.to_dict(windows=windows)) + "\n")


def write_csv(predictions: Sequence[Prediction], out: TextIO, classes: Sequence[str], *, windows: bool = False) -> None:
    """CSV: ``path, window, start_s, end_s, emotion, <class probabilities...>, error``.

    ``window`` is ``all`` for the file's overall row and the window index for window rows (with ``windows``).
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "window", "start_s", "end_s", "emotion", *classes, "error"])
    for p in predictions:
        probs = [f"{p.probabilities[c]:.6f}" if c in p.probabilities else "" for c in classes]
        end = "" if p.duration_s is None else f"{p.duration_s:.4f}"
        writer.writerow([p.path, "all", "0.0000" if p.ok else "", end, p.emotion or "", *probs, p.error or ""])
        if windows:
            for i, w in enumerate(p.windows):
                row = [f"{w.probabilities[c]:.6f}" for c in classes]
                writer.writerow([p.path, i, f"{w.start_s:.4f}", f"{w.end_s:.4f}", w.emotion, *row, ""])


def format_table(predictions: Sequence[Prediction], classes: Sequence[str], *, windows: bool = False) -> str:
    """A readable table: path, top emotion, and the probability of every class; errors on their own line."""
    width = max([len("file")] + [len(p.path or "") for p in predictions])
    width = min(width, 60)
    emo_w = max(len("emotion"), *(len(c) for c in classes))
    col_w = [max(5, len(c)) for c in classes]
    header = f"{'file':<{width}}  {'emotion':<{emo_w}}  " + "  ".join(
        f"{c:>{w}}" for c, w in zip(classes, col_w, strict=True)
    )
    lines = [header, "-" * len(header)]

    def short(path: str) -> str:
        return path if len(path) <= width else "..." + path[-(width - 3) :]

    def row(label: str, emotion: str, probs: dict[str, float]) -> str:
        cells = "  ".join(f"{probs[c]:>{w}.3f}" for c, w in zip(classes, col_w, strict=True))
        return f"{label:<{width}}  {emotion:<{emo_w}}  {cells}"

    for p in predictions:
        if not p.ok:
            lines.append(f"{short(p.path or '')}  ERROR  {p.error}")
            continue
        lines.append(row(short(p.path or ""), p.emotion or "", p.probabilities))
        if windows:
            for w in p.windows:
                lines.append(row(f"  [{w.start_s:6.2f}-{w.end_s:6.2f} s]", w.emotion, w.probabilities))
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
    """Run the ``predict`` command; returns the exit code (0 ok, 1 some file failed, 2 usage/bundle problem)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
    progress = False if args.no_progress else None
    predictions = predict_paths(args.paths, classifier, progress=progress)
    if args.json:
        write_json(predictions, sys.stdout, windows=args.windows)
    elif args.csv:
        write_csv(predictions, sys.stdout, classifier.classes, windows=args.windows)
    else:
        print(format_table(predictions, classifier.classes, windows=args.windows))
    failed = sum(not p.ok for p in predictions)
    if failed:
        print(f"predict: {failed} of {len(predictions)} file(s) could not be scored", file=sys.stderr)
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
