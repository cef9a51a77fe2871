"""Run the stage notebooks for a parameter profile with papermill: ``python -m sefin_utils run``.

A *profile* is a YAML file in ``params/`` (``demo`` by default). The runner resolves it (plus ``-p key value``
overrides), writes ``runs/<profile>/params.json``, executes the stage notebooks of ``notebooks/`` in order with
papermill, and renders each executed notebook to HTML (with and without code) in ``reports/<profile>/`` together with
the figures, the results table and an ``index.html``.

Each stage is stamped in ``runs/<profile>/stages/<stage>.json`` with a hash of the resolved params, the notebook's
cell sources, the ``sefin_utils`` source code and the stage's input artifacts (files the earlier stages wrote). A
stage whose hash matches its stamp, and whose outputs still exist, is skipped. A failing stage stops the run with a
message naming the stage, the cell and the error, and its executed notebook is kept as
``reports/<profile>/<notebook>.failed.ipynb`` (+ ``.failed.html``).

Examples
--------
>>> from sefin_utils import pipeline
>>> P = pipeline.load_profile("demo", overrides={"fin_epochs": 1})  # doctest: +SKIP
>>> pipeline.run("demo", only=["data"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
"""The checkout holding ``sefin_utils/``, ``params/`` and ``notebooks/``."""
PARAMS_DIR: Path = REPO_ROOT / "params"
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"
PACKAGE_DIR: Path = Path(__file__).resolve().parent
DEFAULT_PROFILE: str = "demo"
KAGGLE_INPUT: Path = Path("/kaggle/input")
KERNEL_NAME: str = "python3"
DERIVED_KEYS: tuple[str, ...] = ("profile", "run_dir", "report_dir")
"""Keys the runner derives (may still be overridden): the profile name and the two output folders."""


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


# --------------------------------------------------------------------------------------------------- params


def profile_path(profile: str | os.PathLike, *, params_dir: Path | None = None) -> Path:
    """Path of a profile: a name in ``params_dir`` (``demo`` -> ``params/demo.yaml``) or a YAML file path."""
    params_dir = PARAMS_DIR if params_dir is None else params_dir
    p = Path(profile)
    if p.suffix in {".yaml", ".yml"}:
        if not p.is_file():
            raise FileNotFoundError(f"profile file {p} does not exist")
        return p
    path = Path(params_dir) / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(q.stem for q in Path(params_dir).glob("*.yaml"))
        raise FileNotFoundError(f"no profile {profile!r}: {path} does not exist (profiles: {', '.join(known)})")
    return path


def parse_value(text: str) -> Any:
    """Type an override given on the command line as YAML does (``3`` -> 3, ``[a, b]`` -> list, ``null``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def find_kaggle_root(base: Path = KAGGLE_INPUT) -> Path:
    """The data root on Kaggle: ``/kaggle/input`` (every attached dataset lies beneath it)."""
    if not base.is_dir():
        raise FileNotFoundError(
            f"data_root is 'auto' but {base} does not exist: attach the corpora as Kaggle inputs, or set data_root "
            "to a folder holding them (python -m sefin_utils run -p data_root /path/to/corpora)"
        )
    return base


def resolve_data_root(value: Any, *, root: Path | None = None) -> str | None:
    """Resolve the ``data_root`` param: ``None`` (generated corpus), ``auto`` (Kaggle) or a path (relative to root)."""
    if value is None or value == "":
        return None
    if str(value) == "auto":
        return str(find_kaggle_root())
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute():
        p = ((REPO_ROOT if root is None else Path(root)) / p).resolve()
    return str(p)


def load_profile(
    profile: str | os.PathLike = DEFAULT_PROFILE,
    *,
    overrides: dict[str, Any] | None = None,
    params_dir: Path | None = None,
    root: Path | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Resolve a profile into the flat dict every stage reads.

    Parameters
    ----------
    profile : str or path
        Name in ``params_dir`` or a YAML file.
    overrides : dict, optional
        Values replacing the profile's (``-p key value``). With ``strict``, unknown keys are an error.
    params_dir, root : Path
        Where profiles live; the folder relative paths are resolved against (the repo).

    Returns
    -------
    dict
        The YAML's keys (seed first) plus ``profile``, absolute ``run_dir`` (default ``runs/<profile>``) and
        ``report_dir`` (default ``reports/<profile>``); ``data_root`` resolved to an absolute path or None.
    """
    path = profile_path(profile, params_dir=params_dir)
    with open(path, encoding="utf-8") as fh:
        loaded = yaml.safe_load(fh) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of key: value, got {type(loaded).__name__}")
    params: dict[str, Any] = {"seed": 0, **loaded}
    overrides = dict(overrides or {})
    unknown = sorted(k for k in overrides if k not in params and k not in DERIVED_KEYS)
    if unknown and strict:
        raise KeyError(f"unknown param(s) {unknown} for profile {path.name}; known: {', '.join(sorted(params))}")
    params.update(overrides)
    name = str(params.get("profile") or path.stem)
    params["profile"] = name
    root = REPO_ROOT if root is None else Path(root)
    base = root if os.access(root, os.W_OK) else Path.cwd()  # a read-only checkout (a Kaggle dataset): write here
    for key, default in (("run_dir", f"runs/{name}"), ("report_dir", f"reports/{name}")):
        value = Path(os.path.expanduser(str(params.get(key) or default)))
        params[key] = str(value if value.is_absolute() else (base / value).resolve())
    params["data_root"] = resolve_data_root(params.get("data_root"), root=root)
    return params


def stage_params(profile: str = DEFAULT_PROFILE, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a stage notebook calls first: the resolved params, with the run folder created and params.json written.

    The runner passes the fully resolved dict as ``params`` (re-resolving it is a no-op); a notebook run on its own
    (Kaggle, Colab, papermill by hand) resolves ``profile`` plus whatever ``params`` overrides it was given.
    """
    params = dict(params or {})
    if all(params.get(k) for k in DERIVED_KEYS):  # resolved by the runner: use as given
        P = {**params, "data_root": resolve_data_root(params.get("data_root"))}
    else:
        P = load_profile(profile, overrides=params, strict=False)
    run_dir = Path(P["run_dir"])
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    target = run_dir / "params.json"
    if not target.is_file() or json.loads(target.read_text()) != P:
        _write_json(target, P)
    return P


def generated_data_root(P: dict[str, Any]) -> Path:
    """Where the generated demo corpus lives for a run whose ``data_root`` is null: ``<run_dir>/demo-data``."""
    return Path(P["run_dir"]) / "demo-data"


def data_root(P: dict[str, Any]) -> Path:
    """The folder to discover corpora in; writes the generated demo corpus first when ``data_root`` is null."""
    if P.get("data_root"):
        root = Path(P["data_root"])
        if not root.is_dir():
            raise FileNotFoundError(f"data_root {root} is not a folder (param data_root of profile {P['profile']})")
        return root
    from sefin_utils import synth

    root = generated_data_root(P)
    if not (root.is_dir() and synth.is_generated(root)):
        synth.write_demo_corpus(root, seed=int(P["seed"]), scale=float(P.get("demo_scale", 1.0)))
    return root


def is_generated(P: dict[str, Any]) -> bool:
    """True when the run's data is sefin's generated demo corpus (every report says so at the top)."""
    if not P.get("data_root"):
        return True
    from sefin_utils import synth

    return bool(synth.is_generated(Path(P["data_root"])))


# --------------------------------------------------------------------------------------------------- stage helpers


def esd_speakers(P: dict[str, Any]) -> tuple[str, ...]:
    """The ``esd_speakers`` param as speaker ids: ``english`` (0011-0020), ``mandarin``, ``all`` or a list."""
    from sefin_utils import corpora

    value = P.get("esd_speakers", "english")
    named = {"english": corpora.ESD_ENGLISH, "mandarin": corpora.ESD_MANDARIN,
             "all": corpora.ESD_MANDARIN + corpora.ESD_ENGLISH}
    if isinstance(value, str):
        if value not in named:
            raise ValueError(f"esd_speakers must be one of {sorted(named)} or a list of ids, got {value!r}")
        return tuple(named[value])
    return tuple(f"{int(v):04d}" if str(v).isdigit() else str(v) for v in value)


def cache_params(P: dict[str, Any]) -> dict[str, Any]:
    """The params :func:`sefin_utils.cache.build` reads, from a resolved profile."""
    tuning = P.get("tuning", "per_frame")
    return {
        "offset": float(P["offset"]),
        "duration": float(P["duration"]),
        "augmentations": list(P.get("augmentations") or []),
        "augment_splits": list(P.get("augment_splits") or []),
        "seed": int(P["seed"]),
        "tail_frames": bool(P.get("tail_frames", False)),
        "tuning": tuning if isinstance(tuning, str) or tuning is None else float(tuning),
    }


def load_splits(P: dict[str, Any]) -> Any:
    """The run's split table (``<run_dir>/splits.csv``, written by the data stage)."""
    from sefin_utils import corpora

    path = Path(P["run_dir"]) / "splits.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the data stage first (python -m sefin_utils run "
                                f"--profile {P['profile']} --only data)")
    return corpora.read_table(path)


def open_store(P: dict[str, Any], splits_df: Any = None, *, progress: bool = True) -> Any:
    """Build or read back the run's clip store (``<run_dir>/cache``) for its split table."""
    from sefin_utils import cache

    splits_df = load_splits(P) if splits_df is None else splits_df
    workers = P.get("workers")
    return cache.build(splits_df, Path(P["run_dir"]) / "cache", params=cache_params(P),
                       workers=None if workers is None else int(workers), progress=progress)


def ser_params(P: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The params :func:`sefin_utils.ser.run_experiments` reads, from a resolved profile (``extra`` wins)."""
    out = {
        "head": P.get("ser_head", "kaggle"),
        "heads": list(P.get("ser_heads") or ["kaggle"]),
        "calm": P.get("calm", "class"),
        "epochs": int(P["ser_epochs"]),
        "batch_size": int(P.get("ser_batch_size", 32)),
        "lr": float(P.get("ser_lr", 1e-3)),
        "seeds": list(P.get("seeds") or [P["seed"]]),
        "patience": int(P.get("ser_patience", 8)),
        "class_weight": P.get("class_weight"),
        "variants": list(P.get("ser_variants") or []),
        "ablation": bool(P.get("ablation", False)),
        "ablation_epochs": P.get("ablation_epochs"),
        "protocol": P.get("protocol", "speaker"),
        "train_augmentations": P.get("ser_train_augmentations"),
        "progress": True,
    }
    out.update(extra)
    return out


def write_table(df: Any, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV atomically (a temporary name, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def label_spot_check(store: Any, rows: Sequence[int]) -> Any:
    """Compare the cached labels of some clips with the per-frame librosa loop (the study's definition).

    Returns a DataFrame with one row per clip and feature: ``max_abs_error``, the feature's ``range`` on that clip
    and ``rel_error`` = error / range (the bound is 1e-4).
    """
    import numpy as np
    import pandas as pd

    from sefin_utils import features

    tail = bool(store.params.get("tail_frames", False)) if getattr(store, "params", None) else False
    out = []
    for i in rows:
        ref = features.reference_frame_labels(np.asarray(store.clips[i]), names=list(store.labels), tail_frames=tail)
        for name, want in ref.items():
            got = np.asarray(store.labels[name][i])
            err = float(np.max(np.abs(got - want)))
            rng = float(np.ptp(want)) or 1.0
            out.append({"clip_id": store.index["clip_id"].iloc[i], "feature": name, "max_abs_error": err,
                        "range": rng, "rel_error": err / rng})
    return pd.DataFrame(out)


def fin_options(P: dict[str, Any], store: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`sefin_utils.fins.train_all` from a resolved profile.

    ``fin_max_clips`` (when set) trains on a seeded random subset of that many train clips (augmented copies
    included), so that the slow ``study`` topologies or a quick demo fit in their time.
    """
    import numpy as np

    out: dict[str, Any] = {
        "arch": P.get("fin_arch", "fast"),
        "epochs": int(P["fin_epochs"]),
        "batch_size": int(P.get("fin_batch_size", 64)),
        "seed": int(P["seed"]),
        "patience": int(P.get("fin_patience", 4)),
        "verbose": 2,
    }
    if P.get("fin_init"):
        out["init"] = P["fin_init"]
    if P.get("fin_lr") is not None:
        out["lr"] = float(P["fin_lr"])
    if P.get("fin_strategy"):
        out["strategy"] = P["fin_strategy"]
    cap = P.get("fin_max_clips")
    if cap is not None:
        train = store.select(split="train")
        if len(train) > int(cap):
            pick = np.random.default_rng(int(P["seed"])).choice(len(train), size=int(cap), replace=False)
            out["train_rows"] = np.sort(train[pick])
    return out


def reuse_fins(store: Any, source: str | os.PathLike, fins_dir: Path) -> Any:
    """Copy trained FINs (``<feature>.keras`` + ``.json``, e.g. from another run) into ``fins_dir`` and score them
    on this run's test and ESD frames; returns the R² table in the layout of ``fins.train_all``'s."""
    import numpy as np
    import pandas as pd

    from sefin_utils import fins

    source, fins_dir = Path(os.path.expanduser(str(source))), Path(fins_dir)
    found = [n for n in fins.FIN_NAMES if (source / f"{n}.keras").is_file()]
    if not found:
        raise FileNotFoundError(f"fins_from {source}: no <feature>.keras files ({', '.join(fins.FIN_NAMES)})")
    fins_dir.mkdir(parents=True, exist_ok=True)
    rows = {"test": store.select(split="test", augmentation="orig"), "ood": store.select(split="ood",
                                                                                         augmentation="orig")}
    table = []
    for name in found:
        for suffix in (".keras", ".json"):
            if (source / f"{name}{suffix}").is_file() and source.resolve() != fins_dir.resolve():
                shutil.copy2(source / f"{name}{suffix}", fins_dir / f"{name}{suffix}")
        model = fins.load_fin(fins_dir / f"{name}.keras")
        row: dict[str, Any] = {"feature": name, "arch": f"reused from {source}", "params": int(model.count_params()),
                               "macs": fins.count_macs(model), "epochs": 0, "epoch_s": np.nan}
        for split, r in rows.items():
            if len(r):
                pred, true = fins.predict_store(model, store, r, name)
                row.update({f"{k}_{split}": v for k, v in fins.evaluate_fin(true, pred, name).items()})
        row.update({f"study_{k}": v for k, v in fins.STUDY_R2[name].items()})
        table.append(row)
    return pd.DataFrame(table)


RESULT_DIRS: tuple[str, ...] = ("baseline", "ser")
"""Run-folder subfolders holding ``ser.run_experiments`` outputs (stage 02 and stage 05)."""


def load_results(P: dict[str, Any], *, dirs: Sequence[str] = RESULT_DIRS) -> Any:
    """The classifiers' results of a run (``baseline/results.csv`` and ``ser/results.csv``), with a ``dir`` column."""
    import pandas as pd

    frames = []
    for d in dirs:
        path = Path(P["run_dir"]) / d / "results.csv"
        if path.is_file():
            frames.append(pd.read_csv(path).assign(dir=d))
    if not frames:
        raise FileNotFoundError(f"no results.csv under {P['run_dir']}/{{{','.join(dirs)}}}: run stages 02 and 05")
    return pd.concat(frames, ignore_index=True)


def save_run_bundle(P: dict[str, Any], store: Any = None) -> Path:
    """Save the run's predict bundle (``<run_dir>/model``): the variant with the best validation macro-F1.

    Chosen among the baseline and end-to-end variants (not the ablation) on validation scores only; the card
    records its metrics, the data it saw and the resolved params.
    """
    import keras

    from sefin_utils import bundle, ser
    from sefin_utils.constants import class_names

    results = load_results(P)
    pool = results[results["kind"] != "ablation"] if "kind" in results.columns else results
    variant = ser.best_model(pool)
    rows = pool[pool["variant"] == variant]
    where = str(rows["dir"].iloc[0])
    model_path = Path(P["run_dir"]) / where / "models" / f"{variant}.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"best variant {variant!r} has no saved model at {model_path}")
    model = keras.models.load_model(model_path, compile=False)
    kind = "summary" if str(rows["kind"].iloc[0]) == "baseline" else "end_to_end"
    calm = P.get("calm", "class")
    preprocess: dict[str, Any] = {"offset": float(P["offset"]), "duration": float(P["duration"]), "calm": calm}
    if kind == "end_to_end":
        code = str(rows["sources"].iloc[0])
        preprocess["sources"] = ser.sources_from_code(code) if code and code != "summary" else dict(ser.ALL_FIN)
    metric_cols = [c for c in rows.columns if c.startswith(("val_", "test_", "ood_"))]
    card = {
        "variant": variant,
        "chosen_by": "best mean validation macro-F1 among baseline and end-to-end variants",
        "metrics": {c: float(rows[c].mean()) for c in metric_cols},
        "seeds": [int(s) for s in rows["seed"]] if "seed" in rows.columns else [],
        "protocol": P.get("protocol"),
        "data": {
            "data_root": P.get("data_root") or "generated demo corpus",
            "generated": is_generated(P),
            "clips_per_split": (store.index["split"].value_counts().to_dict() if store is not None else None),
        },
        "run_params": P,
    }
    classes = class_names("class" if calm == "class" else "neutral")
    return bundle.save_bundle(Path(P["run_dir"]) / "model", classifier=model, kind=kind, classes=classes,
                              preprocess=preprocess, card=card)


MAIN_FIGURES: tuple[str, ...] = (
    "01_counts.png", "05_ser_headline.png", "02_baseline_headline.png", "{confusion}", "04_fins_pred_vs_true.png",
    "05_ser_ablation.png", "06_predict.png",
)
"""Figures that lead the report index, in order (those a run wrote); ``{confusion}`` is the bundle model's."""


def main_figures(fig_dir: Path, *, variant: str | None = None) -> list[str]:
    """Names of the main figures present in ``fig_dir``, in :data:`MAIN_FIGURES` order; ``variant`` (the bundle's
    model) picks the confusion matrix shown."""
    names = []
    for n in MAIN_FIGURES:
        if n == "{confusion}":
            cands = [f"{p}_confusion_{variant}.png" for p in ("05_ser", "02_baseline")] if variant else []
            n = next((c for c in cands if (Path(fig_dir) / c).is_file()), "")
        if n and (Path(fig_dir) / n).is_file():
            names.append(n)
    return names


def fin_figures(store: Any, fins_dir: Path, fig_dir: Path, *, prefix: str = "04_fins",
                max_clips: int = 40) -> list[Path]:
    """The FIN stage's figures: predicted vs true on test frames (up to ``max_clips`` clips) and one test utterance,
    librosa beside FIN. Returns the PNG paths (the figures stay open, so a notebook shows them)."""
    from sefin_utils import fins
    from sefin_utils.plots import fins as fin_plots

    models = fins.load_fins(fins_dir)
    rows = store.select(split="test", augmentation="orig")
    if len(rows) == 0:
        rows = store.select(split="val", augmentation="orig")
    pairs = {}
    for name, model in models.items():
        pred, true = fins.predict_store(model, store, rows[:max_clips], name)
        pairs[name] = (true, pred)
    out = [Path(fig_dir) / f"{prefix}_pred_vs_true.png", Path(fig_dir) / f"{prefix}_utterance.png"]
    fin_plots.pred_vs_true(pairs, title="FIN output against librosa, test frames", path=out[0])
    i = int(rows[0])
    fin_plots.utterance(store.clips[i], models, labels={n: store.labels[n][i] for n in models},
                        title=f"{store.index['clip_id'].iloc[i]}: librosa and FIN", path=out[1])
    return out


def ser_figures(ser_dir: Path, fig_dir: Path, *, prefix: str) -> list[Path]:
    """A classifier stage's figures from ``ser.run_experiments`` outputs: test macro-F1 per model beside the study,
    per-class F1, and per model the test confusion matrix and training curves of its best seed (by validation);
    the ablation's marginal effects when it ran. Returns the PNG paths (figures stay open for the notebook)."""
    import pandas as pd

    from sefin_utils import ser
    from sefin_utils.plots import ser as ser_plots

    ser_dir, fig_dir = Path(ser_dir), Path(fig_dir)
    results = pd.read_csv(ser_dir / "results.csv")
    main = results[results["kind"] != "ablation"]
    out = [fig_dir / f"{prefix}_headline.png"]
    ser_plots.headline(ser.summary_table(results), path=out[0])
    test_reports = {}
    for variant, g in main.groupby("variant", sort=False):
        best = g.sort_values(["val_macro_f1", "val_accuracy"], ascending=False).iloc[0]
        payload = json.loads((ser_dir / "metrics" / f"{variant}__seed{int(best['seed'])}.json").read_text())
        test = payload["reports"].get("test")
        if test:
            test_reports[variant] = test
            out.append(fig_dir / f"{prefix}_confusion_{variant}.png")
            ser_plots.confusion_matrix(test, title=f"{variant} (test, seed {int(best['seed'])})", path=out[-1])
        out.append(fig_dir / f"{prefix}_curves_{variant}.png")
        ser_plots.training_curves(payload["history"], best_epoch=payload.get("best_epoch"), title=variant,
                                  path=out[-1])
    if test_reports:
        out.append(fig_dir / f"{prefix}_per_class_f1.png")
        ser_plots.per_class_f1(test_reports, title="per-class F1 (test)", path=out[-1])
    if (results["kind"] == "ablation").any():
        out.append(fig_dir / f"{prefix}_ablation.png")
        ser_plots.ablation_marginals(results, path=out[-1])
    return out


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


def code_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """Digest of the ``sefin_utils`` source (a change to the code reruns the stages)."""
    return _sha(
        "\n".join(f"{p.relative_to(package_dir)}:{_file_digest(p)}" for p in sorted(package_dir.rglob("*.py"))).encode()
    )


def _cell_sources(nb: Any) -> list[list[str]]:
    return [[c.cell_type, c.source] for c in nb.cells]


def stage_key(stage: Stage, nb: Any, P: dict[str, Any], *, code: str) -> dict[str, str]:
    """The parts of a stage's stamp: params, notebook source, code and each input artifact, each hashed."""
    run_dir = Path(P["run_dir"])
    inputs = {}
    for name in stage.inputs:
        if name == "@data_root":
            inputs[name] = path_digest(Path(P["data_root"]), listing_only=True) if P.get("data_root") else "generated"
        else:
            inputs[name] = path_digest(run_dir / name)
    parts = {
        "params": _sha(json.dumps(P, sort_keys=True, default=str).encode()),
        "notebook": _sha(json.dumps(_cell_sources(nb)).encode()),
        "code": code,
        "inputs": _sha(json.dumps(inputs, sort_keys=True).encode()),
    }
    parts["hash"] = _sha(json.dumps(parts, sort_keys=True).encode())
    return parts


# --------------------------------------------------------------------------------------------------- notebooks


def notebook_path(stage: Stage, notebooks_dir: Path | None = None) -> Path:
    """The stage's source: ``NN_name.py`` (jupytext percent, the source of truth) or else ``NN_name.ipynb``."""
    notebooks_dir = NOTEBOOKS_DIR if notebooks_dir is None else notebooks_dir
    for suffix in (".py", ".ipynb"):
        p = Path(notebooks_dir) / f"{stage.notebook}{suffix}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"stage {stage.name!r}: neither {stage.notebook}.py nor .ipynb in {notebooks_dir}")


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
        _atomic_write_text(target, body)
        paths.append(target)
    return paths[0], paths[1]


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[:100]
    return source.strip().splitlines()[0][:100] if source.strip() else ""


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
        f"cell {number} of {len(src_cells)}" if number is not None
        else f"cell {getattr(err, 'cell_index', '?')} of the executed copy"
    )
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    return (
        f"stage {stage.name!r} ({src.name}) failed in {where}, execution count {getattr(err, 'exec_count', '?')}: "
        f"`{_first_line(source)}`\n  {ename}: {evalue}"
    )


# --------------------------------------------------------------------------------------------------- the runner


def select_stages(
    stages: Sequence[Stage], *, only: Iterable[str] | None = None, start: str | None = None
) -> list[Stage]:
    """Stages to run: all, ``only`` some (by name, notebook name or number ``1``..``6``), or ``start`` onward."""

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
        raise FileNotFoundError(f"data_root {P['data_root']} is not a folder (profile {P['profile']}); give one with "
                                "-p data_root /path/to/corpora, or null for the generated demo corpus")
    run_dir, report_dir = Path(P["run_dir"]), Path(P["report_dir"])
    for sub in ("stages", "executed", "figures"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / "params.json", P)
    _write_json(run_dir / "environment.json", _environment_log())
    result = RunResult(params=P)
    selected = select_stages(stages, only=only, start=start)
    code = code_digest()
    env_before = {k: os.environ.get(k) for k in _kernel_env()}
    os.environ.update(_kernel_env())
    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    log(f"sefin run: profile {P['profile']} -> {run_dir} (report: {report_dir})")
    t_run = time.perf_counter()
    try:
        for i, stage in enumerate(selected, start=1):
            head = f"[{i}/{len(selected)}] {stage.notebook}"
            src = notebook_path(stage, notebooks_dir)
            nb = read_notebook(src)
            key = stage_key(stage, nb, P, code=code)
            stamp_path = run_dir / "stages" / f"{stage.name}.json"
            executed = run_dir / "executed" / f"{stage.notebook}.ipynb"
            stamp = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
            outputs_ok = all((run_dir / o).exists() for o in stage.outputs) and executed.is_file()
            if not force and stamp.get("hash") == key["hash"] and outputs_ok:
                log(f"{head}: skipped (unchanged)")
                result.status[stage.name] = "skipped"
                if build_report and not (report_dir / f"{stage.notebook}.html").is_file():
                    render_html(executed, report_dir)
                continue
            log(f"{head}: running ...")
            t0 = time.perf_counter()
            partial = executed.with_name(f".{executed.stem}.partial.ipynb")
            failed_nb = report_dir / f"{stage.notebook}.failed.ipynb"
            kernel_log = run_dir / "executed" / f"{stage.notebook}.kernel.log"
            try:
                with _stderr_to(kernel_log):
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
            except PapermillExecutionError as err:
                seconds = time.perf_counter() - t0
                shutil.move(str(partial), failed_nb)
                if build_report:
                    render_html(failed_nb, report_dir, stem=f"{stage.notebook}.failed")
                stamp_path.unlink(missing_ok=True)
                result.status[stage.name], result.seconds[stage.name] = "failed", seconds
                msg = _failure_message(stage, src, err)
                log(f"{head}: FAILED after {seconds:.1f} s\n  {msg}\n  executed notebook kept: {failed_nb}"
                    + (f"\n  kernel log: {kernel_log}" if kernel_log.is_file() else ""))
                raise StageFailed(stage.name, msg, failed_nb) from None
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
            key = stage_key(stage, nb, P, code=code)
            _write_json(stamp_path, {**key, "stage": stage.name, "notebook": src.name, "seconds": round(seconds, 2),
                                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
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

                result.index = report.build_index(run_dir, report_dir, stages=stages)
            except Exception as exc:  # the index must not hide the stage's own error
                log(f"report index not written: {type(exc).__name__}: {exc}")
    log(f"finished in {_fmt(time.perf_counter() - t_run)}; report: {result.index or report_dir}")
    return result


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


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
        "-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
        help="override a param; VALUE is read as YAML (3, 0.5, null, [a, b])",
    )
    parser.add_argument("--force", action="store_true", help="rerun stages even when unchanged")
    parser.add_argument("--list", action="store_true", help="list the stages and the resolved params, run nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sefin_utils run``: 0 on success, 1 when a stage fails, 2 on a usage error."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    overrides = {k: parse_value(v) for k, v in args.param}
    try:
        if args.list:
            P = load_profile(args.profile, overrides=overrides)
            for i, s in enumerate(STAGES, start=1):
                print(f"{i}. {s.name:<14} notebooks/{s.notebook}.py  reads {list(s.inputs)} writes {list(s.outputs)}")
            print(json.dumps(P, indent=2, default=str))
            return 0
        run(args.profile, only=args.only, start=args.start, overrides=overrides, force=args.force)
    except StageFailed as err:
        print(f"\nsefin run stopped: {err}", file=sys.stderr)
        if err.failed_notebook:
            print(f"executed notebook kept: {err.failed_notebook}", file=sys.stderr)
        return 1
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"sefin run: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
