# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Report
#
# **What the Kaggle notebook ended with.** One number ("accuracy of our model on test data", about 60.7 %),
# loss and accuracy curves, a table of predicted against actual labels, a confusion matrix and a classification
# report, all on a test split that shared recordings (through their augmented copies) and speakers with training.
#
# **What sefin changes: what this report shows instead.** The headline table: every model's test accuracy,
# macro-F1 and UAR (mean and spread over seeds), out-of-domain scores on ESD, beside the study's numbers, each
# labelled with its protocol; the FINs' R²; the main figures; and the run's predict bundle classifying a few files
# it never trained on.

# %% tags=["parameters"]
profile = "demo"  # params/<profile>.yaml gives every setting: demo (generated corpus), sample, kaggle, tiny
params = {}  # overrides of the profile's settings, e.g. {"data_root": "/kaggle/input"}; the runner passes all

# %%
# Make sefin importable. A no-op in a checkout or where sefin is installed; on Kaggle/Colab it finds the repository
# (attached as a dataset, or cloned from $SEFIN_GIT) and installs its requirements except TensorFlow, so the
# platform's own GPU build is kept.
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

if importlib.util.find_spec("sefin_utils") is None:
    _kaggle = Path("/kaggle/input")
    _places = [Path.cwd(), *Path.cwd().parents, *_kaggle.glob("*"), *_kaggle.glob("*/*")]
    _repo = next((p for p in _places if (p / "sefin_utils" / "__init__.py").is_file()), None)
    if _repo is None and os.environ.get("SEFIN_GIT"):
        _repo = Path("sefin-src").resolve()
        subprocess.run(["git", "clone", "--depth", "1", os.environ["SEFIN_GIT"], str(_repo)], check=True)
    if _repo is None:
        raise ModuleNotFoundError(
            "sefin_utils not found: run from a sefin checkout, attach the repository as a "
            "Kaggle dataset, or set SEFIN_GIT to its git URL"
        )
    sys.path.insert(0, str(_repo))
    if any(importlib.util.find_spec(m) is None for m in ("librosa", "keras", "papermill", "soundfile", "soxr")):
        _reqs = [
            r
            for r in (_repo / "requirements.txt").read_text().splitlines()
            if r.strip() and not r.startswith("#") and not r.lower().startswith("tensorflow")
        ]
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *_reqs], check=True)

# %%
from sefin_utils import console

console.quiet_kernel()  # first: progress bars and library warnings go to the terminal / kernel log, not this page

import json

import pandas as pd
from IPython.display import display

from sefin_utils import predict, report, runs, tables
from sefin_utils.constants import class_names
from sefin_utils.inference import EmotionClassifier
from sefin_utils.plots import predict as predict_plots

P = runs.stage_params(profile, params)
RUN = Path(P["run_dir"])
FIG = RUN / "figures"
display(report.start_page(RUN))

# %% [markdown]
# ## Headline
# Test split of the run's protocol (unaugmented recordings never trained on); ESD restricted to the five classes it
# shares with the training corpora. The last two columns are the study's logged numbers (its file-level split shares
# speakers between train and test; single runs).

# %%
results = report.collect_results(RUN)
written = report.write_results(results, RUN)
headline = pd.read_csv(written["headline.csv"])
report.headline_table(headline)

# %% [markdown]
# ## FINs: R² in and out of domain

# %%
fin_table = pd.read_csv(RUN / "fins" / "r2.csv")
tables.people(
    fin_table,
    columns=[
        "feature",
        "params",
        "r2_test",
        "study_r2_test",
        "r2_ood",
        "study_r2_ood",
        "r2_vw_test",
        "study_r2_vw_test",
        "r2_vw_ood",
        "study_r2_vw_ood",
    ],
)

# %% [markdown]
# ## Classify recordings with the run's bundle
# The same call as `python -m sefin_utils predict FILE...`: a few test-split recordings (never trained on), each
# scored over sliding 2.5 s windows; the bars are the class probabilities, the top class in red.

# %%
clf = EmotionClassifier.from_run(RUN)
test = pd.read_csv(RUN / "splits.csv")
test = test[test["split"] == "test"].sample(
    n=min(int(P["predict_examples"]), int((test["split"] == "test").sum())), random_state=int(P["seed"])
)
predictions = predict.predict_paths(test["path"].tolist(), clf, progress=False)
predict_plots.plot_probabilities(predictions, path=FIG / "06_predict.png", classes=clf.classes)
tables.people(
    pd.DataFrame(
        {
            "file": [Path(p).name for p in test["path"]],
            "true": test["emotion"].tolist(),
            "predicted": [p.emotion for p in predictions],
            "top probability": [max(p.probabilities.values(), default=float("nan")) for p in predictions],
        }
    )
)

# %% [markdown]
# ## Main figures of the report index
# The figures that lead `index.html` (those not shown above on this page); the confusion matrix is that of the
# run's bundle model.

# %%
variant = json.loads((RUN / "model" / "card.json").read_text())["variant"]
main = runs.main_figures(FIG, variant=variant)
report.set_main_figures(RUN, main)
index = report.build_index(RUN, Path(P["report_dir"]))
report.figure_grid(
    [FIG / n for n in main if not n.startswith("06_")],  # this page's own figures are shown above
    generated=report.is_generated_run(RUN),
)

# %% [markdown]
# ## What the numbers say

# %%
report.say_models(results, n_classes=len(class_names(P["calm"])), run_dir=RUN, patience=P["ser_patience"])
