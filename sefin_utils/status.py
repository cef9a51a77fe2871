"""Where a run folder stands, read from its files alone: ``python -m sefin_utils status RUN_DIR [RUN_DIR ...]``.

For long runs made in parts (the full corpora on a few CPU cores): which stages are stamped and when, which is
running now (its heartbeat, :func:`sefin_utils.runner.record_killed`) or was killed, the wall time the run's history
records, the models stored so far with their test macro-F1, and how far the 32-model ablation is, with an estimate
of what is left at the pace of the mixes already trained. Nothing is imported from TensorFlow or the model code and
nothing is written, so it is safe to call beside a running stage.

Examples
--------
>>> from sefin_utils import status
>>> print(status.describe("runs/demo"))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sefin_utils.stages import STAGE_HISTORY, STAGES, heartbeat_alive, running_path

N_ABLATION: int = 32
"""Mixes of the full ablation: each of the five features from its FIN or from librosa (2**5)."""

__all__ = ["describe", "main", "stored_models"]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def stored_models(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per stored model (``<variant>__seed<k>.json`` in the run folder's ``baseline/metrics`` and
    ``ser/metrics``), oldest first: ``variant``, ``seed``, ``test_macro_f1`` (NaN when not recorded), ``epochs``
    (epochs run), ``train_seconds`` (the sum of its epochs' wall times, seconds; evaluation and start-up not
    counted), ``finished`` (the file's modification time, seconds since the epoch) and ``path``. Unreadable files
    are listed with NaN fields, not dropped."""
    rows = []
    for sub in ("baseline", "ser"):
        for path in sorted((Path(run_dir) / sub / "metrics").glob("*__seed*.json")):
            variant, _, seed = path.stem.rpartition("__seed")
            d = _read_json(path) or {}
            rec = d.get("record") or {}
            rows.append(
                {
                    "variant": variant,
                    "seed": int(seed) if seed.isdigit() else seed,
                    "test_macro_f1": float(rec.get("test_macro_f1", float("nan"))),
                    "epochs": d.get("epochs_run"),
                    "train_seconds": float(sum(d.get("epoch_seconds") or [])) if d else float("nan"),
                    "finished": path.stat().st_mtime,
                    "path": str(path),
                }
            )
    return sorted(rows, key=lambda r: r["finished"])


def _stage_lines(run_dir: Path) -> list[str]:
    lines = []
    for stage in STAGES:
        stamp = _read_json(run_dir / "stages" / f"{stage.name}.json")
        beat = _read_json(running_path(run_dir, stage))
        if beat is not None:
            age = time.time() - float(beat.get("beat_epoch", 0))
            state = (
                "running"
                if heartbeat_alive(beat)
                else f"gone, last heartbeat {_minutes(age)} ago (killed? the next run records it)"
            )
            ran = _minutes(float(beat.get("seconds", 0)))
            lines.append(
                f"  {stage.notebook:<18} {state}: started {beat.get('started')}, {ran} at its last heartbeat "
                f"({beat.get('beat')}, pid {beat.get('pid')} on {beat.get('host')})"
            )
        elif stamp is not None:
            lines.append(
                f"  {stage.notebook:<18} done {stamp.get('finished')} ({_minutes(float(stamp.get('seconds', 0)))})"
            )
        else:
            lines.append(f"  {stage.notebook:<18} not run")
    return lines


def _history_line(run_dir: Path) -> str:
    path = run_dir / STAGE_HISTORY
    if not path.is_file():
        return "  wall time: no recorded execution"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    total = sum(float(r.get("seconds") or 0) for r in rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    kinds = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"  wall time recorded: {_minutes(total)} over {len(rows)} stage executions ({kinds})"


def _ablation_lines(models: list[dict[str, Any]]) -> list[str]:
    abl = [m for m in models if m["variant"].startswith("ablation_") and m["seed"] == 0]
    if not abl:
        return []
    codes = {m["variant"].removeprefix("ablation_") for m in abl}
    even = sum(c.count("L") % 2 == 0 for c in codes)
    pace = statistics.median(m["train_seconds"] for m in abl)
    left_half, left_all = N_ABLATION // 2 - even, N_ABLATION - len(codes)
    line = (
        f"  ablation: {len(codes)} of {N_ABLATION} mixes; the half fraction trained first (an even number of L): "
        f"{even} of {N_ABLATION // 2}. Median training time a mix {_minutes(pace)} (epochs only)"
    )
    if left_all:
        left = [f"{_minutes(left_half * pace)} to the half fraction"] if left_half else []
        left.append(f"{_minutes(left_all * pace)} to all {N_ABLATION}")
        line += ": at that pace at least " + ", ".join(left)
    return [line]


def describe(run_dir: str | os.PathLike, *, last: int = 5) -> str:
    """A few lines on where the run folder ``run_dir`` stands (see the module's docstring); ``last`` stored models
    are named. Raises ``FileNotFoundError`` when ``run_dir`` is not a run folder (no ``params.json``)."""
    run_dir = Path(run_dir)
    params = _read_json(run_dir / "params.json")
    if params is None:
        raise FileNotFoundError(f"{run_dir} is not a run folder (no readable params.json in it)")
    lines = [f"{run_dir} (profile {params.get('profile')}, protocol {params.get('protocol')})"]
    lines += _stage_lines(run_dir)
    lines.append(_history_line(run_dir))
    models = stored_models(run_dir)
    by_variant: dict[str, list[str]] = {}
    for m in models:
        if not m["variant"].startswith("ablation_"):
            by_variant.setdefault(m["variant"], []).append(str(m["seed"]))
    lines.append(f"  models stored: {len(models)}")
    for variant, seeds in by_variant.items():
        lines.append(f"    {variant:<24} seeds {', '.join(sorted(seeds))}")
    lines += _ablation_lines(models)
    if models:
        lines.append(f"  last {min(last, len(models))} stored:")
        for m in models[-last:]:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m["finished"]))
            f1 = "" if m["test_macro_f1"] != m["test_macro_f1"] else f", test macro-F1 {m['test_macro_f1']:.3f}"
            lines.append(
                f"    {when}  {m['variant']} seed {m['seed']}{f1}, {m['epochs']} epochs in "
                f"{_minutes(m['train_seconds'])}"
            )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sefin_utils status",
        description="Where run folders stand: stages, a running stage's heartbeat, recorded wall time, stored "
        "models, the ablation's progress. Reads files only (safe beside a running stage).",
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders (e.g. runs/demo)")
    parser.add_argument("--last", type=int, default=5, help="how many of the latest stored models to name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = 0
    for i, run_dir in enumerate(args.run_dirs):
        try:
            print(("\n" if i else "") + describe(run_dir, last=args.last))
        except FileNotFoundError as err:
            print(f"sefin status: {err}")
            code = 1
    return code
