"""What the stage notebooks call: the run's params, data root, split table, clip store, FIN and classifier options,
the run's model bundle and the stage figures.

The notebooks' first call is :func:`stage_params` (the resolved, validated params, with the run folder made); the
others take that dict ``P``. Each function reads only the keys it names with ``P["key"]``: the runner derives every
stage's params from those reads (see :mod:`sefin_utils.stages`), so a stage's stamp changes only with them.

Examples
--------
>>> from sefin_utils import runs
>>> P = runs.stage_params("tiny")  # doctest: +SKIP
>>> store = runs.open_store(P)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sefin_utils import io, profile
from sefin_utils.profile import DERIVED_KEYS, SCHEMA


def stage_params(
    profile_name: str = profile.DEFAULT_PROFILE, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a stage notebook calls first: the resolved, validated params, with the run folder made and params.json
    written.

    The runner passes the fully resolved dict as ``params`` (it is validated again, not re-resolved); a notebook run
    on its own (Kaggle, Colab, papermill by hand) resolves the profile ``profile_name`` with ``params`` as overrides,
    validated exactly as the command line's ``-p``.

    Raises
    ------
    UnknownParamError, ParamError
        An unknown key (``calm_mode`` for ``calm``) or a value of the wrong type, named, before anything is written.
    """
    params = dict(params or {})
    if all(params.get(k) for k in DERIVED_KEYS) and set(SCHEMA) <= set(params):  # resolved by the runner
        P = profile.validate(params, where="passed to the stage notebook")
        P["data_root"] = profile.resolve_data_root(P["data_root"])
    else:
        P = profile.load_profile(profile_name, overrides=params)
    run_dir = Path(P["run_dir"])
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    target = run_dir / "params.json"
    if not target.is_file() or json.loads(target.read_text()) != P:
        io.write_json(target, P)
    return P


def generated_data_root(P: Mapping[str, Any]) -> Path:
    """Where the generated demo corpus lives for a run whose ``data_root`` is null: ``<run_dir>/demo-data``."""
    return Path(P["run_dir"]) / "demo-data"


def data_root(P: Mapping[str, Any]) -> Path:
    """The folder to discover corpora in; writes the generated demo corpus first when ``data_root`` is null.

    Raises
    ------
    FileNotFoundError
        When ``data_root`` is set but is not a folder.
    """
    if P["data_root"]:
        root = Path(P["data_root"])
        if not root.is_dir():
            raise FileNotFoundError(f"data_root {root} is not a folder (param data_root of profile {P['profile']})")
        return root
    from sefin_utils import synth

    root = generated_data_root(P)
    if not (root.is_dir() and synth.is_generated(root)):
        synth.write_demo_corpus(root, seed=P["seed"], scale=P["demo_scale"])
    return root


def is_generated(P: Mapping[str, Any]) -> bool:
    """True when the run's data is sefin's generated demo corpus (every report says so at the top)."""
    if not P["data_root"]:
        return True
    from sefin_utils import synth

    return bool(synth.is_generated(Path(P["data_root"])))


def esd_speakers(P: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``esd_speakers`` param as speaker ids: ``english`` (0011-0020), ``mandarin``, ``all`` or a list of ids
    (validated by :mod:`sefin_utils.profile`: ids are 4-digit text, ``[0011, 0012]`` -> ``("0011", "0012")``)."""
    from sefin_utils import corpora

    value = P["esd_speakers"]
    named = {
        "english": corpora.ESD_ENGLISH,
        "mandarin": corpora.ESD_MANDARIN,
        "all": corpora.ESD_MANDARIN + corpora.ESD_ENGLISH,
    }
    if isinstance(value, str):
        return tuple(named[value])
    return tuple(value)


CACHE_KEYS: tuple[str, ...] = ("offset", "duration", "augmentations", "augment_splits", "seed", "tail_frames", "tuning")
"""The params :func:`sefin_utils.cache.build` reads (same names in the profile and in the cache)."""


def cache_params(P: Mapping[str, Any]) -> dict[str, Any]:
    """The params :func:`sefin_utils.cache.build` reads, from a resolved profile (same names, no renaming)."""
    return {
        "offset": P["offset"],
        "duration": P["duration"],
        "augmentations": list(P["augmentations"] or []),
        "augment_splits": list(P["augment_splits"] or []),
        "seed": P["seed"],
        "tail_frames": P["tail_frames"],
        "tuning": P["tuning"],
    }


def load_splits(P: Mapping[str, Any]) -> Any:
    """The run's split table (``<run_dir>/splits.csv``, written by the data stage).

    Raises
    ------
    FileNotFoundError
        When the data stage has not run.
    """
    from sefin_utils import corpora

    path = Path(P["run_dir"]) / "splits.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run the data stage first (python -m sefin_utils run "
            f"--profile {P['profile']} --only data)"
        )
    return corpora.read_table(path)


def open_store(P: Mapping[str, Any], splits_df: Any = None, *, progress: bool = True) -> Any:
    """Build or read back the run's clip store (``<run_dir>/cache``) for its split table."""
    from sefin_utils import cache

    splits_df = load_splits(P) if splits_df is None else splits_df
    return cache.build(
        splits_df, Path(P["run_dir"]) / "cache", params=cache_params(P), workers=P["workers"], progress=progress
    )


def ablation_order(codes: Sequence[str] | None = None) -> list[str]:
    """The ablation's mixes in the order they are trained: ``codes`` (default: all 32 of
    :meth:`sefin_utils.features.Composition.ablation`), those with an even number of librosa sources first. That
    first half is a half fraction of resolution V (:func:`sefin_utils.plots.ser.ablation_design`), so an ablation
    stopped after it still gives every feature's main effect; the second half completes the full factorial."""
    if codes is None:
        from sefin_utils.features import KAGGLE

        codes = list(KAGGLE.ablation())
    codes = list(dict.fromkeys(codes))
    return [c for c in codes if c.count("L") % 2 == 0] + [c for c in codes if c.count("L") % 2]


def ser_params(P: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The params :func:`sefin_utils.experiments.run_experiments` reads, from a resolved profile (``extra`` wins).

    The profile's ``ser_*`` keys meet ``run_experiments``' shorter names here (``ser_epochs`` -> ``epochs``): the
    one place where a key changes its name, until ``run_experiments`` takes the profile's names.
    """
    out = {
        "head": P["ser_head"],
        "heads": list(P["ser_heads"]),
        "calm": P["calm"],
        "epochs": P["ser_epochs"],
        "batch_size": P["ser_batch_size"],
        "lr": P["ser_lr"],
        "seeds": list(P["seeds"] or [P["seed"]]),
        "patience": P["ser_patience"],
        "finetune_epochs": P["ser_finetune_epochs"],
        "finetune_lr": P["ser_finetune_lr"],
        "finetune_batch_size": P["ser_finetune_batch_size"],
        "class_weight": P["class_weight"],
        "variants": list(P["ser_variants"]),
        "ablation": P["ablation"],
        "ablation_epochs": P["ablation_epochs"],
        "ablation_codes": ablation_order(P.get("ablation_codes")),
        "protocol": P["protocol"],
        "train_augmentations": P["ser_train_augmentations"],
        "select": P["ser_select"],
        "weight_decay": P["ser_weight_decay"],
        "lr_schedule": P["ser_lr_schedule"],
        "dropout": P["ser_dropout"],
        "pooling": list(P["ser_pooling"]),
        "frame_scale": P["ser_frame_scale"],
        "temporal_train_augmentations": P["ser_temporal_train_augmentations"],
        "anchors": list(P["anchors"]),
        "progress": True,
    }
    out.update(extra)
    return out


def write_table(df: Any, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV atomically (:func:`sefin_utils.io.write_csv`)."""
    return io.write_csv(df, path)


PUBLIC_SPLIT_COLUMNS: tuple[str, ...] = ("recording_id", "path", "corpus", "speaker", "emotion", "split", "protocol")
"""Columns of the published split table (:func:`publish_splits`)."""


def publish_splits(splits_df: Any, root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the split table for publication: :data:`PUBLIC_SPLIT_COLUMNS`, ``path`` relative to the data ``root``
    (POSIX separators), so that anyone with the same corpora can re-score a model on the same recordings.

    Raises
    ------
    ValueError
        When a recording lies outside ``root`` (its path could not be published relative to it).
    """
    root = Path(root).resolve()
    df = splits_df.loc[:, [c for c in PUBLIC_SPLIT_COLUMNS if c in splits_df.columns]].copy()

    def rel(p: str) -> str:
        try:
            return Path(p).resolve().relative_to(root).as_posix()
        except ValueError:
            raise ValueError(f"recording {p} is not under the data root {root}: cannot publish its path") from None

    df["path"] = df["path"].astype(str).map(rel)
    return io.write_csv(df, path)


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
            out.append(
                {
                    "clip_id": store.index["clip_id"].iloc[i],
                    "feature": name,
                    "max_abs_error": err,
                    "range": rng,
                    "rel_error": err / rng,
                }
            )
    return pd.DataFrame(out)


def fin_options(P: Mapping[str, Any], store: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`sefin_utils.experiments.train_all` from a resolved profile.

    The profile's ``fin_*`` keys meet ``train_all``'s shorter keywords here (``fin_epochs`` -> ``epochs``).

    ``fin_max_clips`` (when set) trains on a seeded random subset of that many train clips (augmented copies
    included), so that the slow ``study`` topologies or a quick demo fit in their time.
    """
    import numpy as np

    out: dict[str, Any] = {
        "arch": P["fin_arch"],
        "init": P["fin_init"],
        "epochs": P["fin_epochs"],
        "batch_size": P["fin_batch_size"],
        "lr": P["fin_lr"],
        "strategy": P["fin_strategy"],
        "seed": P["seed"],
        "patience": P["fin_patience"],
        "verbose": 2,
    }
    cap = P["fin_max_clips"]
    if cap is not None:
        train = store.select(split="train")
        if len(train) > cap:
            pick = np.random.default_rng(P["seed"]).choice(len(train), size=cap, replace=False)
            out["train_rows"] = np.sort(train[pick])
    return out


def reuse_fins(store: Any, source: str | os.PathLike, fins_dir: Path) -> Any:
    """Copy trained FINs (``<feature>.keras`` + ``.json``, e.g. from another run; ``source="learnt"``: the shipped
    learnt FINs, ``fins.LEARNT_DIR``) into ``fins_dir`` and score them on this run's test and ESD frames; returns the
    R² table in the layout of ``experiments.train_all``'s."""
    import numpy as np
    import pandas as pd

    from sefin_utils import experiments, features, fins, study

    if str(source) == "learnt":  # the shipped learnt FINs (models/fins): "FINs pre-trained by imitation"
        source = fins.LEARNT_DIR
    source, fins_dir = Path(os.path.expanduser(str(source))), Path(fins_dir)
    found = [n for n in features.FEATURE_NAMES if (source / f"{n}.keras").is_file()]
    if not found:
        raise FileNotFoundError(f"fins_from {source}: no <feature>.keras files ({', '.join(features.FEATURE_NAMES)})")
    fins_dir.mkdir(parents=True, exist_ok=True)
    rows = {
        "test": store.select(split="test", augmentation="orig"),
        "ood": store.select(split="ood", augmentation="orig"),
    }
    table = []
    for name in found:
        for suffix in (".keras", ".json"):
            if (source / f"{name}{suffix}").is_file() and source.resolve() != fins_dir.resolve():
                shutil.copy2(source / f"{name}{suffix}", fins_dir / f"{name}{suffix}")
        model = fins.load_fin(fins_dir / f"{name}.keras")
        row: dict[str, Any] = {
            "feature": name,
            "arch": f"reused from {source}",
            "params": int(model.count_params()),
            "macs": fins.count_macs(model),
            "epochs": 0,
            "epoch_s": np.nan,
        }
        for split, r in rows.items():
            if len(r):
                pred, true = experiments.predict_store(model, store, r, name)
                row.update({f"{k}_{split}": v for k, v in experiments.evaluate_fin(true, pred, name).items()})
        row.update({f"study_{k}": v for k, v in study.FIN_R2[name].items()})
        table.append(row)
    return pd.DataFrame(table)


FAMILIES: dict[str, str] = {
    "learnt": "every weight from a random start behind a fixed FFT front end, trained by imitation",
    "analytic": "fast FINs started at librosa's own mel filterbank, DCT and chroma matrices, then fine-tuned",
    "fast, random start": "fast FINs whose layers after the DFT start at random (fin_init: random)",
    "study": "the study's published topologies (fin_arch: study)",
}
"""The FIN families a run can hold, in words (the ``family`` column of the FIN stage's tables)."""
LEARNT_MAX_FRAMES: dict[str, int] = {"train": 300_000, "val": 20_000}
"""At most this many frames (seeded subset) train / select a run's own learnt FINs (``fin_arch: learnt``)."""
USED_ROLE: str = "used by the end-to-end variants"
"""The ``role`` of the run's own FINs in the FIN stage's side-by-side (the other family's: beside, for comparison)."""
SHIPPED_SPEAKERS: str = "speakers.json"
"""In ``fins.LEARNT_DIR``: the speakers whose frames trained (``train``) and selected (``val``) the shipped FINs."""


def fin_family(card: Mapping[str, Any]) -> str:
    """The family (a key of :data:`FAMILIES`) of a saved FIN from its JSON card; ``unknown`` when the card says
    neither a learnt family nor an ``arch``."""
    if card.get("family") == "learnt" or card.get("arch") == "learnt":
        return "learnt"
    if card.get("arch") == "fast":
        return "analytic" if card.get("init", "librosa") == "librosa" else "fast, random start"
    if card.get("arch") == "study":
        return "study"
    return "unknown"


def _family_of_dir(fins_dir: Path, names: Sequence[str]) -> str:
    found = set()
    for n in names:
        card = fins_dir / f"{n}.json"
        found.add(fin_family(io.read_json(card)) if card.is_file() else "unknown")
    return found.pop() if len(found) == 1 else "mixed"


def _real_frames(store: Any, rows: Any, name: str, cap: int, seed: int) -> tuple[Any, Any]:
    """Raw frames ``(n, 2048)`` and labels ``(n, dim)`` of the real frames of clips ``rows`` (at most ``cap``, a
    seeded subset)."""
    import numpy as np

    from sefin_utils import features, training

    rows = np.asarray(rows, dtype=np.int64)
    r, f = training.frame_index(np.asarray(store.mask)[rows], pad_keep=0.0)
    if len(r) > cap:
        pick = np.sort(np.random.default_rng(seed).choice(len(r), size=cap, replace=False))
        r, f = r[pick], f[pick]
    r = rows[r]
    starts = training.frame_starts(store.clips.shape[1], store.labels[name].shape[1])
    frames = training.gather_frames(store.clips, r, f, starts=starts)
    labels = np.asarray(store.labels[name][r, f], dtype=np.float32).reshape(len(r), features.FEATURES[name].dim)
    return frames, labels


def train_learnt_fins(P: Mapping[str, Any], store: Any, fins_dir: Path) -> Any:
    """``fin_arch: learnt``: train the learnt family (``sefin_utils.learnt``, random start) on this run's frames.

    Train on the real frames of the train clips (``fin_max_clips`` as for the other families; at most
    :data:`LEARNT_MAX_FRAMES`), select on validation frames (early stopping, ``fin_patience``), at most
    ``fin_epochs`` epochs, each FIN's learning rate and batch from ``learnt.HPARAMS``; score on test and ESD frames;
    save ``<fins_dir>/<feature>.keras`` + card. Returns the R² table in the layout of ``experiments.train_all``'s.
    """
    import numpy as np
    import pandas as pd

    from sefin_utils import experiments, features, fins, learnt, study

    opts = fin_options(P, store)
    seed = int(opts["seed"])
    split_rows = {
        "train": opts.get("train_rows", store.select(split="train")),
        "val": store.select(split="val", augmentation="orig"),
        "test": store.select(split="test", augmentation="orig"),
        "ood": store.select(split="ood", augmentation="orig"),
    }
    fins_dir = Path(fins_dir)
    table = []
    for name in [n for n in learnt.LEARNT_NAMES if n in features.FEATURES]:
        hp = learnt.HPARAMS[name]
        x_tr, y_tr = _real_frames(store, split_rows["train"], name, LEARNT_MAX_FRAMES["train"], seed)
        x_va, y_va = _real_frames(store, split_rows["val"], name, LEARNT_MAX_FRAMES["val"], seed + 1)
        if not len(x_tr) or not len(x_va):
            raise ValueError(f"learnt FIN {name}: no real frames in the train or val split of this run's store")
        front = learnt.FRONT_ENDS[name]
        prep = learnt.power_spectrum if front == "power" else (lambda x: x)
        head, log = learnt.train_head(
            name, prep(x_tr), y_tr, prep(x_va), y_va, seed=seed, epochs=int(opts["epochs"]), batch_size=hp["batch"],
            lr=hp["lr"], patience=int(opts["patience"]), verbose=int(opts["verbose"]),
        )  # fmt: skip
        model = learnt.build_learnt_fin(name, head)
        row: dict[str, Any] = {
            "feature": name,
            "arch": "learnt",
            "init": "random",
            "params": int(model.count_params()),
            "macs": fins.count_macs(model),
            "epochs": int(log["epochs"]),
            "epoch_s": log["seconds"] / max(int(log["epochs"]), 1),
        }
        metrics = {}
        for split in ("test", "ood"):
            if len(split_rows[split]):
                pred, true = experiments.predict_store(model, store, split_rows[split], name)
                metrics[split] = experiments.evaluate_fin(true, pred, name)
                row.update({f"{k}_{split}": v for k, v in metrics[split].items()})
        row.update({f"study_{k}": v for k, v in study.FIN_R2[name].items()})
        table.append(row)
        card = {
            "feature": name,
            "family": "learnt",
            "arch": "learnt",
            "init": "random",
            "front_end": front,
            "params": row["params"],
            "macs_per_frame": row["macs"],
            "training": {**{k: log[k] for k in ("epochs", "seconds", "val_loss")}, "lr": hp["lr"], "seed": seed},
            "data": {"train_frames": int(len(x_tr)), "val_frames": int(len(x_va)), "source": "this run's store"},
            "metrics": metrics,
            "study": dict(study.FIN_R2[name]),
        }
        fins.save_fin(model, fins_dir / f"{name}.keras", card)
        del x_tr, y_tr, x_va, y_va
    return pd.DataFrame(table).astype({"epochs": np.int64})


def shipped_speaker_overlap(store: Any) -> dict[str, Any] | None:
    """How many of this run's test speakers trained or selected the shipped learnt FINs (:data:`SHIPPED_SPEAKERS`):
    ``{"test_speakers", "seen", "seen_in": {"train": n, "val": n}}``; None when the list or the speaker column is
    missing."""
    from sefin_utils import fins

    path = fins.LEARNT_DIR / SHIPPED_SPEAKERS
    index = store.index
    if not path.is_file() or "speaker_key" not in index.columns:
        return None
    shipped = io.read_json(path)
    test = set(map(str, index.loc[index["split"] == "test", "speaker_key"]))
    seen_in = {k: len(test & set(shipped.get(k, []))) for k in ("train", "val")}
    return {"test_speakers": len(test), "seen": len(test & set(shipped["train"]) | test & set(shipped["val"])),
            "seen_in": seen_in}  # fmt: skip


def fin_stage(P: Mapping[str, Any], store: Any) -> dict[str, Any]:
    """The FIN stage: the run's FINs (``<run_dir>/fins``, what the end-to-end variants use) and the other family
    beside them, both scored on this run's test and ESD frames.

    The run's FINs: copied from ``fins_from`` (:func:`reuse_fins`; ``learnt`` = the shipped ones), else trained as
    ``fin_arch`` says (:func:`train_learnt_fins` for ``learnt``, ``experiments.train_all`` otherwise). Beside them:
    the analytic family (fast, librosa start, the ``fin_*`` settings; ``<run_dir>/fins/analytic``) when the run's are
    learnt, else the shipped learnt FINs (``<run_dir>/fins/learnt``, scored only).

    Writes ``fins/r2.csv`` (the run's FINs, with a ``family`` column) and ``fins/families.csv`` (both families, a
    ``role`` column). Returns ``{"table": r2, "families": both, "family": the run's, "beside": the other,
    "overlap": shipped_speaker_overlap(store) when shipped learnt FINs are scored on real data, else None}``.
    """
    import pandas as pd

    from sefin_utils import experiments

    fins_dir = Path(P["run_dir"]) / "fins"
    if P["fins_from"]:
        table = reuse_fins(store, P["fins_from"], fins_dir)
    elif P["fin_arch"] == "learnt":
        table = train_learnt_fins(P, store, fins_dir)
    else:
        table = experiments.train_all(store, fins_dir, **fin_options(P, store))["table"]
    family = _family_of_dir(fins_dir, list(table["feature"]))
    table = table.assign(family=family)
    shipped = str(P["fins_from"]) == "learnt"
    if family == "learnt":
        beside = "analytic"
        opts = {**fin_options(P, store), "arch": "fast", "init": "librosa"}
        other = experiments.train_all(store, fins_dir / "analytic", **opts)["table"]
    else:
        beside, shipped = "learnt", True
        other = reuse_fins(store, "learnt", fins_dir / "learnt")
    other = other.assign(family=beside)
    families = pd.concat(
        [table.assign(role=USED_ROLE), other.assign(role="beside, for comparison")],
        ignore_index=True,
    )
    order = {n: i for i, n in enumerate(table["feature"])}
    families = families.assign(_f=families["feature"].map(order), _r=(families["role"] != USED_ROLE).astype(int))
    families = families.sort_values(["_f", "_r"], kind="stable").drop(columns=["_f", "_r"])
    write_table(table, fins_dir / "r2.csv")
    write_table(families, fins_dir / "families.csv")
    return {
        "table": table,
        "families": families.reset_index(drop=True),
        "family": family,
        "beside": beside,
        # speaker ids of the generated demo corpus only look like the real corpora's: no overlap to report there
        "overlap": shipped_speaker_overlap(store) if shipped and not is_generated(P) else None,
    }


FAMILY_COLUMNS: tuple[str, ...] = (
    "feature",
    "family",
    "params",
    "macs",
    "epochs",
    "r2_test",
    "r2_vw_test",
    "r2_db_test",
    "study_r2_test",
    "study_r2_vw_test",
    "r2_ood",
    "r2_vw_ood",
    "r2_db_ood",
    "study_r2_ood",
    "study_r2_vw_ood",
)
"""Columns of the FIN stage's side-by-side table (uniform, variance-weighted and, for mel, dB R²)."""


def say_fin_families(stage: Mapping[str, Any]) -> str:
    """What the FIN stage's side-by-side says, in Markdown, computed from :func:`fin_stage`'s result: which family
    the end-to-end variants use, each family's R² per feature in and out of domain beside the study's (the score
    read: uniform R², variance-weighted for mel), which fall below the study's, and how many test speakers the
    shipped learnt FINs had seen."""
    import pandas as pd

    from sefin_utils import study

    fam = stage["families"]
    used, beside = stage["family"], stage["beside"]
    parts = [
        f"The end-to-end variants (stage 05) use the **{used}** FINs ({FAMILIES.get(used, 'see their cards')}); "
        f"beside them, for comparison, the **{beside}** family ({FAMILIES.get(beside, 'see their cards')})."
    ]
    below: dict[str, list[str]] = {used: [], beside: []}
    for name, g in fam.groupby("feature", sort=False):
        pub = study.FIN_R2.get(str(name), {})
        key = "r2_vw" if name == "mel" else "r2"
        texts = []
        for r in g.itertuples(index=False):
            d = r._asdict()
            t, o = d.get(f"{key}_test"), d.get(f"{key}_ood")
            texts.append(f"{d['family']} {_fmt4(t)} / {_fmt4(o)}")
            for val, ref in ((t, pub.get(f"{key}_test")), (o, pub.get(f"{key}_ood"))):
                if ref is not None and val is not None and not pd.isna(val) and val < ref:
                    below.setdefault(str(d["family"]), []).append(str(name))
        ref = f"{_fmt4(pub.get(f'{key}_test'))} / {_fmt4(pub.get(f'{key}_ood'))}"
        label = f"{name}{' (variance-weighted)' if key == 'r2_vw' else ''}"
        parts.append(f"{label}: {'; '.join(texts)} (study {ref}).")
    for f, names in below.items():
        names = sorted(set(names), key=list(fam["feature"]).index)
        parts.append(
            f"The {f} family is below the study's R² for {', '.join(names)}." if names
            else f"The {f} family is at or above the study's R² on every feature, in domain and on ESD."
        )  # fmt: skip
    mel = fam[fam["feature"] == "mel"]
    if "r2_ood" in mel.columns and (mel["r2_ood"] < 0).any():
        parts.append(
            "Mel's uniform R² in power units on ESD is negative: ESD is recorded at 16 kHz, so its bands above 8 kHz "
            "are near zero with almost no variance, and tiny errors there give huge negative per-band R²; the "
            "variance-weighted and dB R² are the scores to read."
        )
    ov = stage.get("overlap")
    if ov is not None and ov["test_speakers"]:
        if ov["seen"]:
            parts.append(
                f"{ov['seen']} of this run's {ov['test_speakers']} test speakers were among the speakers whose frames "
                f"trained ({ov['seen_in']['train']}) or selected ({ov['seen_in']['val']}) the shipped learnt FINs, "
                "so their in-domain R² here is not on unseen speakers only; their cards give it on unseen speakers."
            )
        else:
            parts.append(
                f"None of this run's {ov['test_speakers']} test speakers trained or selected the shipped learnt FINs."
            )
    return "\n\n".join(parts)


def _fmt4(v: Any) -> str:
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{float(v):.4f}"


RESULT_DIRS: tuple[str, ...] = ("baseline", "ser")
"""Run-folder subfolders holding ``experiments.run_experiments`` outputs (stage 02 and stage 05)."""


def load_results(P: Mapping[str, Any], *, dirs: Sequence[str] = RESULT_DIRS) -> Any:
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


def model_params(P: Mapping[str, Any]) -> dict[str, Any]:
    """The params that made the run's models (recorded in the bundle's card): those the stages up to the model stage
    read (:func:`sefin_utils.stages.model_param_keys`), so that the card stays true while a later stage's param
    (``predict_examples``) changes without retraining."""
    from sefin_utils import stages

    keys = stages.model_param_keys()
    return {k: v for k, v in P.items() if keys is None or k in keys}


def save_run_bundle(P: Mapping[str, Any], store: Any = None) -> Path:
    """Save the run's predict bundle (``<run_dir>/model``): the variant with the best validation macro-F1.

    Chosen among the baseline and end-to-end variants (not the ablation) on validation scores only; the card
    records its metrics, the data it saw and the resolved params.
    """
    import keras

    from sefin_utils import classifiers, inference
    from sefin_utils import results as result_tables
    from sefin_utils.constants import class_names

    results = load_results(P)
    pool = results[results["kind"] != "ablation"] if "kind" in results.columns else results
    # only models that can be bundled: the RBF-SVM anchor is scored but has no Keras model
    run = Path(P["run_dir"])
    saved = [(run / d / "models" / f"{v}.keras").is_file() for d, v in zip(pool["dir"], pool["variant"], strict=True)]
    if any(saved):
        pool = pool[saved]
    variant = result_tables.best_model(pool)
    rows = pool[pool["variant"] == variant]
    where = str(rows["dir"].iloc[0])
    model_path = Path(P["run_dir"]) / where / "models" / f"{variant}.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"best variant {variant!r} has no saved model at {model_path}")
    model = keras.models.load_model(model_path, compile=False)
    won_kind = str(rows["kind"].iloc[0])
    kind = "summary" if won_kind in ("baseline", "anchor") else "end_to_end"
    calm = P["calm"]
    preprocess: dict[str, Any] = {"offset": float(P["offset"]), "duration": float(P["duration"]), "calm": calm}
    if kind == "end_to_end":
        code = str(rows["sources"].iloc[0])
        preprocess["sources"] = (
            classifiers.sources_from_code(code) if code and code != "summary" else dict(classifiers.ALL_FIN)
        )
    metric_cols = [c for c in rows.columns if c.startswith(("val_", "test_", "ood_"))]
    card = {
        "variant": variant,
        "chosen_by": "best mean validation macro-F1 among every trained model (anchors, baselines, end-to-end and "
        "pooling variants; not the ablation)",
        "won": (
            f"{variant} ({won_kind}) on the {P['protocol']} protocol: validation macro-F1 "
            f"{rows['val_macro_f1'].mean():.3f}, test macro-F1 {rows['test_macro_f1'].mean():.3f} "
            f"(mean over {len(rows)} seed(s))"
        ),
        "kind": won_kind,
        "metrics": {c: float(rows[c].mean()) for c in metric_cols},
        "seeds": [int(s) for s in rows["seed"]] if "seed" in rows.columns else [],
        "protocol": P["protocol"],
        "data": {
            "data_root": P["data_root"] or "generated demo corpus",
            "generated": is_generated(P),
            "clips_per_split": (store.index["split"].value_counts().to_dict() if store is not None else None),
        },
        "run_params": model_params(P),
    }
    classes = class_names("class" if calm == "class" else "neutral")
    return inference.save_bundle(
        Path(P["run_dir"]) / "model", classifier=model, kind=kind, classes=classes, preprocess=preprocess, card=card
    )


MAIN_FIGURES: tuple[str, ...] = (
    "01_counts.png",
    "05_ser_headline.png",
    "02_baseline_headline.png",
    "{confusion}",
    "04_fins_pred_vs_true.png",
    "05_ser_ablation.png",
    "06_predict.png",
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


def fin_figures(
    store: Any, fins_dir: Path, fig_dir: Path, *, prefix: str = "04_fins", max_clips: int = 40
) -> list[Path]:
    """The FIN stage's figures: predicted vs true on test frames (up to ``max_clips`` clips) and one test utterance,
    librosa beside FIN. Returns the PNG paths (the figures stay open, so a notebook shows them)."""
    from sefin_utils import experiments, fins
    from sefin_utils.plots import fins as fin_plots

    models = fins.load_fins(fins_dir)
    rows = store.select(split="test", augmentation="orig")
    if len(rows) == 0:
        rows = store.select(split="val", augmentation="orig")
    pairs = {}
    for name, model in models.items():
        pred, true = experiments.predict_store(model, store, rows[:max_clips], name)
        pairs[name] = (true, pred)
    out = [Path(fig_dir) / f"{prefix}_pred_vs_true.png", Path(fig_dir) / f"{prefix}_utterance.png"]
    fin_plots.pred_vs_true(pairs, title="FIN output against librosa, test frames", path=out[0])
    i = int(rows[0])
    fin_plots.utterance(
        store.clips[i],
        models,
        labels={n: store.labels[n][i] for n in models},
        title=f"{store.index['clip_id'].iloc[i]}: librosa and FIN",
        path=out[1],
    )
    return out


def ser_figures(ser_dir: Path, fig_dir: Path, *, prefix: str) -> list[Path]:
    """A classifier stage's figures from ``experiments.run_experiments`` outputs: test macro-F1 per model beside the
    study, per-class F1, and per model the test confusion matrix and training curves of its best seed (by validation);
    the ablation's marginal effects when it ran. Returns the PNG paths (figures stay open for the notebook)."""
    import pandas as pd

    from sefin_utils import results as result_tables
    from sefin_utils.plots import ser as ser_plots

    ser_dir, fig_dir = Path(ser_dir), Path(fig_dir)
    results = pd.read_csv(ser_dir / "results.csv")
    main = results[results["kind"] != "ablation"]
    out = [fig_dir / f"{prefix}_headline.png"]
    ser_plots.headline(result_tables.summary_table(results), path=out[0])
    test_reports = {}
    for variant, g in main.groupby("variant", sort=False):
        best = g.sort_values(["val_macro_f1", "val_accuracy"], ascending=False).iloc[0]
        payload = json.loads((ser_dir / "metrics" / f"{variant}__seed{int(best['seed'])}.json").read_text())
        test = payload["reports"].get("test")
        if test:
            test_reports[variant] = test
            out.append(fig_dir / f"{prefix}_confusion_{variant}.png")
            ser_plots.confusion_matrix(test, title=f"{variant} (test, seed {int(best['seed'])})", path=out[-1])
        if not payload.get("history"):  # anchors (scikit-learn) have no epochs
            continue
        out.append(fig_dir / f"{prefix}_curves_{variant}.png")
        ser_plots.training_curves(payload["history"], best_epoch=payload.get("best_epoch"), title=variant, path=out[-1])
    if test_reports:
        out.append(fig_dir / f"{prefix}_per_class_f1.png")
        ser_plots.per_class_f1(test_reports, title="per-class F1 (test)", path=out[-1])
    if (results["kind"] == "ablation").any():
        out.append(fig_dir / f"{prefix}_ablation.png")
        ser_plots.ablation_marginals(results, path=out[-1])
    return out
