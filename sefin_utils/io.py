"""Small I/O helpers used everywhere: atomic writes, JSON with NumPy values, stable hashes, seeds.

Every file sefin writes goes through :func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`write_json` or
:func:`write_csv`: the content is written to a temporary name in the same folder, then renamed over the target
(``os.replace``), so an interrupted run never leaves a half-written artifact.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "json_default",
    "read_json",
    "seed_everything",
    "stable_hash",
    "to_json",
    "write_csv",
    "write_json",
]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary name, then ``os.replace``); creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; creates parent folders.

    Lone surrogates (how Python decodes the non-UTF-8 bytes of a file name, e.g. a Latin-1 ``\xe9``) are written back
    as the original bytes (``surrogateescape``), so a table of such paths round-trips instead of crashing.
    """
    return atomic_write_bytes(path, text.encode("utf-8", errors="surrogateescape"))


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: NumPy scalars and arrays, paths, dates and sets become plain JSON values.

    Raises:
        TypeError: for any other object (so that a forgotten conversion is an error, not a silent ``str``).
    """
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date):
        return obj.isoformat()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``obj`` as JSON text (NumPy-aware, see :func:`json_default`), ending in a newline when indented."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=json_default, ensure_ascii=False)
    return text + "\n" if indent is not None else text


def write_json(path: str | os.PathLike[str], obj: Any, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, to_json(obj, sort_keys=sort_keys))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(df: Any, path: str | os.PathLike[str], *, index: bool = False) -> Path:
    """Write a pandas DataFrame to CSV atomically (UTF-8, no index by default)."""
    return atomic_write_text(path, df.to_csv(index=index))


def stable_hash(obj: Any, *, length: int = 16) -> str:
    """A short SHA-256 hex digest of ``obj``'s canonical JSON (sorted keys): equal objects give equal hashes."""
    text = json.dumps(obj, sort_keys=True, default=json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and, when Keras is already imported, Keras/TensorFlow.

    The one seed helper: ``keras.utils.set_random_seed`` seeds all three when Keras is loaded; without Keras (reports,
    plots, scikit-learn anchors) the first two are seeded and Keras is not imported.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)
