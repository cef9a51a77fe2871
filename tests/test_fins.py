"""FINs: study parameter counts, training moves the loss, save/load round trip, MACs budget, librosa units."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pandas as pd
import pytest

from sefin_utils import experiments, features, fins, study, training
from sefin_utils.constants import CLIP_SAMPLES, FRAME_LENGTH, HOP_LENGTH, N_FRAMES, SR

keras = pytest.importorskip("keras")

_KW = {"n_fft": FRAME_LENGTH, "hop_length": HOP_LENGTH, "center": False}


def librosa_labels(frame: np.ndarray) -> dict[str, np.ndarray]:
    """The five features of one frame, straight from librosa (chroma on |STFT|, as the study)."""
    f = np.ascontiguousarray(frame, dtype=np.float32)
    lk = {"frame_length": FRAME_LENGTH, "hop_length": HOP_LENGTH, "center": False}
    return {
        "rms": librosa.feature.rms(y=f, **lk)[:, 0],
        "zcr": librosa.feature.zero_crossing_rate(f, **lk)[:, 0],
        "chroma": librosa.feature.chroma_stft(S=np.abs(librosa.stft(f, **_KW)), sr=SR)[:, 0],
        "mfcc": librosa.feature.mfcc(y=f, sr=SR, n_mfcc=20, **_KW)[:, 0],
        "mel": librosa.feature.melspectrogram(y=f, sr=SR, **_KW)[:, 0],
    }


def synthetic_frames(n: int, seed: int = 0) -> np.ndarray:
    """Harmonic tones with noise at random levels, plus one all-zero frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAME_LENGTH) / SR
    out = np.zeros((n, FRAME_LENGTH), dtype=np.float32)
    for i in range(1, n):
        f0 = rng.uniform(100, 400)
        y = sum(rng.uniform(0.1, 1) / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6)) for h in range(1, 6))
        y = y + rng.uniform(0.001, 0.1) * rng.standard_normal(FRAME_LENGTH)
        out[i] = 10 ** rng.uniform(-3, 0) * y / np.max(np.abs(y))
    return out


@pytest.fixture(scope="module")
def tiny():
    frames = synthetic_frames(24)
    labels = [librosa_labels(f) for f in frames]
    y = {n: np.stack([lab[n] for lab in labels]).astype(np.float32) for n in features.FEATURE_NAMES}
    return frames, y


@pytest.fixture(scope="module")
def real_frames(sample_root):
    """About 60 real frames (incl. padding) from three files of the shared sample, with their librosa labels."""
    from sefin_utils import audio

    paths = pd.read_csv(sample_root / "manifest.csv").groupby("dataset").head(1)["path"].iloc[:3]
    frames = []
    for p in paths:
        clip = audio.load_clip(sample_root / p)
        fr = librosa.util.frame(clip.samples, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH, axis=0)
        frames.append(fr[::5])
    frames.append(np.zeros((1, FRAME_LENGTH), np.float32))  # a padding-only frame, as clips have
    frames = np.ascontiguousarray(np.concatenate(frames), dtype=np.float32)
    labels = [librosa_labels(f) for f in frames]
    return frames, {n: np.stack([lab[n] for lab in labels]) for n in features.FEATURE_NAMES}


@pytest.fixture(scope="module")
def built():
    """Every builder's model, built once: ``built[arch][name]``."""
    return {arch: {n: fins.build_fin(n, arch=arch) for n in features.FEATURE_NAMES} for arch in fins.ARCHS}


def test_study_parameter_counts_are_exact(built):
    for name, n_params in study.FIN_PARAMS.items():
        model = built["study"][name]
        assert model.count_params() == n_params, name
        assert model.output_shape == (None, features.FEATURES[name].dim)
        assert model.input_shape == (None, FRAME_LENGTH)


def test_fast_macs_at_most_a_tenth_of_the_study(built):
    study = sum(fins.count_macs(m) for m in built["study"].values())
    fast = sum(fins.count_macs(m) for m in built["fast"].values())
    assert study > 750e6  # 200-400 M per spectral FIN (stride-1 kernel-512 convolutions)
    assert fast * 10 <= study


def test_count_macs_by_hand():
    inp = keras.Input((FRAME_LENGTH,))
    x = keras.layers.Reshape((FRAME_LENGTH, 1))(inp)
    x = keras.layers.Conv1D(4, 16, strides=4)(x)  # 509 steps
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3)(x)
    assert fins.count_macs(keras.Model(inp, out)) == 509 * 16 * 4 + 509 * 4 * 3


def _perturb(model: keras.Model, rng: np.random.Generator) -> None:
    for w in model.trainable_weights:
        v = np.asarray(w.numpy())
        w.assign(
            (v * np.exp(0.3 * rng.standard_normal(v.shape)) + 0.01 * rng.standard_normal(v.shape) * (v != 0)).astype(
                "float32"
            )
        )


@pytest.mark.parametrize("arch", ["fast", "study"])
@pytest.mark.parametrize("name", features.FEATURE_NAMES)
def test_each_fin_trains_and_its_loss_falls(tiny, name, arch):
    frames, y = tiny
    heavy = arch == "study" and name in ("chroma", "mfcc", "mel")  # 200-400 M MACs per frame
    n = 4 if heavy else len(frames)
    x, t = frames[:n], y[name][:n]
    keras.utils.set_random_seed(1)
    stats = fins.TargetStats.fit(name, t)
    model = fins.build_fin(name, arch=arch, target_stats=stats if arch == "study" else None)
    if arch == "fast":  # start away from librosa's formula so there is something to learn
        _perturb(model, np.random.default_rng(0))
    train = training.training_model(model, stats)
    train.compile(optimizer=keras.optimizers.Adam(3e-3 if arch == "fast" else 1e-3), loss="mse")
    z = stats.forward(t)
    losses = [float(train.train_on_batch(x, z)) for _ in range(3 if heavy else 6)]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], (name, arch, losses)


def test_train_fin_runs_end_to_end(tiny):
    frames, y = tiny
    model, hist = training.train_fin(
        "rms", frames[:16], y["rms"][:16], frames[16:], y["rms"][16:], epochs=2, batch_size=8, verbose=0
    )
    assert hist["epochs_run"] >= 1 and len(hist["epoch_s"]) == hist["epochs_run"]
    assert hist["best_val_loss"] <= hist["initial_val_loss"]
    pred = model.predict(frames, verbose=0)
    np.testing.assert_allclose(pred, y["rms"], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("arch", ["fast", "study"])
def test_saved_fin_reloads_with_plain_load_model(tmp_path, tiny, arch):
    frames, y = tiny
    for name in features.FEATURE_NAMES if arch == "fast" else ("rms", "mel"):
        stats = fins.TargetStats.fit(name, y[name])
        model = fins.build_fin(name, arch=arch, target_stats=stats if arch == "study" else None)
        path = fins.save_fin(model, tmp_path / f"{name}.keras", {"feature": name})
        again = keras.models.load_model(path)
        x = frames[:6]
        np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
        assert json.loads(path.with_suffix(".json").read_text())["feature"] == name
    assert set(fins.load_fins(tmp_path)) == ({*features.FEATURE_NAMES} if arch == "fast" else {"rms", "mel"})


def test_fast_fins_output_librosa_units_on_real_frames(real_frames, built):
    from sefin_utils.metrics import r2_scores

    frames, y = real_frames
    floor = {"rms": 0.9999, "zcr": 0.95, "chroma": 0.9, "mfcc": 0.9999, "mel": 0.9999}
    for name in features.FEATURE_NAMES:
        pred = built["fast"][name].predict(frames, verbose=0)
        assert pred.shape == y[name].shape
        assert r2_scores(y[name], pred)["r2"] > floor[name], name
    mel = built["fast"]["mel"].predict(frames, verbose=0)
    np.testing.assert_allclose(mel, y["mel"], rtol=2e-3, atol=1e-6 * y["mel"].max())


def test_fast_mel_peaks_at_the_sine_band(built):
    t = np.arange(FRAME_LENGTH) / SR
    freq = 1000.0
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]
    mel = built["fast"]["mel"].predict(x, verbose=0)[0]
    centres = librosa.mel_frequencies(n_mels=fins.N_MELS + 2, fmax=SR / 2)[1:-1]
    assert abs(centres[np.argmax(mel)] - freq) < 60
    a440 = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None]
    assert built["fast"]["chroma"].predict(a440, verbose=0)[0].argmax() == 9  # A


def test_target_transform_round_trips():
    rng = np.random.default_rng(0)
    y = np.abs(rng.standard_normal((50, 128))).astype(np.float32) ** 3
    stats = fins.TargetStats.fit("mel", y)
    assert stats.kind == "log"
    np.testing.assert_allclose(stats.inverse(stats.forward(y)), y, rtol=1e-4, atol=1e-8)
    fwd = np.asarray(stats.layer(inverse=False)(y))
    np.testing.assert_allclose(fwd, stats.forward(y), rtol=1e-4, atol=1e-4)
    back = np.asarray(stats.layer(inverse=True)(fwd))
    np.testing.assert_allclose(back, y, rtol=1e-3, atol=1e-7)


class FakeStore:
    """A minimal ClipStore: a few clips of tones with padding, labels from librosa."""

    def __init__(self, n: int = 6, seed: int = 0):
        rng = np.random.default_rng(seed)
        t = np.arange(CLIP_SAMPLES) / SR
        clips = np.zeros((n, CLIP_SAMPLES), dtype=np.float32)
        mask = np.zeros((n, N_FRAMES), dtype=bool)
        for i in range(n):
            stop = CLIP_SAMPLES - int(rng.integers(0, 20_000))
            f0 = rng.uniform(120, 300)
            clips[i, :stop] = 0.3 * np.sin(2 * np.pi * f0 * t[:stop]) + 0.01 * rng.standard_normal(stop)
            mask[i] = np.arange(N_FRAMES) * HOP_LENGTH < stop
        self.clips, self.mask = clips, mask
        self.labels = {name: np.zeros((n, N_FRAMES, f.dim), np.float32) for name, f in features.FEATURES.items()}
        lk = {"frame_length": FRAME_LENGTH, "hop_length": HOP_LENGTH, "center": False}
        for i in range(n):
            self.labels["rms"][i] = librosa.feature.rms(y=clips[i], **lk).T
            self.labels["zcr"][i] = librosa.feature.zero_crossing_rate(clips[i], **lk).T
        split = ["train", "train", "train", "val", "test", "ood"][:n]
        self.index = pd.DataFrame(
            {"clip_id": [f"c{i}" for i in range(n)], "split": split, "augmentation": "orig", "corpus": "X"}
        )

    def select(self, *, split=None, augmentation=None):
        keep = np.ones(len(self.index), bool)
        if split is not None:
            keep &= (self.index["split"] == split).to_numpy()
        if augmentation is not None:
            keep &= (self.index["augmentation"] == augmentation).to_numpy()
        return np.flatnonzero(keep)


@pytest.fixture(scope="module")
def store():
    return FakeStore()


def test_frames_dataset_frames_on_the_fly(store):
    rows = store.select(split="train")
    ds = training.frames_dataset(store, rows, "rms", batch_size=32, shuffle=True, seed=3, pad_keep=0.0)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert len(x) == store.mask[rows].sum()  # every real frame once, no padding-only frame
    np.testing.assert_allclose(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1)), y[:, 0], rtol=1e-4, atol=1e-7)
    ds_all = training.frames_dataset(store, rows, "rms", batch_size=32, shuffle=False, pad_keep=1.0)
    assert sum(len(b[0]) for b in ds_all) == len(rows) * N_FRAMES
    r, f = training.frame_index(store.mask[rows], pad_keep=1.0)
    np.testing.assert_array_equal(
        training.gather_frames(store.clips, rows[r[:3]], f[:3])[1], store.clips[rows[0], 512:2560]
    )


def test_train_all_saves_fins_cards_and_table(tmp_path, store):
    res = experiments.train_all(store, tmp_path, arch="fast", epochs=1, features=["rms", "zcr"], verbose=0)
    table = res["table"]
    assert list(table["feature"]) == ["rms", "zcr"]
    for col in ("params", "macs", "r2_test", "r2_vw_test", "r2_ood", "r2_vw_ood", "study_r2_test", "epoch_s"):
        assert col in table.columns, col
    assert (table["r2_test"] > 0.9).all()
    card = fins.read_card(tmp_path / "rms.keras")
    assert card["params"] == table.loc[0, "params"] and card["data"]["train"]["clips"] == 3
    assert card["data"]["ood"]["corpora"] == ["X"] and card["training"]["epochs_run"] == 1
    loaded = fins.load_fins(tmp_path)
    assert set(loaded) == {"rms", "zcr"} and (tmp_path / "metrics.csv").is_file()


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown FIN 'pitch'"):
        fins.build_fin("pitch")
    with pytest.raises(ValueError, match="unknown FIN arch"):
        fins.build_fin("rms", arch="slow")
    with pytest.raises(ValueError, match=r"\(n, 2048\)"):
        training.train_fin("rms", np.zeros((4, 100)), np.zeros((4, 1)), np.zeros((4, 2048)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="strategy"):
        training.get_strategy("tpu")


def test_frame_starts_match_the_feature_framing():
    from sefin_utils import features

    y = np.random.default_rng(0).standard_normal(CLIP_SAMPLES).astype(np.float32)
    for tail in (False, True):
        want = features.frame(y, tail_frames=tail)
        starts = training.frame_starts(CLIP_SAMPLES, len(want))
        got = training.gather_frames(y[None], np.zeros(len(want), np.int64), np.arange(len(want)), starts=starts)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="do not fit"):
        training.frame_starts(CLIP_SAMPLES, 50)


def test_fast_random_init_is_seeded_and_far_from_librosa(tiny):
    frames, y = tiny
    a = fins.build_fin("mel", init="random", seed=1).predict(frames, verbose=0)
    b = fins.build_fin("mel", init="random", seed=1).predict(frames, verbose=0)
    c = fins.build_fin("mel").predict(frames, verbose=0)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 10 * np.abs(c - y["mel"]).max()
    with pytest.raises(ValueError, match="init"):
        fins.build_fin("mel", init="zeros")


def test_fft_front_end_equals_the_trainable_dense_dft(tiny):
    frames, _ = tiny
    fft = fins.build_fin("mel")
    dense = fins.build_fin("mel", trainable_dft=True)
    assert not any("dft" in w.path for w in fft.weights)
    assert {"dft_re", "dft_im"} <= {layer.name for layer in dense.layers if layer.trainable_weights}
    a, b = fft.predict(frames, verbose=0), dense.predict(frames, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6 * float(a.max()))
    assert fins.count_macs(dense) > 20 * fins.count_macs(fft)
