"""The stage notebooks and profiles: Jupytext pairing, the parameters and install cells, every profile key
documented, and the whole pipeline end to end through papermill on the tiny profile.

The end-to-end test is selected with ``-k e2e`` (and left out with ``-k "not e2e"``); it runs in CI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import pytest
import yaml

from sefin_utils import profile, runner, stages

NOTEBOOKS = stages.NOTEBOOKS_DIR
PARAMS = profile.PARAMS_DIR
STAGE_STEMS = [s.notebook for s in stages.STAGES]
PROFILES = ("demo", "sample", "kaggle", "tiny")


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_every_stage_has_a_py_and_an_ipynb() -> None:
    for stem in STAGE_STEMS:
        assert (NOTEBOOKS / f"{stem}.py").is_file(), f"notebooks/{stem}.py is missing"
        assert (NOTEBOOKS / f"{stem}.ipynb").is_file(), f"notebooks/{stem}.ipynb is missing"
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py")) == sorted(STAGE_STEMS)


@pytest.mark.parametrize("stem", STAGE_STEMS)
def test_py_and_ipynb_do_not_drift(stem: str) -> None:
    """Same cells (type and source) in the .py and the .ipynb; the .ipynb is stored without outputs."""
    py = jupytext.read(NOTEBOOKS / f"{stem}.py")
    ipynb = nbformat.read(str(NOTEBOOKS / f"{stem}.ipynb"), as_version=4)
    py_cells, nb_cells = _cells(py), _cells(ipynb)
    if py_cells != nb_cells:
        diff = (
            next(i for i, (a, b) in enumerate(zip(py_cells, nb_cells, strict=False)) if a != b)
            if any(a != b for a, b in zip(py_cells, nb_cells, strict=False))
            else min(len(py_cells), len(nb_cells))
        )
        pytest.fail(
            f"notebooks/{stem}.py and .ipynb differ from cell {diff + 1} on ({len(py_cells)} vs "
            f"{len(nb_cells)} cells): run `jupytext --sync notebooks/{stem}.py`"
        )
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{stem}.ipynb is stored with outputs"
    assert ipynb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("stem", STAGE_STEMS)
def test_parameters_cell_then_the_install_cell(stem: str) -> None:
    nb = jupytext.read(NOTEBOOKS / f"{stem}.py")
    story = nb.cells[0].source if nb.cells[0].cell_type == "markdown" else ""
    assert "Kaggle" in story and "What sefin changes" in story, f"{stem}: the story (Kaggle, what sefin changes)"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{stem}: first code cell must be tagged parameters"
    names = dict(re.findall(r"^(\w+) = (.+?)(?:\s+#.*)?$", code[0].source, flags=re.M))
    assert names == {"profile": '"demo"', "params": "{}"}
    reference = jupytext.read(NOTEBOOKS / f"{STAGE_STEMS[0]}.py")
    install = [c for c in reference.cells if c.cell_type == "code"][1].source
    assert code[1].source == install, f"{stem}: the install cell differs from {STAGE_STEMS[0]}'s"
    assert "tensorflow" in install and "find_spec" in install
    assert any("stage_params(profile, params)" in c.source for c in code), f"{stem} must resolve its params"


def test_install_cell_is_a_noop_here() -> None:
    nb = jupytext.read(NOTEBOOKS / f"{STAGE_STEMS[0]}.py")
    install = [c for c in nb.cells if c.cell_type == "code"][1].source
    ns: dict = {}
    exec(compile(install, "install-cell", "exec"), ns)  # sefin is importable here: nothing is installed
    assert "_reqs" not in ns and "_repo" not in ns


def test_install_cell_finds_the_checkout_when_sefin_is_not_importable(tmp_path: Path) -> None:
    """Run from notebooks/ in a bare interpreter (no PYTHONPATH): the cell finds the repository above and imports
    sefin from it; nothing is pip-installed because every requirement is already there."""
    import os
    import subprocess
    import sys

    nb = jupytext.read(NOTEBOOKS / f"{STAGE_STEMS[0]}.py")
    install = [c for c in nb.cells if c.cell_type == "code"][1].source
    script = tmp_path / "cell.py"
    probe = "\nimport sefin_utils\nprint(sefin_utils.__file__)\nprint('pip' if '_reqs' in dir() else '')\n"
    script.write_text(install + probe)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, str(script)], cwd=NOTEBOOKS, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    assert Path(out[0]).resolve() == (profile.REPO_ROOT / "sefin_utils" / "__init__.py").resolve()
    assert out[1] == ""


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_load_and_document_every_key(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each profile is an overlay of base.yaml (every key documented there; see tests/test_profile.py): every key
    line carries a comment, and the resolved profile has base's keys, seed first, with its run and report folders."""
    path = PARAMS / f"{name}.yaml"
    text = path.read_text()
    for line in text.splitlines():
        if re.match(r"^\w+:", line):
            assert "#" in line, f"{path.name}: key without a comment: {line!r}"
    base_keys = set(yaml.safe_load((PARAMS / "base.yaml").read_text()))
    monkeypatch.setattr(profile, "find_kaggle_root", lambda: "/kaggle/input")  # kaggle's data root: auto
    P = profile.load_profile(name)
    assert next(iter(P)) == "seed", f"{path.name}: seed comes first"
    assert set(P) == base_keys | {"profile"}, f"{path.name} keys differ from base.yaml: {set(P) ^ base_keys}"
    assert P["run_dir"].endswith(f"runs/{name}") and P["report_dir"].endswith(f"reports/{name}")


def test_a_notebook_run_alone_by_papermill_rejects_an_unknown_param(tmp_path: Path) -> None:
    """papermill on one stage notebook, as on Kaggle: ``params`` with a typo fails at the notebook's params cell with
    the key named (as the command line's ``-p`` would), before the stage writes anything."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    run_dir = tmp_path / "run"
    params = {"calm_mode": "neutral", "run_dir": str(run_dir), "report_dir": str(tmp_path / "report")}
    with pytest.raises(PapermillExecutionError) as info:
        pm.execute_notebook(
            str(NOTEBOOKS / f"{STAGE_STEMS[0]}.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"profile": "tiny", "params": params},
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
        )
    assert info.value.ename == "UnknownParamError"
    assert "'calm_mode' (did you mean 'calm'?)" in info.value.evalue
    assert "stage_params(profile, params)" in info.value.source
    assert not run_dir.exists()


def test_e2e_tiny_pipeline_through_papermill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage notebook executes on the tiny profile; the report holds the results table and every stage's
    HTML; a second run skips every stage."""
    # the sefin_utils source is part of each stamp: hold it fixed, so that edits made meanwhile in a shared working
    # tree cannot turn the second run's skips into reruns
    monkeypatch.setattr(runner, "code_digest", lambda *a, **k: "e2e")
    overrides = {"run_dir": str(tmp_path / "runs" / "tiny"), "report_dir": str(tmp_path / "reports" / "tiny")}
    lines: list[str] = []
    result = runner.run("tiny", overrides=overrides, log=lines.append, progress_bar=False)
    print("\n".join(lines))
    assert result.status == {s.name: "ran" for s in stages.STAGES}
    run_dir, report_dir = tmp_path / "runs" / "tiny", tmp_path / "reports" / "tiny"
    for stem in STAGE_STEMS:
        for suffix in (".html", ".nocode.html"):
            page = report_dir / f"{stem}{suffix}"
            assert page.is_file() and page.stat().st_size > 1000, f"missing or empty {page.name}"
    results = pd.read_csv(report_dir / "results.csv")
    assert len(results) and {"variant", "test_accuracy", "test_macro_f1"} <= set(results.columns)
    assert {"baseline_kaggle", "e2e_frozen"} <= set(results["variant"])
    index = (report_dir / "index.html").read_text()
    assert "GENERATED DATA" in index
    assert "<h2>Headline</h2>" in index and "<table" in index and "baseline_kaggle" in index
    for stem in STAGE_STEMS:
        assert f'href="{stem}.nocode.html"' in index and f'href="{stem}.html"' in index
    assert (report_dir / "results.html").is_file()
    assert list((report_dir / "figures").glob("*.png"))
    card = json.loads((run_dir / "model" / "card.json").read_text())
    assert card["data"]["generated"] is True
    from test_report import check_report  # no stderr block, the banner on every page, no figure twice, no raw JSON

    check_report(report_dir, generated=True)
    again = runner.run("tiny", overrides=overrides, log=lines.append, progress_bar=False)
    assert set(again.status.values()) == {"skipped"}
