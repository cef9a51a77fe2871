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
# # 1. Data and splits
#
# **What the Kaggle notebook did.** It parsed the file names of RAVDESS, CREMA-D, TESS and SAVEE in the Kaggle
# input folders into one table of (emotion, path), wrote it to CSV, drew a count plot of the emotions and, for one
# file per emotion, a waveform, a spectrogram and an audio player. It then augmented every file and split the
# *augmented rows* 75/25 at random.
#
# **What sefin changes, and why.**
# - `corpora.discover` finds the five corpora at any depth, in their original and Kaggle layouts, and keeps the
#   speaker and gender of every recording; ESD (English speakers) joins as an *out-of-domain* test set, never
#   trained on.
# - Nothing is guessed or silently dropped: files that no parser recognises, duplicates and unreadable files are
#   listed with their reason (and in the report).
# - The split is made **here, by recording, before any augmentation**, and written to disk: augmented copies made
#   later inherit their recording's split, so no copy of a test recording is ever trained on. Two protocols are
#   shown: `study` (per corpus and emotion 70/15/15 by recording, speakers shared, as the study) and `speaker`
#   (speaker-independent, sefin's default); the profile's `protocol` is the one saved for the next stages.

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

import pandas as pd
from IPython.display import Audio, Markdown, display

from sefin_utils import audio, corpora, report, runs, splits, tables
from sefin_utils.constants import SR
from sefin_utils.plots import data as plots

P = runs.stage_params(profile, params)
RUN = Path(P["run_dir"])
FIG = RUN / "figures"
root = runs.data_root(P)  # a null data_root writes the generated demo corpus into the run folder
DATA = report.data_label(RUN)  # "generated data" in every figure title of a generated run
display(report.start_page(RUN))

# %% [markdown]
# ## Discover the corpora
# One row per usable recording: corpus, speaker (and a key unique across corpora), gender, harmonised emotion,
# the corpus' own label, and what the file header says (sample rate, channels, duration, frames).

# %%
found = corpora.discover(root, esd_speakers=runs.esd_speakers(P), calm=P["calm"])
manifest, skipped = found.manifest, found.all_skipped()  # unusable audio files and the files that are not audio
runs.write_table(manifest, RUN / "manifest.csv")
runs.write_table(skipped, RUN / "skipped.csv")
display(
    Markdown(
        f"{len(manifest)} recordings found under `{root}`, {len(skipped)} file(s) skipped "
        f"({len(found.skipped)} audio, {len(found.other)} not audio). The first rows of the manifest:"
    )
)
tables.people(
    manifest.head(),
    columns=[
        "recording_id",
        "corpus",
        "speaker",
        "gender",
        "emotion",
        "source_label",
        "sample_rate",
        "channels",
        "duration",
    ],
)

# %% [markdown]
# ## Skipped files
# Every file under the data root that is not in the manifest (unusable audio and files that are not audio), grouped
# by kind of reason: how many files, and one example with its full reason (the full list is `skipped.csv` in the run
# folder and `skipped.html` in the report).

# %%
if len(skipped):
    by_kind = (
        skipped.groupby("kind", sort=True)
        .agg(files=("path", "size"), example=("path", "first"), reason=("reason", "first"))
        .reset_index()
    )
    by_kind["example"] = by_kind["example"].map(lambda p: audio.display_path(Path(str(p)).name))
    display(
        tables.people(
            by_kind, columns=["kind", "files", "example", "reason"], caption="Skipped files by kind (one example each)"
        )
    )
else:
    display(Markdown("No file skipped."))

# %% [markdown]
# ## Recordings per emotion and corpus
# The Kaggle notebook's count plot, split by corpus. The classes are not balanced: calm exists only in RAVDESS,
# surprise only in RAVDESS, TESS and SAVEE (and ESD, which is out of domain).

# %%
plots.plot_counts(
    manifest, path=FIG / "01_counts.png", title=f"{len(manifest)} recordings per emotion and corpus ({DATA})"
)
tables.crosstab(pd.crosstab(manifest["corpus"], manifest["emotion"], margins=True, margins_name="total"))

# %% [markdown]
# ## One recording per emotion
# Waveform, spectrogram and an audio player for one file per emotion, as the Kaggle notebook showed them.

# %%
examples = plots.pick_examples(manifest[manifest["corpus"] != "ESD"], seed=P["seed"])
waves = {f"{r.emotion} ({r.corpus} {Path(r.path).name})": audio.load(r.path) for r in examples.itertuples()}
plots.plot_examples(waves, path=FIG / "01_examples.png", title=f"One recording per emotion ({DATA})")
for name, y in waves.items():
    print(name)
    display(Audio(y, rate=SR))

# %% [markdown]
# ## Splits: both protocols
# Recordings (and speakers) per corpus and split. Under `speaker` no speaker is in two splits, so a corpus with few
# speakers cannot fill every split (the numbers below say which); ESD is always `ood`. Look at the figure for the
# share of each corpus in each split. The chosen protocol's table is saved in the run folder and, with paths relative
# to the data root, as `splits.csv` in the report folder, so that anyone can re-score a model on the same recordings.

# %%
protocol_splits = {p: splits.make_splits(manifest, protocol=p, seed=int(P["seed"])) for p in splits.PROTOCOLS}
display(tables.people(plots.split_table(protocol_splits)))
_ = plots.plot_splits(protocol_splits, path=FIG / "01_splits.png", title=f"Recordings per split ({DATA})")

# %%
chosen = protocol_splits[P["protocol"]]
splits.check_no_leak(chosen)
_ = runs.write_table(chosen, RUN / "splits.csv")
_ = runs.publish_splits(chosen, root, Path(P["report_dir"]) / "splits.csv")  # paths relative to the data root

# %% [markdown]
# ## What the numbers say

# %%
report.say_splits(chosen, P["protocol"])
