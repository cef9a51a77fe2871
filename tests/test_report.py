"""The report for people: tables (rounding, names, spread only with seeds), computed summaries that follow the
numbers, the index's facts and layout, the page checks, and the kernel's quiet set-up.

The rendered pages of a whole run are checked by ``test_notebooks``' end-to-end test with :func:`check_report`
(one tiny pipeline run serves both).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from sefin_utils import console, report, tables


def check_report(report_dir: Path, *, generated: bool) -> None:
    """Fail on any page of a rendered report with a stderr block, without the banner of a generated run, with an
    image shown twice, or with raw JSON; the index shows the run's facts."""
    pages = sorted(Path(report_dir).glob("*.html"))
    assert pages, f"no pages in {report_dir}"
    bad = {}
    for page in pages:
        if page.name in {"skipped.html"} and not generated:
            continue
        problems = report.page_problems(page.read_text(encoding="utf-8"), generated=generated)
        if problems:
            bad[page.name] = problems
    assert not bad, f"pages a reader should not see: {bad}"
    index = (Path(report_dir) / "index.html").read_text(encoding="utf-8")
    for fact in ("profile", "data", "machine", "CPU cores", "wall time", "Headline", "study accuracy"):
        assert fact in index, f"index lacks {fact!r}"
    for page in Path(report_dir).glob("05_*.nocode.html"):
        assert '"run_params"' not in page.read_text(encoding="utf-8"), "stage 05 shows the card as JSON"


def _results() -> pd.DataFrame:
    rows = []
    for variant, kind, f1s in (
        ("baseline_kaggle", "baseline", (0.50, 0.52)),
        ("e2e_frozen", "e2e", (0.30, 0.31)),
        ("ablation_F-F-F-F-F", "ablation", (0.2,)),
    ):
        for seed, f1 in enumerate(f1s):
            rows.append(
                {
                    "variant": variant,
                    "kind": kind,
                    "seed": seed,
                    "protocol": "speaker",
                    "test_accuracy": f1 + 0.1,
                    "test_macro_f1": f1,
                    "test_uar": f1,
                    "ood_accuracy": 0.2,
                    "ood_macro_f1": 0.1,
                    "val_macro_f1": f1,
                }
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------ tables


def test_readable_names_and_cells() -> None:
    assert tables.readable("test_macro_f1_mean") == "test macro-F1"
    assert tables.readable("ood_accuracy") == "ESD accuracy"
    assert tables.readable("r2_vw_ood") == "R² ESD (variance-weighted)"
    assert tables.readable("n_seeds") == "seeds"
    assert tables.fmt(0.16999999999999998) == "0.170"
    assert tables.fmt(float("nan")) == "" and tables.fmt(None) == ""
    assert tables.fmt(12) == "12" and tables.fmt(984_000) == "984,000"
    assert tables.fmt(True) == "yes"


def test_mean_sd_only_with_two_values_or_more() -> None:
    assert tables.mean_sd([0.5]) == "0.500"
    assert tables.mean_sd([0.5, 0.7]) == "0.600 ± 0.141"
    assert tables.mean_sd([]) == ""
    assert tables.pm(0.6, 0.1414) == "0.600 ± 0.141" and tables.pm(0.6, float("nan")) == "0.600"
    assert tables.pm(float("nan"), 0.1, missing="–") == "–"


def test_seed_summary_counts_seeds_and_shows_spread_where_there_is_one() -> None:
    s = tables.seed_summary(_results(), ["test_macro_f1"], extra=["kind"])
    base = s[s["variant"] == "baseline_kaggle"].iloc[0]
    abl = s[s["variant"] == "ablation_F-F-F-F-F"].iloc[0]
    assert base["n_seeds"] == 2 and base["test_macro_f1"] == "0.510 ± 0.014"
    assert abl["n_seeds"] == 1 and abl["test_macro_f1"] == "0.200"
    with pytest.raises(ValueError, match="lack columns"):
        tables.seed_summary(_results(), ["nope"])


def test_people_table_has_no_index_readable_names_and_scrolls() -> None:
    df = pd.DataFrame({"variant": ["a", "b"], "test_macro_f1": [0.123456, 0.5], "empty": [None, None]}, index=[7, 8])
    t = tables.people(df)
    out = t.to_html()
    assert list(t.frame.columns) == ["model", "test macro-F1"]  # the all-empty column is left out
    assert "0.123" in out and "0.123456" not in out and ">7<" not in out
    assert "overflow-x:auto" in out and t._repr_html_() == out


def test_card_table_is_short_and_rounded() -> None:
    card = {
        "variant": "e2e_frozen",
        "chosen_by": "best val",
        "protocol": "speaker",
        "seeds": [0],
        "metrics": {"test_macro_f1": 0.16999999999999998, "test_n": 28.0},
        "data": {"generated": True, "clips_per_split": {"train": 10, "test": 4}},
        "run_params": {"a": 1},
    }
    t = tables.card_table(card)
    cells = t.frame.to_numpy().ravel().tolist()
    assert "e2e_frozen" in cells and "0.170" in cells and "GENERATED demo corpus" in cells
    assert len(t) < 10 and "run_params" not in t.to_html()


# ------------------------------------------------------------------------------------------------------ headline


def test_headline_shows_spread_only_for_models_with_seeds() -> None:
    head = report.headline(_results())
    base = head[head["model"] == "baseline_kaggle"].iloc[0]
    assert base["seeds"] == 2 and base["study accuracy"] == pytest.approx(0.513)
    shown = report.format_headline(head)
    assert shown.loc[shown["model"] == "baseline_kaggle", "test macro-F1"].iloc[0] == "0.510 ± 0.014"
    one = report.format_headline(report.headline(_results()[lambda d: d["seed"] == 0]))
    models = one[~one["model"].str.startswith("ablation (")]
    assert "±" not in "".join(models.astype(str).to_numpy().ravel())  # one seed: no spread over seeds
    # the ablation's row is its mixes' spread, which its label names (one mix here: nothing to show)
    abl = one[one["model"].str.startswith("ablation (")].iloc[0]
    assert abl["model"] == "ablation (1 source mixes: mean ± sd over mixes)" and "±" not in abl["test macro-F1"]
    # the study logged a range of accuracy over its mixes, not one number: the range is shown, none is stored
    assert abl["study accuracy"] == "0.578–0.618 (range)"
    assert pd.isna(report.headline(_results())["study accuracy"].iloc[-1])


def test_say_models_compares_the_difference_with_the_spread() -> None:
    text = report.say_models(_results(), n_classes=8).text
    assert "Protocol `speaker`; 2 seeds" in text and "baseline_kaggle leads e2e_frozen by 0.205" in text
    assert "exceeds" in text and "accuracy 0.125 (8 classes): 2 of 2 model(s) beat it" in text
    one = report.say_models(_results()[lambda d: d["seed"] == 0]).text
    assert "1 seed per model" in one and "may be seed noise" in one


def test_say_models_names_the_models_still_improving_when_their_epochs_ran_out() -> None:
    df = _results()
    # baseline seed 0: best epoch 25 of 25 (cut by the cap); seed 1: early-stopped 5 epochs after its best;
    # e2e_frozen seed 0: best 23 of 25 with patience 5 (cut by the cap); seed 1: warm start kept (best epoch 0)
    df["best_epoch"] = [25.0, 12, 23, 0, 30]  # float, as read from a results table with gaps
    df["epochs_run"] = [25.0, 17, 25, 5, 30]
    capped = report.at_epoch_cap(df[df["kind"] != "ablation"], patience=5)
    assert list(zip(capped["variant"], capped["seed"], strict=True)) == [("baseline_kaggle", 0), ("e2e_frozen", 0)]
    only_last = report.at_epoch_cap(df, patience=None)
    assert list(zip(only_last["variant"], only_last["seed"], strict=True)) == [
        ("baseline_kaggle", 0),
        ("ablation_F-F-F-F-F", 0),
    ]
    text = report.say_models(df, n_classes=8, patience=5).text
    assert "Still improving when their epochs ran out: baseline_kaggle (seed 0: best epoch 25 of 25)" in text
    assert "e2e_frozen (seed 0: best epoch 23 of 25)" in text and "ablation" not in text.split("Still")[1]
    assert "Still improving" not in report.say_models(_results(), n_classes=8).text  # no epoch columns


def test_say_splits_states_what_the_table_shows() -> None:
    df = pd.DataFrame(
        {
            "recording_id": [f"r{i}" for i in range(6)],
            "corpus": ["TESS", "TESS", "TESS", "SAVEE", "SAVEE", "SAVEE"],
            "speaker_key": ["T:1", "T:1", "T:2", "S:1", "S:2", "S:3"],
            "split": ["train", "train", "test", "train", "val", "test"],
        }
    )
    text = report.say_splits(df, "speaker").text
    assert "TESS has no speaker in val" in text and "SAVEE" not in text.split("Corpora")[1].split(".")[0]
    assert "No speaker is in two splits." in text
    df.loc[2, "speaker_key"] = "T:1"
    assert "1 speaker(s) are in more than one split" in report.say_splits(df, "study").text


def test_say_labels_and_fins() -> None:
    err = pd.DataFrame(
        {"clip_id": ["a", "a", "b"], "feature": ["rms", "chroma", "rms"], "rel_error": [1e-7, 3e-3, 2e-7]}
    )
    assert "chroma exceeds it" in report.say_labels(err).text
    r2 = pd.DataFrame(
        {"feature": ["rms", "mfcc"], "r2_test": [0.99, 0.5], "study_r2_test": [0.985, 0.917], "r2_ood": [0.9, 0.4]}
    )
    text = report.say_fins(r2).text
    assert "rms 0.990 (ESD 0.900) against the study's 0.985" in text and "Below the study: mfcc." in text
    r2["init"], r2["r2_test"] = ["librosa", "random"], [0.9995, 0.9995]
    assert "rms starts at librosa's own computation" in report.say_fins(r2).text


# ------------------------------------------------------------------------------------------------------ index


def _with_anchors() -> pd.DataFrame:
    anchors = [
        {**r, "variant": v, "kind": "anchor", "test_macro_f1": f1, "val_macro_f1": 0.4, "seed": 0}
        for v, f1 in (("anchor_logreg", 0.45), ("anchor_svm_rbf", 0.40))
        for r in [_results().iloc[0].to_dict()]
    ]
    return pd.concat([_results(), pd.DataFrame(anchors)], ignore_index=True)


def test_anchors_beside_the_best_sefin_model_computed_from_the_run() -> None:
    res = _with_anchors()
    assert report.best_sefin_model(res) == "baseline_kaggle"  # by validation, never the ablation or an anchor
    beside = report.anchors_beside(res)
    assert list(beside["model"]) == ["anchor_logreg", "anchor_svm_rbf", "baseline_kaggle"]
    assert beside.loc[0, "vs best sefin"] == pytest.approx(0.45 - 0.51)
    shown = report.anchors_table(res).frame
    assert list(shown["test macro-F1 vs best sefin"]) == ["-0.060", "-0.110", ""]
    assert shown.loc[2, "test macro-F1"] == "0.510 ± 0.014"
    text = report.say_anchors(res).text
    assert "baseline_kaggle, scores test macro-F1 0.510 ± 0.014" in text
    assert "anchor_logreg (the best anchor) scores 0.450: baseline_kaggle is 0.060 above it" in text
    assert "exceeds the larger sd" in text
    assert report.anchors_beside(_results()).empty and "no anchor" in report.say_anchors(_results()).text


def _run(tmp_path: Path, *, data_root: str | None) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt

    run_dir, report_dir = tmp_path / "run", tmp_path / "report"
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "stages").mkdir()
    (run_dir / "params.json").write_text(
        json.dumps({"profile": "x", "data_root": data_root, "seed": 0, "seeds": [0, 1], "protocol": "speaker"})
    )
    (run_dir / "stages" / "data.json").write_text(
        json.dumps({"stage": "data", "notebook": "01_data.py", "seconds": 12.5, "finished": "2026-01-01T10:00:00"})
    )
    report_dir.mkdir()
    (report_dir / "01_data.nocode.html").write_text("<html></html>")
    for name in ("01_counts.png", "05_ser_headline.png", "03_other.png"):
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        fig.savefig(run_dir / "figures" / name)
        plt.close(fig)
    report.write_results(_with_anchors(), run_dir)
    report.set_main_figures(run_dir, ["01_counts.png", "05_ser_headline.png"])
    return run_dir, report_dir


def test_index_gives_the_run_facts_headline_once_and_a_figure_grid(tmp_path: Path) -> None:
    run_dir, report_dir = _run(tmp_path, data_root=None)
    index = report.build_index(run_dir, report_dir).read_text()
    assert index.index("GENERATED DATA") < index.index("Headline") < index.index("Main figures")
    for fact in ("<code>x</code>", "generated demo corpus", "CPU cores", "12 s", "2 (0, 1)", "01_data.nocode.html"):
        assert fact in index, fact
    assert index.count("study accuracy") == 1  # the study's numbers beside ours, once
    assert index.index("Headline") < index.index("What a user would pick instead") < index.index("Main figures")
    assert "logistic regression (scikit-learn)" in index and (run_dir / "report" / "anchors.csv").is_file()
    assert "0.510 ± 0.014" in index and "class='grid'" in index
    assert "Recordings per emotion" in index  # captions say what to look at
    assert report.page_problems(index, generated=True) == []
    (run_dir / "params.json").write_text(json.dumps({"profile": "x", "data_root": str(tmp_path), "seed": 0}))
    assert "GENERATED DATA" not in report.build_index(run_dir, report_dir).read_text()


def test_page_problems_finds_stderr_missing_banner_and_repeats() -> None:
    img = '<img src="data:image/png;base64,AAAA">'
    page = f'<div data-mime-type="application/vnd.jupyter.stderr">x</div>{img}{img}'
    problems = report.page_problems(page, generated=True)
    assert any("stderr" in p for p in problems) and any("banner" in p for p in problems)
    assert any("more than once" in p for p in problems)
    assert report.page_problems(f"{report.GENERATED_WORD}{img}", generated=True) == []


def test_report_never_imports_keras_or_the_runner() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sefin_utils.report, sefin_utils.tables; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'sefin_utils.pipeline') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------------ kernel


def test_quiet_kernel_outside_a_kernel_routes_nothing_and_drops_retracing_notices(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert console.quiet_kernel() is False
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 5 calls to <f> triggered tf.function retracing. Tracing is expensive")
        logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]


def test_generated_stamp_on_figures(tmp_path: Path) -> None:
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    run_dir, _ = _run(tmp_path, data_root=None)
    before = list(mpl.rcParams["figure.hooks"])
    try:
        assert report.label_figures(run_dir) is True
        fig = plt.figure()
        assert any(t.get_text() == "GENERATED DATA" for t in fig.texts)
        plt.close(fig)
    finally:
        mpl.rcParams["figure.hooks"] = before


def test_to_log_outside_a_kernel_changes_nothing(capsys: pytest.CaptureFixture) -> None:
    with console.to_log():
        print("shown")
    assert capsys.readouterr().out == "shown\n"


def test_say_models_names_models_that_predict_one_class(tmp_path: Path) -> None:
    metrics = tmp_path / "ser" / "metrics"
    metrics.mkdir(parents=True)
    conf = [[0, 3], [1, 6]]  # 9 of 10 test recordings predicted as "sad"
    payload = {"classes": ["angry", "sad"], "reports": {"test": {"overall": {"confusion": conf}}}}
    (metrics / "e2e_frozen__seed0.json").write_text(json.dumps(payload))
    assert report.predicted_shares(tmp_path, ["e2e_frozen", "missing"]) == {"e2e_frozen": ("sad", 9, 10)}
    text = report.say_models(_results(), run_dir=tmp_path).text
    assert "e2e_frozen says sad for 9 of 10 (90%)" in text


def test_say_models_explains_a_fine_tuned_model_that_kept_its_warm_start() -> None:
    res = _results()
    res["fin_trainable"] = False
    res["best_epoch"] = 7
    tuned = res[res["variant"] == "e2e_frozen"].assign(variant="e2e_finetuned", fin_trainable=True, best_epoch=0)
    tuned.loc[tuned["seed"] == 1, "best_epoch"] = 2  # seed 1 fine-tuned for real
    text = report.say_models(pd.concat([res, tuned], ignore_index=True)).text
    assert "kept its warm start for e2e_finetuned (seed 0):" in text
    assert "seed 1)" not in text
    assert "kept its warm start" not in report.say_models(res).text


def test_say_models_names_the_clips_each_model_trained_on() -> None:
    res = _results().assign(train_augmentations="orig", n_train=7746)
    assert "did not all train on the same clips" not in report.say_models(res).text
    res.loc[res["variant"] == "e2e_frozen", ["train_augmentations", "n_train"]] = ["orig+noise+stretch_pitch", 23238]
    text = report.say_models(res).text
    assert "e2e_frozen on orig+noise+stretch_pitch (23,238 clips)" in text
    assert "on orig (7,746 clips)" in text


def test_build_index_has_a_headline_when_only_stage_02_ran(tmp_path: Path) -> None:
    run, rep = tmp_path / "run", tmp_path / "rep"
    (run / "baseline").mkdir(parents=True)
    _results().query("kind == 'baseline'").to_csv(run / "baseline" / "results.csv", index=False)
    report.build_index(run, rep)
    assert "baseline_kaggle" in (rep / "headline.csv").read_text()
    assert "baseline_kaggle" in (rep / "index.html").read_text()


def test_the_anchor_caption_names_the_clips_each_side_trained_on() -> None:
    """The anchors learn from the original recordings; a temporal model may also see the copies: the caption says so."""
    res = _with_anchors()
    assert "trained on the same train split" in report.anchors_table(res).caption  # results without n_train
    res["n_train"], res["train_augmentations"] = 100, "orig"
    assert "trained on the same 100 train clips (original recordings)" in report.anchors_table(res).caption
    best = res["variant"] == report.best_sefin_model(res)
    res.loc[best, "n_train"], res.loc[best, "train_augmentations"] = 300, "orig+noise+stretch_pitch"
    cap = report.anchors_table(res).caption
    assert "the train split's 100 original recordings (baseline_kaggle: 300 clips, the originals with their" in cap
