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
# # 2. The Kaggle baseline, fixed
#
# **What the Kaggle notebook did.** For each file: `librosa.load(path, duration=2.5, offset=0.6)`, then the time
# means of ZCR, Chroma STFT, 20 MFCC, RMS and a 128-band mel spectrogram stacked into one 162-dim vector, three rows
# per file (original; noise; stretch + pitch). Then `train_test_split` (75/25) *over the augmented rows*, a
# StandardScaler, and a Conv1D 256-256-128-64 network trained 50 epochs with the *test split as validation data*.
# Reported: about 60.7 % test accuracy.
#
# **What sefin changes, and why.**
# - The split comes first, by recording (stage 1); augmented copies are made for the train split only and inherit
#   their recording's split. In the Kaggle notebook copies of one recording sat on both sides of the split, and the
#   test set held augmented rows: its test accuracy is optimistic.
# - Model selection (early stopping, learning-rate schedule) uses the **validation** split; the test split is scored
#   once, on unaugmented recordings.
# - Standardisation is fitted on the train split and lives *inside* the model (a `Normalization` layer), so the
#   saved model needs no external scaler.
# - The default protocol is speaker-independent; the study's file-level protocol is the `protocol: study` param.
# - Seeds, and everything saved: `baseline/results.csv`, metrics JSON per model, the models.

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

from IPython.display import display

from sefin_utils import experiments, report, runs, tables
from sefin_utils.constants import class_names

P = runs.stage_params(profile, params)
RUN = Path(P["run_dir"])
FIG = RUN / "figures"
display(report.start_page(RUN))

# %% [markdown]
# ## Clips and their 162-dim summary vectors
# The cache holds each recording's 2.5 s clip (offset 0.6 s, centre-padded when shorter), its augmented copies
# (train split only by default) and the Kaggle summary vector of every clip, computed on its real samples.

# %%
store = runs.open_store(P)
tables.crosstab(
    store.index.pivot_table(index="split", columns="augmentation", values="clip_id", aggfunc="count", fill_value=0),
    caption="clips per split: originals and augmented copies",
)

# %% [markdown]
# ## Train the baseline
# The Kaggle Conv1D head (and, per the `ser_heads` param, the study's deeper "new CNN" head) on the standardised
# 162-dim vector; trained on augmented train clips, selected on validation loss, tested once.

# %%
baseline_params = runs.ser_params(P, variants=["baseline"], ablation=False)  # the ablation belongs to stage 5
results = experiments.run_experiments(store, None, RUN / "baseline", params=baseline_params)
tables.people(
    tables.seed_summary(
        results, ["val_macro_f1", "test_accuracy", "test_macro_f1", "test_uar", "ood_accuracy", "s_per_epoch"]
    ),
    caption="mean ± sd over seeds where a model has two or more; ESD: out of domain",
)

# %% [markdown]
# ## Where it errs
# Test macro-F1 beside the study's number; then per model the confusion matrix (test split, best seed by
# validation; the diagonal is correct, a full column is a class predicted for everything) and the training curves
# (the marked epoch is the one kept).

# %%
BASELINE_FIGURES = runs.ser_figures(RUN / "baseline", FIG, prefix="02_baseline")

# %% [markdown]
# ## What the numbers say

# %%
report.say_models(results, n_classes=len(class_names(P["calm"])), run_dir=RUN, patience=P["ser_patience"])
