"""On-disk caches of clips, augmented copies, per-frame labels and summary vectors (memory-mapped float32 .npy).

Layout
------
Work is split into three *layers*, each keyed by only what affects its content, so that a changed param
recomputes only what it touches::

    cache_root/
      clips-<k1>/     clips.npy (n, 55125) float32, rows.csv, skipped.csv, meta.json
                      k1 = sr, offset, duration, augmentations, augment_splits, seed + inputs (recording_id, path,
                      file size and mtime, split)
      summary-<k2>/   summary.npy (n, 162) float32                      k2 = k1 (+ librosa version)
      labels-<k3>/    labels_<feature>.npy (n, n_frames, dim) float32, mask.npy (n, n_frames) bool
                      k3 = k1 + tuning, tail_frames, feature names (+ librosa version)
      <key>/          store.json (points at the three layers), index.csv, skipped.csv
                      key = k1, k2, k3 + the index metadata (emotion, corpus, speaker_key)

Changing ``tuning`` or ``tail_frames`` reuses ``clips-<k1>`` and ``summary-<k2>`` and recomputes only the labels;
relabelling emotions (e.g. the calm mode) rewrites only the small ``<key>/index.csv``.

Rows
----
Every recording gives one ``orig`` row, followed by one row per augmentation when its split is in
``augment_splits``; a copy keeps the source's ``recording_id`` (also written as ``source``) and its split, and gets
its own ``clip_id`` (``<recording_id>+<augmentation>``). Row ``i`` of every array is row ``i`` of ``index``.
Recordings whose audio fails to load (:class:`sefin_utils.audio.AudioError`) are left out and listed in
``skipped`` with the reason.

Frame labels are computed on the whole padded clip (the framing of :func:`sefin_utils.features.frame`); ``mask``
marks frames that overlap real audio. The summary vector is computed on the real samples only
(``clip[valid_start:valid_stop]``), as the study computed it on the unpadded loaded signal.

Robustness
----------
A layer is built in ``<layer>.partial/``: memmaps are allocated once, chunks of rows are computed by a process pool
(workers return arrays; the parent writes them into the memmaps) and each finished chunk gets a done-marker. A killed
run resumes from its markers. The finished directory is moved into place with one ``os.replace``, so a layer
directory either is complete or does not exist. A file lock keeps two processes from building the same layer.
Layers of older params are kept (another profile may share them); delete ``cache_root`` to reclaim the space.

Scale
-----
The full study (36,486 clips) takes 8.0 GB of clips, 2.5 GB of labels (104 frames; 2.6 GB with 108) and 24 MB of
summaries on disk; nothing is held in RAM: the parent has at most ``2 * workers`` chunks in flight, workers read
their clips from the memmap themselves. Workers are single-threaded processes (forkserver, with librosa preloaded
once), so the build scales with cores; ``workers=1`` computes in the calling process.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import multiprocessing
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sefin_utils import augment as _augment
from sefin_utils.constants import DURATION_S, OFFSET_S, SR
from sefin_utils.io import atomic_write_text, stable_hash, write_csv

CACHE_VERSION: int = 1
"""Bump when the stored content changes meaning; it is part of every key."""
DEFAULT_PARAMS: dict[str, Any] = {
    "sr": SR,
    "offset": OFFSET_S,
    "duration": DURATION_S,
    "augmentations": ["noise", "stretch_pitch"],
    "augment_splits": ["train"],
    "seed": 0,
    "tail_frames": False,
    "tuning": None,  # None: the default of features.frame_labels
    "features": None,  # None: every feature of features.FEATURES
}
"""Params read by :func:`build` (other keys in ``params`` are ignored)."""
CLIP_CHUNK: int = 16
"""Recordings per task in the clips layer."""
LABEL_CHUNK: int = 32
"""Clips per task in the label and summary layers."""
INDEX_COLUMNS: tuple[str, ...] = (
    "clip_id",
    "recording_id",
    "source",
    "split",
    "augmentation",
    "emotion",
    "corpus",
    "speaker_key",
    "valid_start",
    "valid_stop",
)
"""Columns of ``ClipStore.index``."""
SKIPPED_COLUMNS: tuple[str, ...] = ("recording_id", "path", "reason")
"""Columns of ``ClipStore.skipped``."""
REQUIRED_COLUMNS: tuple[str, ...] = ("recording_id", "path", "split")
"""Columns ``splits_df`` must have (``emotion``, ``corpus``, ``speaker_key`` are carried when present)."""
_FLUSH_EVERY_S: float = 5.0
_SKIP_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError)


# --------------------------------------------------------------------------------------------------- store object
@dataclass
class ClipStore:
    """A built cache: read-only memmaps plus the index (row ``i`` of every array is ``index.iloc[i]``).

    Attributes
    ----------
    path : Path
        The store directory ``cache_root/<key>/``.
    index : DataFrame
        One row per clip, columns :data:`INDEX_COLUMNS`.
    clips : np.memmap, shape (n, n_samples) float32
    labels : dict[str, np.memmap]
        ``labels[name]`` has shape (n, n_frames, dim) float32, one entry per feature.
    summary : np.memmap, shape (n, 162) float32
    mask : np.memmap, shape (n, n_frames) bool
        True where a frame overlaps real (non-padding) audio.
    skipped : DataFrame
        Recordings left out, columns :data:`SKIPPED_COLUMNS`.
    params : dict
        The resolved params that made the store.
    """

    path: Path
    index: pd.DataFrame
    clips: np.ndarray
    labels: dict[str, np.ndarray]
    summary: np.ndarray
    mask: np.ndarray
    skipped: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Path] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)

    def select(
        self, *, split: str | Iterable[str] | None = None, augmentation: str | Iterable[str] | None = None
    ) -> np.ndarray:
        """Return the row indices (int64, ascending) of clips in ``split`` and with ``augmentation`` (str or list)."""
        keep = np.ones(len(self.index), dtype=bool)
        for column, wanted in (("split", split), ("augmentation", augmentation)):
            if wanted is None:
                continue
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            keep &= self.index[column].isin(values).to_numpy()
        return np.flatnonzero(keep).astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"ClipStore({str(self.path)!r}, clips={len(self)}, features={list(self.labels)}, "
            f"frames={self.mask.shape[1] if self.mask.ndim == 2 else '?'}, skipped={len(self.skipped)})"
        )


# --------------------------------------------------------------------------------------------------- small helpers
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no locking
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: str) -> bool:
    """Whether a process with this id (a string from a temp name) is running; True when unsure."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OSError):
        return True
    return True


def _librosa_version() -> str:
    import librosa

    return str(librosa.__version__)


def _features_module() -> Any:
    from sefin_utils import features

    return features


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Fill defaults and validate the params :func:`build` reads.

    Parameters
    ----------
    params : dict or None
        May hold other keys (a run's whole params); only those of :data:`DEFAULT_PARAMS` are used.

    Returns
    -------
    dict
        ``sr``, ``offset``, ``duration``, ``augmentations``, ``augment_splits``, ``seed``, ``tail_frames``,
        ``tuning`` (the features default filled in) and ``features`` (the list of feature names).
    """
    params = dict(params or {})
    out = {k: params.get(k, v) for k, v in DEFAULT_PARAMS.items()}
    for k in ("augmentations", "augment_splits"):
        value = out[k]
        if isinstance(value, str):
            value = [value]
        out[k] = list(value)
    unknown = [a for a in out["augmentations"] if a not in _augment.AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"params['augmentations'] has unknown names {unknown}; expected {list(_augment.AUGMENTATIONS)}"
        )
    if len(set(out["augmentations"])) != len(out["augmentations"]):
        raise ValueError(f"params['augmentations'] repeats a name: {out['augmentations']}")
    out["sr"] = int(out["sr"])
    out["offset"] = float(out["offset"])
    out["duration"] = float(out["duration"])
    out["seed"] = int(out["seed"])
    out["tail_frames"] = bool(out["tail_frames"])
    features = _features_module()
    all_names = [f.name for f in _feature_list(features)]
    names = all_names if out["features"] is None else list(out["features"])
    missing = [n for n in names if n not in all_names]
    if missing:
        raise ValueError(f"params['features'] has unknown names {missing}; expected some of {all_names}")
    out["features"] = names
    if out["tuning"] is None:
        default = inspect.signature(features.frame_labels).parameters.get("tuning")
        out["tuning"] = None if default is None or default.default is inspect.Parameter.empty else default.default
    return out


def _feature_list(features: Any) -> list[Any]:
    """FEATURES as a list of Feature records (accepts a dict registry or a sequence)."""
    reg = features.FEATURES
    return list(reg.values()) if isinstance(reg, Mapping) else list(reg)


def _feature_dims(features: Any, names: Sequence[str]) -> dict[str, int]:
    by_name = {f.name: int(f.dim) for f in _feature_list(features)}
    return {n: by_name[n] for n in names}


def _inputs_table(splits_df: pd.DataFrame) -> pd.DataFrame:
    """Validate ``splits_df`` and add file size and mtime (the input fingerprint)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in splits_df.columns]
    if missing:
        raise ValueError(f"splits_df lacks columns {missing}; has {list(splits_df.columns)}")
    df = splits_df.reset_index(drop=True)
    dup = df["recording_id"][df["recording_id"].duplicated()]
    if len(dup):
        raise ValueError(f"splits_df has duplicate recording_id values, e.g. {dup.iloc[0]!r}")
    sizes, mtimes = [], []
    for p in df["path"]:
        try:
            st = os.stat(p)
            sizes.append(int(st.st_size))
            mtimes.append(int(st.st_mtime_ns))
        except OSError:
            sizes.append(-1)
            mtimes.append(-1)
    out = pd.DataFrame(
        {
            "recording_id": df["recording_id"].astype(str).to_numpy(),
            "path": df["path"].astype(str).to_numpy(),
            "split": df["split"].astype(str).to_numpy(),
            "size": sizes,
            "mtime_ns": mtimes,
        }
    )
    for c in ("emotion", "corpus", "speaker_key"):
        out[c] = df[c].astype(str).to_numpy() if c in df.columns else ""
    return out


def _plan_rows(inputs: pd.DataFrame, params: dict[str, Any]) -> list[list[str]]:
    """The augmentations made for each recording, ``orig`` first."""
    aug_splits = set(params["augment_splits"])
    return [[_augment.ORIGINAL, *(params["augmentations"] if split in aug_splits else [])] for split in inputs["split"]]


# --------------------------------------------------------------------------------------------------- workers
def _worker_init() -> None:
    """Keep each worker single-threaded (BLAS included) so that a many-core machine scales by processes."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from threadpoolctl import threadpool_limits  # numpy may already be imported (forkserver preload)

    threadpool_limits(limits=1)


def _load_clip(path: str, params: dict[str, Any]) -> Any:
    """Load one recording's clip (a seam for tests)."""
    from sefin_utils import audio

    return audio.load_clip(path, sr=params["sr"], offset=params["offset"], duration=params["duration"])


def _clip_task(task: dict[str, Any]) -> dict[str, Any]:
    """Load and augment a chunk of recordings. Returns arrays for the parent to write, plus per-recording info."""
    from sefin_utils.audio import AudioError

    params = task["params"]
    n_samples = task["n_samples"]
    out_rows: list[np.ndarray] = []
    info: list[dict[str, Any]] = []
    for rid, path, kinds in zip(task["recording_ids"], task["paths"], task["kinds"], strict=True):
        try:
            clip = _load_clip(path, params)
        except (AudioError, *_SKIP_ERRORS) as err:
            reason = getattr(err, "reason", None) or f"{type(err).__name__}: {err}"
            info.append({"skip": reason})
            out_rows.extend(np.zeros(n_samples, np.float32) for _ in kinds)
            continue
        samples = np.asarray(clip.samples, dtype=np.float32)
        if samples.shape != (n_samples,):
            raise RuntimeError(f"{path}: clip has shape {samples.shape}, expected ({n_samples},)")
        valid = (int(clip.valid[0]), int(clip.valid[1]))
        for kind in kinds:
            out_rows.append(
                _augment.augment(samples, kind, seed_key=(params["seed"], rid), valid=valid, sr=params["sr"])
            )
        info.append({"valid": list(valid)})
    return {"clips": np.stack(out_rows) if out_rows else np.zeros((0, n_samples), np.float32), "info": info}


def _label_task(task: dict[str, Any]) -> dict[str, Any]:
    """Per-frame labels and mask for rows [start, stop) of the clips memmap."""
    features = _features_module()
    clips = np.load(task["clips_path"], mmap_mode="r")
    start, stop = task["rows"]
    names, tail = task["names"], task["tail_frames"]
    kwargs: dict[str, Any] = {"names": names, "tail_frames": tail}
    if task["tuning"] is not None:
        kwargs["tuning"] = task["tuning"]
    n = stop - start
    labels: dict[str, np.ndarray] = {
        name: np.zeros((n, task["n_frames"], dim), np.float32) for name, dim in task["dims"].items()
    }
    mask = np.zeros((n, task["n_frames"]), bool)
    for j, (row, (v0, v1)) in enumerate(zip(range(start, stop), task["valid"], strict=True)):
        y = np.array(clips[row], dtype=np.float32)
        with warnings.catch_warnings():
            # silent (padding) frames: librosa warns that tuning cannot be estimated; the label is still defined
            warnings.filterwarnings("ignore", message="Trying to estimate tuning", category=UserWarning)
            out = features.frame_labels(y, **kwargs)
        for name in names:
            labels[name][j] = out[name]
        mask[j] = features.valid_frame_mask((v0, v1), len(y), tail_frames=tail)
    return {"labels": labels, "mask": mask}


def _summary_task(task: dict[str, Any]) -> dict[str, Any]:
    """Summary vectors (on the real samples) for rows [start, stop) of the clips memmap."""
    features = _features_module()
    clips = np.load(task["clips_path"], mmap_mode="r")
    start, stop = task["rows"]
    out = np.zeros((stop - start, task["dim"]), np.float32)
    for j, (row, valid) in enumerate(zip(range(start, stop), task["valid"], strict=True)):
        clip = np.array(clips[row], dtype=np.float32)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Trying to estimate tuning", category=UserWarning)
            out[j] = features.clip_summary(clip, valid)
    return {"summary": out}


# --------------------------------------------------------------------------------------------------- layer engine
@dataclass
class _Layer:
    """What a layer holds and how to compute it chunk by chunk."""

    name: str
    final: Path
    arrays: dict[str, tuple[tuple[int, ...], str]]  # file stem -> (shape, dtype)
    tasks: list[dict[str, Any]]
    task_rows: list[tuple[int, int]]  # rows of the arrays each task fills
    fn: Callable[[dict[str, Any]], dict[str, Any]]
    write: Callable[[dict[str, np.ndarray], dict[str, Any], tuple[int, int]], None] | None = None
    finalize: Callable[[Path, list[dict[str, Any]]], None] | None = None
    layout_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def partial(self) -> Path:
        return self.final.with_name(self.final.name + ".partial")


_PRELOAD: list[str] = [
    "sefin_utils.cache",
    "sefin_utils.audio",
    "sefin_utils.features",
    "librosa.core.audio",  # resample; loads librosa.util.utils, whose numba ufuncs take ~1-3 s to load
    "librosa.core.spectrum",
    "librosa.core.pitch",
    "librosa.effects",  # imports scipy.signal: seconds
    "librosa.feature",
    "librosa.filters",
]
"""Modules the forkserver imports once, so that each worker starts warm (librosa loads its parts lazily, and the
first calls would otherwise cost every worker 5-10 s). Names that fail to import are skipped by the forkserver."""


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where available (workers do not inherit a parent's threads, e.g. TensorFlow in a notebook), with
    the heavy imports preloaded; spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)  # takes effect when the forkserver starts (once per process)
        return ctx
    return multiprocessing.get_context("spawn")


class _Workers:
    """A lazily started process pool shared by all layers of one build (workers import librosa once)."""

    def __init__(self, n: int) -> None:
        self.n = max(1, int(n))
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(
        self, fn: Callable[[dict[str, Any]], dict[str, Any]], tasks: list[tuple[int, dict[str, Any]]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (task number, result) as tasks finish: inline for one worker, else through the pool.

        At most ``2 * n`` tasks are in flight, so finished results never pile up in memory.
        """
        if self.n <= 1 or len(tasks) <= 1:
            for i, task in tasks:
                yield i, fn(task)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.n, mp_context=_pool_context(), initializer=_worker_init)
        pending: dict[Future[dict[str, Any]], int] = {}
        queue = iter(tasks)
        try:
            while True:
                while len(pending) < 2 * self.n:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    pending[self._pool.submit(fn, nxt[1])] = nxt[0]
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut.result()
        finally:
            for fut in pending:
                fut.cancel()


def _after_chunk(layer: str, n_done: int) -> None:
    """Called by the parent after each chunk is written (a seam for tests that simulate a crash)."""


def _open_partial(layer: _Layer) -> tuple[dict[str, np.ndarray], set[int], dict[int, dict[str, Any]]]:
    """Open (resume) or create the partial directory; returns memmaps, finished task numbers, their info."""
    part = layer.partial
    layout = {
        "arrays": {k: [list(s), d] for k, (s, d) in layer.arrays.items()},
        "task_rows": [list(r) for r in layer.task_rows],
        **layer.layout_extra,
    }
    layout_path = part / "layout.json"
    resumable = (
        layout_path.is_file()
        and json.loads(layout_path.read_text()) == layout
        and all((part / f"{k}.npy").is_file() for k in layer.arrays)
    )
    if not resumable:
        shutil.rmtree(part, ignore_errors=True)
        (part / "done").mkdir(parents=True)
        for stem, (shape, dtype) in layer.arrays.items():
            np.lib.format.open_memmap(part / f"{stem}.npy", mode="w+", dtype=np.dtype(dtype), shape=shape).flush()
        atomic_write_text(layout_path, json.dumps(layout))
    mms = {stem: np.lib.format.open_memmap(part / f"{stem}.npy", mode="r+") for stem in layer.arrays}
    done: set[int] = set()
    infos: dict[int, dict[str, Any]] = {}
    for marker in (part / "done").glob("*.json"):
        i = int(marker.stem)
        done.add(i)
        infos[i] = json.loads(marker.read_text())
    return mms, done, infos


def _build_layer(layer: _Layer, *, workers: _Workers, progress: bool) -> Path:
    """Build ``layer.final`` unless it exists; resumable, atomic."""
    if (layer.final / "meta.json").is_file():
        return layer.final
    layer.final.parent.mkdir(parents=True, exist_ok=True)
    locks = layer.final.parent / ".locks"
    locks.mkdir(exist_ok=True)
    with _locked(locks / f"{layer.final.name}.lock"):
        if (layer.final / "meta.json").is_file():  # built by another process while we waited
            return layer.final
        if layer.final.exists():  # a layer directory without meta.json is not ours to trust
            shutil.rmtree(layer.final)
        mms, done, infos = _open_partial(layer)
        todo = [(i, t) for i, t in enumerate(layer.tasks) if i not in done]
        unflushed: list[tuple[int, dict[str, Any]]] = []
        last_flush = time.monotonic()

        def commit() -> None:
            for mm in mms.values():
                mm.flush()
            for i, info in unflushed:
                atomic_write_text(layer.partial / "done" / f"{i}.json", json.dumps(info))
                infos[i] = info
            unflushed.clear()

        bar = tqdm(
            total=sum(r1 - r0 for r0, r1 in layer.task_rows),
            initial=sum(layer.task_rows[i][1] - layer.task_rows[i][0] for i in done),
            desc=layer.name,
            unit="clip",
            disable=not progress,
        )
        try:
            for n_done, (i, result) in enumerate(workers.run(layer.fn, todo), start=1):
                r0, r1 = layer.task_rows[i]
                if layer.write is not None:
                    layer.write(mms, result, (r0, r1))
                else:
                    for stem in layer.arrays:
                        mms[stem][r0:r1] = result[stem]
                unflushed.append((i, {"info": result.get("info")}))
                bar.update(r1 - r0)
                if time.monotonic() - last_flush > _FLUSH_EVERY_S:
                    commit()
                    last_flush = time.monotonic()
                _after_chunk(layer.name, n_done)
        finally:
            commit()  # whatever finished is kept for a resume, even when a chunk failed
            bar.close()
        mms.clear()
        ordered = [infos[i] for i in range(len(layer.tasks))]
        if layer.finalize is not None:
            layer.finalize(layer.partial, ordered)
        atomic_write_text(layer.partial / "meta.json", json.dumps({"layer": layer.name, "created": time.time()}))
        os.replace(layer.partial, layer.final)  # the one step that makes the layer exist
        shutil.rmtree(layer.final / "done", ignore_errors=True)
        (layer.final / "layout.json").unlink(missing_ok=True)
    return layer.final


# --------------------------------------------------------------------------------------------------- the three layers
def _clips_layer(root: Path, inputs: pd.DataFrame, params: dict[str, Any], chunk: int) -> _Layer:
    clip_params = {k: params[k] for k in ("sr", "offset", "duration", "augmentations", "augment_splits", "seed")}
    n_samples = int(round(params["duration"] * params["sr"]))
    fingerprint = inputs[["recording_id", "path", "split", "size", "mtime_ns"]].to_numpy().tolist()
    k1 = stable_hash(
        {
            "v": CACHE_VERSION,
            "layer": "clips",
            "params": clip_params,
            "librosa": _librosa_version(),
            "inputs": fingerprint,
        }
    )
    kinds = _plan_rows(inputs, params)
    first_row = np.concatenate([[0], np.cumsum([len(k) for k in kinds])]).astype(int)
    n_rows = int(first_row[-1])
    tasks, task_rows = [], []
    for a in range(0, len(inputs), chunk):
        b = min(a + chunk, len(inputs))
        tasks.append(
            {
                "params": clip_params,
                "n_samples": n_samples,
                "recording_ids": inputs["recording_id"].iloc[a:b].tolist(),
                "paths": inputs["path"].iloc[a:b].tolist(),
                "kinds": kinds[a:b],
            }
        )
        task_rows.append((int(first_row[a]), int(first_row[b])))

    def finalize(part: Path, infos: list[dict[str, Any]]) -> None:
        per_rec = [rec for info in infos for rec in info["info"]]
        rows, skipped, keep = [], [], []
        for r, rec in enumerate(per_rec):
            rid, src_path = inputs["recording_id"].iloc[r], inputs["path"].iloc[r]
            span = range(int(first_row[r]), int(first_row[r + 1]))
            if "skip" in rec:
                skipped.append({"recording_id": rid, "path": src_path, "reason": rec["skip"]})
                continue
            keep.extend(span)
            for kind in kinds[r]:
                clip_id = rid if kind == _augment.ORIGINAL else f"{rid}+{kind}"
                rows.append(
                    {
                        "clip_id": clip_id,
                        "recording_id": rid,
                        "source": rid,
                        "augmentation": kind,
                        "valid_start": rec["valid"][0],
                        "valid_stop": rec["valid"][1],
                    }
                )
        if not rows:
            reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
            raise RuntimeError(f"no recording could be loaded ({len(skipped)} skipped, e.g. {reasons})")
        if len(keep) < n_rows:
            _compact(part, "clips", np.asarray(keep, dtype=np.int64))
        write_csv(pd.DataFrame(rows), part / "rows.csv")
        write_csv(pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS)), part / "skipped.csv")

    return _Layer(
        name="clips",
        final=root / f"clips-{k1}",
        arrays={"clips": ((n_rows, n_samples), "float32")},
        tasks=tasks,
        task_rows=task_rows,
        fn=_clip_task,
        write=lambda mms, result, rows: mms["clips"].__setitem__(slice(*rows), result["clips"]),
        finalize=finalize,
        layout_extra={"key": k1},
    )


def _compact(part: Path, stem: str, keep: np.ndarray) -> None:
    """Drop the rows of skipped recordings: copy kept rows to ``compact/`` then swap in, crash-safe and streamed."""
    cdir = part / "compact"
    src_path, dst_path, done_flag = part / f"{stem}.npy", cdir / f"{stem}.npy", cdir / "DONE"
    if not done_flag.is_file():
        shutil.rmtree(cdir, ignore_errors=True)
        cdir.mkdir()
        src = np.load(src_path, mmap_mode="r")
        dst = np.lib.format.open_memmap(dst_path, mode="w+", dtype=src.dtype, shape=(len(keep), *src.shape[1:]))
        for a in range(0, len(keep), 256):
            dst[a : a + 256] = src[keep[a : a + 256]]
        dst.flush()
        del dst, src
        done_flag.write_text("")
    if dst_path.is_file():
        os.replace(dst_path, src_path)
    shutil.rmtree(cdir)


def _valid_ranges(rows: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(rows["valid_start"].astype(int), rows["valid_stop"].astype(int), strict=True))


def _summary_layer(root: Path, clips_dir: Path, rows: pd.DataFrame, chunk: int) -> _Layer:
    features = _features_module()
    dim = int(features.SUMMARY_DIM)
    k2 = stable_hash(
        {
            "v": CACHE_VERSION,
            "layer": "summary",
            "clips": clips_dir.name,
            "dim": dim,
            "order": list(getattr(features, "SUMMARY_ORDER", [])),
            "librosa": _librosa_version(),
        }
    )
    valid = _valid_ranges(rows)
    n = len(rows)
    tasks, task_rows = [], []
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        tasks.append({"clips_path": str(clips_dir / "clips.npy"), "rows": (a, b), "valid": valid[a:b], "dim": dim})
        task_rows.append((a, b))
    return _Layer(
        name="summary",
        final=root / f"summary-{k2}",
        arrays={"summary": ((n, dim), "float32")},
        tasks=tasks,
        task_rows=task_rows,
        fn=_summary_task,
        layout_extra={"key": k2},
    )


def _labels_layer(root: Path, clips_dir: Path, rows: pd.DataFrame, params: dict[str, Any], chunk: int) -> _Layer:
    features = _features_module()
    names = params["features"]
    dims = _feature_dims(features, names)
    n_samples = int(round(params["duration"] * params["sr"]))
    n_frames = int(features.n_frames(n_samples, tail_frames=params["tail_frames"]))
    k3 = stable_hash(
        {
            "v": CACHE_VERSION,
            "layer": "labels",
            "clips": clips_dir.name,
            "names": names,
            "dims": dims,
            "tuning": params["tuning"],
            "tail_frames": params["tail_frames"],
            "n_frames": n_frames,
            "librosa": _librosa_version(),
        }
    )
    valid = _valid_ranges(rows)
    n = len(rows)
    tasks, task_rows = [], []
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        tasks.append(
            {
                "clips_path": str(clips_dir / "clips.npy"),
                "rows": (a, b),
                "valid": valid[a:b],
                "names": names,
                "dims": dims,
                "n_frames": n_frames,
                "tuning": params["tuning"],
                "tail_frames": params["tail_frames"],
            }
        )
        task_rows.append((a, b))
    arrays: dict[str, tuple[tuple[int, ...], str]] = {
        f"labels_{name}": ((n, n_frames, dim), "float32") for name, dim in dims.items()
    }
    arrays["mask"] = ((n, n_frames), "bool")

    def write(mms: dict[str, np.ndarray], result: dict[str, Any], span: tuple[int, int]) -> None:
        for name in names:
            mms[f"labels_{name}"][span[0] : span[1]] = result["labels"][name]
        mms["mask"][span[0] : span[1]] = result["mask"]

    return _Layer(
        name="labels",
        final=root / f"labels-{k3}",
        arrays=arrays,
        tasks=tasks,
        task_rows=task_rows,
        fn=_label_task,
        write=write,
        layout_extra={"key": k3},
    )


# --------------------------------------------------------------------------------------------------- public API
def build_arrays(
    final: str | Path,
    arrays: Mapping[str, tuple[tuple[int, ...], str]],
    chunks: Sequence[tuple[int, int]],
    fn: Callable[[tuple[int, int]], Mapping[str, np.ndarray]],
    *,
    key: str,
    progress: bool = False,
) -> Path:
    """Build a layer of ``.npy`` arrays under ``final`` with this module's engine (resumable from per-chunk markers,
    locked, moved into place with one ``os.replace``), computing in this process: ``fn((start, stop))`` returns each
    array's rows ``[start, stop)``. A complete layer is returned as it is. Used by ``featcache`` (per-frame FIN outputs,
    spectra), whose ``fn`` runs Keras models that cannot move to worker processes.

    Parameters
    ----------
    final : the layer directory (``cache_root/<kind>-<key>``).
    arrays : file stem -> (shape, dtype); every shape's first axis is the clip row.
    chunks : row ranges, one task each.
    key : written into the partial layout, so that a partial layer of another key is never resumed.
    """
    layer = _Layer(
        name=Path(final).name.split("-")[0],
        final=Path(final),
        arrays=dict(arrays),
        tasks=[{"rows": tuple(map(int, c))} for c in chunks],
        task_rows=[tuple(map(int, c)) for c in chunks],
        fn=lambda task: dict(fn(task["rows"])),
        layout_extra={"key": key},
    )
    with _Workers(1) as pool:
        return _build_layer(layer, workers=pool, progress=progress)


def default_workers() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one, e.g. in containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def build(
    splits_df: pd.DataFrame,
    cache_root: str | Path,
    *,
    params: dict[str, Any] | None = None,
    workers: int | None = None,
    progress: bool = True,
    clip_chunk: int = CLIP_CHUNK,
    label_chunk: int = LABEL_CHUNK,
) -> ClipStore:
    """Build (or read back) the clip store for ``splits_df`` under ``cache_root/<key>/``.

    Parameters
    ----------
    splits_df : DataFrame
        ``splits.make_splits`` output: at least ``recording_id``, ``path``, ``split``; ``emotion``, ``corpus``,
        ``speaker_key`` are carried into the index.
    cache_root : str or Path
        Folder holding the layers and stores (e.g. ``runs/<profile>/cache``).
    params : dict, optional
        See :data:`DEFAULT_PARAMS`; other keys are ignored.
    workers : int, optional
        Worker processes (default: every core this process may use, :func:`default_workers`); 1 computes in
        this process, without a pool.
    progress : bool
        Show tqdm bars.
    clip_chunk, label_chunk : int
        Recordings (clips layer) and clips (label/summary layers) per task. They do not change content; an
        unfinished layer resumes only with the same chunk sizes (otherwise it restarts).

    Returns
    -------
    ClipStore
        Memory-mapped, read-only arrays and the index.

    Notes
    -----
    With ``workers > 1`` the workers are started by a forkserver, which re-imports a calling *script* as
    ``__mp_main__``: a script must call ``build`` under ``if __name__ == "__main__":`` (the usual multiprocessing
    rule; notebooks and ``python -c`` need nothing).

    Examples
    --------
    >>> store = build(splits_df, "runs/demo/cache", params={"seed": 0})      # doctest: +SKIP
    >>> x = store.clips[store.select(split="train")]                          # doctest: +SKIP
    """
    root = Path(cache_root)
    root.mkdir(parents=True, exist_ok=True)
    p = resolve_params(params)
    workers = max(1, default_workers() if workers is None else int(workers))
    if clip_chunk < 1 or label_chunk < 1:
        raise ValueError(f"chunk sizes must be >= 1, got clip_chunk={clip_chunk}, label_chunk={label_chunk}")
    inputs = _inputs_table(splits_df)
    if inputs.empty:
        raise ValueError("splits_df has no rows: nothing to cache")

    clips_layer = _clips_layer(root, inputs, p, clip_chunk)
    meta_cols = ["recording_id", "emotion", "corpus", "speaker_key", "split"]
    meta_hash = stable_hash(inputs[meta_cols].to_numpy().tolist())
    # Fast path: the store exists and its layers are complete.
    probe = root / stable_hash({"clips": clips_layer.final.name, "params": p, "meta": meta_hash, "v": CACHE_VERSION})
    if (probe / "store.json").is_file():
        try:
            return open_store(probe)
        except (OSError, ValueError, KeyError):
            pass  # a layer was deleted: rebuild below

    with _Workers(workers) as pool:
        clips_dir = _build_layer(clips_layer, workers=pool, progress=progress)
        rows = pd.read_csv(clips_dir / "rows.csv", dtype={"clip_id": str, "recording_id": str, "source": str})
        summary_dir = _build_layer(_summary_layer(root, clips_dir, rows, label_chunk), workers=pool, progress=progress)
        labels_dir = _build_layer(_labels_layer(root, clips_dir, rows, p, label_chunk), workers=pool, progress=progress)

    meta = inputs.drop_duplicates("recording_id").set_index("recording_id")
    index = rows.copy()
    index["split"] = meta.loc[index["recording_id"], "split"].to_numpy()
    for c in ("emotion", "corpus", "speaker_key"):
        index[c] = meta.loc[index["recording_id"], c].to_numpy()
    index = index[list(INDEX_COLUMNS)]

    tmp = root / f".{probe.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    store_meta = {
        "version": CACHE_VERSION,
        "params": p,
        "layers": {
            "clips": f"../{clips_dir.name}",
            "summary": f"../{summary_dir.name}",
            "labels": f"../{labels_dir.name}",
        },
        "features": p["features"],
        "n_clips": len(index),
        "created": time.time(),
    }
    index.to_csv(tmp / "index.csv", index=False)
    shutil.copyfile(clips_dir / "skipped.csv", tmp / "skipped.csv")
    (tmp / "store.json").write_text(json.dumps(store_meta, indent=1))
    with _locked(root / ".locks" / f"{probe.name}.lock"):
        if probe.exists():  # a stale store (one of its layers was deleted) or one another process just wrote
            shutil.rmtree(probe)
        os.replace(tmp, probe)
    for stale in root.glob(f".{probe.name}.tmp*"):  # left by killed runs
        if not _pid_alive(stale.name.rsplit(".tmp", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    return open_store(probe)


def open_store(path: str | Path) -> ClipStore:
    """Open a built store directory (``cache_root/<key>/``) read-only.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a store, or one of its layers is missing.
    ValueError
        An array's length disagrees with the index.
    """
    path = Path(path)
    meta_path = path / "store.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a clip store (no store.json)")
    meta = json.loads(meta_path.read_text())
    layers = {k: (path / v).resolve() for k, v in meta["layers"].items()}
    for name, ldir in layers.items():
        if not (ldir / "meta.json").is_file():
            raise FileNotFoundError(f"{path}: layer {name!r} missing or incomplete at {ldir}")
    index = pd.read_csv(
        path / "index.csv",
        dtype={
            "clip_id": str,
            "recording_id": str,
            "source": str,
            "speaker_key": str,
            "emotion": str,
            "corpus": str,
            "split": str,
        },
        keep_default_na=False,
    )
    skipped = pd.read_csv(path / "skipped.csv", dtype=str, keep_default_na=False)
    clips = np.load(layers["clips"] / "clips.npy", mmap_mode="r")
    summary = np.load(layers["summary"] / "summary.npy", mmap_mode="r")
    mask = np.load(layers["labels"] / "mask.npy", mmap_mode="r")
    labels = {name: np.load(layers["labels"] / f"labels_{name}.npy", mmap_mode="r") for name in meta["features"]}
    n = len(index)
    for name, arr in [("clips", clips), ("summary", summary), ("mask", mask), *labels.items()]:
        if arr.shape[0] != n:
            raise ValueError(f"{path}: {name} has {arr.shape[0]} rows, index has {n}")
    return ClipStore(
        path=path,
        index=index,
        clips=clips,
        labels=labels,
        summary=summary,
        mask=mask,
        skipped=skipped,
        params=meta["params"],
        layers=layers,
    )
