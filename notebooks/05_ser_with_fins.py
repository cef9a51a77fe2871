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
# # 5. Emotion recognition with FINs, and the ablation
#
# **What the study did with the Kaggle model.** It kept the Kaggle notebook's recipe (five features averaged over
# time, a CNN head) but computed the features with the FINs inside one network: a 2.5 s clip -> its frames -> the
# five FINs on every frame -> a per-frame 162-dim vector -> the mean over frames -> the same CNN head as the
# baseline. Three variants: FINs pre-trained and frozen,
# pre-trained and fine-tuned, and the same architecture randomly initialised; then 32 models, each feature taken
# from its FIN or from librosa. Logged (file-level split, speakers shared): fine-tuned 61.6 % / macro-F1 0.65,
# random init 52.0 % / 0.55, frozen 49.1 % / 0.47, baseline 51.3 % / 0.48; the ablation spread 57.8-61.8 %.
#
# **What sefin changes, and why.** Per-feature standardisation inside every model (the study's baseline had none
# and its FIN models a single scalar BatchNorm over all 162 features); the mean over frames ignores zero-padding
# frames; the epoch is chosen on validation macro-F1 (`ser_select`; the study evaluated its last epoch although
# validation loss rose); models with trainable FINs first train their head on the frozen FINs, then fine-tune
# everything (`ser_finetune_epochs`; the warm start is kept unless an epoch beats it on validation); beside the
# study's mean over frames, statistics pooling and a small temporal model keep the time course (`ser_pooling`),
# reading mel power and RMS in decibels (`ser_frame_scale`; the study's mean pooling keeps librosa's linear values);
# seeds, several of them for the headline comparison where time allows; the split protocol is named beside every
# number. The model with the best *validation* macro-F1 (anchors and baselines included) becomes the run's predict
# bundle.

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

from IPython.display import display

from sefin_utils import experiments, report, runs, tables
from sefin_utils.constants import class_names

P = runs.stage_params(profile, params)
RUN = Path(P["run_dir"])
FIG = RUN / "figures"
display(report.start_page(RUN))
store = runs.open_store(P)

# %% [markdown]
# ## End-to-end variants (and the ablation when `ablation: true`)

# %%
results = experiments.run_experiments(store, RUN / "fins", RUN / "ser", params=runs.ser_params(P))
tables.people(
    tables.seed_summary(
        results,
        ["val_macro_f1", "test_accuracy", "test_macro_f1", "test_uar", "ood_accuracy", "s_per_epoch"],
        extra=["kind"],
    ),
    caption="mean ± sd over seeds where a model has two or more; ESD: out of domain",
)

# %% [markdown]
# ## What a user would pick instead
# The scikit-learn anchors (stage 2: logistic regression, RBF-SVM and an MLP on the standardised 162-dim vector, same
# train clips, same test and ESD recordings) beside the sefin model with the best validation macro-F1.

# %%
all_results = runs.load_results(P)
display(report.anchors_table(all_results))
report.say_anchors(all_results)

# %% [markdown]
# ## Figures
# Test macro-F1 per model beside the study's; per model the confusion matrix (the diagonal is correct, a full column
# is a class predicted for everything) and the training curves (the marked epoch is the one kept); with the
# ablation, the marginal effect of each feature's source.

# %%
SER_FIGURES = runs.ser_figures(RUN / "ser", FIG, prefix="05_ser")

# %% [markdown]
# ## The run's model bundle
# The variant with the best mean validation macro-F1 across the baseline and the end-to-end models is saved to
# `model/` with its preprocessing and a card; `python -m sefin_utils predict` and the report use it.

# %%
bundle_dir = runs.save_run_bundle(P, store)
tables.card_table(json.loads((bundle_dir / "card.json").read_text()))

# %% [markdown]
# ## What the numbers say

# %%
report.say_models(all_results, n_classes=len(class_names(P["calm"])), run_dir=RUN, patience=P["ser_patience"])
