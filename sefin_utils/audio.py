"""Audio loading: any corpus format to mono float32 at 22,050 Hz, the study's fixed window, clear errors.

``load`` reads with soundfile (WAV PCM/float, FLAC, OGG, AIFF; formats it cannot read fall back to librosa's
audioread path), down-mixes to mono and resamples with soxr (``soxr_hq``, librosa's default resampler).
``window`` takes the study's window (0.6 s offset, 2.5 s) and zero-pads it, centred, to exactly ``duration * sr``
samples, keeping the range of real samples so that padding-only frames can be ignored downstream.

Errors are :class:`AudioError` and always name the file and what was wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sefin_utils.constants import DURATION_S, FRAME_LENGTH, HOP_LENGTH, OFFSET_S, SR

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3", ".m4a")
"""Extensions treated as audio (mp3/m4a need an audioread backend such as ffmpeg)."""
_DECODER_ONLY = (".mp3", ".m4a")
SILENCE_PEAK: float = 1e-5
"""A file whose peak absolute sample is below this (-100 dBFS) is rejected as all-silent."""


class AudioError(ValueError):
    """A file that cannot be used as audio; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Clip:
    """A fixed-length clip: ``samples`` (float32) and ``valid`` = (start, stop) of the real (non-padding) samples."""

    samples: np.ndarray
    valid: tuple[int, int]
    source_start: int = 0
    """Sample index (at the clip's rate) in the loaded signal where the clip's real audio begins."""


def check_wav_header(path: str | Path) -> None:
    """Raise AudioError when a RIFF/WAVE file's data chunk declares more bytes than the file holds (truncated)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return  # not a RIFF/WAVE container: soundfile decides
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack(endian + "4sI", fh.read(8))
            if chunk_id == b"data":
                available = size - pos - 8
                if chunk_size > available and chunk_size != 0xFFFFFFFF:
                    raise AudioError(
                        path, f"truncated file: header declares {chunk_size} bytes of audio, only {available} present"
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)
    raise AudioError(path, "WAV file has no data chunk (truncated or corrupt)")


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Read a file as (frames, channels) float32 and its native rate."""
    if path.suffix.lower() in (".wav", ".wave"):
        check_wav_header(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        if path.suffix.lower() not in _DECODER_ONLY:
            raise AudioError(path, f"unreadable or corrupt audio ({err})") from err
        sf_error = err
    try:  # formats libsndfile may not read (m4a, some mp3): librosa's audioread path (needs ffmpeg or similar)
        import warnings

        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, rate = librosa.load(str(path), sr=None, mono=False)
    except Exception as err:  # noqa: BLE001 - any backend failure is an unreadable file
        raise AudioError(path, f"unreadable audio ({sf_error}; fallback decoder: {err})") from err
    y = np.atleast_2d(y).T.astype(np.float32)
    return y, int(rate)


def load(path: str | Path, *, sr: int = SR, min_samples: int = FRAME_LENGTH) -> np.ndarray:
    """Load an audio file as mono float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
        Any file soundfile reads (WAV PCM or float, FLAC, OGG, AIFF), or mp3/m4a where an audioread backend exists.
    sr : int
        Target sample rate; other rates are resampled with soxr (``soxr_hq``).
    min_samples : int
        Shortest accepted signal after resampling (default one 2048-sample frame).

    Returns
    -------
    np.ndarray, shape (n,)
        Mono float32 samples (multi-channel files are averaged).

    Raises
    ------
    AudioError
        Missing file, unknown extension, unreadable or truncated file, zero length, NaN/inf samples, all-silent
        signal, or shorter than ``min_samples``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        known = ", ".join(AUDIO_EXTENSIONS)
        raise AudioError(path, f"unknown audio extension {path.suffix!r} (expected one of {known})")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    data, rate = _read(path)
    if data.size == 0:
        raise AudioError(path, "zero-length audio (no samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, f"{int(np.sum(~np.isfinite(data)))} NaN/inf samples")
    y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        raise AudioError(path, f"all-silent audio (peak {peak:.2e} < {SILENCE_PEAK:.0e})")
    if rate != sr:
        import librosa

        y = librosa.resample(y, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if len(y) < min_samples:
        raise AudioError(
            path, f"too short: {len(y)} samples at {sr} Hz ({len(y) / sr:.3f} s) < one {min_samples}-sample frame"
        )
    return y


def window(y: np.ndarray, *, sr: int = SR, offset: float = OFFSET_S, duration: float = DURATION_S) -> Clip:
    """Take the study's window of a signal: ``duration`` seconds from ``offset``, zero-padded (centred) to length.

    If fewer than one frame (2048 samples) of audio remains after ``offset`` the window starts at 0 instead, so a
    short recording still yields its audio (``Clip.source_start`` records where the window began).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected a mono 1-d signal, got shape {y.shape}")
    if offset < 0 or duration <= 0:
        raise ValueError(f"offset must be >= 0 and duration > 0, got offset={offset}, duration={duration}")
    n = int(round(duration * sr))
    start = int(round(offset * sr))
    if len(y) - start < FRAME_LENGTH:
        start = 0
    seg = y[start : start + n]
    pad_left = (n - len(seg)) // 2
    out = np.zeros(n, dtype=np.float32)
    out[pad_left : pad_left + len(seg)] = seg
    return Clip(samples=out, valid=(pad_left, pad_left + len(seg)), source_start=start)


def load_clip(
    path: str | Path, *, sr: int = SR, offset: float = OFFSET_S, duration: float = DURATION_S
) -> Clip:
    """``load`` then ``window``: the fixed-length clip every stage works on."""
    return window(load(path, sr=sr), sr=sr, offset=offset, duration=duration)


def valid_frame_mask(
    valid: tuple[int, int], n_samples: int, *, frame_length: int = FRAME_LENGTH, hop_length: int = HOP_LENGTH
) -> np.ndarray:
    """Boolean mask over center=False frames: True where a frame overlaps the real samples ``[start, stop)``."""
    if n_samples < frame_length:
        raise ValueError(f"a signal of {n_samples} samples has no {frame_length}-sample frame")
    n_frames = 1 + (n_samples - frame_length) // hop_length
    begins = np.arange(n_frames) * hop_length
    start, stop = valid
    return (begins < stop) & (begins + frame_length > start)


def frames_at(n_samples: int, *, frame_length: int = FRAME_LENGTH, hop_length: int = HOP_LENGTH) -> int:
    """Number of center=False frames in a signal of ``n_samples`` (0 when shorter than one frame)."""
    return 0 if n_samples < frame_length else 1 + (n_samples - frame_length) // hop_length
