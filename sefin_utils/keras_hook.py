"""Register sefin's Keras layers whenever Keras is loaded, without loading Keras on ``import sefin_utils``.

``import sefin_utils`` stays light (no TensorFlow, no Keras: reports and plots import it). So that a saved sefin model
(``models/fins/mel.keras``, a run's ``fins/`` or predict bundle) still loads with plain ``keras.models.load_model``
after ``import sefin_utils`` alone, :func:`install` (called by the package's ``__init__``) does one of two things:

- Keras is already imported: import :mod:`sefin_utils.layers` now (it registers every custom layer under the
  ``sefin`` package name, ``keras.saving.register_keras_serializable``);
- otherwise: put a one-shot finder at the front of ``sys.meta_path`` that lets the normal import of ``keras`` run and
  then imports :mod:`sefin_utils.layers` (a post-import hook, PEP 451 loaders), then removes itself.

A failure to register (a broken sefin checkout) is a ``RuntimeWarning`` naming the error, never a failed
``import keras``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import warnings
from types import ModuleType
from typing import Any

__all__ = ["install", "register_layers"]

TARGET: str = "keras"
"""The module whose import triggers the registration."""
_lock = threading.Lock()


def register_layers() -> bool:
    """Import :mod:`sefin_utils.layers` (registers every sefin layer with Keras); False, with a RuntimeWarning naming
    the error, when that import fails."""
    try:
        import sefin_utils.layers  # noqa: F401
    except Exception as err:  # noqa: BLE001 (reported, never raised into someone else's import of keras)
        warnings.warn(
            f"sefin_utils could not register its Keras layers ({type(err).__name__}: {err}); saved sefin models "
            "will not load until `import sefin_utils.layers` succeeds",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


class _Loader(importlib.abc.Loader):
    """Wraps Keras' own loader: runs it, then registers sefin's layers; every other attribute is the wrapped one's."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        register_layers()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_code, ...
        return getattr(self._loader, name)


class _KerasFinder(importlib.abc.MetaPathFinder):
    """One-shot finder: on the first import of ``keras`` it leaves ``sys.meta_path``, asks the other finders for
    the real spec and wraps its loader in :class:`_Loader`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        with _lock:
            if self in sys.meta_path:
                sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Make sure sefin's layers are registered with Keras as soon as (or, if already so, since) Keras is loaded;
    imports nothing heavy itself. Idempotent."""
    if TARGET in sys.modules:
        register_layers()
        return
    with _lock:
        if not any(isinstance(f, _KerasFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _KerasFinder())
