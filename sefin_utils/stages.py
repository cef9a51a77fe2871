"""The stages of a run, in order: each a notebook, the run-folder artifacts it reads and those it must leave behind.

This module only declares; :mod:`sefin_utils.runner` executes the stages and :mod:`sefin_utils.report` lists them.
It imports nothing else of sefin's, so that any module may read the declarations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
