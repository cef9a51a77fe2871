"""Fingerprints and on-disk caches of work that does not change while the classifiers train.

Fingerprints (the keys of the resume files and of the caches below)
    :func:`store_key` names a ClipStore's content (its directory name, which ``cache.build`` derives from every input
    and param; the data's own hash for an in-memory stand-in), :func:`fin_hash` a FIN's content (weights, layer
    classes and configs; never its file's bytes, which carry a save date), :func:`code_hash` the code of some sefin
    modules (their syntax trees without docstrings: comments, docstrings and formatting never change a key).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sefin_utils.io import stable_hash

__all__ = ["code_hash", "fin_hash", "store_key"]


def _array_digest(h: Any, arr: Any) -> None:
    a = np.ascontiguousarray(np.asarray(arr))
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())


def store_key(store: Any) -> str:
    """The key of a ClipStore's content: the store directory's name (``cache.build`` hashes every input, param and
    layer into it), or, for an in-memory stand-in without ``path`` (tests), a SHA-256 of its index and arrays."""
    path = getattr(store, "path", None)
    if path is not None:
        return Path(path).name
    h = hashlib.sha256()
    h.update(store.index.to_csv(index=False).encode())
    for name in ("clips", "summary", "mask"):
        _array_digest(h, getattr(store, name))
    for name in sorted(store.labels):
        h.update(name.encode())
        _array_digest(h, store.labels[name])
    return "mem-" + h.hexdigest()[:16]


def _strip_names(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        return {k: _strip_names(v) for k, v in cfg.items() if k not in ("name", "seed")}
    if isinstance(cfg, list | tuple):
        return [_strip_names(v) for v in cfg]
    return cfg


def fin_hash(model: Any) -> str:
    """The content key of a FIN (a ``keras.Model``): SHA-256 over its layers' classes and configs (names and seeds
    left out: a reloaded FIN gets the same key) and every weight's dtype, shape and bytes, in order."""
    h = hashlib.sha256()
    for layer in model.layers:
        h.update(type(layer).__name__.encode())
        try:
            h.update(stable_hash(_strip_names(layer.get_config())).encode())
        except (TypeError, NotImplementedError):  # a config that is not JSON: the class and weights still count
            pass
        for w in layer.get_weights():
            _array_digest(h, w)
    return h.hexdigest()[:16]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_hash(modules: Iterable[str]) -> str:
    """A key of the code of ``sefin_utils.<module>`` for each name (absent modules count as absent): their syntax
    trees without docstrings, so comments, docstrings and formatting leave it unchanged."""
    parts = {}
    for name in modules:
        spec = importlib.util.find_spec(f"sefin_utils.{name}")
        if spec is None or spec.origin is None:
            parts[name] = None
            continue
        tree = _strip_docstrings(ast.parse(Path(spec.origin).read_text(encoding="utf-8")))
        parts[name] = hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]
    return stable_hash(parts)
