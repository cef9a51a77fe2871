"""Figures of the data stages: counts per corpus and emotion, waveforms and spectrograms, splits, frame labels.

Every function returns a matplotlib Figure and saves it as PNG when given ``path``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sefin_utils.constants import EMOTIONS, HOP_LENGTH, SPLITS, SR

DPI = 110


def _save(fig: Figure, path: str | Path | None, *, dpi: int = DPI) -> Figure:
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.png")
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(path)
    return fig


def _check_1d(y: np.ndarray, name: str = "y") -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D waveform, got shape {y.shape}")
    return y


def plot_counts(manifest: pd.DataFrame, *, path: str | Path | None = None, title: str | None = None) -> Figure:
    """Recordings per emotion, stacked by corpus (the Kaggle notebook's count plot, split by corpus).

    Parameters
    ----------
    manifest : DataFrame
        Needs ``corpus`` and ``emotion`` columns.
    """
    for col in ("corpus", "emotion"):
        if col not in manifest.columns:
            raise ValueError(f"manifest lacks column {col!r} (columns: {list(manifest.columns)})")
    table = pd.crosstab(manifest["emotion"], manifest["corpus"])
    order = [e for e in EMOTIONS if e in table.index] + [e for e in table.index if e not in EMOTIONS]
    table = table.loc[order]
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(len(table))
    for corpus in table.columns:
        ax.bar(table.index, table[corpus], bottom=bottom, label=corpus)
        bottom += table[corpus].to_numpy()
    for x, total in enumerate(bottom):
        ax.text(x, total, f"{int(total)}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("recordings")
    ax.set_title(title or f"{len(manifest)} recordings per emotion and corpus")
    ax.legend(title="corpus", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def _spectrogram_db(y: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=HOP_LENGTH))
    return librosa.amplitude_to_db(S, ref=np.max(S) if S.size and np.max(S) > 0 else 1.0)


def _draw(ax_wave: plt.Axes, ax_spec: plt.Axes, y: np.ndarray, sr: int, title: str) -> None:
    import librosa.display

    t = np.arange(len(y)) / sr
    ax_wave.plot(t, y, lw=0.5)
    ax_wave.set_xlim(0, len(y) / sr)
    ax_wave.set_title(title, fontsize=9)
    ax_wave.set_ylabel("amplitude", fontsize=8)
    librosa.display.specshow(
        _spectrogram_db(y, sr), sr=sr, hop_length=HOP_LENGTH, x_axis="time", y_axis="log", ax=ax_spec
    )
    ax_spec.set_ylabel("Hz", fontsize=8)


def plot_waveform_spectrogram(
    y: np.ndarray, *, sr: int = SR, title: str = "", path: str | Path | None = None
) -> Figure:
    """Waveform above its log-frequency spectrogram (dB), as the Kaggle notebook shows one file per emotion."""
    y = _check_1d(y)
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True)
    _draw(a, b, y, sr, title)
    return _save(fig, path)


def plot_examples(
    examples: Mapping[str, np.ndarray], *, sr: int = SR, path: str | Path | None = None, title: str | None = None
) -> Figure:
    """One row per example (``name -> waveform``): waveform left, spectrogram right."""
    if not examples:
        raise ValueError("plot_examples needs at least one example")
    n = len(examples)
    fig, axes = plt.subplots(n, 2, figsize=(11, 1.9 * n + 0.6), squeeze=False)
    for (name, y), (a, b) in zip(examples.items(), axes, strict=True):
        _draw(a, b, _check_1d(y, name), sr, name)
        b.set_title(f"{name}: spectrogram", fontsize=9)
        if a is not axes[-1][0]:
            a.set_xlabel("")
            b.set_xlabel("")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=80)


def split_table(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Recordings (and speakers) per corpus and split for each protocol: one table, protocols side by side.

    Rows are corpora (a ``corpus`` column), columns ``<protocol> <split>`` with cells ``"12 (2 spk)"``.
    """
    parts = {}
    for protocol, df in frames.items():
        rec = pd.crosstab(df["corpus"], df["split"]).reindex(columns=[s for s in SPLITS if s in set(df["split"])])
        spk = (
            df.groupby(["corpus", "split"])["speaker_key"]
            .nunique()
            .unstack(fill_value=0)
            .reindex(columns=rec.columns, fill_value=0)
        )
        cell = rec.astype(str) + " (" + spk.astype(str) + " spk)"
        parts[protocol] = cell
    out = pd.concat(parts, axis=1).fillna("")
    out.columns = [f"{protocol} {split}" for protocol, split in out.columns]
    return out.rename_axis("corpus").reset_index()


def plot_splits(
    frames: Mapping[str, pd.DataFrame], *, path: str | Path | None = None, title: str | None = None
) -> Figure:
    """Recordings per split and corpus, one panel per protocol (``title`` above them all)."""
    if not frames:
        raise ValueError("plot_splits needs at least one protocol's split table")
    fig, axes = plt.subplots(1, len(frames), figsize=(5.5 * len(frames), 3.6), squeeze=False, sharey=True)
    for ax, (protocol, df) in zip(axes[0], frames.items(), strict=True):
        table = pd.crosstab(df["split"], df["corpus"]).reindex([s for s in SPLITS if s in set(df["split"])])
        bottom = np.zeros(len(table))
        for corpus in table.columns:
            ax.bar(table.index, table[corpus], bottom=bottom, label=corpus)
            bottom += table[corpus].to_numpy()
        ax.set_title(f"protocol {protocol}")
        ax.set_ylabel("recordings")
    axes[0][-1].legend(title="corpus", fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_frame_labels(
    labels: Mapping[str, np.ndarray],
    *,
    mask: np.ndarray | None = None,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """The five reference features of one clip over its frames: curves for 1-dim features, images otherwise.

    Parameters
    ----------
    labels : mapping name -> (n_frames, dim)
    mask : (n_frames,) bool, optional
        Frames overlapping real audio; padding frames are shaded.
    """
    if not labels:
        raise ValueError("plot_frame_labels needs at least one feature")
    n = len(labels)
    heights = [1 if np.asarray(v).shape[-1] == 1 else 2 for v in labels.values()]
    fig, axes = plt.subplots(
        n, 1, figsize=(9, 1.3 * sum(heights) + 0.8), sharex=True, gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    for ax, (name, v) in zip(axes[:, 0], labels.items(), strict=True):
        v = np.asarray(v, dtype=np.float32)
        if v.ndim != 2:
            raise ValueError(f"labels[{name!r}] must be (n_frames, dim), got shape {v.shape}")
        if v.shape[1] == 1:
            ax.plot(v[:, 0], lw=1)
        else:
            img = 10 * np.log10(np.maximum(v, 1e-10)) if name == "mel" else v
            ax.imshow(img.T, aspect="auto", origin="lower", interpolation="nearest", cmap="magma")
        ax.set_ylabel(name + (" (dB)" if name == "mel" else ""), fontsize=8)
        if mask is not None:
            for i in np.flatnonzero(~np.asarray(mask, bool)):
                ax.axvspan(i - 0.5, i + 0.5, color="0.85", alpha=0.6, lw=0)
    axes[-1, 0].set_xlabel("frame (2048 samples, hop 512)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_label_errors(errors: pd.DataFrame, *, path: str | Path | None = None, title: str | None = None) -> Figure:
    """Max absolute error of sefin's labels against the per-frame librosa loop, relative to each feature's range.

    ``errors`` needs ``feature`` and ``rel_error`` columns (one row per feature, or per feature and clip).
    """
    for col in ("feature", "rel_error"):
        if col not in errors.columns:
            raise ValueError(f"errors lacks column {col!r}")
    worst = errors.groupby("feature", sort=False)["rel_error"].max()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(worst.index, np.maximum(worst.to_numpy(), 1e-12))
    ax.axhline(1e-4, color="tab:red", ls="--", label="bound 1e-4 of range")
    ax.set_yscale("log")
    ax.set_ylabel("max |error| / range")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def pick_examples(
    manifest: pd.DataFrame,
    *,
    per: str = "emotion",
    seed: int = 0,
    prefer: Sequence[str] = ("RAVDESS", "CREMA-D", "TESS", "SAVEE"),
) -> pd.DataFrame:
    """One recording per value of ``per`` (default emotion), from the first preferred corpus that has it; seeded."""
    rng = np.random.default_rng(seed)
    rows = []
    for _value, group in manifest.groupby(per, sort=True):
        for corpus in [*prefer, *sorted(set(group["corpus"]))]:
            cand = group[group["corpus"] == corpus]
            if len(cand):
                rows.append(cand.iloc[int(rng.integers(len(cand)))])
                break
    return pd.DataFrame(rows).reset_index(drop=True)
