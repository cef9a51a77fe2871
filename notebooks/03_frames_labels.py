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
# # 3. Frames, reference labels and augmentation
#
# **What the Kaggle notebook did.** It showed each augmentation (noise, stretch, shift, pitch) on one example, and
# kept only the time *means* of the features: one 162-dim vector per clip.
#
# **What the study added.** A Feature Imitating Network (FIN) learns to output one librosa feature from one raw
# 2048-sample frame. Its training labels are the features of every frame (`center=False`, hop 512: 104 frames per
# 2.5 s clip), which the study computed by calling librosa once per frame - exact but slow - and kept in RAM as
# float64 text.
#
# **What sefin changes, and why.** sefin computes the *same* labels for all frames of a clip at once (MFCC's 80 dB
# floor per frame, Chroma's tuning per frame), stores them as memory-mapped float32 arrays keyed by the params that
# made them, and checks them here against the per-frame loop. Augmentation follows the study (Gaussian noise
# 0.035 x U(0,1) x max; stretch 0.8 then pitch +0.7 semitone), seeded, made after the split.

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

import numpy as np
import pandas as pd
from IPython.display import Audio, Markdown, display

from sefin_utils import features, report, runs, tables
from sefin_utils.constants import SR
from sefin_utils.plots import data as plots

P = runs.stage_params(profile, params)
RUN = Path(P["run_dir"])
FIG = RUN / "figures"
DATA = report.data_label(RUN)  # "generated data" in every figure title of a generated run
display(report.start_page(RUN))
(RUN / "frames_labels").mkdir(exist_ok=True)
store = runs.open_store(P)
index = store.index

# %% [markdown]
# ## Frames of one clip, and its five reference features
# Frames are `y[512 i : 512 i + 2048]`, the frames of `librosa.*(center=False)`. Shaded frames are zero padding
# (the clip was shorter than 2.5 s after the offset): the FINs see such frames too, so that nothing fed to them later
# is out of distribution.

# %%
i = int(store.select(split="train", augmentation="orig")[0])
frames = features.frame(np.asarray(store.clips[i]), tail_frames=bool(P["tail_frames"]))
display(
    Markdown(
        f"Clip `{index['clip_id'].iloc[i]}`: {frames.shape[0]} frames of {frames.shape[1]} samples, "
        f"{int(store.mask[i].sum())} of them overlap real audio."
    )
)
display(
    tables.people(
        pd.DataFrame(
            [{"feature": f.name, "dimensions": f.dim, "what it is": f.description} for f in features.FEATURES.values()]
        )
    )
)
_ = plots.plot_frame_labels(
    {n: store.labels[n][i] for n in store.labels},
    mask=np.asarray(store.mask[i]),
    path=FIG / "03_frame_labels.png",
    title=f"{index['clip_id'].iloc[i]} ({DATA})",
)

# %% [markdown]
# ## Augmented copies
# One train recording and its copies, as stored in the cache (each copy keeps its source recording and split).

# %%
rid = index["recording_id"].iloc[i]
copies = index[index["recording_id"] == rid]
waves = {f"{r.augmentation}": np.asarray(store.clips[r.Index]) for r in copies.itertuples()}
plots.plot_examples(waves, path=FIG / "03_augmentations.png", title=f"{rid}: original and augmented copies ({DATA})")
for name, y in waves.items():
    print(name)
    display(Audio(y, rate=SR))

# %% [markdown]
# ## Are the labels exact? A spot check against the per-frame librosa loop
# For a few clips (original and augmented, several corpora), the cached labels against `librosa` called on each
# frame: the maximum absolute error relative to the feature's range on that clip. The bound is 1e-4.

# %%
rng = np.random.default_rng(int(P["seed"]))
check_rows = np.sort(rng.choice(len(store), size=min(6, len(store)), replace=False))
errors = runs.label_spot_check(store, check_rows)
if P["tuning"] != "per_frame":
    display(
        Markdown(
            f"tuning = {P['tuning']}: Chroma is fixed-tuning by choice, so it differs from the per-frame "
            "loop by design."
        )
    )
runs.write_table(errors, RUN / "frames_labels" / "exactness.csv")
worst = errors.groupby("feature", sort=False)[["max_abs_error", "rel_error"]].max()
plots.plot_label_errors(errors, path=FIG / "03_label_errors.png", title=f"labels against the loop ({DATA})")
display(tables.people(worst, index="feature", caption="worst clip per feature"))

# %% [markdown]
# ## What the numbers say

# %%
report.say_labels(errors)
