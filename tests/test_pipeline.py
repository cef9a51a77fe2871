"""The runner: profiles and overrides, stage selection, skipping unchanged stages, failure messages, the report.

Uses small throwaway notebooks (plain Python, no sefin imports) in a temporary folder, so that each papermill run
takes a couple of seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from sefin_utils import profile, runner, runs
from sefin_utils.runner import Stage, StageFailed
from sefin_utils.stages import STAGE_HISTORY

HEADER = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""

PARAMS_CELL = """
# %% tags=["parameters"]
profile = "t"
params = {}
"""

NB_A = (
    HEADER
    + """
# %% [markdown]
# # Stage A writes a.txt from the param x
"""
    + PARAMS_CELL
    + """
# %%
from pathlib import Path
run = Path(params["run_dir"])
(run / "a.txt").write_text(str(params["x"]))
print("A wrote", params["x"])
"""
)

NB_B = (
    HEADER
    + """
# %% [markdown]
# # Stage B reads a.txt, writes b.txt
"""
    + PARAMS_CELL
    + """
# %%
from pathlib import Path
run = Path(params["run_dir"])
value = (run / "a.txt").read_text()
(run / "b.txt").write_text(value * 2)
"""
)

NB_FAIL = (
    HEADER
    + """
# %% [markdown]
# # Stage C fails in its third cell
"""
    + PARAMS_CELL
    + """
# %%
ratio = params["x"] / 0  # divide by zero on purpose
"""
)

NB_DIE = (
    HEADER
    + """
# %% [markdown]
# # Stage D's kernel dies (as the system's out-of-memory killer would end it)
"""
    + PARAMS_CELL
    + """
# %%
import os
import signal

os.kill(os.getpid(), signal.SIGKILL)
"""
)

STAGES = (
    Stage("a", "01_a", inputs=(), outputs=("a.txt",)),
    Stage("b", "02_b", inputs=("a.txt",), outputs=("b.txt",)),
)


@pytest.fixture(autouse=True)
def _fixed_code_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sefin_utils source is part of every stamp; other work on it must not change these tests' outcome."""
    monkeypatch.setattr(runner, "code_digest", lambda *a, **k: "code")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A throwaway project: params/t.yaml, notebooks 01_a.py and 02_b.py (and 03_fail.py)."""
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "t.yaml").write_text(
        "seed: 0  # seed\ndata_root: null  # none\nx: 3  # a number\ny: [1, 2]  # a list\n"
    )
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (nbs / "01_a.py").write_text(NB_A)
    (nbs / "02_b.py").write_text(NB_B)
    (nbs / "03_fail.py").write_text(NB_FAIL)
    return tmp_path


def _run(project: Path, stages=STAGES, lines: list[str] | None = None, **kw):
    """Run ``stages`` of the throwaway project; its log goes to ``lines`` (kept when the run raises)."""
    lines = [] if lines is None else lines
    result = runner.run(
        "t",
        stages=stages,
        notebooks_dir=project / "notebooks",
        params_dir=project / "params",
        root=project,
        log=lines.append,
        progress_bar=False,
        **kw,
    )
    return result, lines


def test_load_profile_overrides_and_derived_paths(project: Path) -> None:
    P = profile.load_profile(
        "t", overrides={"x": profile.parse_value("5")}, params_dir=project / "params", root=project
    )
    assert list(P)[0] == "seed"
    assert P["x"] == 5 and P["y"] == [1, 2]
    assert P["profile"] == "t"
    assert P["run_dir"] == str(project / "runs" / "t") and P["report_dir"] == str(project / "reports" / "t")
    assert P["data_root"] is None
    with pytest.raises(KeyError, match="unknown param"):
        profile.load_profile("t", overrides={"xx": 1}, params_dir=project / "params", root=project)
    with pytest.raises(FileNotFoundError, match="no profile 'nope'"):
        profile.load_profile("nope", params_dir=project / "params", root=project)


def test_missing_data_root_stops_before_any_stage(project: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data_root .*nowhere is not a folder"):
        _run(project, overrides={"data_root": str(project / "nowhere")})
    assert not (project / "runs" / "t" / "stages").exists()


def test_parse_value_types_like_yaml() -> None:
    assert profile.parse_value("3") == 3
    assert profile.parse_value("0.5") == 0.5
    assert profile.parse_value("null") is None
    assert profile.parse_value("[0, 1]") == [0, 1]
    assert profile.parse_value("true") is True
    assert profile.parse_value("speaker") == "speaker"


def test_select_stages_by_name_number_and_from() -> None:
    names = [s.name for s in runner.select_stages(runner.STAGES, only=["fins", "1", "06_report"])]
    assert names == ["data", "fins", "report"]
    assert [s.name for s in runner.select_stages(runner.STAGES, start="ser_with_fins")] == ["ser_with_fins", "report"]
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        runner.select_stages(runner.STAGES, only=["nope"])


def test_unchanged_stages_are_skipped_and_changes_rerun(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, lines = _run(project)
    assert result.status == {"a": "ran", "b": "ran"}
    run_dir, report_dir = project / "runs" / "t", project / "reports" / "t"
    assert (run_dir / "b.txt").read_text() == "33"
    assert json.loads((run_dir / "params.json").read_text())["x"] == 3
    stamp = json.loads((run_dir / "stages" / "a.json").read_text())
    assert {"hash", "params", "notebook", "code", "inputs"} <= set(stamp)
    for stem in ("01_a", "02_b"):  # each stage rendered with and without code
        assert "A wrote" in (report_dir / "01_a.html").read_text() or stem != "01_a"
        assert (report_dir / f"{stem}.html").is_file() and (report_dir / f"{stem}.nocode.html").is_file()
    assert (report_dir / "index.html").is_file()
    assert "var x = " not in (report_dir / "01_a.nocode.html").read_text()

    result, lines = _run(project)
    assert result.status == {"a": "skipped", "b": "skipped"}
    assert sum("skipped (unchanged)" in line for line in lines) == 2

    # a param change reruns both; B's input a.txt changes, so B reruns too
    result, _ = _run(project, overrides={"x": 4})
    assert result.status == {"a": "ran", "b": "ran"}
    assert (run_dir / "b.txt").read_text() == "44"

    # editing B's notebook reruns B only
    nb_b = project / "notebooks" / "02_b.py"
    nb_b.write_text(nb_b.read_text().replace("value * 2", "value * 3"))
    result, _ = _run(project, overrides={"x": 4})
    assert result.status == {"a": "skipped", "b": "ran"}
    assert (run_dir / "b.txt").read_text() == "444"

    # a change to the sefin_utils source reruns every stage
    monkeypatch.setattr(runner, "code_digest", lambda *a, **k: "code, edited")
    result, _ = _run(project, overrides={"x": 4})
    assert result.status == {"a": "ran", "b": "ran"}

    # a missing output reruns its stage; --force reruns everything selected
    (run_dir / "b.txt").unlink()
    result, _ = _run(project, overrides={"x": 4})
    assert result.status == {"a": "skipped", "b": "ran"}
    result, _ = _run(project, overrides={"x": 4}, force=True, only=["a"])
    assert result.status == {"a": "ran"}


def test_a_run_in_parts_keeps_every_execution_in_its_wall_time(project: Path) -> None:
    from sefin_utils import report

    _run(project)  # both stages
    _run(project)  # skipped: not an execution
    _run(project, overrides={"x": 4}, only=["a"])  # a second part of stage a
    run_dir = project / "runs" / "t"
    lines = [json.loads(line) for line in (run_dir / "stages" / "history.jsonl").read_text().splitlines()]
    assert [(d["stage"], d["status"]) for d in lines] == [("a", "ran"), ("b", "ran"), ("a", "ran")]
    hist = report.stage_history(run_dir).set_index("stage")
    assert hist.at["a", "executions"] == 2 and hist.at["b", "executions"] == 1
    assert hist.at["a", "seconds"] == pytest.approx(lines[0]["seconds"] + lines[2]["seconds"])
    stamp = json.loads((run_dir / "stages" / "a.json").read_text())
    assert stamp["seconds"] == lines[2]["seconds"]  # the stamp keeps the last execution only
    index = (project / "reports" / "t" / "index.html").read_text()
    assert "2 executions (a run in parts)" in index
    assert "over all 3 recorded executions of 2 stages" in index


NB_MODELS = (
    HEADER
    + """
# %% [markdown]
# # Stage M stores one trained model's metrics, as stages 02 and 05 do
"""
    + PARAMS_CELL
    + """
# %%
from pathlib import Path
out = Path(params["run_dir"]) / "ser"
(out / "metrics").mkdir(parents=True, exist_ok=True)
(out / "metrics" / "e2e_frozen__seed0.json").write_text("{}")
(out / "results.csv").write_text("variant\\ne2e_frozen\\n")
"""
)


def test_a_part_run_into_a_new_report_folder_carries_the_other_stages_pages_and_splits(project: Path) -> None:
    _run(project)
    run_dir = project / "runs" / "t"
    audio = run_dir / "demo-data" / "corpus" / "x.wav"  # the split table's paths lie under the data root
    pd.DataFrame(
        {"recording_id": ["corpus/x"], "path": [str(audio)], "corpus": ["C"], "speaker": ["1"], "emotion": ["sad"]}
        | {"split": ["test"], "protocol": ["speaker"], "duration": [1.0]}
    ).to_csv(run_dir / "splits.csv", index=False)
    second = project / "reports" / "second"
    result, _ = _run(project, force=True, only=["b"], overrides={"report_dir": str(second)})
    assert result.status == {"b": "ran"}
    for stem in ("01_a", "02_b"):  # stage a did not run into this folder: its pages are rendered from the run
        assert (second / f"{stem}.nocode.html").is_file() and (second / f"{stem}.html").is_file()
    assert "A wrote" in (second / "01_a.html").read_text()
    assert '<a href="01_a.nocode.html">report</a>' in (second / "index.html").read_text()
    published = pd.read_csv(second / "splits.csv")
    assert published.columns.tolist() == list(runs.PUBLIC_SPLIT_COLUMNS)
    assert published["path"].tolist() == ["corpus/x.wav"]  # relative to the data root, as stage 01 writes it


def test_a_changed_model_code_is_announced_before_stored_models_retrain(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "notebooks" / "03_models.py").write_text(NB_MODELS)
    stages = (Stage("models", "03_models", inputs=(), outputs=("ser/results.csv",)),)
    monkeypatch.setattr(runner, "model_code_keys", lambda *a, **k: {"classifiers": "k1", "training": "t1"})
    _, lines = _run(project, stages=stages)
    stamp = json.loads((project / "runs" / "t" / "stages" / "models.json").read_text())
    assert stamp["model_code"] == {"classifiers": "k1", "training": "t1"}
    assert not any("WARNING" in line for line in lines)  # nothing stored before the first run

    _, lines = _run(project, stages=stages, force=True)  # same code: no warning
    assert not any("WARNING" in line for line in lines)

    monkeypatch.setattr(runner, "model_code_keys", lambda *a, **k: {"classifiers": "k2", "training": "t1"})
    _, lines = _run(project, stages=stages, force=True)
    warning = [line for line in lines if "WARNING" in line]
    assert len(warning) == 1 and "(classifiers)" in warning[0] and "its 1 stored models" in warning[0]


NB_SLEEP = (
    HEADER
    + """
# %% [markdown]
# # Stage S writes its kernel's pid, then works for a minute
"""
    + PARAMS_CELL
    + """
# %%
import os, time
from pathlib import Path
(Path(params["run_dir"]) / "kernel.pid").write_text(str(os.getpid()))
time.sleep(60)
"""
)

RUN_SLEEP = """
import sys
from pathlib import Path
from sefin_utils import runner
from sefin_utils.runner import Stage
root = Path(sys.argv[1])
runner.run("t", stages=(Stage("s", "04_sleep", outputs=("never.txt",)),), notebooks_dir=root / "notebooks",
           params_dir=root / "params", root=root, progress_bar=False)
"""


def test_a_stopped_stage_is_recorded_and_its_kernel_ends(project: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    (project / "notebooks" / "04_sleep.py").write_text(NB_SLEEP)
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_SLEEP, str(project)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pid_file = project / "runs" / "t" / "kernel.pid"
    deadline = time.monotonic() + 120
    while not pid_file.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pid_file.is_file(), proc.communicate()[0]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "STOPPED after" in out, out
    history = (project / "runs" / "t" / "stages" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in history] == ["stopped"]
    assert json.loads(history[0])["seconds"] > 0.5
    kernel = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(kernel, signal.SIGKILL)
        pytest.fail("the stopped stage's kernel was still running 20 s after its run was stopped")


def test_a_killed_stage_is_recorded_by_the_next_run_from_its_heartbeat(project: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    (project / "notebooks" / "04_sleep.py").write_text(NB_SLEEP)
    script = RUN_SLEEP.replace(
        "from sefin_utils.runner import Stage", "from sefin_utils.runner import Stage\nrunner.HEARTBEAT_SECONDS = 0.2"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(project)], stdout=subprocess.DEVNULL)
    run_dir = project / "runs" / "t"
    beat = run_dir / "stages" / "s.running.json"
    deadline = time.monotonic() + 120
    while not (run_dir / "kernel.pid").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    assert json.loads(beat.read_text())["seconds"] > 0.3  # rewritten while the stage runs
    assert runner.record_killed(run_dir) == []  # its run is alive: left alone
    proc.send_signal(signal.SIGKILL)  # no chance to record itself
    proc.wait(timeout=30)
    kernel = int((run_dir / "kernel.pid").read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(kernel, signal.SIGKILL)
    assert not (run_dir / STAGE_HISTORY).is_file()
    added = runner.record_killed(run_dir)
    assert [r["status"] for r in added] == ["killed"] and added[0]["stage"] == "s"
    assert added[0]["seconds"] > 0.3
    history = [json.loads(line) for line in (run_dir / STAGE_HISTORY).read_text().splitlines()]
    assert history == added and not beat.exists()
    assert runner.record_killed(run_dir) == []  # recorded once


def test_record_killed_takes_a_stale_heartbeat_and_the_run_reports_it(project: Path) -> None:
    run_dir = project / "runs" / "t"
    (run_dir / "stages").mkdir(parents=True)
    stale = {
        "stage": "a",
        "notebook": "01_a",
        "started": "2026-12-07T10:00:00",
        "hash": "h",
        "seconds": 600.0,
        "beat": "2026-12-07T10:10:00",
        "beat_epoch": 0.0,
        "pid": os.getpid(),
        "host": "elsewhere",
    }
    (run_dir / "stages" / "a.running.json").write_text(json.dumps(stale))
    result, lines = _run(project, only=["a"])
    assert any("recorded a killed execution of stage 'a'" in line and "10.0 min" in line for line in lines), lines
    statuses = [json.loads(line)["status"] for line in (run_dir / STAGE_HISTORY).read_text().splitlines()]
    assert statuses == ["killed", "ran"]
    assert not (run_dir / "stages" / "a.running.json").exists()  # the run's own heartbeat is gone when it ends


def test_failing_stage_names_stage_cell_and_error_and_keeps_notebook(project: Path) -> None:
    stages = (*STAGES[:1], Stage("fail", "03_fail", outputs=()), Stage("b", "02_b", outputs=("b.txt",)))
    lines: list[str] = []
    with pytest.raises(StageFailed) as info:
        _run(project, stages=stages, lines=lines)
    msg = str(info.value)
    assert "stage 'fail'" in msg and "03_fail.py" in msg
    assert "cell 3 of 3" in msg  # title, parameters, the failing cell: counted in the source notebook
    assert 'ratio = params["x"] / 0' in msg
    assert "ZeroDivisionError" in msg
    report_dir = project / "reports" / "t"
    assert info.value.failed_notebook == report_dir / "03_fail.failed.ipynb"
    assert (report_dir / "03_fail.failed.ipynb").is_file() and (report_dir / "03_fail.failed.html").is_file()
    assert "ZeroDivisionError" in (report_dir / "03_fail.failed.html").read_text()
    assert not (project / "runs" / "t" / "b.txt").exists()  # the run stopped
    assert any("FAILED" in line for line in lines)
    assert "failed run" in (report_dir / "index.html").read_text()
    history = (project / "runs" / "t" / "stages" / "history.jsonl").read_text()
    assert [json.loads(line)["status"] for line in history.splitlines()] == ["ran", "failed"]


def test_a_stage_whose_kernel_dies_is_recorded_as_failed_with_a_clear_message(project: Path) -> None:
    (project / "notebooks" / "05_die.py").write_text(NB_DIE)
    stages = (*STAGES[:1], Stage("die", "05_die", outputs=()), STAGES[1])
    lines: list[str] = []
    with pytest.raises(StageFailed) as info:
        _run(project, stages=stages, lines=lines)
    msg = str(info.value)
    assert info.value.stage == "die" and "stage 'die' (05_die.py)" in msg and "kernel process died" in msg, msg
    assert any("FAILED after" in line for line in lines), lines
    run_dir = project / "runs" / "t"
    statuses = [json.loads(line)["status"] for line in (run_dir / STAGE_HISTORY).read_text().splitlines()]
    assert statuses == ["ran", "failed"]  # not lost from the run's wall time
    assert not (run_dir / "stages" / "die.running.json").exists()
    assert not (run_dir / "b.txt").exists()  # the run stopped there


def test_a_stage_whose_inputs_were_never_written_stops_with_a_clear_message(project: Path) -> None:
    lines: list[str] = []
    with pytest.raises(StageFailed) as info:
        _run(project, stages=STAGES, only=["b"], lines=lines)
    msg = str(info.value)
    assert "stage 'b' reads a.txt from the run folder" in msg and "(a;" in msg, msg
    assert any("FAILED before it started" in line for line in lines), lines
    assert not (project / "runs" / "t" / "stages" / "history.jsonl").exists()  # nothing ran, nothing to account for


def test_cli_exit_codes(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    assert runner.main(["--profile", "does-not-exist"]) == 2
    assert "no profile" in capsys.readouterr().err
    stages = (*STAGES[:1], Stage("fail", "03_fail", outputs=()))
    monkeypatch.setattr(runner, "STAGES", stages)
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", project / "notebooks")
    monkeypatch.setattr(runner, "PARAMS_DIR", project / "params")
    monkeypatch.setattr(runner, "REPO_ROOT", project)
    assert runner.main(["--profile", "t", "--from", "fail", "-p", "x", "2"]) == 1
    err = capsys.readouterr().err
    assert "stage 'fail'" in err and "ZeroDivisionError" in err

    def stopped(*a, **k):
        raise KeyboardInterrupt("signal 15")  # what the runner's SIGTERM handler raises, after recording the stage

    monkeypatch.setattr(runner, "run", stopped)
    assert runner.main(["--profile", "t"]) == 130  # no traceback: the run has said what it kept


def _fake_results() -> pd.DataFrame:
    rows = []
    for variant, kind, accs in (
        ("baseline_kaggle", "baseline", (0.5, 0.7)),
        ("e2e_frozen", "e2e", (0.4, 0.4)),
        ("ablation_F-F-F-F-F", "ablation", (0.3,)),
        ("ablation_L-L-L-L-L", "ablation", (0.5,)),
    ):
        for seed, acc in enumerate(accs):
            rows.append(
                {
                    "variant": variant,
                    "kind": kind,
                    "seed": seed,
                    "protocol": "speaker",
                    "test_accuracy": acc,
                    "test_macro_f1": acc - 0.1,
                    "test_uar": acc,
                    "ood_accuracy": 0.2,
                    "ood_macro_f1": 0.1,
                    "val_macro_f1": acc,
                }
            )
    return pd.DataFrame(rows)


def test_headline_means_and_spread_over_seeds() -> None:
    from sefin_utils import report

    head = report.headline(_fake_results())
    base = head[head["model"] == "baseline_kaggle"].iloc[0]
    assert base["seeds"] == 2 and base["test accuracy"] == pytest.approx(0.6)
    assert base["test accuracy sd"] == pytest.approx(0.1414, abs=1e-3)
    assert base["study accuracy"] == pytest.approx(0.513)
    abl = head[head["model"].str.startswith("ablation")].iloc[0]
    assert "2 source mixes" in abl["model"] and abl["test accuracy"] == pytest.approx(0.4)
    shown = report.format_headline(head)
    assert shown.loc[shown["model"] == "baseline_kaggle", "test accuracy"].iloc[0] == "0.600 ± 0.141"
    # one seed, but the ablation's row shows its spread over mixes (its label says so)
    assert "mean ± sd over mixes" in abl["model"] and abl["seeds"] == 1
    assert shown.loc[shown["model"] == abl["model"], "test accuracy"].iloc[0] == report.tables.pm(
        abl["test accuracy"], abl["test accuracy sd"]
    )


def test_index_leads_with_banner_headline_and_main_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from sefin_utils import report

    run_dir, report_dir = tmp_path / "run", tmp_path / "report"
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "params.json").write_text(json.dumps({"profile": "x", "data_root": None, "seed": 0}))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    fig.savefig(run_dir / "figures" / "01_counts.png")
    plt.close(fig)
    report.write_results(_fake_results(), run_dir)
    report.set_main_figures(run_dir, ["01_counts.png"])
    index = report.build_index(run_dir, report_dir, stages=STAGES).read_text()
    assert index.index("GENERATED DATA") < index.index("Headline") < index.index("Main figures") < index.index("Stages")
    assert "0.600 ± 0.141" in index and 'src="figures/01_counts.png"' in index
    assert (report_dir / "results.csv").is_file() and (report_dir / "results.html").is_file()
    assert (report_dir / "figures" / "01_counts.png").is_file()
    with pytest.raises(FileNotFoundError, match="not in"):
        report.set_main_figures(run_dir, ["missing.png"])
    (run_dir / "params.json").write_text(json.dumps({"profile": "x", "data_root": str(tmp_path), "seed": 0}))
    assert "GENERATED DATA" not in report.build_index(run_dir, report_dir, stages=STAGES).read_text()
    # a run resumed with more seeds than its tables hold yet: the index names the seeds the numbers come from
    P = {"profile": "x", "data_root": str(tmp_path), "seeds": [0, 1, 2]}
    (run_dir / "params.json").write_text(json.dumps(P))
    (run_dir / "ser").mkdir()
    _fake_results().to_csv(run_dir / "ser" / "results.csv", index=False)
    index = report.build_index(run_dir, report_dir, stages=STAGES).read_text()
    assert "<td>2 (0, 1)</td>" in index
