"""The stages of a run, in order: each a notebook, the run-folder artifacts it reads and those it must leave behind.

This module only declares; :mod:`sefin_utils.runner` executes the stages and :mod:`sefin_utils.report` lists them.
It imports nothing else of sefin's, so that any module may read the declarations.
"""

from __future__ import annotations

import ast
import functools
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTEBOOKS_DIR: Path = Path(__file__).resolve().parents[1] / "notebooks"
"""The stage notebooks (``NN_name.py``, Jupytext percent, with their paired ``.ipynb``)."""


@dataclass(frozen=True)
class Stage:
    """One stage: a notebook, the run-folder artifacts it reads and those it must leave behind.

    Paths in ``inputs``/``outputs`` are relative to the run folder; ``"@data_root"`` in ``inputs`` stands for the
    listing (names, sizes, times) of the data root.
    """

    name: str
    notebook: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("data", "01_data", inputs=("@data_root",), outputs=("manifest.csv", "skipped.csv", "splits.csv")),
    Stage("baseline", "02_baseline", inputs=("splits.csv",), outputs=("baseline/results.csv",)),
    Stage("frames_labels", "03_frames_labels", inputs=("splits.csv",), outputs=("frames_labels/exactness.csv",)),
    Stage("fins", "04_fins", inputs=("splits.csv",), outputs=("fins/r2.csv",)),
    Stage(
        "ser_with_fins",
        "05_ser_with_fins",
        inputs=("splits.csv", "fins", "baseline"),  # the bundle is chosen among the baseline models too
        outputs=("ser/results.csv", "model"),
    ),
    Stage(
        "report",
        "06_report",
        inputs=("baseline/results.csv", "fins/r2.csv", "ser", "model"),
        outputs=("report/results.csv",),
    ),
)
"""The stages in order."""

STAGE_HISTORY = "stages/history.jsonl"
"""Every execution of a stage in a run folder, relative to it: one JSON object a line (``stage``, ``notebook``,
``status`` ran/failed/stopped/killed, ``seconds`` of wall time, ``started``, ``finished``, stamp ``hash``), oldest
first; written by :func:`sefin_utils.runner.record_execution` and :func:`sefin_utils.runner.record_killed`, summed
by :func:`sefin_utils.report.stage_history`."""
HEARTBEAT_SECONDS: float = 30.0
"""How often a running stage rewrites its heartbeat, :func:`running_path` (its wall time so far)."""
STALE_HEARTBEAT_SECONDS: float = 300.0
"""A heartbeat not rewritten for this long belongs to a run that is gone (killed, machine lost)."""


def select_stages(
    stages: Sequence[Stage], *, only: Iterable[str] | None = None, start: str | None = None
) -> list[Stage]:
    """Stages to run: all, ``only`` some (by name, notebook name or number ``1``..``6``), or ``start`` onward.

    Raises
    ------
    ValueError
        An unknown stage, with the list of stages.
    """

    def index(token: str) -> int:
        t = str(token).strip()
        for i, s in enumerate(stages):
            if t in {s.name, s.notebook, str(i + 1), f"{i + 1:02d}"} or s.notebook.split("_", 1)[-1] == t:
                return i
        names = ", ".join(f"{s.name} ({s.notebook})" for s in stages)
        raise ValueError(f"unknown stage {token!r}; stages: {names}")

    chosen = list(range(len(stages)))
    if start is not None:
        chosen = [i for i in chosen if i >= index(start)]
    if only:
        wanted = {index(t) for t in only}
        chosen = [i for i in chosen if i in wanted]
    return [stages[i] for i in chosen]


def notebook_path(stage: Stage, notebooks_dir: Path | None = None) -> Path:
    """The stage's source: ``NN_name.py`` (jupytext percent, the source of truth) or else ``NN_name.ipynb``.

    Raises
    ------
    FileNotFoundError
        When neither exists.
    """
    notebooks_dir = NOTEBOOKS_DIR if notebooks_dir is None else Path(notebooks_dir)
    for suffix in (".py", ".ipynb"):
        p = notebooks_dir / f"{stage.notebook}{suffix}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"stage {stage.name!r}: neither {stage.notebook}.py nor .ipynb in {notebooks_dir}")


# --------------------------------------------------------------------------------------------------- dependencies

PACKAGE: str = "sefin_utils"
PACKAGE_DIR: Path = Path(__file__).resolve().parent
PARAM_NAMES: frozenset[str] = frozenset({"P", "params"})
"""Names a notebook binds the params dict to (``params`` in the parameters cell, ``P`` once resolved)."""
HUB: str = "sefin_utils.runs"
"""The module the notebooks call (:mod:`sefin_utils.runs`): analysed function by function, so that a stage depends
only on the helpers it calls and on what those import."""
ENTRY: str = "stage_params"
"""The hub function that makes ``P`` from ``params`` (it reads no param for a result of its own)."""
MODEL_READS: str = "model_params"
"""The hub function that records the params that made the run's models: it reads those of the stages up to
:data:`MODEL_STAGE` (see :func:`model_param_keys`)."""
MODEL_STAGE: str = "ser_with_fins"
_MODEL = "@model"


@dataclass(frozen=True)
class Dependencies:
    """What a stage's result depends on besides its notebook and its input artifacts.

    ``params`` are the param keys its notebook (and the :mod:`sefin_utils.runs` helpers it calls) read, or None when
    it uses the params dict as a whole (then every param counts); ``modules`` the ``sefin_utils`` modules whose source
    it runs: the notebook's imports, followed through each module's own imports (all of them, also those inside
    functions), and through the helpers of :mod:`sefin_utils.runs` it calls.
    """

    params: frozenset[str] | None
    modules: tuple[str, ...]


def notebook_code(path: Path) -> str:
    """The Python code of a stage notebook: a Jupytext percent ``.py`` as it is (markdown cells are comments), or the
    code cells of an ``.ipynb``; IPython magics (``%...``, ``!...``) are commented out."""
    path = Path(path)
    if path.suffix == ".ipynb":
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
        text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "code")
    else:
        text = path.read_text(encoding="utf-8")
    return "\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines())


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of a ``sefin_utils`` module (``sefin_utils.plots.fins`` -> ``plots/fins.py``), or None."""
    parts = module.split(".")[1:]
    base = Path(package_dir).joinpath(*parts)
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _is_package(module: str, package_dir: Path) -> bool:
    f = module_file(module, package_dir)
    return f is not None and f.name == "__init__.py"


def _imports(tree: ast.AST, module: str, package_dir: Path) -> set[str]:
    """``sefin_utils`` modules imported anywhere in ``tree`` (top level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not _is_package(module, package_dir):
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != PACKAGE:
                continue
            found.add(name)
            for a in node.names:  # `from sefin_utils import fins`: the submodule
                if module_file(f"{name}.{a.name}", package_dir) is not None:
                    found.add(f"{name}.{a.name}")
    return {m for m in found if module_file(m, package_dir) is not None}


@functools.lru_cache(maxsize=512)
def _parse_cached(path: str, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def _parse(path: Path) -> ast.Module:
    """The AST of a source file, cached while the file is unchanged (same time and size)."""
    st = Path(path).stat()
    return _parse_cached(str(path), st.st_mtime_ns, st.st_size)


def _file_imports(path: Path, module: str, package_dir: Path) -> set[str]:
    st = Path(path).stat()
    return _file_imports_cached(str(path), st.st_mtime_ns, st.st_size, module, Path(package_dir))


@functools.lru_cache(maxsize=512)
def _file_imports_cached(path: str, mtime_ns: int, size: int, module: str, package_dir: Path) -> frozenset[str]:
    return frozenset(_imports(_parse_cached(path, mtime_ns, size), module, package_dir))


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def module_closure(modules: Iterable[str], package_dir: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """``modules`` with every ``sefin_utils`` module they import, transitively (and their packages' ``__init__``)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen or module_file(m, package_dir) is None:
            continue
        seen.add(m)
        todo.extend(_parents(m))
        todo.extend(_file_imports(module_file(m, package_dir), m, package_dir))
    return tuple(sorted(seen))


@dataclass
class _Uses:
    """Reads of the params dict found in one piece of code."""

    keys: set[str]
    whole: bool = False
    hub_calls: set[str] | None = None


def _param_uses(tree: ast.AST, names: frozenset[str], hub_funcs: dict[str, str], p_funcs: set[str]) -> _Uses:
    """Literal reads (``P["k"]``, ``P.get("k")``) of the dict bound to ``names`` in ``tree``; calls that pass it to a
    hub function (``hub_funcs``: local name -> hub function); ``whole`` when it is used any other way."""
    uses = _Uses(set(), hub_calls=set())
    covered: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in names
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            uses.keys.add(node.slice.value)
            covered.add(id(node.value))
        elif isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "get"
                and isinstance(f.value, ast.Name)
                and f.value.id in names
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                uses.keys.add(node.args[0].value)
                covered.add(id(f.value))
                continue
            target = None
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                target = hub_funcs.get(f"{f.value.id}.{f.attr}")
            elif isinstance(f, ast.Name):
                target = hub_funcs.get(f.id)
            if target is None:
                continue
            passed = [a for a in [*node.args, *(k.value for k in node.keywords)] if isinstance(a, ast.Name)]
            passed = [a for a in passed if a.id in names]
            if passed and (target == ENTRY or target in p_funcs):
                covered.update(id(a) for a in passed)
                if target != ENTRY:
                    uses.hub_calls.add(target)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Name)
            and node.id in names
            and isinstance(node.ctx, ast.Load)
            and id(node) not in covered
        ):
            uses.whole = True
    return uses


@dataclass
class _HubFunction:
    keys: set[str]  # param keys it reads itself
    whole: bool  # it uses P as a whole
    p_calls: set[str]  # hub functions it passes P to
    calls: set[str]  # hub functions it calls at all
    imports: set[str]  # sefin_utils modules it imports


def _hub_functions(package_dir: Path) -> tuple[dict[str, _HubFunction], set[str], set[str]]:
    """Per function of the hub module: its own param reads, the hub functions it calls, its imports; the imports of
    the module's top level; the functions whose first argument is ``P`` (cached while the module is unchanged)."""
    path = module_file(HUB, package_dir)
    st = path.stat()
    return _hub_functions_cached(str(path), st.st_mtime_ns, st.st_size, Path(package_dir))


@functools.lru_cache(maxsize=8)
def _hub_functions_cached(
    path: str, mtime_ns: int, size: int, package_dir: Path
) -> tuple[dict[str, _HubFunction], set[str], set[str]]:
    tree = _parse_cached(path, mtime_ns, size)
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    p_funcs = {name for name, n in defs.items() if n.args.args and n.args.args[0].arg == "P"}
    local = {name: name for name in defs}
    out: dict[str, _HubFunction] = {}
    for name, node in defs.items():
        calls = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        imports = _imports(node, HUB, package_dir)
        if name == MODEL_READS:
            out[name] = _HubFunction({_MODEL}, False, set(), calls & set(defs), imports)
            continue
        uses = _param_uses(node, frozenset({"P"}), local, p_funcs) if name in p_funcs else _Uses(set(), hub_calls=set())
        out[name] = _HubFunction(uses.keys, uses.whole, uses.hub_calls, calls & set(defs), imports)
    top = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)], type_ignores=[])
    return out, _imports(top, HUB, package_dir), p_funcs


def _closure(start: Iterable[str], edges: Callable[[str], Iterable[str]]) -> set[str]:
    todo, seen = list(start), set()
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(edges(f))
    return seen


def _direct(code: str, package_dir: Path) -> tuple[set[str] | None, set[str]]:
    """A notebook's param keys (None: the whole dict; may hold the model-params token) and the modules it runs."""
    tree = ast.parse(code)
    hub, hub_top, p_funcs = _hub_functions(package_dir)
    names: dict[str, str] = {}  # local name (``runs.open_store`` or ``open_store``) -> hub function
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            names.update(
                {f"{a.asname or a.name}.{f}": f for a in node.names if a.name == HUB.split(".")[-1] for f in hub}
            )
        elif isinstance(node, ast.ImportFrom) and node.module == HUB:
            names.update({a.asname or a.name: a.name for a in node.names if a.name in hub})
        elif isinstance(node, ast.Import):
            names.update({f"{a.asname or a.name}.{f}": f for a in node.names if a.name == HUB for f in hub})
    uses = _param_uses(tree, PARAM_NAMES, names, p_funcs | {ENTRY})
    keys: set[str] | None = set(uses.keys)
    for f in _closure(uses.hub_calls, lambda f: hub[f].p_calls):
        if hub[f].whole or uses.whole:
            keys = None
        elif keys is not None:
            keys |= hub[f].keys
    if uses.whole:
        keys = None
    imported = _imports(tree, "__main__", package_dir)
    modules = imported - {HUB}
    dotted = _called_names(tree)
    called = _closure({f for local, f in names.items() if local in dotted}, lambda f: hub[f].calls)
    for f in called:
        modules |= hub[f].imports
    if HUB in imported:
        modules |= hub_top
    closure = set(module_closure(modules, package_dir))
    if HUB in imported:
        closure |= {HUB, *_parents(HUB)}
    return keys, closure


def _called_names(tree: ast.AST) -> set[str]:
    """Names called in ``tree``: ``f`` for ``f(...)``, ``m.f`` for ``m.f(...)``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                out.add(f"{f.value.id}.{f.attr}")
            elif isinstance(f, ast.Name):
                out.add(f.id)
    return out


def stage_dependencies(
    stage: Stage,
    *,
    notebooks_dir: Path | None = None,
    package_dir: Path = PACKAGE_DIR,
    stages: Sequence[Stage] = STAGES,
) -> Dependencies:
    """The params a stage reads and the ``sefin_utils`` modules it runs, by static analysis of its notebook.

    A helper that records the params that made the models (:data:`MODEL_READS`) counts as reading every param that
    the stages up to :data:`MODEL_STAGE` read.

    Raises
    ------
    FileNotFoundError
        When the stage's notebook is missing.
    SyntaxError
        When its code does not parse.
    """
    keys, modules = _direct(notebook_code(notebook_path(stage, notebooks_dir)), package_dir)
    if keys is not None and _MODEL in keys:
        model = model_param_keys(notebooks_dir=notebooks_dir, package_dir=package_dir, stages=stages)
        keys = None if model is None else (keys - {_MODEL}) | model
    return Dependencies(None if keys is None else frozenset(keys), tuple(sorted(modules)))


def model_param_keys(
    *, notebooks_dir: Path | None = None, package_dir: Path = PACKAGE_DIR, stages: Sequence[Stage] = STAGES
) -> frozenset[str] | None:
    """The params that make a run's models: those read by the stages up to :data:`MODEL_STAGE` (None: all)."""
    names = [s.name for s in stages]
    upto = stages[: names.index(MODEL_STAGE) + 1] if MODEL_STAGE in names else stages
    keys: set[str] = set()
    for s in upto:
        own, _ = _direct(notebook_code(notebook_path(s, notebooks_dir)), package_dir)
        if own is None:
            return None
        keys |= own - {_MODEL}
    return frozenset(keys)


def running_path(run_dir: str | Path, stage: Stage) -> Path:
    """The heartbeat file of a running ``stage``: ``<run_dir>/stages/<stage>.running.json``."""
    return Path(run_dir) / "stages" / f"{stage.name}.running.json"


def heartbeat_alive(rec: dict[str, Any], stale_after: float | None = None) -> bool:
    """Whether the run that wrote heartbeat ``rec`` (:func:`running_path`, rewritten by the runner while a stage
    runs) is still going: rewritten within ``stale_after`` seconds (default :data:`STALE_HEARTBEAT_SECONDS`)
    and, on this host, its process alive. Here, not in the runner, so that ``status`` can ask without importing it."""
    stale_after = STALE_HEARTBEAT_SECONDS if stale_after is None else stale_after
    if time.time() - float(rec.get("beat_epoch", 0)) > stale_after:
        return False
    if rec.get("host") != socket.gethostname():
        return True  # another machine sharing the folder, beating recently
    try:
        os.kill(int(rec["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, KeyError, ValueError, TypeError):
        return True
    return True
