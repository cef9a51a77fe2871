"""Issue 11 on the predict side: silence inside recordings, long files streamed, formats, file names, placeholders
and bundles trained on generated data. Generated inputs only (written into tmp_path)."""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sefin_utils import audio
from sefin_utils.constants import SR, class_names
from sefin_utils.inference import GENERATED_WARNING, EmotionClassifier, save_bundle
from sefin_utils.predict import format_table, main, predict_paths, write_csv

keras = pytest.importorskip("keras")
from test_predict import speechlike, tiny_summary_model  # noqa: E402

CLASSES = class_names("class")
REPO = Path(__file__).resolve().parents[1]


def write(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), y, sr, subtype=subtype, format="WAV")
    return path


def probs(p) -> np.ndarray:  # noqa: ANN001
    return np.array([p.probabilities[c] for c in CLASSES])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    real = save_bundle(root / "real" / "model", classifier=tiny_summary_model(seed=5), kind="summary",
                       classes=CLASSES, card={"data": {"generated": False}})  # fmt: skip
    card = {"data": {"data_root": "generated demo corpus", "generated": True}}
    gen = save_bundle(root / "gen" / "model", classifier=tiny_summary_model(seed=5), kind="summary",
                      classes=CLASSES, card=card)  # fmt: skip
    return {"real": real, "gen": gen}


@pytest.fixture(scope="module")
def clf(bundles: dict[str, Path]) -> EmotionClassifier:
    return EmotionClassifier.from_bundle(bundles["real"])


# ---------------------------------------------------------------------------------------------- 5. silence
def test_trailing_digital_silence_does_not_vote(tmp_path: Path, clf: EmotionClassifier) -> None:
    utterance = speechlike(3.4, seed=40)
    alone = clf.classify_file(write(tmp_path / "alone.wav", utterance))
    padded = clf.classify_file(write(tmp_path / "padded.wav", np.concatenate([utterance, np.zeros(10 * SR, "f4")])))
    assert padded.emotion == alone.emotion
    assert np.abs(probs(padded) - probs(alone)).max() < 0.1
    assert len(padded.windows) == len(alone.windows) and padded.duration_s == pytest.approx(13.4, abs=1e-3)
    assert any("10.0 s of digital silence" in n for n in padded.notes) and not alone.notes
    # a window half speech, half zeros: only its speech is summarised (like padding), so it scores like the speech
    leading = clf.classify_file(write(tmp_path / "lead.wav", np.concatenate([np.zeros(5 * SR, "f4"), utterance])))
    assert leading.n_skipped >= 1 and leading.emotion == alone.emotion
    assert all(w.sound_s >= 2048 / SR for w in leading.windows)


def test_silence_inside_and_windows_reported(tmp_path: Path, clf: EmotionClassifier,
                                            capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    y = np.concatenate([speechlike(2.0, seed=41), np.zeros(8 * SR, "f4"), speechlike(2.0, seed=42)])
    path = write(tmp_path / "gap.wav", y)
    p = clf.classify_file(path)
    assert p.n_skipped >= 3 and len(p.windows) >= 2
    assert main([str(path), "--model", str(clf.bundle.path), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["n_windows"] == len(p.windows) and rec["n_windows_skipped"] == p.n_skipped
    table = format_table([p], CLASSES)
    assert f"{len(p.windows)}+{p.n_skipped}s" in table and "digital silence" in table


def test_no_usable_window_is_a_per_file_error(tmp_path: Path, clf: EmotionClassifier) -> None:
    flat = write(tmp_path / "dc.wav", np.full(3 * SR, 0.25, "f4"))  # a stuck converter: constant, not silent
    good = write(tmp_path / "good.wav", speechlike(2.0, seed=43))
    out = {Path(p.path).name: p for p in predict_paths([flat, good], clf)}
    assert out["good.wav"].ok and out["dc.wav"].error is not None
    assert "no usable window" in out["dc.wav"].error and "dc.wav" in out["dc.wav"].error


def test_silent_training_window_is_skipped_with_a_reason(tmp_path: Path) -> None:
    late = write(tmp_path / "late.wav", np.concatenate([np.zeros(4 * SR, "f4"), speechlike(1.0, seed=44)]))
    with pytest.raises(audio.AudioError, match="digital silence") as info:
        audio.load_clip(late)
    assert info.value.kind == "silent window" and str(late) in str(info.value)
    cache = pytest.importorskip("sefin_utils.cache")
    ok = write(tmp_path / "ok.wav", speechlike(3.0, seed=45))
    df = pd.DataFrame({"recording_id": ["late", "ok"], "path": [str(late), str(ok)], "split": "train",
                       "emotion": "happy", "corpus": "x", "speaker_key": "x:1"})  # fmt: skip
    store = cache.build(df, tmp_path / "cache", params={"augmentations": []}, workers=1, progress=False)
    assert list(store.index["recording_id"]) == ["ok"]
    assert "digital silence" in " ".join(map(str, store.skipped["reason"]))


# ---------------------------------------------------------------------------------------------- 9. long files
def test_streamed_file_equals_the_signal(tmp_path: Path, clf: EmotionClassifier) -> None:
    y48 = np.concatenate([speechlike(5.0, seed=46 + k, sr=48_000) for k in range(3)])
    path = write(tmp_path / "long48k.wav", np.stack([y48, y48], 1), 48_000)
    small_blocks = EmotionClassifier(clf.bundle, block_s=2.3)  # blocks shorter than a window
    streamed = small_blocks.classify_file(path)
    whole = clf.classify_signal(audio.load(path), SR)
    assert len(streamed.windows) == len(whole.windows) >= 10
    np.testing.assert_allclose(probs(streamed), probs(whole), atol=1e-6)


# ---------------------------------------------------------------------------------------------- 1, 4, 6 in predict
def test_predict_reads_what_audio_reads_and_says_so(tmp_path: Path, clf: EmotionClassifier) -> None:
    y = speechlike(3.0, seed=47)
    folder = tmp_path / "inbox"
    write(folder / "inverted.wav", np.stack([y, -y], 1), subtype="PCM_16")
    mono = write(tmp_path / "mono.wav", y, subtype="PCM_16")
    stale = write(folder / "stale.wav", y, subtype="PCM_16")
    data = bytearray(stale.read_bytes())
    data[data.index(b"data") + 4 : data.index(b"data") + 8] = struct.pack("<I", 0)
    stale.write_bytes(bytes(data))
    import av

    with av.open(str(folder / "memo.m4a"), "w") as c:
        s = c.add_stream("aac", rate=SR)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="fltp", layout="mono")
        frame.sample_rate = SR
        for pkt in [*s.encode(frame), *s.encode(None)]:
            c.mux(pkt)
    (folder / "notes.txt").write_text("what I said")
    (folder / ".DS_Store").write_bytes(b"\x00")
    lfs = folder / "clip.wav"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 100\n")
    out = {Path(p.path).name: p for p in predict_paths([folder], clf)}
    assert set(out) == {"inverted.wav", "stale.wav", "memo.m4a", "notes.txt", ".DS_Store", "clip.wav"}
    np.testing.assert_array_equal(probs(out["inverted.wav"]), probs(clf.classify_file(mono)))
    assert "cancel" in out["inverted.wav"].notes[0]
    assert out["stale.wav"].ok and "stale WAV header" in out["stale.wav"].notes[0]
    assert out["memo.m4a"].ok and out["memo.m4a"].emotion in CLASSES
    assert out["notes.txt"].skipped == "not an audio file (.txt)" and out[".DS_Store"].skipped == "hidden file"
    assert "git lfs pull" in out["clip.wav"].error


# ---------------------------------------------------------------------------------------------- 7. file names
def test_latin1_names_in_table_and_csv(tmp_path: Path, bundles: dict[str, Path], monkeypatch) -> None:  # noqa: ANN001
    """The CLI on a strict UTF-8 stdout (a desktop locale's): the table shows an escape, the CSV the exact bytes."""
    name = os.fsdecode(b"r\xe9union.wav")
    folder = tmp_path / os.fsdecode(b"enregistr\xe9")
    write(folder / name, speechlike(2.0, seed=48))
    outputs = []
    for fmt in ([], ["--csv"], ["--json"]):
        raw = io.BytesIO()
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", errors="strict"))
        assert main([str(folder), "--model", str(bundles["real"]), "--no-progress", *fmt]) == 0
        sys.stdout.flush()
        outputs.append(raw.getvalue())
    monkeypatch.undo()
    table, csv_bytes, json_bytes = outputs
    assert b"r\\xe9union.wav" in table  # readable escape in the table
    rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8", "surrogateescape"))))
    assert os.fsencode(rows[1][0]) == os.fsencode(folder / name)  # the exact bytes in the CSV
    assert os.fsencode(json.loads(json_bytes)["path"]) == os.fsencode(folder / name)  # and in JSON (\udce9)


@pytest.mark.parametrize("locale", ["C", "C.UTF-8", "en_US.UTF-8"])
def test_latin1_names_print_under_any_locale(tmp_path: Path, locale: str) -> None:
    """The output functions under each locale in a fresh interpreter (stdout set up by the locale)."""
    path = os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9union.wav")
    code = (
        "import sys; from sefin_utils import audio; from sefin_utils.inference import Prediction; "
        "from sefin_utils.predict import format_table, write_csv, write_json; audio.safe_output(sys.stdout); "
        "p = Prediction(sys.argv[1], 'happy', {'happy': 1.0}, notes=('caf\\u00e9 note',)); "
        "print(format_table([p], ['happy'])); write_csv([p], sys.stdout, ['happy']); write_json([p], sys.stdout)"
    )
    env = {**os.environ, "LC_ALL": locale, "LANG": locale, "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    res = subprocess.run([sys.executable, "-c", code, os.fsencode(path)], capture_output=True, cwd=REPO, env=env,
                         check=False)  # fmt: skip
    assert res.returncode == 0 and b"Traceback" not in res.stderr, res.stderr.decode(errors="replace")
    assert b"r\\xe9union.wav" in res.stdout and os.fsencode(path) in res.stdout


# ---------------------------------------------------------------------------------------------- 12. generated data
def test_generated_bundle_warns_in_every_output(tmp_path: Path, bundles: dict[str, Path],
                                               capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    f = write(tmp_path / "v.wav", speechlike(2.5, seed=49))
    model = str(bundles["gen"])
    assert main([str(f), str(tmp_path / "missing.wav"), "--model", model, "--json"]) == 1
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["warning"] for r in recs] == [GENERATED_WARNING] * 2  # the failed answer too
    assert main([str(f), "--model", model, "--csv", "--windows"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and all(r["warning"] == GENERATED_WARNING for r in rows)
    assert main([str(f), "--model", model]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("WARNING: model trained on sefin's GENERATED") and "GENERATED" in captured.err
    assert captured.out.rstrip().endswith(GENERATED_WARNING)
    assert main([str(f), "--model", str(bundles["real"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warning"] is None
    buf = io.StringIO()
    write_csv(predict_paths([f], EmotionClassifier.from_bundle(bundles["gen"])), buf, CLASSES)
    assert GENERATED_WARNING in buf.getvalue()


# ---------------------------------------------------------------------------------------------- the room's rule
@pytest.mark.parametrize("module", ["inference", "predict"])
def test_inference_imports_no_training_code_at_module_level(tmp_path: Path, module: str) -> None:
    import ast
    import importlib

    mod = importlib.import_module(f"sefin_utils.{module}")
    tree = ast.parse(Path(mod.__file__).read_text())
    imported: set[str] = set()
    for node in tree.body:  # module level only: lazy imports inside functions are allowed for custom layers
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{a.name}" for a in node.names} | {str(node.module)}
    training = {"fins", "ser", "classifiers", "training", "experiments", "cache", "runner", "runs", "keras"}
    assert not {m for m in imported if set(m.split(".")) & training}, imported
    # and at run time: importing the module (in a fresh interpreter) loads no training module either
    code = f"import sys, sefin_utils.{module}; print(sorted(m for m in sys.modules if m.startswith('sefin_utils')))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    loaded = {m.rsplit(".", 1)[-1] for m in eval(res.stdout)}  # noqa: S307 - our own printed list
    assert not loaded & training, loaded
    bundle = save_bundle(tmp_path / "model", classifier=tiny_summary_model(), kind="summary", classes=CLASSES)
    assert json.loads((bundle / "preprocess.json").read_text())["layer_modules"] == []  # plain Keras layers only
