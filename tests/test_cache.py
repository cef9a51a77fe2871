"""Clip store: rows and shapes, skipped files, masks, reuse, invalidation, resume after a crash or a kill."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sefin_utils import audio, augment, cache, features
from sefin_utils.constants import CLIP_SAMPLES, N_FRAMES, SR

REPO = Path(__file__).resolve().parents[1]

# (name, seconds, rate, channels, split): 3 s+ signals fill the window, 1.5 s is padded, one 16 kHz, one stereo.
_SPECS = [
    ("a", 3.4, SR, 1, "train"),
    ("b", 1.5, SR, 1, "train"),
    ("c", 3.2, 16_000, 1, "train"),
    ("d", 3.6, SR, 2, "val"),
    ("e", 3.3, SR, 1, "test"),
    ("f", 3.1, 16_000, 1, "ood"),
]
N_TRAIN = 3
N_CLIPS = 3 * N_TRAIN + 3  # orig + 2 copies per train recording, orig only otherwise


def _signal(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 40 * seed
    voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    y = 0.3 * voiced + 0.01 * rng.standard_normal(t.shape)
    return np.stack([y, 0.8 * y], axis=1) if channels == 2 else y


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Six generated WAVs and one corrupt file, as a splits DataFrame."""
    root = tmp_path_factory.mktemp("wavs")
    rows = []
    for i, (name, seconds, rate, channels, split) in enumerate(_SPECS):
        path = root / f"{name}.wav"
        sf.write(path, _signal(seconds, rate, channels, i), rate)
        rows.append((f"GEN/{name}", str(path), split, "GEN", f"GEN:{i % 3}", ["angry", "sad", "happy"][i % 3]))
    bad = root / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    rows.append(("GEN/bad", str(bad), "train", "GEN", "GEN:9", "angry"))
    return pd.DataFrame(rows, columns=["recording_id", "path", "split", "corpus", "speaker_key", "emotion"])


@pytest.fixture(scope="module")
def built(corpus: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> cache.ClipStore:
    return cache.build(corpus, tmp_path_factory.mktemp("cache"), params={}, workers=1, progress=False)


class Counter:
    """Wrap a function and count its calls."""

    def __init__(self, fn):  # noqa: ANN001
        self.fn, self.calls = fn, 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def counters(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter]:
    """Count clip loads, frame-label and summary calls (workers=1 computes in this process)."""
    out = {
        "load": Counter(cache._load_clip),
        "labels": Counter(features.frame_labels),
        "summary": Counter(features.summary_vector),
    }
    monkeypatch.setattr(cache, "_load_clip", out["load"])
    monkeypatch.setattr(features, "frame_labels", out["labels"])
    monkeypatch.setattr(features, "summary_vector", out["summary"])
    return out


def _arrays(store: cache.ClipStore) -> dict[str, np.ndarray]:
    out = {"clips": np.asarray(store.clips), "summary": np.asarray(store.summary), "mask": np.asarray(store.mask)}
    out.update({f"labels_{k}": np.asarray(v) for k, v in store.labels.items()})
    return out


def _files(root: Path) -> dict[str, int]:
    """Every file under root (except locks) with its mtime."""
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts
    }


# ----------------------------------------------------------------------------------------------------------------
def test_rows_shapes_and_copies(built: cache.ClipStore, corpus: pd.DataFrame) -> None:
    idx = built.index
    assert list(idx.columns) == list(cache.INDEX_COLUMNS)
    assert len(idx) == N_CLIPS and idx["clip_id"].is_unique
    assert built.clips.shape == (N_CLIPS, CLIP_SAMPLES) and built.clips.dtype == np.float32
    for f in features.FEATURES.values():
        assert built.labels[f.name].shape == (N_CLIPS, N_FRAMES, f.dim) and built.labels[f.name].dtype == np.float32
    assert built.summary.shape == (N_CLIPS, 162) and built.mask.shape == (N_CLIPS, N_FRAMES)
    assert built.mask.dtype == np.bool_
    # copies: the train recordings only, with the source's split, recording id and valid range
    counts = idx.groupby("recording_id")["augmentation"].apply(list).to_dict()
    for rid, split in corpus.set_index("recording_id")["split"].items():
        if rid == "GEN/bad":
            continue
        expected = ["orig", "noise", "stretch_pitch"] if split == "train" else ["orig"]
        assert counts[rid] == expected
        rows = idx[idx["recording_id"] == rid]
        assert set(rows["split"]) == {split} and set(rows["source"]) == {rid}
        assert rows[["valid_start", "valid_stop"]].drop_duplicates().shape[0] == 1
    assert (idx.loc[idx["augmentation"] != "orig", "split"] == "train").all()
    # the stored clips are exactly load_clip + augment
    path_a = corpus.set_index("recording_id").loc["GEN/a", "path"]
    clip = audio.load_clip(path_a)
    rows = idx.index[idx["recording_id"] == "GEN/a"]
    np.testing.assert_array_equal(built.clips[rows[0]], clip.samples)
    np.testing.assert_array_equal(
        built.clips[rows[1]], augment.augment(clip.samples, "noise", seed_key=(0, "GEN/a"), valid=clip.valid)
    )
    # labels and summary are the features module's values
    ref = features.frame_labels(np.asarray(built.clips[rows[2]]))  # pins BLAS itself, as in the cache
    for name, values in ref.items():
        np.testing.assert_array_equal(built.labels[name][rows[2]], values)
    v0, v1 = clip.valid
    np.testing.assert_allclose(built.summary[rows[0]], features.summary_vector(clip.samples[v0:v1]), rtol=1e-6)
    np.testing.assert_array_equal(
        built.select(split="train", augmentation="orig"),
        idx.index[(idx["split"] == "train") & (idx["augmentation"] == "orig")].to_numpy(),
    )
    assert len(built.select(split=["val", "test"])) == 2


def test_bad_file_is_recorded_not_silent(built: cache.ClipStore) -> None:
    sk = built.skipped
    assert list(sk.columns) == list(cache.SKIPPED_COLUMNS)
    assert sk["recording_id"].tolist() == ["GEN/bad"]
    assert sk["path"].iloc[0].endswith("bad.wav") and sk["reason"].iloc[0]
    assert "GEN/bad" not in set(built.index["recording_id"])


def test_mask_of_short_padded_clip(built: cache.ClipStore) -> None:
    idx = built.index
    for i in idx.index[idx["recording_id"] == "GEN/b"]:  # 1.5 s: centred in 2.5 s of zeros
        v0, v1 = int(idx.at[i, "valid_start"]), int(idx.at[i, "valid_stop"])
        assert 0 < v0 and v1 < CLIP_SAMPLES and v1 - v0 == round((1.5 - 0.6) * SR)  # after the 0.6 s offset
        mask = np.asarray(built.mask[i])
        np.testing.assert_array_equal(mask, audio.valid_frame_mask((v0, v1), CLIP_SAMPLES))
        assert not mask[0] and not mask[-1] and mask.sum() < N_FRAMES
        assert not np.any(built.clips[i, :v0]) and not np.any(built.clips[i, v1:])  # copies keep padding silent
    full = idx.index[idx["recording_id"] == "GEN/a"][0]
    assert built.mask[full].all()


def test_second_build_reads_back(built: cache.ClipStore, corpus: pd.DataFrame, counters: dict[str, Counter]) -> None:
    root = built.path.parent
    before = _files(root)
    again = cache.build(corpus, root, params={"unrelated": 1}, workers=1, progress=False)
    assert again.path == built.path
    assert all(c.calls == 0 for c in counters.values())
    assert _files(root) == before
    for k, v in _arrays(built).items():
        np.testing.assert_array_equal(_arrays(again)[k], v)
    reopened = cache.open_store(built.path)
    pd.testing.assert_frame_equal(reopened.index, built.index)


def test_tuning_change_recomputes_labels_only(
    built: cache.ClipStore, corpus: pd.DataFrame, counters: dict[str, Counter]
) -> None:
    root = built.path.parent
    fixed = cache.build(corpus, root, params={"tuning": 0.0}, workers=1, progress=False)
    assert fixed.path != built.path
    assert fixed.layers["clips"] == built.layers["clips"] and fixed.layers["summary"] == built.layers["summary"]
    assert fixed.layers["labels"] != built.layers["labels"]
    assert counters["load"].calls == 0 and counters["summary"].calls == 0
    assert counters["labels"].calls == N_CLIPS
    np.testing.assert_array_equal(fixed.labels["mel"], built.labels["mel"])
    assert not np.array_equal(fixed.labels["chroma"], built.labels["chroma"])
    # a metadata-only change (emotion relabel) rewrites the index only
    relabelled = corpus.assign(emotion="neutral")
    store = cache.build(relabelled, root, params={}, workers=1, progress=False)
    assert counters["load"].calls == 0 and counters["labels"].calls == N_CLIPS
    assert set(store.index["emotion"]) == {"neutral"} and store.layers == built.layers


def test_tail_frames_param(built: cache.ClipStore, corpus: pd.DataFrame) -> None:
    store = cache.build(
        corpus, built.path.parent, params={"tail_frames": True, "features": ["rms", "mfcc"]}, workers=1, progress=False
    )
    assert list(store.labels) == ["rms", "mfcc"]
    assert store.labels["mfcc"].shape == (N_CLIPS, N_FRAMES + features.TAIL_FRAMES, 20)
    assert store.mask.shape == (N_CLIPS, N_FRAMES + features.TAIL_FRAMES)
    np.testing.assert_array_equal(store.labels["rms"][:, :N_FRAMES], built.labels["rms"])


def test_interrupted_labels_resume(
    built: cache.ClipStore, corpus: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(layer: str, n_done: int) -> None:
        if layer == "labels" and n_done == 2:
            raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(cache, "_after_chunk", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.build(corpus, tmp_path, params={}, workers=1, progress=False, label_chunk=2)
    assert len(list(tmp_path.glob("clips-*[!l]"))) == 1  # clips and summary finished
    assert not [p for p in tmp_path.glob("labels-*") if not p.name.endswith(".partial")]  # no half-made layer
    assert len(list(tmp_path.glob("labels-*.partial/done/*.json"))) == 2
    monkeypatch.undo()
    counters = {"labels": Counter(features.frame_labels), "load": Counter(cache._load_clip)}
    monkeypatch.setattr(features, "frame_labels", counters["labels"])
    monkeypatch.setattr(cache, "_load_clip", counters["load"])
    store = cache.build(corpus, tmp_path, params={}, workers=1, progress=False, label_chunk=2)
    assert counters["load"].calls == 0 and counters["labels"].calls == N_CLIPS - 4
    assert not list(tmp_path.glob("*.partial"))
    for k, v in _arrays(built).items():
        np.testing.assert_array_equal(_arrays(store)[k], v, err_msg=k)


def test_killed_process_resumes(
    built: cache.ClipStore, corpus: pd.DataFrame, tmp_path: Path, counters: dict[str, Counter]
) -> None:
    """SIGKILL (no cleanup at all) after two chunks: a rerun keeps them and computes only the rest."""
    csv = tmp_path / "splits.csv"
    corpus.to_csv(csv, index=False)
    params = {"augmentations": ["noise"], "features": ["rms"]}  # light: the subprocess needs no librosa.effects
    script = textwrap.dedent(f"""
        import os, signal, pandas as pd
        from sefin_utils import cache
        cache._FLUSH_EVERY_S = 0.0
        def die(layer, n_done):
            if layer == "clips" and n_done == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        cache._after_chunk = die
        cache.build(pd.read_csv({str(csv)!r}), {str(tmp_path / "c")!r}, params={params!r}, workers=1,
                    progress=False, clip_chunk=1)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    partial = list((tmp_path / "c").glob("clips-*.partial"))
    assert len(partial) == 1 and not list((tmp_path / "c").glob("clips-*[!l]"))
    assert len(list(partial[0].glob("done/*.json"))) == 2
    store = cache.build(corpus, tmp_path / "c", params=params, workers=1, progress=False, clip_chunk=1)
    assert counters["load"].calls == len(corpus) - 2
    assert not list((tmp_path / "c").glob("*.partial"))
    # the same rows as the full in-process build (a recording's copies do not depend on the other params)
    rows = built.index.index[built.index["augmentation"].isin(["orig", "noise"])].to_numpy()
    pd.testing.assert_frame_equal(store.index, built.index.iloc[rows].reset_index(drop=True))
    np.testing.assert_array_equal(store.clips, built.clips[rows])
    np.testing.assert_array_equal(store.labels["rms"], built.labels["rms"][rows])
    np.testing.assert_array_equal(store.summary, built.summary[rows])


def test_two_workers_equal_one(built: cache.ClipStore, corpus: pd.DataFrame, tmp_path: Path) -> None:
    """A pool gives the same rows as the in-process build, and a recording's rows do not depend on the others."""
    subset = corpus[corpus["recording_id"].isin(["GEN/a", "GEN/b", "GEN/d"])]
    store = cache.build(subset, tmp_path, params={}, workers=2, progress=False, clip_chunk=1, label_chunk=2)
    rows = built.index.index[built.index["recording_id"].isin(subset["recording_id"])].to_numpy()
    pd.testing.assert_frame_equal(store.index, built.index.iloc[rows].reset_index(drop=True))
    np.testing.assert_array_equal(store.clips, built.clips[rows])  # augmentation does not depend on order or process
    np.testing.assert_array_equal(store.mask, built.mask[rows])
    # workers and the in-process build both use single-threaded BLAS: bit-identical labels and summaries
    np.testing.assert_array_equal(store.summary, built.summary[rows])
    for name, values in built.labels.items():
        np.testing.assert_array_equal(store.labels[name], values[rows], err_msg=name)


def test_augment_params(corpus: pd.DataFrame, tmp_path: Path) -> None:
    params = {"augmentations": ["noise"], "augment_splits": ["train", "val"], "features": ["rms"]}
    store = cache.build(corpus, tmp_path, params=params, workers=1, progress=False)
    assert len(store) == 2 * (N_TRAIN + 1) + 2
    assert set(store.index.loc[store.index["augmentation"] == "noise", "split"]) == {"train", "val"}
    other_seed = cache.build(corpus, tmp_path, params={**params, "seed": 1}, workers=1, progress=False)
    noisy = store.select(augmentation="noise")
    assert not np.array_equal(store.clips[noisy], other_seed.clips[noisy])
    np.testing.assert_array_equal(
        store.clips[store.select(augmentation="orig")], other_seed.clips[other_seed.select(augmentation="orig")]
    )


def test_errors(corpus: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown names"):
        cache.build(corpus, tmp_path, params={"augmentations": ["reverb"]}, workers=1, progress=False)
    with pytest.raises(ValueError, match="lacks columns"):
        cache.build(corpus.drop(columns="split"), tmp_path, params={}, workers=1, progress=False)
    with pytest.raises(RuntimeError, match="no recording could be loaded"):
        cache.build(corpus[corpus["recording_id"] == "GEN/bad"], tmp_path, params={}, workers=1, progress=False)
    with pytest.raises(FileNotFoundError, match="not a clip store"):
        cache.open_store(tmp_path)


def test_real_sample_files(sample_root: Path, tmp_path: Path) -> None:
    manifest = pd.read_csv(sample_root / "manifest.csv")
    picked = manifest.groupby("dataset").head(1)
    df = pd.DataFrame(
        {
            "recording_id": picked["path"],
            "path": [str(sample_root / p) for p in picked["path"]],
            "split": ["train"] + ["test"] * (len(picked) - 1),
            "emotion": picked["emotion"],
            "corpus": picked["dataset"],
            "speaker_key": picked["dataset"] + ":" + picked["speaker"].astype(str),
        }
    )
    store = cache.build(df, tmp_path, params={"features": ["rms", "mel"]}, workers=1, progress=False)
    assert store.skipped.empty and len(store) == len(df) + 2
    assert np.isfinite(store.summary).all() and np.isfinite(store.labels["mel"]).all()
    for i, (v0, v1) in enumerate(store.index[["valid_start", "valid_stop"]].itertuples(index=False)):
        np.testing.assert_array_equal(store.mask[i], audio.valid_frame_mask((v0, v1), CLIP_SAMPLES))
        assert store.mask[i].sum() > 0


def test_compaction_is_crash_safe(tmp_path: Path) -> None:
    """Dropping skipped rows can be interrupted at any step and finished by a rerun."""
    full = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    keep = np.array([0, 2, 4])
    np.save(tmp_path / "clips.npy", full)
    cache._compact(tmp_path, "clips", keep)
    np.testing.assert_array_equal(np.load(tmp_path / "clips.npy"), full[keep])
    assert not (tmp_path / "compact").exists()
    # killed after the compacted copy was complete but before the swap: the rerun swaps it in
    np.save(tmp_path / "clips.npy", full)
    (tmp_path / "compact").mkdir()
    np.save(tmp_path / "compact" / "clips.npy", full[keep])
    (tmp_path / "compact" / "DONE").write_text("")
    cache._compact(tmp_path, "clips", keep)
    np.testing.assert_array_equal(np.load(tmp_path / "clips.npy"), full[keep])
    # killed after the swap, before the cleanup: the rerun must not compact twice
    (tmp_path / "compact").mkdir()
    (tmp_path / "compact" / "DONE").write_text("")
    cache._compact(tmp_path, "clips", keep)
    np.testing.assert_array_equal(np.load(tmp_path / "clips.npy"), full[keep])
    # killed while copying (no DONE): the half copy is discarded and redone from the untouched source
    np.save(tmp_path / "clips.npy", full)
    (tmp_path / "compact").mkdir()
    (tmp_path / "compact" / "clips.npy").write_bytes(b"half")
    cache._compact(tmp_path, "clips", keep)
    np.testing.assert_array_equal(np.load(tmp_path / "clips.npy"), full[keep])
