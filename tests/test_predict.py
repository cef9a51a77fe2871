"""Predict bundle and CLI: sample-rate/channel invariance, folders, bad files in a batch, round trips, formats."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from sefin_utils import audio, features
from sefin_utils.constants import CLIP_SAMPLES, OFFSET_S, SR, class_names
from sefin_utils.inference import (
    BundleError,
    EmotionClassifier,
    Prediction,
    WindowPrediction,
    load_bundle,
    save_bundle,
    window_starts,
)
from sefin_utils.predict import CSV_TAIL, NoBundleError, collect_audio_files, find_latest_bundle, main, predict_paths

keras = pytest.importorskip("keras")

CLASSES = class_names("class")
OFF = int(round(OFFSET_S * SR))


# ------------------------------------------------------------------------------------------------------ helpers
def speechlike(seconds: float, *, f0: float = 140.0, seed: int = 0, sr: int = SR, cutoff: float = 7000.0) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic signal plus noise, band-limited below ``cutoff`` Hz."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 40) if k * f0 * 1.1 < cutoff)
    y = y * (0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t + seed)) + 0.05 * rng.standard_normal(n)
    spec = np.fft.rfft(y)
    spec[np.fft.rfftfreq(n, 1 / sr) > cutoff] = 0  # no content near Nyquist: resampling round trips are ~exact
    y = np.fft.irfft(spec, n)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype="FLOAT" if path.suffix.lower() == ".wav" else None)
    return path


def tiny_summary_model(seed: int = 0) -> keras.Model:
    """Normalization (adapted on a few summary vectors) + Dense softmax over the 162-vector."""
    rng = np.random.default_rng(seed)
    vecs = np.stack([features.summary_vector(speechlike(1.5, f0=f0, seed=i)) for i, f0 in enumerate((90, 150, 260))])
    norm = keras.layers.Normalization(mean=vecs.mean(0), variance=vecs.var(0) + 1e-3, name="summary_norm")
    inp = keras.Input((162,), name="summary")
    out = keras.layers.Dense(len(CLASSES), activation="softmax", name="probs")(norm(inp))
    model = keras.Model({"summary": inp}, out, name="tiny_baseline")  # named dict input, as ser.build_baseline
    w, b = model.get_layer("probs").get_weights()
    model.get_layer("probs").set_weights([0.3 * rng.standard_normal(w.shape).astype("float32"), b])
    return model


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "demo"
    return save_bundle(
        run / "model",
        classifier=tiny_summary_model(),
        kind="summary",
        classes=CLASSES,
        preprocess={"calm": "class"},
        card={"metrics": {"test": {"macro_f1": 0.5}}, "data": {"corpora": ["synthetic"]}},
    )


@pytest.fixture(scope="module")
def clf(bundle_dir: Path) -> EmotionClassifier:
    return EmotionClassifier.from_bundle(bundle_dir)


def probs(p: Prediction) -> np.ndarray:
    return np.array([p.probabilities[c] for c in CLASSES])


# ------------------------------------------------------------------------------------------------------ windows
def test_window_rule_covers_the_file_on_a_fixed_grid() -> None:
    w, step = CLIP_SAMPLES, int(round(0.5 * CLIP_SAMPLES))
    assert window_starts(2 * SR) == [0]  # shorter than a window: one padded window from 0
    assert window_starts(w) == [0]
    assert window_starts(3 * SR) == [0, step]  # < offset + window: no 0.6 s skip, all of the audio covered
    assert window_starts(OFF + w) == [OFF]  # exactly offset + window: the training clip
    assert window_starts(3 * SR, rule="study") == [OFF]  # the training rule keeps the offset
    assert window_starts(OFF + 1000, rule="study") == [0]  # ... unless less than a frame remains (audio.window)
    for n in (OFF + w + 1, 3 * SR + 5, 5 * SR, 11 * SR + 17, OFF + w + step + 2000):
        starts = window_starts(n)
        origin = OFF if n >= OFF + w else 0
        assert starts == [origin + k * step for k in range(len(starts))]  # a fixed grid from the origin
        assert starts[-1] + w >= n - 2048 and (len(starts) == 1 or starts[-2] + w < n)  # covers the file, minimal
        assert n - starts[-1] >= 2048  # every window holds at least one frame of audio
        assert window_starts(n + 1)[: len(starts) - 1] == starts[:-1]  # one more sample moves no window
    assert window_starts(OFF + 2 * w + 100, hop=2.5) == [OFF, OFF + w]  # a 100-sample tail is not worth a window
    assert len(window_starts(10 * SR, hop=0.5)) > len(window_starts(10 * SR))  # hop is a parameter
    with pytest.raises(ValueError, match="hop"):
        window_starts(10 * SR, hop=3.0)


def test_long_file_is_scored_over_windows_and_averaged(tmp_path: Path, clf: EmotionClassifier) -> None:
    y = np.concatenate([speechlike(3.0, f0=100, seed=1), speechlike(4.0, f0=300, seed=2)])
    p = clf.classify_file(write(tmp_path / "long.wav", y))
    assert len(p.windows) == len(window_starts(len(y))) >= 3
    assert p.windows[0].start_s == pytest.approx(OFFSET_S)
    assert p.windows[-1].end_s == pytest.approx(len(y) / SR)
    per = np.array([[w.probabilities[c] for c in CLASSES] for w in p.windows])
    np.testing.assert_allclose(probs(p), per.mean(0), rtol=1e-12)
    np.testing.assert_allclose(per.sum(1), 1.0, atol=1e-5)
    assert p.emotion == CLASSES[int(np.argmax(probs(p)))]
    assert np.abs(per[0] - per[-1]).max() > 1e-3  # windows of different content are scored differently
    # the first window is the training clip of this (long) file, and the model input is the cache's summary vector
    clips, valid, _ = clf.windows(y)
    train = audio.window(y)
    np.testing.assert_array_equal(clips[0], train.samples)
    v0, v1 = train.valid
    x = clf.model_inputs(clips[:1], valid[:1])["summary"]
    np.testing.assert_allclose(x[0], features.summary_vector(train.samples[v0:v1]))


def test_short_file_is_padded_as_in_training(tmp_path: Path, clf: EmotionClassifier) -> None:
    y = speechlike(1.2, seed=3)
    p = clf.classify_file(write(tmp_path / "short.wav", y))
    assert len(p.windows) == 1 and p.windows[0].start_s == 0.0
    clips, valid, _ = clf.windows(y)
    ref = audio.window(y, offset=0.0)  # centred zero padding, all of the audio kept
    np.testing.assert_array_equal(clips[0], ref.samples)
    assert valid[0] == ref.valid and valid[0][1] - valid[0][0] == len(y)


# ------------------------------------------------------------------------------------------------------ invariance
def _rate_channel_pair(tmp_path: Path, y22: np.ndarray) -> tuple[Path, Path]:
    mono = write(tmp_path / "mono22k.wav", y22, SR)
    y48 = soxr.resample(y22, SR, 48_000, quality="HQ").astype(np.float32)
    stereo = write(tmp_path / "stereo48k.wav", np.stack([y48, y48], axis=1), 48_000)
    assert sf.info(stereo).channels == 2 and sf.info(stereo).samplerate == 48_000
    return mono, stereo


# Tolerance: 22,050 -> 48,000 -> 22,050 Hz with soxr HQ is not bit-exact (filter ripple and phase, ~1e-4 of peak
# for content well below Nyquist). Measured on the real sample's 16 kHz-sourced files, the 162 summary features then
# move by at most ~0.002 of their spread across recordings, i.e. after the model's Normalization layer; this tiny
# model maps that to ~1e-4 in probability. 2e-3 leaves 10x headroom yet would catch any real mismatch (a wrong rate
# or channel handling moves probabilities by >0.05 here).
PROB_ATOL = 2e-3


def test_48k_stereo_equals_22k_mono(tmp_path: Path, clf: EmotionClassifier) -> None:
    y22 = speechlike(4.0, seed=5)
    mono, stereo = _rate_channel_pair(tmp_path, y22)
    a, b = clf.classify_file(mono), clf.classify_file(stereo)
    assert a.emotion == b.emotion and len(a.windows) == len(b.windows)
    np.testing.assert_allclose(probs(a), probs(b), atol=PROB_ATOL)
    assert a.duration_s == pytest.approx(b.duration_s, abs=1 / SR)
    # the same check through classify_signal (stereo array at 48 kHz)
    y48, _ = sf.read(stereo, dtype="float32")
    np.testing.assert_array_equal(probs(clf.classify_signal(y22, SR)), probs(a))  # no resampling: identical
    np.testing.assert_array_equal(probs(clf.classify_signal(y48, 48_000)), probs(b))  # resampled as audio.load
    # and a wrong rate would be caught: the same samples declared as 48 kHz give other probabilities
    wrong = write(tmp_path / "wrong_rate.wav", y22, 48_000)
    assert np.abs(probs(clf.classify_file(wrong)) - probs(a)).max() > 10 * PROB_ATOL


def test_48k_stereo_equals_22k_mono_real_speech(tmp_path: Path, clf: EmotionClassifier, sample_root: Path) -> None:
    src = sorted((sample_root / "CREMA-D").rglob("*.wav"))[0]  # 16 kHz source: no content near 11 kHz
    mono, stereo = _rate_channel_pair(tmp_path, audio.load(src))
    a, b = clf.classify_file(mono), clf.classify_file(stereo)
    assert a.emotion == b.emotion
    np.testing.assert_allclose(probs(a), probs(b), atol=PROB_ATOL)


def test_file_alone_equals_file_in_folder(tmp_path: Path, clf: EmotionClassifier) -> None:
    folder = tmp_path / "mine"
    target = write(folder / "sub" / "b.WAV", speechlike(3.3, seed=7))
    write(folder / "a.wav", speechlike(2.0, seed=8))
    write(folder / "c.flac", speechlike(6.0, seed=9))
    (folder / "notes.txt").write_text("not audio")
    write(folder / ".hidden.wav", speechlike(1.0, seed=10))
    found = [p for p, _ in collect_audio_files([folder])]
    assert [Path(p).name for p in found] == ["a.wav", "c.flac", "b.WAV"]  # sorted, recursive, no txt/hidden
    alone = predict_paths([target], clf)[0]
    batch = {Path(p.path).name: p for p in predict_paths([folder], clf)}
    assert batch["b.WAV"].emotion == alone.emotion
    np.testing.assert_array_equal(probs(batch["b.WAV"]), probs(alone))  # bit-identical
    assert [w.probabilities for w in batch["b.WAV"].windows] == [w.probabilities for w in alone.windows]


# ------------------------------------------------------------------------------------------------------ bad input
def _bad_files(folder: Path) -> dict[str, str]:
    """Write unusable files; return name -> a word the error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "garbage.wav").write_bytes(b"this is not a wav file at all" * 10)
    (folder / "clip.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(64))
    write(folder / "silent.wav", np.zeros(SR, np.float32))
    write(folder / "tiny.wav", speechlike(0.05, seed=11))
    good = write(folder / "truncated.wav", speechlike(2.0, seed=12))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])  # header still declares the full data chunk
    nan = speechlike(1.0, seed=13)
    nan[100] = np.nan
    write(folder / "nan.wav", nan)
    return {
        "empty.wav": "empty",
        "garbage.wav": "unreadable",
        "clip.m4a": "unreadable",
        "silent.wav": "silent",
        "tiny.wav": "too short",
        "truncated.wav": "truncated",
        "nan.wav": "nan",
    }


def test_bad_files_never_stop_a_batch(tmp_path: Path, bundle_dir: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "batch"
    write(folder / "good1.wav", speechlike(2.7, seed=14))
    sf.write(folder / "z_good2.flac", speechlike(3.0, seed=15), 16_000)
    bad = _bad_files(folder / "bad")
    missing = tmp_path / "does_not_exist.wav"
    (tmp_path / "empty_dir").mkdir()
    code = main([str(folder), str(missing), str(tmp_path / "empty_dir"), "--model", str(bundle_dir), "--json"])
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 1
    assert "predict: 100%" in captured.err and "9 of 11 file(s) could not be scored" in captured.err  # bar, summary
    by_name = {Path(r["path"]).name: r for r in out}
    for name, word in bad.items():
        r = by_name[name]
        assert r["emotion"] is None and r["probabilities"] == {}
        assert word in r["error"].lower() and name in r["error"], r["error"]
    assert "no such file" in by_name["does_not_exist.wav"]["error"]
    assert "no audio files" in by_name["empty_dir"]["error"]
    good = [r for r in out if r["error"] is None]
    assert {Path(r["path"]).name for r in good} >= {"good1.wav"}
    for r in good:
        assert r["emotion"] in CLASSES and sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    # all good: exit code 0
    assert main([str(folder / "good1.wav"), "--model", str(bundle_dir), "--json"]) == 0


# ------------------------------------------------------------------------------------------------------ bundle
def test_bundle_round_trip(tmp_path: Path, bundle_dir: Path) -> None:
    model = tiny_summary_model(seed=3)
    out = save_bundle(
        tmp_path / "runs" / "p" / "model",
        classifier=model,
        kind="summary",
        classes=CLASSES,
        card={"metrics": {"macro_f1": 0.1}},
    )
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "classifier.keras", "preprocess.json"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dir left
    b = load_bundle(out)
    pre = json.loads((out / "preprocess.json").read_text())
    assert pre["classes"] == CLASSES and pre["sr"] == SR and pre["clip_samples"] == CLIP_SAMPLES
    assert pre["offset_rule"] == "fit" and pre["window_hop"] == pytest.approx(1.25)
    assert pre["standardisation"] == {"in_model": True, "layers": ["summary_norm"], "trained_raw": False}
    assert b.card["created"] and b.card["sefin_version"] and b.card["metrics"] == {"macro_f1": 0.1}
    x = {"summary": np.random.default_rng(0).normal(size=(5, 162)).astype("float32") * 10 + 1}
    np.testing.assert_array_equal(np.asarray(b.classifier(x)), np.asarray(model(x)))
    # the classifier from the loaded bundle scores a signal like the in-memory model
    y = speechlike(3.0, seed=16)
    direct = EmotionClassifier(b).classify_signal(y, SR)
    clips, valid, _ = EmotionClassifier(b).windows(y)
    x = EmotionClassifier(b).model_inputs(clips, valid)
    np.testing.assert_allclose(probs(direct), np.asarray(model(x)).mean(0), rtol=1e-6)
    assert EmotionClassifier.from_run(out.parent).classes == CLASSES
    # replacing a bundle is atomic and leaves the new one
    save_bundle(out, classifier=tiny_summary_model(seed=4), kind="summary", classes=CLASSES)
    assert not np.array_equal(np.asarray(load_bundle(out).classifier(x)), np.asarray(model(x)))
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]


def test_bundle_with_separate_fins(tmp_path: Path) -> None:
    fin = keras.Sequential([keras.Input((2048,)), keras.layers.Dense(1)], name="rms_fin")
    out = save_bundle(
        tmp_path / "model", classifier=tiny_summary_model(), kind="summary", classes=CLASSES, fins={"rms": fin}
    )
    b = load_bundle(out, load_fins=True)
    assert (out / "fins" / "rms.keras").is_file() and b.preprocess["fins"] == ["rms"]
    x = np.ones((2, 2048), "float32")
    np.testing.assert_array_equal(np.asarray(b.fins["rms"](x)), np.asarray(fin(x)))


def test_bundle_refuses_inconsistent_models(tmp_path: Path, bundle_dir: Path) -> None:
    inp = keras.Input((162,))
    raw = keras.Model(inp, keras.layers.Dense(len(CLASSES), activation="softmax")(inp))
    with pytest.raises(ValueError, match="no Normalization layer"):
        save_bundle(tmp_path / "m1", classifier=raw, kind="summary", classes=CLASSES)
    with pytest.raises(ValueError, match="8 outputs but 7 classes"):
        save_bundle(tmp_path / "m2", classifier=tiny_summary_model(), kind="summary", classes=class_names("neutral"))
    with pytest.raises(ValueError, match="sources"):
        save_bundle(tmp_path / "m3", classifier=tiny_summary_model(), kind="end_to_end", classes=CLASSES)
    assert not (tmp_path / "m1").exists() and not list(tmp_path.glob(".m*"))  # nothing half-written
    with pytest.raises(BundleError, match="no such bundle folder"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "classifier.keras").write_bytes(b"")
    with pytest.raises(BundleError, match="incomplete bundle, preprocess.json is missing"):
        load_bundle(tmp_path / "partial")


# ------------------------------------------------------------------------------------------------------ CLI output
def test_json_csv_and_table_formats(tmp_path: Path, bundle_dir: Path, capsys: pytest.CaptureFixture) -> None:
    f = write(tmp_path / "voice.wav", speechlike(5.0, seed=17))
    assert main([str(f), "--model", str(bundle_dir), "--json", "--windows"]) == 0
    (rec,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"path", "emotion", "probabilities", "error", "windows", "duration_s", "n_windows"} <= set(rec)
    assert rec["path"] == str(f) and rec["error"] is None and list(rec["probabilities"]) == CLASSES
    assert rec["emotion"] == max(rec["probabilities"], key=rec["probabilities"].get)
    assert len(rec["windows"]) == rec["n_windows"] == len(window_starts(5 * SR))
    assert {"start_s", "end_s", "emotion", "probabilities"} <= set(rec["windows"][0])

    assert main([str(f), "--model", str(bundle_dir), "--csv", "--windows"]) == 0
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["path", "window", "start_s", "end_s", "emotion", *CLASSES, *CSV_TAIL]
    assert CSV_TAIL[0] == "error" and rows[0]["windows_used"] == str(rec["n_windows"]) and rows[0]["warning"] == ""
    assert rows[0]["window"] == "all" and [r["window"] for r in rows[1:]] == [str(i) for i in range(len(rows) - 1)]
    assert float(rows[0][rec["emotion"]]) == pytest.approx(rec["probabilities"][rec["emotion"]], abs=1e-6)

    assert main([str(f), str(tmp_path / "nope.wav"), "--model", str(bundle_dir)]) == 1
    table = capsys.readouterr().out
    assert all(c in table.splitlines()[0] for c in CLASSES) and rec["emotion"] in table
    assert "ERROR" in table and "nope.wav" in table
    assert main(["--json", "--csv", str(f)]) == 2  # usage error
    assert main(["--model", str(tmp_path / "missing"), str(f)]) == 2
    assert "cannot load the model bundle" in capsys.readouterr().err


def test_no_bundle_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import sefin_utils.predict as predict_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEFIN_RUNS", raising=False)
    monkeypatch.setattr(predict_module, "REPO_RUNS", tmp_path / "repo_runs")  # the checkout may hold real runs
    monkeypatch.setattr(predict_module, "SHIPPED_MODEL", tmp_path / "no-shipped-model")
    f = write(tmp_path / "v.wav", speechlike(1.0))
    assert main([str(f)]) == 2
    err = capsys.readouterr().err
    assert "no trained model bundle found" in err and "python -m sefin_utils run" in err and "--model" in err


def test_default_bundle_is_the_newest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundle_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = tmp_path / "runs"
    for name, created in (
        ("old", "2026-01-01T00:00:00+00:00"),
        ("new", "2026-06-01T00:00:00+00:00"),
        ("older", "2025-01-01T00:00:00+00:00"),
    ):
        save_bundle(
            runs / name / "model",
            classifier=tiny_summary_model(),
            kind="summary",
            classes=CLASSES,
            card={"created": created},
        )
    (runs / "broken" / "model").mkdir(parents=True)  # no card: an interrupted run is not a candidate
    assert find_latest_bundle(runs) == runs / "new" / "model"
    import sefin_utils.predict as predict_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEFIN_RUNS", raising=False)
    monkeypatch.setattr(predict_module, "REPO_RUNS", tmp_path / "repo_runs")
    shipped = tmp_path / "shipped"
    save_bundle(shipped, classifier=tiny_summary_model(), kind="summary", classes=CLASSES, card={"created": "2000"})
    monkeypatch.setattr(predict_module, "SHIPPED_MODEL", shipped)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no runs/ here, none in the (patched) repository
    assert find_latest_bundle() == shipped  # no local run: the shipped classifier
    with pytest.raises(NoBundleError):
        find_latest_bundle(tmp_path / "empty")  # an explicit folder never falls back
    monkeypatch.chdir(tmp_path)
    assert find_latest_bundle() == Path.cwd() / "runs" / "new" / "model"  # any local run wins over the shipped one
    save_bundle(
        tmp_path / "repo_runs" / "x" / "model",
        classifier=tiny_summary_model(),
        kind="summary",
        classes=CLASSES,
        card={"created": "2026-07-01T00:00:00+00:00"},
    )
    assert find_latest_bundle() == tmp_path / "repo_runs" / "x" / "model"  # the repository's runs/ count too
    monkeypatch.setenv("SEFIN_RUNS", str(bundle_dir.parent.parent))
    assert find_latest_bundle() == bundle_dir
    f = write(tmp_path / "v.wav", speechlike(1.0))
    assert main([str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["emotion"] in CLASSES


def test_plot_probabilities(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from sefin_utils.plots.predict import plot_probabilities

    p = dict(zip(CLASSES, np.full(len(CLASSES), 1 / len(CLASSES)), strict=True)) | {"happy": 0.3}
    preds = [
        Prediction("a.wav", "happy", p, windows=[WindowPrediction(0.0, 2.5, p)]),
        Prediction.failed("b.wav", "b.wav: all-silent audio"),
    ]
    fig = plot_probabilities(preds, path=tmp_path / "fig" / "p.png")
    assert (tmp_path / "fig" / "p.png").stat().st_size > 1000
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    bars = fig.axes[0].patches
    assert len(bars) == len(CLASSES) and max(b.get_width() for b in bars) == pytest.approx(0.3)


def test_cli_dispatch(tmp_path: Path, bundle_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from sefin_utils.__main__ import main as cli

    f = write(tmp_path / "v.wav", speechlike(1.5))
    assert cli(["predict", str(f), "--model", str(bundle_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(f)
    assert cli(["predict", "--help"]) == 0
    assert "--windows" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------ real models
def test_ser_baseline_bundle(tmp_path: Path) -> None:
    ser = pytest.importorskip("sefin_utils.classifiers")
    model = ser.build_baseline("kaggle", len(CLASSES), norm_mean=np.zeros(162), norm_var=np.ones(162), seed=1)
    out = save_bundle(tmp_path / "model", classifier=model, kind="summary", classes=CLASSES)
    assert load_bundle(out).preprocess["standardisation"]["layers"] == ["standardize"]
    raw = ser.build_baseline("kaggle", len(CLASSES), standardize=False)  # the study's flaw, trained raw by design
    std = load_bundle(save_bundle(tmp_path / "raw", classifier=raw, kind="summary", classes=CLASSES)).preprocess
    assert std["standardisation"] == {"in_model": False, "layers": [], "trained_raw": True}
    y = speechlike(3.0, seed=20)
    clf = EmotionClassifier.from_bundle(out)
    clips, valid, _ = clf.windows(y)
    expected = np.asarray(model(clf.model_inputs(clips, valid), training=False)).mean(0)
    np.testing.assert_allclose(probs(clf.classify_signal(y, SR)), expected, rtol=1e-5, atol=1e-7)


def test_end_to_end_bundle(tmp_path: Path) -> None:
    ser = pytest.importorskip("sefin_utils.classifiers")

    def tiny_fin(name: str, dim: int) -> keras.Model:  # functional, like fins.build_fin
        inp = keras.Input((2048,), name="frame")
        return keras.Model(inp, keras.layers.Dense(dim, name=f"{name}_out")(inp), name=f"{name}_fin")

    fins = {name: tiny_fin(name, dim) for name, dim in (("rms", 1), ("zcr", 1))}
    sources = {"rms": "fin", "zcr": "fin", "chroma": "librosa", "mfcc": "librosa", "mel": "librosa"}
    model = ser.build_end_to_end(
        fins=fins,
        sources=sources,
        fin_trainable=False,
        head="kaggle",
        n_classes=len(CLASSES),
        norm_mean=np.zeros(162),
        norm_var=np.ones(162),
        seed=2,
    )
    out = save_bundle(
        tmp_path / "runs" / "e2e" / "model",
        classifier=model,
        kind="end_to_end",
        classes=CLASSES,
        preprocess={"sources": sources},
    )
    clf = EmotionClassifier.from_run(out.parent)
    assert clf.kind == "end_to_end" and clf.bundle.preprocess["sources"] == sources
    y = speechlike(1.5, seed=21)  # shorter than a window: padding, and the mask marks only real frames
    clips, valid, _ = clf.windows(y)
    x = clf.model_inputs(clips, valid)
    assert set(x) == {"clip", "mask", "chroma", "mfcc", "mel"} and x["mel"].shape == (1, 104, 128)
    mask = x["mask"][0].astype(bool)
    assert 0 < mask.sum() < 104 and mask.tolist() == audio.valid_frame_mask(valid[0], CLIP_SAMPLES).tolist()
    p = clf.classify_signal(y, SR)
    np.testing.assert_allclose(probs(p), np.asarray(model(x, training=False))[0], rtol=1e-5, atol=1e-7)
    mono, stereo = _rate_channel_pair(tmp_path, speechlike(3.4, seed=22))
    a, b = clf.classify_file(mono), clf.classify_file(stereo)
    assert a.emotion == b.emotion and len(a.windows) == 2
    np.testing.assert_allclose(probs(a), probs(b), atol=PROB_ATOL)


def test_classify_signal_validates_like_load(clf: EmotionClassifier) -> None:
    for y, word in (
        (np.zeros(SR, np.float32), "silent"),
        (np.array([], np.float32), "empty"),
        (np.full(SR, np.nan, np.float32), "NaN"),
        (speechlike(0.05), "too short"),
    ):
        with pytest.raises(ValueError, match=word):
            clf.classify_signal(y, SR, path="mine")
    stereo = np.stack([speechlike(2.0), speechlike(2.0)])  # (channels, n) is accepted too
    np.testing.assert_array_equal(probs(clf.classify_signal(stereo, SR)), probs(clf.classify_signal(stereo.T, SR)))


def test_predict_inputs_equal_the_training_cache(tmp_path: Path, clf: EmotionClassifier) -> None:
    """The study rule reproduces the cache's clip, mask, summary vector and end-to-end inputs exactly; the default
    rule does too for files at least offset + window long (its first window)."""
    cache = pytest.importorskip("sefin_utils.cache")
    ser = pytest.importorskip("sefin_utils.classifiers")
    y_long = speechlike(4.0, seed=30)
    y48 = soxr.resample(y_long, SR, 48_000, quality="HQ").astype(np.float32)
    files = {
        "long48k": write(tmp_path / "long48k.wav", np.stack([y48, y48], 1), 48_000),  # stereo, resampled on load
        "mid": write(tmp_path / "mid.wav", speechlike(2.9, seed=31)),
        "short": write(tmp_path / "short.wav", speechlike(1.4, seed=32)),
    }
    df = pd.DataFrame(
        {
            "recording_id": list(files),
            "path": [str(p) for p in files.values()],
            "split": "test",
            "emotion": "happy",
            "corpus": "x",
            "speaker_key": "x:1",
        }
    )
    store = cache.build(df, tmp_path / "cache", params={"augmentations": []}, workers=1, progress=False)
    study = EmotionClassifier(clf.bundle, offset_rule="study")
    sources = {"rms": "fin", "zcr": "librosa", "chroma": "librosa", "mfcc": "librosa", "mel": "librosa"}
    for i, rid in enumerate(store.index["recording_id"]):
        y = audio.load(files[rid])
        clips, valid, _ = study.windows(y)
        np.testing.assert_array_equal(clips[0], store.clips[i])
        assert valid[0] == (store.index["valid_start"][i], store.index["valid_stop"][i])
        mask = audio.valid_frame_mask(valid[0], CLIP_SAMPLES)
        np.testing.assert_array_equal(mask, store.mask[i])
        np.testing.assert_allclose(
            study.model_inputs(clips[:1], valid[:1])["summary"][0], store.summary[i], rtol=1e-6, atol=1e-7
        )
        mine = ser.inputs_from_clips(clips[:1], mask[None].astype(np.float32), sources, progress=False)
        theirs = ser.make_inputs(store, [i], sources)
        for k in theirs:
            np.testing.assert_allclose(mine[k], theirs[k], rtol=1e-5, atol=1e-6, err_msg=k)
        fit_clips, _, starts = clf.windows(y)
        if len(y) >= OFF + CLIP_SAMPLES:
            assert rid == "long48k" and starts[0] == OFF
            np.testing.assert_array_equal(fit_clips[0], store.clips[i])
        else:
            assert starts[0] == 0  # the default rule keeps the start of short recordings


def test_startup_noise_holds_back_tensorflows_import_lines_only() -> None:
    from sefin_utils import console

    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796696217.176613   10923 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        "E0000 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
    )
    kept, dropped = console.startup_noise(text)
    assert dropped == 2 and kept == "E0000 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"


def test_predict_command_answers_with_the_shipped_model_and_no_tensorflow_startup_lines(sample_root: Path) -> None:
    """What a user sees right after set-up: the shipped model's answer, and on stderr only which model answered."""
    import subprocess
    import sys

    from sefin_utils import console

    repo = Path(__file__).resolve().parents[1]
    wav = sorted(sample_root.rglob("*.wav"))[0]
    out = subprocess.run(
        [sys.executable, "-m", "sefin_utils", "predict", "--model", str(repo / "models" / "sefin-ser"), str(wav)],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert out.returncode == 0, out.stderr
    assert wav.name in out.stdout and "surprise" in out.stdout  # the table names the file and every class
    assert not any(s in out.stderr for s in console.STARTUP_LINES), out.stderr
    assert out.stderr.strip().splitlines() == [f"model: {repo / 'models' / 'sefin-ser'} (end_to_end, 8 classes)"]
