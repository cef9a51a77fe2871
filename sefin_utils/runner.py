"""Run the stage notebooks for a parameter profile with papermill: ``python -m sefin_utils run``.

A *profile* is a YAML file in ``params/`` (``demo`` by default; see :mod:`sefin_utils.profile`). The runner resolves
and validates it (plus ``-p key value`` overrides) before any stage runs, writes ``<run_dir>/params.json``, executes
the stage notebooks of ``notebooks/`` in order with papermill (:data:`sefin_utils.stages.STAGES`), and renders each
executed notebook to HTML (with and without code) in ``<report_dir>`` together with the figures, the results table
and an ``index.html`` (:mod:`sefin_utils.report`).

Each stage is stamped in ``<run_dir>/stages/<stage>.json`` with a hash of the params it reads, the notebook's cell
sources, the ``sefin_utils`` modules it imports and its input artifacts (files the earlier stages wrote); see
:func:`stage_key`. A stage whose hash matches its stamp, and whose outputs still exist, is skipped. A failing stage
stops the run with a message naming the stage, the cell and the error, and its executed notebook is kept as
``<report_dir>/<notebook>.failed.ipynb`` (+ ``.failed.html``).

Examples
--------
>>> from sefin_utils import runner
>>> runner.run("demo", only=["data"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sefin_utils import io
from sefin_utils.profile import (
    DEFAULT_PROFILE,
    PARAMS_DIR,
    REPO_ROOT,
    UNSTAMPED,
    ParamError,
    load_profile,
    parse_value,
)
from sefin_utils.stages import (
    HEARTBEAT_SECONDS,
    NOTEBOOKS_DIR,
    STAGE_HISTORY,
    STAGES,
    STALE_HEARTBEAT_SECONDS,
    Dependencies,
    Stage,
    heartbeat_alive,
    module_file,
    notebook_path,
    running_path,
    select_stages,
    stage_dependencies,
)

PACKAGE_DIR: Path = Path(__file__).resolve().parent
KERNEL_NAME: str = "python3"

__all__ = [
    "DEFAULT_PROFILE",
    "NOTEBOOKS_DIR",
    "PARAMS_DIR",
    "REPO_ROOT",
    "STAGES",
    "ParamError",
    "RunResult",
    "Stage",
    "StageFailed",
    "main",
    "parse_value",
    "run",
    "select_stages",
]


class StageFailed(RuntimeError):
    """A stage notebook raised: the message names the stage, the cell and the error."""

    def __init__(self, stage: str, message: str, failed_notebook: Path | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.failed_notebook = failed_notebook


@dataclass
class RunResult:
    """What :func:`run` did: per stage ``"ran"``, ``"skipped"`` or ``"failed"``, and seconds taken."""

    params: dict[str, Any]
    status: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    index: Path | None = None


# --------------------------------------------------------------------------------------------------- hashing


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path, *, content_limit: int = 32 * 2**20) -> str:
    st = path.stat()
    if st.st_size <= content_limit:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        return h.hexdigest()
    return f"size={st.st_size};mtime={st.st_mtime_ns}"


def path_digest(path: Path, *, listing_only: bool = False) -> str:
    """Digest of a file or folder: contents (large files: size and time); ``listing_only``: names, sizes, times."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_file():
        st = path.stat()
        return f"size={st.st_size};mtime={st.st_mtime_ns}" if listing_only else _file_digest(path)
    parts = []
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        rel = p.relative_to(path).as_posix()
        if listing_only:
            st = p.stat()
            parts.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}")
        else:
            parts.append(f"{rel}:{_file_digest(p)}")
    return _sha("\n".join(parts).encode())


def code_digest(modules: Sequence[str], package_dir: Path = PACKAGE_DIR) -> str:
    """Digest of the source of ``modules`` (``sefin_utils.x`` names, see :func:`sefin_utils.stages.module_file`):
    a change to one of them reruns the stages that run it."""
    parts = []
    for m in sorted(modules):
        f = module_file(m, package_dir)
        parts.append(f"{m}:{_file_digest(f) if f is not None else 'missing'}")
    return _sha("\n".join(parts).encode())


MODEL_CODE_HOLDER = "experiments"
"""The module whose ``_CODE_MODULES`` lists the modules in every stored model's resume key
(:func:`sefin_utils.experiments.resume_key`)."""


def model_code_keys(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """``{module: key}`` for each module of ``experiments._CODE_MODULES``, read from the source in ``package_dir``
    without importing it (no TensorFlow in the runner): the per-module part of :func:`sefin_utils.featcache.code_hash`
    (the syntax tree without docstrings), so ``io.stable_hash`` of this dict is the ``code`` of every model's resume
    key. A module that is absent maps to ``"missing"``."""
    import ast

    from sefin_utils import featcache

    tree = ast.parse((Path(package_dir) / f"{MODEL_CODE_HOLDER}.py").read_text(encoding="utf-8"))
    names: tuple[str, ...] = ()
    for node in tree.body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == "_CODE_MODULES" and node.value is not None:
            names = tuple(ast.literal_eval(node.value))
    keys = {}
    for name in names:
        path = Path(package_dir) / f"{name}.py"
        if not path.is_file():
            keys[name] = "missing"
            continue
        stripped = featcache._strip_docstrings(ast.parse(path.read_text(encoding="utf-8")))
        keys[name] = hashlib.sha256(ast.dump(stripped).encode()).hexdigest()[:16]
    return keys


def stored_models(run_dir: Path, stage: Stage) -> int:
    """How many trained models ``stage`` has stored in ``run_dir`` (``<folder>/metrics/*.json`` under each folder
    of its outputs: ``baseline/``, ``ser/``), which a resumed run reads back when their resume keys match."""
    folders = {Path(o).parts[0] for o in stage.outputs if len(Path(o).parts) > 1}
    return sum(len(list((Path(run_dir) / f / "metrics").glob("*.json"))) for f in folders)


def model_code_changes(stamp: dict[str, Any], keys: dict[str, str]) -> list[str]:
    """The modules whose code key differs from the one the stage's last stamp recorded (``stamp["model_code"]``);
    [] when the stamp recorded none (runs stamped before this was recorded)."""
    before = stamp.get("model_code")
    if not isinstance(before, dict):
        return []
    return sorted(m for m in set(before) | set(keys) if before.get(m) != keys.get(m))


def _cell_sources(nb: Any) -> list[list[str]]:
    return [[c.cell_type, c.source] for c in nb.cells]


def stamped_params(P: dict[str, Any], deps: Dependencies) -> dict[str, Any]:
    """The params a stage's stamp covers: those it reads (all when it uses the dict whole), less the keys that change
    where or how fast it runs, not what it computes (:data:`sefin_utils.profile.UNSTAMPED`)."""
    keys = P if deps.params is None else deps.params
    return {k: P[k] for k in sorted(keys) if k in P and k not in UNSTAMPED}


def stage_key(stage: Stage, nb: Any, P: dict[str, Any], deps: Dependencies, *, code: str) -> dict[str, Any]:
    """The parts of a stage's stamp, each hashed: the params it reads, its notebook's cells, the code of the modules
    it runs (``code``, from :func:`code_digest`) and each input artifact; ``hash`` covers them all. The stamp also
    lists the param keys and modules, to show why a stage reran."""
    run_dir = Path(P["run_dir"])
    inputs = {}
    for name in stage.inputs:
        if name == "@data_root":
            inputs[name] = path_digest(Path(P["data_root"]), listing_only=True) if P.get("data_root") else "generated"
        else:
            inputs[name] = path_digest(run_dir / name)
    params = stamped_params(P, deps)
    parts: dict[str, Any] = {
        "params": _sha(json.dumps(params, sort_keys=True, default=str).encode()),
        "notebook": _sha(json.dumps(_cell_sources(nb)).encode()),
        "code": code,
        "inputs": _sha(json.dumps(inputs, sort_keys=True).encode()),
    }
    parts["hash"] = _sha(json.dumps(parts, sort_keys=True).encode())
    parts["param_keys"] = list(params)
    parts["modules"] = list(deps.modules)
    return parts


# --------------------------------------------------------------------------------------------------- notebooks


def read_notebook(path: Path) -> Any:
    """Read a stage notebook (``.py`` via jupytext or ``.ipynb``) with the python3 kernelspec set."""
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata.pop("jupytext", None)
    for cell in nb.cells:  # executed copies carry no stale outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def render_html(nb_path: Path, out_dir: Path, *, stem: str | None = None) -> tuple[Path, Path]:
    """Render an executed notebook as ``<stem>.html`` (with code) and ``<stem>.nocode.html`` (``--no-input``)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(nb_path), as_version=4)
    stem = stem or Path(nb_path).stem
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, exclude in ((".html", False), (".nocode.html", True)):
        exporter = HTMLExporter(exclude_input=exclude, exclude_input_prompt=exclude, exclude_output_prompt=exclude)
        body, _ = exporter.from_notebook_node(copy.deepcopy(nb))
        target = out_dir / f"{stem}{suffix}"
        io.atomic_write_text(target, body)
        paths.append(target)
    return paths[0], paths[1]


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[:100]
    return source.strip().splitlines()[0][:100] if source.strip() else ""


def _kernel_failure_message(stage: Stage, src: Path, err: BaseException, seconds: float) -> str:
    """Name the stage and what ended it when no cell raised: papermill's error (``DeadKernelError`` when the kernel
    process died: a signal, the system's out-of-memory killer)."""
    died = "died" in str(err).lower() or type(err).__name__ == "DeadKernelError"
    return (
        f"stage {stage.name!r} ({src.name}) stopped after {_fmt(seconds)} without an error in a cell: "
        f"{type(err).__name__}: {str(err).strip() or 'no message'}"
        + (
            " (its kernel process died: killed by a signal, or by the system for lack of memory: see `dmesg`); "
            "what it finished is kept and read back when the run is resumed"
            if died
            else ""
        )
    )


def _failure_message(stage: Stage, src: Path, err: Any) -> str:
    """Name the stage, the cell (its number among the source notebook's cells + first line) and the error."""
    source = getattr(err, "source", "") or ""
    number = None
    src_cells = [c for c in read_notebook(src).cells]
    for i, cell in enumerate(src_cells, start=1):
        if cell.cell_type == "code" and cell.source == source:
            number = i
            break
    where = (
        f"cell {number} of {len(src_cells)}"
        if number is not None
        else f"cell {getattr(err, 'cell_index', '?')} of the executed copy"
    )
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    return (
        f"stage {stage.name!r} ({src.name}) failed in {where}, execution count {getattr(err, 'exec_count', '?')}: "
        f"`{_first_line(source)}`\n  {ename}: {evalue}"
    )


# --------------------------------------------------------------------------------------------------- the runner


def _kernel_env() -> dict[str, str]:
    """Environment the kernels inherit: sefin importable, quieter TensorFlow, the inline figure backend."""
    root = PACKAGE_DIR.parent
    env = {}
    pythonpath = os.environ.get("PYTHONPATH", "")
    if str(root) not in pythonpath.split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), pythonpath) if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["TQDM_MININTERVAL"] = os.environ.get("TQDM_MININTERVAL", "5")
    env["SEFIN_KERNEL_STDERR"] = "log"  # console.quiet_kernel: the kernel's stderr goes to its kernel log, not the page
    return env


def _environment_log() -> dict[str, str]:
    from importlib import metadata

    info = {"python": sys.version.split()[0], "platform": sys.platform}
    for pkg in ("tensorflow", "tensorflow-cpu", "keras", "librosa", "numpy", "pandas", "papermill", "nbconvert"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return info


def run(
    profile: str | os.PathLike = DEFAULT_PROFILE,
    *,
    only: Iterable[str] | None = None,
    start: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    stages: Sequence[Stage] | None = None,
    notebooks_dir: Path | None = None,
    params_dir: Path | None = None,
    root: Path | None = None,
    build_report: bool = True,
    log: Callable[[str], None] | None = None,
    progress_bar: bool | None = None,
) -> RunResult:
    """Execute the stage notebooks of a profile; raise :class:`StageFailed` when one fails.

    Parameters
    ----------
    profile : str or path
        Profile name in ``params_dir`` or a YAML file.
    only, start : optional
        Run only these stages / from this stage on (names like ``fins``, ``04_fins`` or ``4``).
    overrides : dict, optional
        Param overrides (``-p key value``).
    force : bool
        Rerun the selected stages even when their stamps match.
    stages, notebooks_dir, params_dir, root : optional
        The stage list and folders (tests use throwaway notebooks).
    build_report : bool
        Render HTML and the report index after the stages.
    log : callable, optional
        Where progress lines go (default: printed and flushed).
    progress_bar : bool, optional
        papermill's per-cell bar (default: when stderr is a terminal).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    log = log or (lambda line: print(line, flush=True))
    stages = STAGES if stages is None else stages
    notebooks_dir = NOTEBOOKS_DIR if notebooks_dir is None else Path(notebooks_dir)
    params_dir = PARAMS_DIR if params_dir is None else Path(params_dir)
    root = REPO_ROOT if root is None else Path(root)
    P = load_profile(profile, overrides=overrides, params_dir=params_dir, root=root)
    if P.get("data_root") and not Path(P["data_root"]).is_dir():
        raise FileNotFoundError(
            f"data_root {P['data_root']} is not a folder (profile {P['profile']}); give one with "
            "-p data_root /path/to/corpora, or null for the generated demo corpus"
        )
    run_dir, report_dir = Path(P["run_dir"]), Path(P["report_dir"])
    for sub in ("stages", "executed", "figures"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(run_dir / "params.json", P)
    io.write_json(run_dir / "environment.json", _environment_log())
    for rec in record_killed(run_dir):
        log(
            f"recorded a killed execution of stage {rec['stage']!r} (started {rec['started']}, ran at least "
            f"{_fmt(rec['seconds'])}; its last sign of life {rec['finished']}) in {run_dir / STAGE_HISTORY}"
        )
    result = RunResult(params=P)
    selected = select_stages(stages, only=only, start=start)
    env_before = {k: os.environ.get(k) for k in _kernel_env()}
    os.environ.update(_kernel_env())
    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    log(f"sefin run: profile {P['profile']} -> {run_dir} (report: {report_dir})")
    model_code = model_code_keys()
    t_run = time.perf_counter()
    try:
        for i, stage in enumerate(selected, start=1):
            head = f"[{i}/{len(selected)}] {stage.notebook}"
            src = notebook_path(stage, notebooks_dir)
            nb = read_notebook(src)
            deps = stage_dependencies(stage, notebooks_dir=notebooks_dir, stages=stages)
            code = code_digest(deps.modules)
            key = stage_key(stage, nb, P, deps, code=code)
            stamp_path = run_dir / "stages" / f"{stage.name}.json"
            executed = run_dir / "executed" / f"{stage.notebook}.ipynb"
            stamp = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
            outputs_ok = all((run_dir / o).exists() for o in stage.outputs) and executed.is_file()
            if not force and stamp.get("hash") == key["hash"] and outputs_ok:
                log(f"{head}: skipped (unchanged)")
                result.status[stage.name] = "skipped"  # its pages, if missing, are rendered by carry_report
                continue
            absent = [name for name in stage.inputs if not name.startswith("@") and not (run_dir / name).exists()]
            if absent:
                writers = [
                    s.name for s in stages if any(o == a or o.startswith(f"{a}/") for a in absent for o in s.outputs)
                ]
                msg = (
                    f"stage {stage.name!r} reads {', '.join(absent)} from the run folder {run_dir}, which has none: "
                    f"run the stage(s) that write it first ({', '.join(writers) or 'see --list'}; e.g. without --only, "
                    "or with them added to it), or point run_dir at the folder that holds them"
                )
                result.status[stage.name] = "failed"
                log(f"{head}: FAILED before it started\n  {msg}")
                raise StageFailed(stage.name, msg)
            changed, n_stored = model_code_changes(stamp, model_code), stored_models(run_dir, stage)
            if changed and n_stored:
                log(
                    f"{head}: WARNING the models' code changed since this stage last ran ({', '.join(changed)}): "
                    f"its {n_stored} stored models no longer match their resume keys and will be trained again "
                    f"(the keys hold the code of {MODEL_CODE_HOLDER}._CODE_MODULES; stop now and revert the change "
                    "to keep them)"
                )
            log(f"{head}: running ...")
            t0 = time.perf_counter()
            started = time.strftime("%Y-%m-%dT%H:%M:%S")
            partial = executed.with_name(f".{executed.stem}.partial.ipynb")
            failed_nb = report_dir / f"{stage.notebook}.failed.ipynb"
            kernel_log = run_dir / "executed" / f"{stage.notebook}.kernel.log"
            try:
                running = {"stage": stage.name, "notebook": stage.notebook, "started": started, "hash": key["hash"]}
                with _stderr_to(kernel_log), _sigterm_as_interrupt(), _heartbeat(running_path(run_dir, stage), running):
                    pm.execute_notebook(
                        nb,
                        str(partial),
                        parameters={"profile": P["profile"], "params": P},
                        kernel_name=KERNEL_NAME,
                        language="python",
                        cwd=str(Path(notebooks_dir)),
                        progress_bar=progress_bar,
                        log_output=False,
                    )
            except Exception as err:  # a cell raised (PapermillExecutionError), or the kernel died or did not start
                seconds = time.perf_counter() - t0
                record_execution(run_dir, stage, "failed", seconds, key["hash"], started)
                kept = None
                if partial.is_file():
                    kept = failed_nb
                    shutil.move(str(partial), failed_nb)
                    if build_report:
                        render_html(failed_nb, report_dir, stem=f"{stage.notebook}.failed")
                stamp_path.unlink(missing_ok=True)
                result.status[stage.name], result.seconds[stage.name] = "failed", seconds
                in_cell = isinstance(err, PapermillExecutionError)
                msg = (
                    _failure_message(stage, src, err) if in_cell else _kernel_failure_message(stage, src, err, seconds)
                )
                log(
                    f"{head}: FAILED after {_fmt(seconds)}\n  {msg}"
                    + (f"\n  executed notebook kept: {kept}" if kept else "")
                    + (f"\n  kernel log: {kernel_log}" if kernel_log.is_file() else "")
                )
                raise StageFailed(stage.name, msg, kept) from (None if in_cell else err)
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (kill): the stage's wall time is recorded
                seconds = time.perf_counter() - t0
                record_execution(run_dir, stage, "stopped", seconds, key["hash"], started)
                partial.unlink(missing_ok=True)
                result.status[stage.name], result.seconds[stage.name] = "stopped", seconds
                log(
                    f"{head}: STOPPED after {_fmt(seconds)} (interrupted); the models it finished are kept and read "
                    "back when the run is resumed"
                )
                raise
            seconds = time.perf_counter() - t0
            missing = [o for o in stage.outputs if not (run_dir / o).exists()]
            os.replace(partial, executed)
            if missing:
                stamp_path.unlink(missing_ok=True)
                msg = f"stage {stage.name!r} ({src.name}) ran but did not write {missing} in {run_dir}"
                result.status[stage.name] = "failed"
                log(f"{head}: FAILED\n  {msg}")
                raise StageFailed(stage.name, msg, executed)
            for stale in (failed_nb, *(report_dir / f"{stage.notebook}.failed{x}" for x in (".html", ".nocode.html"))):
                stale.unlink(missing_ok=True)
            # inputs are re-read after the run: a stage may itself write what it reads (the generated corpus)
            key = stage_key(stage, nb, P, deps, code=code)
            io.write_json(
                stamp_path,
                {
                    **key,
                    "stage": stage.name,
                    "notebook": src.name,
                    "model_code": model_code,
                    "seconds": round(seconds, 2),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
            )
            record_execution(run_dir, stage, "ran", seconds, key["hash"], started)
            if build_report:
                render_html(executed, report_dir)
            result.status[stage.name], result.seconds[stage.name] = "ran", seconds
            log(f"{head}: done in {_fmt(seconds)} (total {_fmt(time.perf_counter() - t_run)})")
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if build_report:
            try:
                from sefin_utils import report

                carry_report(run_dir, report_dir, stages, P)
                result.index = report.build_index(run_dir, report_dir, stages=stages)
            except Exception as exc:  # the index must not hide the stage's own error
                log(f"report index not written: {type(exc).__name__}: {exc}")
    log(f"finished in {_fmt(time.perf_counter() - t_run)}; report: {result.index or report_dir}")
    return result


def carry_report(run_dir: Path, report_dir: Path, stages: Sequence[Stage], P: dict[str, Any]) -> list[Path]:
    """Make ``report_dir`` a whole report of ``run_dir`` when only some stages ran into it (``--only`` with a new
    ``report_dir``): render the pages of every finished stage (a stamp and an executed notebook in the run folder)
    that has none there, and write the published split table (:func:`sefin_utils.runs.publish_splits`, from the
    run's ``splits.csv``) when it is missing. Returns the files written. Without it such a folder held the new
    stages' pages only, and publishing it dropped the others (stop 25)."""
    written: list[Path] = []
    for stage in stages:
        executed = run_dir / "executed" / f"{stage.notebook}.ipynb"
        stamped = (run_dir / "stages" / f"{stage.name}.json").is_file()
        if stamped and executed.is_file() and not (report_dir / f"{stage.notebook}.nocode.html").is_file():
            written += render_html(executed, report_dir)
    if (run_dir / "splits.csv").is_file() and not (report_dir / "splits.csv").is_file():
        from sefin_utils import runs

        root = Path(P["data_root"]) if P.get("data_root") else runs.generated_data_root(P)
        written.append(runs.publish_splits(runs.load_splits(P), root, report_dir / "splits.csv"))
    return written


def record_execution(run_dir: Path, stage: Stage, status: str, seconds: float, key_hash: str, started: str) -> None:
    """Append one execution of ``stage`` (``status`` "ran", "failed", "stopped" or "killed", wall ``seconds``, its
    stamp hash and start time) to the run folder's :data:`~sefin_utils.stages.STAGE_HISTORY`. The stamp keeps the
    last execution only; the history keeps them all, so a stage run in parts (seeds added, a run stopped and
    resumed) accounts for its whole wall time (:func:`sefin_utils.report.stage_history`). An execution stopped by
    Ctrl-C or SIGTERM is recorded as "stopped"; one killed by SIGKILL (or a lost machine) is recorded as "killed"
    by the next run of the folder, from its heartbeat (:func:`record_killed`)."""
    line = {
        "stage": stage.name,
        "notebook": stage.notebook,
        "status": status,
        "seconds": round(seconds, 2),
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "hash": key_hash,
    }
    _append_history(run_dir, line)


def _append_history(run_dir: str | os.PathLike, line: dict[str, Any]) -> None:
    """Append one JSON line to the run folder's :data:`~sefin_utils.stages.STAGE_HISTORY`."""
    path = Path(run_dir) / STAGE_HISTORY
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


@contextlib.contextmanager
def _heartbeat(path: Path, record: dict[str, Any], every: float | None = None) -> Iterator[None]:
    """Within the block, keep ``path`` rewritten every ``every`` seconds with ``record`` plus the wall ``seconds`` so
    far, the time of this ``beat``, the process id and host; removed when the block ends, however it ends. What a
    run killed without a chance to record itself (SIGKILL, a lost machine) leaves behind: :func:`record_killed`."""
    every = HEARTBEAT_SECONDS if every is None else every
    t0 = time.perf_counter()
    done = threading.Event()

    def beat() -> None:
        io.write_json(
            path,
            {
                **record,
                "seconds": round(time.perf_counter() - t0, 2),
                "beat": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "beat_epoch": time.time(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
            },
        )

    def loop() -> None:
        while not done.wait(every):
            with contextlib.suppress(OSError):
                beat()

    beat()
    thread = threading.Thread(target=loop, name="sefin-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        path.unlink(missing_ok=True)


def record_killed(run_dir: str | os.PathLike, *, stale_after: float | None = None) -> list[dict[str, Any]]:
    """Record, as ``killed`` executions in the run's :data:`~sefin_utils.stages.STAGE_HISTORY`, the stages whose
    heartbeat (``stages/<stage>.running.json``, :func:`_heartbeat`) outlived their run: its process is gone from this
    host, or it was not rewritten for ``stale_after`` seconds. Each gets its last heartbeat's wall time (a lower bound:
    at most :data:`HEARTBEAT_SECONDS` short) and is removed. A heartbeat that is alive (another run of the same folder
    still going) is left alone; an unreadable one is recorded with no time, not dropped. Returns the records added."""
    stale_after = STALE_HEARTBEAT_SECONDS if stale_after is None else stale_after
    added = []
    for path in sorted((Path(run_dir) / "stages").glob("*.running.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            rec = {"stage": path.name.removesuffix(".running.json"), "seconds": 0.0, "note": "unreadable heartbeat"}
        if heartbeat_alive(rec, stale_after):
            continue
        line = {
            "stage": rec.get("stage"),
            "notebook": rec.get("notebook"),
            "status": "killed",
            "seconds": float(rec.get("seconds", 0.0)),
            "started": rec.get("started"),
            "finished": rec.get("beat"),
            "hash": rec.get("hash"),
        }
        _append_history(run_dir, line)
        path.unlink(missing_ok=True)
        added.append(line)
    return added


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2, which the kernels inherit (TensorFlow's C++ log lines, jupyter's warnings), to
    ``path`` for the duration, while this process' own ``sys.stderr`` (papermill's progress bar) stays where it was."""
    sys.stderr.flush()
    saved = os.dup(2)
    old_stderr = sys.stderr
    try:
        with open(path, "wb") as fh:
            os.dup2(fh.fileno(), 2)
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
            try:
                yield
            finally:
                sys.stderr.close()
    finally:
        sys.stderr = old_stderr
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``) raises KeyboardInterrupt as Ctrl-C does, so that a stopped stage is
    recorded (status ``stopped``, with its wall time) instead of vanishing from the run's history; its kernel ends
    with the run either way. Only in the main thread (elsewhere signals cannot be handled); the previous handler
    comes back after the block."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# --------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sefin_utils run",
        description="Execute the stage notebooks for a profile with papermill and render the HTML report.",
    )
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="params/<profile>.yaml or a YAML path (demo)")
    parser.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages (name, NN_name or number)")
    parser.add_argument("--from", dest="start", metavar="STAGE", help="run from this stage on")
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="override a param; VALUE is read as YAML (3, 0.5, null, [a, b])",
    )
    parser.add_argument("--force", action="store_true", help="rerun stages even when unchanged")
    parser.add_argument("--list", action="store_true", help="list the stages and the resolved params, run nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sefin_utils run``: 0 on success, 1 when a stage fails, 2 on a usage error, 130 when stopped by
    Ctrl-C or SIGTERM (the run has already said what it kept: no traceback)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    overrides = {k: parse_value(v) for k, v in args.param}
    try:
        if args.list:
            P = load_profile(args.profile, overrides=overrides)
            for i, s in enumerate(STAGES, start=1):
                print(f"{i}. {s.name:<14} notebooks/{s.notebook}.py  reads {list(s.inputs)} writes {list(s.outputs)}")
                deps = stage_dependencies(s)
                keys = "all" if deps.params is None else ", ".join(sorted(set(deps.params) - UNSTAMPED))
                print(f"   params: {keys}\n   modules: {', '.join(m.split('.', 1)[-1] for m in deps.modules)}")
            print(json.dumps(P, indent=2, default=str))
            return 0
        run(args.profile, only=args.only, start=args.start, overrides=overrides, force=args.force)
    except StageFailed as err:
        print(f"\nsefin run stopped: {err}", file=sys.stderr)
        if err.failed_notebook:
            print(f"executed notebook kept: {err.failed_notebook}", file=sys.stderr)
        return 1
    except (FileNotFoundError, KeyError, ValueError, PermissionError) as err:
        print(f"sefin run: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
