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
# each mapping a raw 2048-sample frame to RMS (1), ZCR (1), Chroma STFT (12), MFCC (20) or the mel spectrogram
# (128): dense or Conv1D(kernel 512, stride 1) nets of
# 66 k to 984 k parameters, trained hours on V100 GPUs (the stride-1 convolutions cost 200-400 million
# multiply-adds per frame each). Published R² (test / ESD): RMS .985/.968, ZCR .935/.94, Chroma .932/.917,
# MFCC .917/.543, Mel .333 uniform (.969 variance-weighted) / .892.
#
# **What sefin changes, and why.** The `fast` family (default, `fin_arch: fast`) is shaped like the computation it
# imitates (a power spectrum, then trainable filterbanks initialised at librosa's, log and standardised targets with
# the inverse inside the model), so it trains in minutes on a CPU at a small fraction of the study's multiply-adds;
# `fin_init: random` draws its layers after the DFT at random, to see what training alone reaches; `fin_arch: study`
# builds the published topologies. Model selection uses the validation split; R² is reported on test frames of the
# four training corpora and on ESD (out of domain), uniform and variance-weighted, beside the study's numbers. Each
# FIN is saved as `fins/<feature>.keras` with a JSON card and loads with plain `keras.models.load_model`.

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

P = runs.stage_params(profile, params)
RUN = Path(P["run_dir"])
FIG = RUN / "figures"
display(report.start_page(RUN))
store = runs.open_store(P)

# %% [markdown]
# ## Train (or reuse) the five FINs
# Train on every frame of the train split's clips (augmented copies included, a share of padding frames too),
# select on validation frames, evaluate on test and ESD frames of unaugmented recordings. With `fins_from` set,
# FINs trained elsewhere (another run's `fins/`) are copied in and scored on this run's frames instead.

# %%
with console.to_log():  # the training log (epoch lines) goes to the terminal / kernel log
    if P["fins_from"]:
        table = runs.reuse_fins(store, P["fins_from"], RUN / "fins")
    else:
        table = experiments.train_all(store, RUN / "fins", **runs.fin_options(P, store))["table"]
_ = runs.write_table(table, RUN / "fins" / "r2.csv")

# %% [markdown]
# ## R² beside the study's
# `r2` is the uniform average over output dimensions, `r2_vw` the variance-weighted one; for Mel also in dB.
# `macs` are multiply-adds per frame.

# %%
R2_COLUMNS = [
    "feature",
    "params",
    "macs",
    "epochs",
    "r2_test",
    "study_r2_test",
    "r2_ood",
    "study_r2_ood",
    "r2_vw_test",
    "study_r2_vw_test",
    "r2_vw_ood",
    "study_r2_vw_ood",
    "r2_db_test",
]
tables.people(
    table,
    columns=R2_COLUMNS,
    caption="R² on test frames (training corpora) and ESD frames (out of domain), ours beside the study's",
)

# %% [markdown]
# ## Figures
# Predicted against true values per FIN (test frames: points on the diagonal are perfect imitation), and one
# utterance's features over time, librosa beside FIN (the two rows of each feature should look alike).

# %%
FIN_FIGURES = runs.fin_figures(store, RUN / "fins", FIG, prefix="04_fins")

# %% [markdown]
# ## What the numbers say

# %%
report.say_fins(table)
