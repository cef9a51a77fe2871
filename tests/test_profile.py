"""Profiles by overlay and typed params: base.yaml documents every key once, each profile states its differences,
unknown keys and wrong types are errors naming the key (file, ``-p``, a notebook run alone), ESD speaker ids keep
their leading zeros, and a read-only checkout writes its runs to the working folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sefin_utils import profile
from sefin_utils.profile import ParamError, UnknownParamError

PARAMS = profile.PARAMS_DIR
OVERLAYS = ("demo", "sample", "kaggle", "tiny")


def _base() -> dict:
    return profile.read_profile_file(PARAMS / "base.yaml")


def test_base_documents_every_schema_key_once_seed_first() -> None:
    text = (PARAMS / "base.yaml").read_text()
    base = _base()
    assert next(iter(base)) == "seed"
    assert profile.EXTENDS_KEY not in base
    assert set(base) == set(profile.SCHEMA) - {"profile"}, set(base) ^ (set(profile.SCHEMA) - {"profile"})
    keys = re.findall(r"^(\w+):", text, flags=re.M)
    assert len(keys) == len(set(keys)), "a key is written twice in base.yaml"
    for line in text.splitlines():
        if re.match(r"^\w+:", line):
            assert "#" in line, f"base.yaml: key without a comment: {line!r}"
    profile.validate(base)  # every default has its declared type


@pytest.mark.parametrize("name", OVERLAYS)
def test_profiles_extend_base_and_state_only_their_differences(name: str) -> None:
    path = PARAMS / f"{name}.yaml"
    own = profile.read_profile_file(path)
    assert own.pop(profile.EXTENDS_KEY) == "base", f"{path.name} must start from base (extends: base)"
    base = _base()
    repeated = [k for k, v in own.items() if base.get(k) == v]
    assert not repeated, f"{path.name} repeats base.yaml's values of {repeated}"
    for line in path.read_text().splitlines():
        if re.match(r"^\w+:", line):
            assert "#" in line, f"{path.name}: key without a comment: {line!r}"
    if name != "kaggle":  # kaggle's data root needs /kaggle/input
        P = profile.load_profile(name)
        assert list(P)[: len(base)] == list(base)  # base's order, seed first
        assert all(P[k] == v for k, v in own.items() if k != "data_root")


def test_demo_is_base() -> None:
    P = profile.load_profile("demo")
    assert {k: P[k] for k in _base() if k not in {"run_dir", "report_dir"}} == {
        k: v for k, v in _base().items() if k not in {"run_dir", "report_dir"}
    }


def test_schema_choices_follow_the_modules() -> None:
    from sefin_utils import augment, splits

    assert set(profile.AUGMENTATIONS) == set(augment.AUGMENTATIONS)
    assert set(profile.PROTOCOLS) == set(splits.PROTOCOLS)


@pytest.mark.parametrize(
    ("overrides", "error", "needle"),
    [
        ({"fin_epochs": "abc"}, ParamError, "param 'fin_epochs': got 'abc'"),
        ({"calm_mode": "neutral"}, UnknownParamError, "'calm_mode' (did you mean 'calm'?)"),
        ({"calm": "merged"}, ParamError, "param 'calm'"),
        ({"seeds": [0, "x"]}, ParamError, "param 'seeds[1]'"),
        ({"ablation": 1}, ParamError, "param 'ablation'"),
        ({"tuning": "estimate"}, ParamError, "param 'tuning'"),
        ({"ser_variants": ["frozen", "thawed"]}, ParamError, "param 'ser_variants[1]'"),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_key(overrides: dict, error: type, needle: str) -> None:
    with pytest.raises(error) as info:
        profile.load_profile("tiny", overrides=overrides)
    assert needle in str(info.value)


def test_values_take_their_declared_type() -> None:
    P = profile.load_profile("tiny", overrides={"fin_epochs": "7", "ser_lr": 1, "tuning": 0, "seeds": ["1", 2]})
    assert P["fin_epochs"] == 7 and P["ser_lr"] == 1.0 and isinstance(P["ser_lr"], float)
    assert P["tuning"] == 0.0 and P["seeds"] == [1, 2]
    assert profile.load_profile("tiny", overrides={"tuning": None})["tuning"] is None


def test_a_wrong_key_in_a_profile_file_names_the_file(tmp_path: Path) -> None:
    shutil.copy(PARAMS / "base.yaml", tmp_path / "base.yaml")
    (tmp_path / "typo.yaml").write_text("extends: base  # base\nfin_epoch: 3  # typo\n")
    with pytest.raises(UnknownParamError, match=r"'fin_epoch' \(did you mean 'fin_epochs'\?\) in .*typo.yaml"):
        profile.load_profile("typo", params_dir=tmp_path)
    (tmp_path / "bad.yaml").write_text("extends: base  # base\nser_epochs: lots  # wrong type\n")
    with pytest.raises(ParamError, match="param 'ser_epochs': got 'lots'"):
        profile.load_profile("bad", params_dir=tmp_path)
    (tmp_path / "a.yaml").write_text("extends: b  # loop\n")
    (tmp_path / "b.yaml").write_text("extends: a  # loop\n")
    with pytest.raises(ParamError, match="cycle"):
        profile.load_profile("a", params_dir=tmp_path)


def test_leading_zero_scalars_stay_text() -> None:
    assert profile.parse_value("[0011, 0012]") == ["0011", "0012"]
    assert profile.parse_value("0011") == "0011"
    assert profile.parse_value("11") == 11 and profile.parse_value("0") == 0
    assert profile.load_yaml("a: 0019\nb: [0001, 20]\n") == {"a": "0019", "b": ["0001", 20]}


def _write_esd(root: Path) -> None:
    """A generated ESD layout: one short noise file for speakers 0009, 0011, 0012 and 0013 (no real audio)."""
    rng = np.random.default_rng(0)
    for speaker in ("0009", "0011", "0012", "0013"):
        folder = root / "ESD" / speaker / "Angry"
        folder.mkdir(parents=True)
        sf.write(folder / f"{speaker}_000351.wav", 0.1 * rng.standard_normal(22050).astype("float32"), 22050)


def test_esd_speakers_with_leading_zeros_select_those_speakers(tmp_path: Path) -> None:
    """Issue 11 item 3: ``esd_speakers: [0011, 0012]`` from a profile file and from ``-p`` selects 0011 and 0012
    (YAML 1.1 alone would read 0011 as octal 9 and select speaker 0009)."""
    from sefin_utils import corpora, runs

    params_dir = tmp_path / "params"
    params_dir.mkdir()
    shutil.copy(PARAMS / "base.yaml", params_dir / "base.yaml")
    (params_dir / "esd.yaml").write_text("extends: base  # base\nesd_speakers: [0011, 0012]  # two speakers\n")
    from_file = profile.load_profile("esd", params_dir=params_dir, root=tmp_path)
    from_cli = profile.load_profile("tiny", overrides={"esd_speakers": profile.parse_value("[0011, 0012]")})
    data = tmp_path / "data"
    _write_esd(data)
    for P in (from_file, from_cli):
        assert runs.esd_speakers(P) == ("0011", "0012")
        found = corpora.discover(data, esd_speakers=runs.esd_speakers(P), progress=False)
        assert sorted(found.manifest["speaker"]) == ["0011", "0012"]
    assert runs.esd_speakers(profile.load_profile("tiny", overrides={"esd_speakers": "0013"})) == ("0013",)
    import yaml  # a YAML 1.1 reader (papermill's -y) has already turned [0011, 0012] into [9, 10]: refused, not 0009

    with pytest.raises(ParamError, match="octal"):
        profile.load_profile("tiny", overrides={"esd_speakers": yaml.safe_load("[0011, 0012]")})
    assert runs.esd_speakers(profile.load_profile("tiny"))[0] == "0011"  # english


def test_cli_rejects_a_bad_param_before_any_stage(capsys: pytest.CaptureFixture) -> None:
    from sefin_utils import runner

    assert runner.main(["--profile", "tiny", "-p", "fin_epochs", "abc", "--list"]) == 2
    assert "param 'fin_epochs': got 'abc'" in capsys.readouterr().err
    assert runner.main(["--profile", "tiny", "-p", "calm_mode", "neutral", "--list"]) == 2
    assert "did you mean 'calm'" in capsys.readouterr().err


def test_a_notebook_run_alone_validates_like_the_cli(tmp_path: Path) -> None:
    """``stage_params`` (every notebook's first call) rejects what ``-p`` rejects, before writing anything."""
    from sefin_utils import runs

    overrides = {"run_dir": str(tmp_path / "run"), "report_dir": str(tmp_path / "report")}
    with pytest.raises(UnknownParamError, match="calm_mode"):
        runs.stage_params("tiny", {**overrides, "calm_mode": "neutral"})
    with pytest.raises(ParamError, match="fin_epochs"):
        runs.stage_params("tiny", {**overrides, "fin_epochs": "abc"})
    assert not (tmp_path / "run").exists()
    P = runs.stage_params("tiny", overrides)
    assert (tmp_path / "run" / "params.json").is_file()
    with pytest.raises(UnknownParamError, match="calm_mode"):  # a resolved dict passed by a runner is checked too
        runs.stage_params("tiny", {**P, "calm_mode": "neutral"})


def test_a_read_only_checkout_writes_to_the_working_folder(tmp_path: Path) -> None:
    """Issue 11 item 11: a notebook run from a read-only copy of the repository (a Kaggle input) puts its run and
    report under the working folder, says so, and writes nothing into the copy."""
    repo = tmp_path / "input" / "sefin"
    shutil.copytree(
        profile.REPO_ROOT / "sefin_utils", repo / "sefin_utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(PARAMS, repo / "params")
    for p in sorted(repo.rglob("*"), reverse=True) + [repo]:
        p.chmod(p.stat().st_mode & ~0o222)  # chmod -R a-w
    work = tmp_path / "working"
    work.mkdir()
    code = (
        "from sefin_utils import runs\nP = runs.stage_params('tiny', {})\nprint(P['run_dir'])\nprint(P['report_dir'])"
    )
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120, check=True
        )
        lines = out.stdout.splitlines()
        assert lines[-2:] == [str(work / "runs" / "tiny"), str(work / "reports" / "tiny")]
        assert f"the repository {repo} is read-only" in out.stderr and str(work) in out.stderr
        assert (work / "runs" / "tiny" / "params.json").is_file()
        assert not (repo / "runs").exists() and not (repo / "reports").exists()
    finally:
        for p in [repo, *repo.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    # a writable clone keeps runs/<profile> in the repository
    assert profile.load_profile("tiny")["run_dir"] == str(profile.REPO_ROOT / "runs" / "tiny")
