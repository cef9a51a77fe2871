"""Fingerprints, on-disk caches of work that does not change while the classifiers train, and the end-to-end model
that trains from them (issue 14).

Fingerprints (the keys of the resume files and of the caches)
    :func:`store_key` names a ClipStore's content (its directory name, which ``cache.build`` derives from every input
    and param; the data's own hash for an in-memory stand-in), :func:`fin_hash` a FIN's content (weights, layer
    classes and configs; never its file's bytes, which carry a save date), :func:`code_hash` the code of some sefin
    modules (their syntax trees without docstrings: comments, docstrings and formatting never change a key).
Caches (memory-mapped float32 ``.npy`` layers beside the store's, built by ``cache.build_arrays``: resumable, locked,
atomic)
    :func:`fin_outputs` (``finout-<key>/``): a frozen FIN's output on every frame and its masked mean per clip;
    :func:`spectra` (``spectra-<key>/``): the FINs' fixed front end, the power spectrum of every frame, its masked
    mean, and the chroma FINs' tuning gate.
Models on cached inputs
    :func:`build_cached_end_to_end` is ``classifiers.build_end_to_end`` (mean pooling) fed by the cached spectra
    (:func:`fin_front` says how each FIN is fed; a linear FIN runs once per clip on ``power_mean``);
    :func:`copy_into_end_to_end` / :func:`assemble_end_to_end` move its weights into the full model (clip in);
    :func:`cached_inputs` gives its inputs as row views of the memmaps.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sefin_utils.constants import FRAME_LENGTH
from sefin_utils.io import stable_hash

__all__ = [
    "LINEAR_LAYERS",
    "assemble_end_to_end",
    "build_cached_end_to_end",
    "cache_root",
    "cached_inputs",
    "code_hash",
    "copy_into_end_to_end",
    "fin_front",
    "fin_hash",
    "fin_outputs",
    "own_norm_stats",
    "spectra",
    "store_key",
    "tuning_layers",
]


def _array_digest(h: Any, arr: Any) -> None:
    a = np.ascontiguousarray(np.asarray(arr))
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())


def store_key(store: Any) -> str:
    """The key of a ClipStore's content: the store directory's name (``cache.build`` hashes every input, param and
    layer into it), or, for an in-memory stand-in without ``path`` (tests), a SHA-256 of its index and arrays."""
    path = getattr(store, "path", None)
    if path is not None:
        return Path(path).name
    h = hashlib.sha256()
    h.update(store.index.to_csv(index=False).encode())
    for name in ("clips", "summary", "mask"):
        _array_digest(h, getattr(store, name))
    for name in sorted(store.labels):
        h.update(name.encode())
        _array_digest(h, store.labels[name])
    return "mem-" + h.hexdigest()[:16]


def _strip_names(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        return {k: _strip_names(v) for k, v in cfg.items() if k not in ("name", "seed")}
    if isinstance(cfg, list | tuple):
        return [_strip_names(v) for v in cfg]
    return cfg


def fin_hash(model: Any) -> str:
    """The content key of a FIN (a ``keras.Model``): SHA-256 over its layers' classes and configs (names and seeds
    left out: a reloaded FIN gets the same key) and every weight's dtype, shape and bytes, in order."""
    h = hashlib.sha256()
    for layer in model.layers:
        h.update(type(layer).__name__.encode())
        try:
            h.update(stable_hash(_strip_names(layer.get_config())).encode())
        except (TypeError, NotImplementedError):  # a config that is not JSON: the class and weights still count
            pass
        for w in layer.get_weights():
            _array_digest(h, w)
    return h.hexdigest()[:16]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_hash(modules: Iterable[str]) -> str:
    """A key of the code of ``sefin_utils.<module>`` for each name (absent modules count as absent): their syntax
    trees without docstrings, so comments, docstrings and formatting leave it unchanged."""
    parts = {}
    for name in modules:
        spec = importlib.util.find_spec(f"sefin_utils.{name}")
        if spec is None or spec.origin is None:
            parts[name] = None
            continue
        tree = _strip_docstrings(ast.parse(Path(spec.origin).read_text(encoding="utf-8")))
        parts[name] = hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]
    return stable_hash(parts)


# --------------------------------------------------------------------------------------------------------------------
# on-disk caches


CACHE_VERSION: int = 1
"""Part of every feature-cache key: bump when a cached array changes meaning."""
CHUNK: int = 128
"""Clips per task when a feature cache is built (a killed build resumes from its finished chunks)."""
N_BINS: int = FRAME_LENGTH // 2 + 1


def cache_root(store: Any) -> Path | None:
    """Where a store's feature caches live: beside its layers (``cache_root`` of ``cache.build``); None for an
    in-memory stand-in (then the arrays are computed in memory)."""
    path = getattr(store, "path", None)
    return Path(path).parent if path is not None else None


def _source_key(store: Any) -> dict[str, Any]:
    """What per-clip work depends on: the clips layer (samples) and the labels layer (the frame mask)."""
    layers = getattr(store, "layers", None) or {}
    if "clips" in layers and "labels" in layers:
        return {"clips": Path(layers["clips"]).name, "labels": Path(layers["labels"]).name}
    return {"store": store_key(store)}


def _arrays(
    store: Any,
    kind: str,
    key_obj: Mapping[str, Any],
    arrays: Mapping[str, tuple[tuple[int, ...], str]],
    compute: Callable[[tuple[int, int]], Mapping[str, np.ndarray]],
    *,
    root: str | Path | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """A feature-cache layer ``<root>/<kind>-<key>/`` as read-only memmaps (built by ``cache.build_arrays`` when
    missing), or, without ``root``, the same arrays computed in memory."""
    n = len(store.index)
    chunks = [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
    if root is None:
        out = {stem: np.empty(shape, dtype) for stem, (shape, dtype) in arrays.items()}
        for a, b in chunks:
            res = compute((a, b))
            for stem in arrays:
                out[stem][a:b] = res[stem]
        return out
    from sefin_utils import cache

    key = stable_hash({"v": CACHE_VERSION, "kind": kind, **_source_key(store), **key_obj})
    final = Path(root) / f"{kind}-{key}"
    cache.build_arrays(final, arrays, chunks, compute, key=key, progress=progress)
    return {stem: np.load(final / f"{stem}.npy", mmap_mode="r") for stem in arrays}


def _frozen_clone(fin: Any, name: str) -> Any:
    import keras

    from sefin_utils.classifiers import clone_fin

    clone = clone_fin(fin, init="pretrained")
    clone = keras.Model(clone.input, clone.output, name=f"fin_{name}")
    clone.trainable = False
    return clone


def fin_outputs(
    store: Any,
    name: str,
    fin: Any,
    *,
    root: str | Path | None | bool = True,
    batch_size: int = 64,
    progress: bool = False,
    spectra_of: Sequence[Any] | None = None,
) -> dict[str, np.ndarray]:
    """A frozen pre-trained FIN's outputs on every clip of ``store``, computed once and cached on disk.

    Layer ``<root>/finout-<key>/``: ``frames.npy`` (n, T, dim) float32, the FIN's output on each of the clip's T
    frames (the framing of ``classifiers.build_end_to_end``: ``layers.FrameClips``, the FIN in inference mode), and
    ``pooled.npy`` (n, dim) float32, their masked mean over real frames (``layers.MaskedMean``), i.e. what a frozen FIN
    feeds the study's mean pooling. Key: the store's clips and labels layers, ``fin_hash(fin)``, T and
    :data:`CACHE_VERSION`; a changed FIN recomputes only its own layer.

    ``root``: True (default) = :func:`cache_root` of the store; a folder; None/False = compute in memory.
    ``spectra_of``: the tuning layers of the run's FINs (:func:`tuning_layers`); given, a FIN that starts with the
    power spectrum (:func:`fin_front`) runs on the cached :func:`spectra` of that set (the FFT and the tuning
    estimate shared by all FINs; the same ops on the same frames) instead of on the clip.
    """
    import keras

    from sefin_utils.layers import FrameClips, MaskedMean, MergeFrames, SplitFrames

    root = cache_root(store) if root is True else (root or None)
    n, t = len(store.index), int(store.mask.shape[1])
    dim = int(fin.output_shape[-1])
    model: list[Any] = []

    spec = None
    if spectra_of is not None and fin_front(fin) != "frames":
        spec = spectra(store, spectra_of, root=root, batch_size=batch_size, progress=progress)

    def build() -> Any:
        mask_in = keras.Input(shape=(t,), name="mask")
        clone = _frozen_clone(fin, name)
        if spec is None:
            x_in = {"clip": keras.Input(shape=(int(store.clips.shape[1]),), name="clip")}
            frames = SplitFrames(t)(clone(MergeFrames()(FrameClips(n_frames=t)(x_in["clip"]))))
        else:
            sub, keys = _spectral_submodel(clone, name, per_frame=True)
            x_in = {"power": keras.Input((t, N_BINS), name="power")}
            for k, width in keys:
                x_in[f"tuning_{k}"] = keras.Input((t, width), name=f"tuning_{k}")
            args = [MergeFrames()(x_in[key]) for key in x_in]
            frames = SplitFrames(t)(sub(args if len(args) > 1 else args[0]))
        pooled = MaskedMean()([frames, mask_in])
        return keras.Model({**x_in, "mask": mask_in}, {"frames": frames, "pooled": pooled})

    def compute(span: tuple[int, int]) -> dict[str, np.ndarray]:
        if not model:
            model.append(build())
        a, b = span
        x = {"mask": np.asarray(store.mask[a:b], "float32")}
        for key in model[0].input:
            if key != "mask":
                x[key] = np.asarray((store.clips if key == "clip" else spec[key])[a:b], "float32")
        out = model[0].predict(x, batch_size=batch_size, verbose=0)
        return {k: np.asarray(v, "float32") for k, v in out.items()}

    return _arrays(
        store,
        "finout",
        {"fin": fin_hash(fin), "frames": t},
        {"frames": ((n, t, dim), "float32"), "pooled": ((n, dim), "float32")},
        compute,
        root=root,
        progress=progress,
    )


def _tuning_key(layer: Any) -> str:
    cfg = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "dtype")}
    return stable_hash(cfg, length=8)


def spectra(
    store: Any,
    tuning_layers: Sequence[Any] = (),
    *,
    root: str | Path | None | bool = True,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """The FINs' fixed front end on every clip of ``store``, computed once and cached on disk (float32).

    Layer ``<root>/spectra-<key>/``: ``power.npy`` (n, T, 1025), ``layers.PowerSpectrum`` (``|rfft(hann * frame)|²``)
    of each frame (``layers.FrameClips``), the same op the FINs run, so a FIN on it computes what it computes on the
    clip; ``power_mean.npy`` (n, 1025), its masked mean over real frames (``layers.MaskedMean``: what a linear FIN
    bank commutes with); and ``tuning_<k>.npy`` (n, T, K) for each given ``layers.TuningWeights`` (keyed by its config
    ``k``): the chroma FINs' per-frame tuning estimate on ``sqrt(power)`` (no weights, no gradient). Key: the store's
    clips and labels layers, T, the tuning layers' configs and :data:`CACHE_VERSION`.

    Float32 only: 426 KB per clip (15.6 GB for the full study's 36,486 clips). Power spans ~1e-12 to ~1e6, past
    float16's range (max 65504) and through its subnormals, so float16 would need a rescaling that is not exact.
    """
    import keras

    from sefin_utils.layers import FrameClips, MaskedMean, MergeFrames, PowerSpectrum, SafeSqrt, SplitFrames

    root = cache_root(store) if root is True else (root or None)
    n, t = len(store.index), int(store.mask.shape[1])
    tunings = {_tuning_key(layer): layer for layer in tuning_layers}
    model: list[Any] = []

    def compute(span: tuple[int, int]) -> dict[str, np.ndarray]:
        if not model:
            clip_in = keras.Input(shape=(int(store.clips.shape[1]),), name="clip")
            mask_in = keras.Input(shape=(t,), name="mask")
            flat = PowerSpectrum()(MergeFrames()(FrameClips(n_frames=t)(clip_in)))
            outs = {"power": SplitFrames(t)(flat)}
            outs["power_mean"] = MaskedMean()([outs["power"], mask_in])
            mag = SafeSqrt()(flat)
            for k, layer in tunings.items():
                clone = type(layer).from_config(layer.get_config())
                outs[f"tuning_{k}"] = SplitFrames(t)(clone(mag))
            model.append(keras.Model({"clip": clip_in, "mask": mask_in}, outs))
        a, b = span
        x = {"clip": np.asarray(store.clips[a:b], "float32"), "mask": np.asarray(store.mask[a:b], "float32")}
        out = model[0].predict(x, batch_size=batch_size, verbose=0)
        return {k: np.asarray(v, "float32") for k, v in out.items()}

    arrays = {"power": ((n, t, N_BINS), "float32"), "power_mean": ((n, N_BINS), "float32")}
    for k, layer in tunings.items():
        arrays[f"tuning_{k}"] = ((n, t, len(layer.tunings)), "float32")
    return _arrays(
        store, "spectra", {"frames": t, "tunings": sorted(tunings)}, arrays, compute, root=root, progress=progress
    )


# --------------------------------------------------------------------------------------------------------------------
# end-to-end models on cached inputs


LINEAR_LAYERS: tuple[str, ...] = ("FilterBank", "PositiveDense", "FixedScale")
"""Layers that are linear in their input (``x @ f(W)``, ``x * s``): a FIN made only of these after its power spectrum
commutes with the masked mean over frames (``mean_t(P_t) @ W == mean_t(P_t @ W)``; a clip without real frames gives 0
both ways), so with mean pooling it runs once per clip on ``power_mean`` instead of once per frame."""


def _consumers(model: Any, tensor: Any) -> list[Any]:
    return [
        node.operation
        for op in model.operations
        for node in op._inbound_nodes
        if any(t is tensor for t in node.input_tensors)
    ]


def fin_front(fin: Any) -> str:
    """How the cached path feeds FIN ``fin`` (a ``keras.Model``, raw frames in): ``"linear"`` (a power spectrum then
    only :data:`LINEAR_LAYERS`), ``"spectral"`` (every use of the frame is a 2048-point ``layers.PowerSpectrum``) or
    ``"frames"`` (anything else, e.g. rms and zcr: the raw frames, framed from the clip inside the model)."""
    from sefin_utils.layers import PowerSpectrum

    users = _consumers(fin, fin.inputs[0])
    if not users or not all(isinstance(u, PowerSpectrum) and u.n_fft == FRAME_LENGTH for u in users):
        return "frames"
    rest = [op for op in fin.operations if type(op).__name__ not in ("InputLayer", "PowerSpectrum")]
    return "linear" if all(type(op).__name__ in LINEAR_LAYERS for op in rest) else "spectral"


def _spectral_submodel(wrapper: Any, name: str, per_frame: bool) -> tuple[Any, list[tuple[str, int]]]:
    """FIN ``wrapper`` re-wired to start at its power spectrum: a model sharing its layers (so training it trains the
    wrapper) whose inputs are ``power`` (b, 1025) and, per frame, the cached tuning weights of each
    ``layers.TuningWeights`` that reads ``SafeSqrt(power)``. Returns the model and its tuning keys."""
    import keras

    from sefin_utils.layers import PowerSpectrum, SafeSqrt, TuningWeights

    power = keras.Input((N_BINS,), name="power")
    tuning_inputs: dict[str, Any] = {}
    mags: list[Any] = []

    def call_fn(op: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(op, PowerSpectrum):
            return power
        if per_frame and isinstance(op, TuningWeights) and any(args[0] is m for m in mags):
            k = _tuning_key(op)
            if k not in tuning_inputs:
                tuning_inputs[k] = keras.Input((len(op.tunings),), name=f"tuning_{k}")
            return tuning_inputs[k]
        out = op(*args, **kwargs)
        if isinstance(op, SafeSqrt) and args[0] is power and op.tiny == SafeSqrt().tiny:
            mags.append(out)
        return out

    dummy = keras.Input((FRAME_LENGTH,), name="frame")
    out = wrapper._run_through_graph(dummy, operation_fn=lambda op: op, call_fn=call_fn)
    keys = sorted(tuning_inputs)
    sub = keras.Model([power, *(tuning_inputs[k] for k in keys)], out, name=f"fin_{name}_on_power")
    return sub, [(k, int(tuning_inputs[k].shape[-1])) for k in keys]


def tuning_layers(fins: Mapping[str, Any]) -> list[Any]:
    """The ``layers.TuningWeights`` inside the given FINs (one per distinct config), for :func:`spectra`."""
    from sefin_utils.layers import TuningWeights

    found: dict[str, Any] = {}
    for fin in fins.values():
        for op in fin.operations:
            if isinstance(op, TuningWeights):
                found.setdefault(_tuning_key(op), op)
    return list(found.values())


def build_cached_end_to_end(
    *,
    fins: Mapping[str, Any],
    sources: Mapping[str, str],
    fin_trainable: bool,
    head: str,
    n_classes: int,
    norm_mean: np.ndarray,
    norm_var: np.ndarray,
    fin_init: str = "pretrained",
    seed: int = 0,
    n_frames: int | None = None,
    clip_samples: int | None = None,
    dropout: float | None = None,
    name: str = "e2e_cached",
) -> tuple[Any, dict[str, Any]]:
    """The mean-pooling end-to-end model of ``classifiers.build_end_to_end`` (same arguments, same FIN clones and
    seeds, same standardisation and head layers by name), fed by cached arrays instead of the clip.

    Inputs: ``power`` (b, T, 1025) for per-frame spectral FINs (:func:`fin_front`), ``tuning_<k>`` (b, T, K) for
    their tuning estimates, ``power_mean`` (b, 1025) for linear ones (applied once per clip: exact, see
    :data:`LINEAR_LAYERS`), ``clip`` (b, samples) for the others (framed in the model as before), ``mask`` (b, T), and
    ``<feature>_mean`` (b, dim), the masked-mean librosa labels of each librosa-sourced feature. Per feature the
    masked mean is taken, the parts concatenated in the composition's order (``pooled_vector``), standardised
    (``standardize``) and classified (``classifiers.build_head``).

    Returns the model and ``{feature: FIN wrapper}`` (the ``fin_<feature>`` models of ``build_end_to_end``, whose
    weights training changes): :func:`copy_into_end_to_end` moves everything into a full model.
    """
    import keras

    from sefin_utils.classifiers import build_head, clone_fin
    from sefin_utils.constants import CLIP_SAMPLES, N_FRAMES
    from sefin_utils.features import FEATURES, KAGGLE
    from sefin_utils.layers import FrameClips, MaskedMean, MergeFrames, SplitFrames

    t = int(n_frames or N_FRAMES)
    composition = KAGGLE
    composition.check_sources(sources)
    inputs: dict[str, Any] = {"mask": keras.Input((t,), name="mask")}
    flat: dict[str, Any] = {}

    def flat_input(key: str, shape: tuple[int, ...]) -> Any:
        if key not in flat:
            inputs[key] = keras.Input((t, *shape), name=key)
            flat[key] = MergeFrames(name=f"flat_{key}")(inputs[key])
        return flat[key]

    wrappers: dict[str, Any] = {}
    pooled: dict[str, Any] = {}
    for i, fname in enumerate(composition.features):
        dim = FEATURES[fname].dim
        if sources[fname] == "librosa":
            key = f"{fname}_mean"
            inputs[key] = keras.Input((dim,), name=key)
            pooled[fname] = inputs[key]
            continue
        clone = clone_fin(fins[fname], init=fin_init, seed=seed * 31 + i)
        wrapper = keras.Model(clone.input, clone.output, name=f"fin_{fname}")
        wrapper.trainable = bool(fin_trainable)
        wrappers[fname] = wrapper
        front = fin_front(wrapper)
        if front == "frames":
            if "frames" not in flat:
                inputs["clip"] = keras.Input((int(clip_samples or CLIP_SAMPLES),), name="clip")
                flat["frames"] = MergeFrames(name="flat_frames")(FrameClips(n_frames=t, name="frames")(inputs["clip"]))
            per_frame = SplitFrames(t, name=f"frames_{fname}")(wrapper(flat["frames"]))
            pooled[fname] = MaskedMean(name=f"masked_mean_{fname}")([per_frame, inputs["mask"]])
            continue
        sub, keys = _spectral_submodel(wrapper, fname, per_frame=front == "spectral")
        sub.trainable = bool(fin_trainable)
        if front == "linear":
            if "power_mean" not in inputs:
                inputs["power_mean"] = keras.Input((N_BINS,), name="power_mean")
            pooled[fname] = sub(inputs["power_mean"])
            continue
        args = [flat_input("power", (N_BINS,))]
        for k, width in keys:
            args.append(flat_input(f"tuning_{k}", (width,)))
        per_frame = SplitFrames(t, name=f"frames_{fname}")(sub(args if len(args) > 1 else args[0]))
        pooled[fname] = MaskedMean(name=f"masked_mean_{fname}")([per_frame, inputs["mask"]])
    x = keras.layers.Concatenate(axis=-1, name="pooled_vector")([pooled[n] for n in composition.order])
    mean = np.asarray(norm_mean, dtype="float32").reshape(-1)
    var = np.asarray(norm_var, dtype="float32").reshape(-1)
    x = keras.layers.Normalization(mean=mean.tolist(), variance=var.tolist(), name="standardize")(x)
    out = build_head(x, head, n_classes, seed=seed, dropout=dropout)
    return keras.Model(inputs, out, name=name.replace("-", "")), wrappers


def copy_into_end_to_end(cached: Any, wrappers: Mapping[str, Any], full: Any) -> None:
    """Copy a trained :func:`build_cached_end_to_end` model into the ``classifiers.build_end_to_end`` model of the
    same arguments: each ``fin_<feature>`` from its wrapper, the standardisation and head layers by name.

    Raises ValueError when ``full`` lacks a layer to receive weights."""
    for fname, wrapper in wrappers.items():
        full.get_layer(f"fin_{fname}").set_weights(wrapper.get_weights())
    for layer in cached.layers:
        if layer.weights and not layer.name.startswith("fin_"):
            full.get_layer(layer.name).set_weights(layer.get_weights())


def cached_inputs(
    store: Any,
    rows: np.ndarray,
    input_names: Sequence[str],
    fins: Mapping[str, Any],
    *,
    root: str | Path | None | bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """The inputs of a :func:`build_cached_end_to_end` model for clip ``rows`` of ``store``: row views of the cached
    memmaps (``training.RowView``, read batch by batch) and the masked-mean librosa labels (in memory, small)."""
    from sefin_utils.classifiers import pooled_label_parts
    from sefin_utils.training import RowView

    rows = np.asarray(rows, dtype=np.int64)
    spec: dict[str, np.ndarray] = {}
    if any(n.startswith(("power", "tuning_")) for n in input_names):
        spec = spectra(store, tuning_layers(fins), root=root, progress=progress)
    labels = None
    out: dict[str, Any] = {}
    for name in input_names:
        if name == "clip":
            out[name] = RowView(store.clips, rows)
        elif name == "mask":
            out[name] = RowView(store.mask, rows)
        elif name in spec:
            out[name] = RowView(spec[name], rows)
        elif name.endswith("_mean"):
            labels = pooled_label_parts(store, rows) if labels is None else labels
            out[name] = np.ascontiguousarray(labels[name[: -len("_mean")]], dtype="float32")
        else:
            raise ValueError(f"no cached input named {name!r}")
    return out


def own_norm_stats(
    e2e_args: Mapping[str, Any], train_inputs: Mapping[str, Any], *, batch_size: int = 32, max_clips: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """``experiments.own_norm_stats`` on cached inputs: the standardisation statistics of the model's own pooled
    vectors (``pooled_vector``, built with identity statistics) on the same seeded subset of at most ``max_clips``
    train clips (``classifiers.norm_stats``)."""
    from sefin_utils.training import model_norm_stats

    dim = 162
    model, _ = build_cached_end_to_end(**e2e_args, norm_mean=np.zeros(dim), norm_var=np.ones(dim))
    seed = int(e2e_args.get("seed", 0))
    return model_norm_stats(model, "pooled_vector", train_inputs, seed=seed, batch_size=batch_size, max_clips=max_clips)


def assemble_end_to_end(
    cached: Any,
    wrappers: Mapping[str, Any],
    e2e_args: Mapping[str, Any],
    store: Any,
    val_rows: np.ndarray,
    val_inputs: Mapping[str, Any],
    *,
    n_check: int = 4,
    atol: float = 1e-4,
) -> Any:
    """The ``classifiers.build_end_to_end`` model (clip in) of ``e2e_args`` with the weights of ``cached`` (a trained
    :func:`build_cached_end_to_end` model), checked against it on the first ``n_check`` validation clips.

    Raises RuntimeError when they disagree by more than ``atol`` in any class probability."""
    from sefin_utils.classifiers import build_end_to_end, make_inputs

    full = build_end_to_end(**e2e_args)
    copy_into_end_to_end(cached, wrappers, full)
    k = min(n_check, len(val_rows))
    got = np.asarray(full(make_inputs(store, val_rows[:k], e2e_args["sources"], clip_mode="clip"), training=False))
    want = np.asarray(cached({n: np.asarray(v[:k], dtype="float32") for n, v in val_inputs.items()}, training=False))
    if not np.allclose(got, want, atol=atol):
        raise RuntimeError(
            f"{full.name}: the end-to-end model disagrees with the model trained on cached spectra "
            f"(max diff {np.abs(got - want).max():.2e})"
        )
    return full
