"""Stage stamps cover only the params a stage reads and the code it runs (static analysis of the stage notebooks and
of the ``runs`` helpers they call): editing a plotting function used only by the report reruns the report, not the
FINs; a FIN param reruns the FIN stage and not the baseline; ``workers`` reruns nothing.

Works on the real stage notebooks and a temporary copy of the package (no notebook is executed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sefin_utils import profile, runner, stages

NAMES = [s.name for s in stages.STAGES]


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    """A temporary copy of sefin_utils to edit."""
    dst = tmp_path / "sefin_utils"
    shutil.copytree(stages.PACKAGE_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _keys(package: Path, P: dict) -> dict[str, str]:
    """Each stage's (params digest, code digest) as the runner computes them, against the package copy."""
    out = {}
    for s in stages.STAGES:
        deps = stages.stage_dependencies(s, package_dir=package)
        params = runner.stamped_params(P, deps)
        out[s.name] = (runner._sha(repr(sorted(params.items())).encode()), runner.code_digest(deps.modules, package))
    return out


def _changed(before: dict, after: dict, part: int) -> list[str]:
    return [n for n in NAMES if before[n][part] != after[n][part]]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer holds {old!r}: update the test"
    path.write_text(text.replace(old, new, 1))


def test_editing_a_report_plot_reruns_the_report_not_the_fins(package: Path) -> None:
    P = profile.load_profile("tiny")
    before = _keys(package, P)
    _edit(
        package / "plots" / "predict.py",
        "def plot_probabilities(",
        "def _unused() -> None:\n    pass\n\n\ndef plot_probabilities(",
    )
    after = _keys(package, P)
    assert _changed(before, after, 1) == ["report"]


def test_editing_a_classifier_plot_reruns_the_classifier_stages_only(package: Path) -> None:
    P = profile.load_profile("tiny")
    before = _keys(package, P)
    (package / "plots" / "ser.py").write_text((package / "plots" / "ser.py").read_text() + "\n# an edit\n")
    changed = _changed(before, _keys(package, P), 1)
    assert {"baseline", "ser_with_fins"} <= set(changed)
    assert "fins" not in changed and "data" not in changed and "frames_labels" not in changed


def test_editing_the_fin_code_reruns_the_fins(package: Path) -> None:
    P = profile.load_profile("tiny")
    before = _keys(package, P)
    target = package / "fins.py" if (package / "fins.py").is_file() else package / "features.py"
    target.write_text(target.read_text() + "\n# an edit\n")
    changed = _changed(before, _keys(package, P), 1)
    assert "fins" in changed and "ser_with_fins" in changed and "data" not in changed


def test_params_rerun_only_the_stages_that_read_them(package: Path) -> None:
    P = profile.load_profile("tiny")
    before = _keys(package, P)
    assert _changed(before, _keys(package, {**P, "predict_examples": 3}), 0) == ["report"]
    fin = _changed(before, _keys(package, {**P, "fin_epochs": 5}), 0)
    assert "fins" in fin and "baseline" not in fin and "data" not in fin and "report" not in fin
    assert "ser_with_fins" in fin  # its bundle card records the params that made the models
    assert _changed(before, _keys(package, {**P, "ser_epochs": 5}), 0) == ["baseline", "ser_with_fins"]
    assert "data" in _changed(before, _keys(package, {**P, "calm": "neutral"}), 0)
    assert _changed(before, _keys(package, {**P, "workers": 1}), 0) == []  # how fast, not what


def test_a_stage_using_the_params_whole_depends_on_every_param(tmp_path: Path) -> None:
    nb = tmp_path / "01_x.py"
    nb.write_text('# %% tags=["parameters"]\nprofile = "t"\nparams = {}\n\n# %%\nprint(params["x"])\nprint(params)\n')
    deps = stages.stage_dependencies(stages.Stage("x", "01_x"), notebooks_dir=tmp_path)
    assert deps.params is None and deps.modules == ()
    nb.write_text('# %% tags=["parameters"]\nprofile = "t"\nparams = {}\n\n# %%\nprint(params["x"], params.get("y"))\n')
    assert stages.stage_dependencies(stages.Stage("x", "01_x"), notebooks_dir=tmp_path).params == {"x", "y"}


def test_every_stage_reads_only_known_params() -> None:
    known = set(profile.SCHEMA) | set(profile.DERIVED_KEYS)
    for s in stages.STAGES:
        deps = stages.stage_dependencies(s)
        assert deps.params is not None, f"{s.name} uses the params dict whole: every param would rerun it"
        assert deps.params <= known, f"{s.name} reads unknown params {set(deps.params) - known}"
        assert "sefin_utils.runner" not in deps.modules  # no stage runs the runner


def test_no_import_circle_and_nothing_imports_the_runner() -> None:
    """Imports anywhere in a module (top level or inside functions) count; the package's ``__init__`` is left out."""
    pkg = stages.PACKAGE_DIR
    modules = []
    for f in pkg.rglob("*.py"):
        parts = [p for p in f.relative_to(pkg).with_suffix("").parts if p != "__init__"]
        modules.append(".".join([stages.PACKAGE, *parts]))
    graph = {m: set(stages._file_imports(stages.module_file(m), m, pkg)) - {m, stages.PACKAGE} for m in modules}
    importers = sorted(m for m, deps in graph.items() if "sefin_utils.runner" in deps and m != "sefin_utils.__main__")
    assert importers == [], f"{importers} import the runner"
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                pytest.fail(f"import circle: {' -> '.join(path[path.index(n) :] + [n])}")
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_model_code_keys_are_the_code_of_every_resume_key(package: Path) -> None:
    from sefin_utils import experiments, featcache, io

    keys = runner.model_code_keys()
    assert set(keys) == set(experiments._CODE_MODULES)
    assert io.stable_hash(keys) == featcache.code_hash(experiments._CODE_MODULES)  # what resume_key holds
    assert runner.model_code_keys(package) == keys
    # a refactor that computes the same numbers still changes the key (the models retrain): the runner names it
    _edit(package / "classifiers.py", "def norm_stats(", "def _helper() -> None:\n    pass\n\n\ndef norm_stats(")
    assert runner.model_code_changes({"model_code": keys}, runner.model_code_keys(package)) == ["classifiers"]
    # a docstring or comment does not
    before = runner.model_code_keys(package)
    _edit(package / "training.py", '"""', '"""Edited. ')
    assert runner.model_code_changes({"model_code": before}, runner.model_code_keys(package)) == []
    assert runner.model_code_changes({}, keys) == []  # a stamp written before the keys were recorded
