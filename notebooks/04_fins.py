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
# # 4. Feature Imitating Networks
#
# **Where the Kaggle notebook stopped.** It computed its five features with librosa and averaged them over time.
#
# **What the study did.** It replaced librosa by networks that imitate it: five Keras networks, one per feature,
# each mapping a raw 2048-sample frame to RMS, ZCR, Chroma STFT, MFCC or the mel spectrogram, dense or stride-1
# Conv1D nets trained on GPUs. Its published R² in domain and on ESD are the `study` columns of the tables below.
#
# **What sefin changes, and why.** Two families of FINs, both far cheaper than the study's topologies (the
# `macs` column: multiply-adds per frame):
#
# - **learnt**: every weight starts at random behind a fixed, declared DSP front end (a Hann-windowed FFT power
#   spectrum) and is trained by imitation; the shipped ones (`models/fins`, trained on the full corpora) are the
#   study-faithful "FINs pre-trained by imitation" (`fins_from: learnt`), or a run trains its own
#   (`fin_arch: learnt`);
# - **analytic**: the `fast` FINs started at librosa's own filterbank, DCT and chroma matrices (`fin_arch: fast`,
#   `fin_init: librosa`), then fine-tuned: an R² near 1 there comes from the formula, not from imitation.
#
# The run's FINs (`fins/`, whichever family the profile names) are what the end-to-end variants of stage 05 use; the
# other family is scored beside them on the same frames. R² is reported on test frames of the training corpora and
# on ESD (out of domain), uniform and variance-weighted (and for mel also in dB), beside the study's numbers.

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

from IPython.display import Markdown, display

from sefin_utils import report, runs, tables

P = runs.stage_params(profile, params)
RUN = Path(P["run_dir"])
FIG = RUN / "figures"
display(report.start_page(RUN))
store = runs.open_store(P)

# %% [markdown]
# ## Train (or reuse) the five FINs, and score the other family beside them
# Trained FINs learn on every frame of the train split's clips (augmented copies included), are selected on validation
# frames and evaluated on test and ESD frames of unaugmented recordings. With `fins_from` set, FINs trained elsewhere
# (`learnt`: the shipped ones) are copied in and scored on this run's frames instead.

# %%
with console.to_log():  # the training log (epoch lines) goes to the terminal / kernel log
    stage = runs.fin_stage(P, store)

# %% [markdown]
# ## The two families beside the study's R²
# `r2` is the uniform average over output dimensions, `r2_vw` the variance-weighted one, `r2_db` mel in dB; `test`
# are frames of speakers in this run's test split, `ood` ESD frames. `role` says which family the end-to-end variants
# use.

# %%
tables.people(
    stage["families"],
    columns=["role", *runs.FAMILY_COLUMNS],
    caption="R² of both FIN families on this run's test and ESD frames, beside the study's",
    digits=4,
)

# %% [markdown]
# ## What the numbers say

# %%
display(Markdown(runs.say_fin_families(stage)))

# %% [markdown]
# ## Figures
# Predicted against true values for the run's FINs (test frames: points on the diagonal are perfect imitation), and
# one utterance's features over time, librosa beside FIN (the two rows of each feature should look alike).

# %%
FIN_FIGURES = runs.fin_figures(store, RUN / "fins", FIG, prefix="04_fins")
