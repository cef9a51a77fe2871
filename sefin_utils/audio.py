"""Audio loading: any recording format to mono float32 at 22,050 Hz, the study's fixed window, clear errors.

Reading
    soundfile (libsndfile) reads WAV PCM/float, FLAC, OGG Vorbis/Opus, AIFF, CAF and MP3; everything else people
    record in (``.m4a``/``.mp4``/``.aac`` from phones, ``.webm`` from browsers, ``.3gp``/``.amr``, ``.wma``...) is
    decoded with PyAV, which bundles FFmpeg's decoders, so no system ``ffmpeg`` is needed. A file libsndfile cannot
    open is retried with PyAV whatever its extension.
Repairing what is merely stale
    A WAV header from a streaming recorder that was never finalised (data size 0 or 0xFFFFFFFF) or that declares a
    little more (at most :data:`STALE_SLACK` of it) than the file holds is read as far as the samples go, with an
    :class:`AudioWarning` naming the file; a file that lost more than that (cut in half) stays an error.
Down-mixing
    Channels are averaged, except where that destroys the signal (:func:`downmix`): a dead channel is left out of the
    mean, and channels that cancel (a polarity-inverted channel: the mix far below the channels) give way to the
    loudest channel alone; both with an :class:`AudioWarning` naming the file.
Resampling
    soxr ``soxr_hq`` (librosa's default); :func:`stream` gives the same samples block by block (``soxr.ResampleStream``
    in the same quality), so a long file never has to be held whole.
Windows
    :func:`window` takes the study's window (0.6 s offset, 2.5 s) zero-padded, centred, to exactly ``duration * sr``
    samples, keeping the range of real samples; :func:`sound_intervals` finds runs of digital silence (a flat signal),
    which downstream code treats like padding.

Errors are :class:`AudioError`: ``path`` (the file), ``reason`` (what was wrong) and ``kind`` (a short category for
skip summaries, see :data:`ERROR_KINDS`).
"""

from __future__ import annotations

import codecs
import io
import os
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from sefin_utils.constants import DURATION_S, FRAME_LENGTH, OFFSET_S, SR

SNDFILE_EXTENSIONS: tuple[str, ...] = tuple(".wav .wave .flac .ogg .oga .opus .aiff .aif .aifc .caf .mp3".split())
"""Extensions read with soundfile (libsndfile 1.1+ reads MP3 and OGG/Opus itself)."""
PYAV_EXTENSIONS: tuple[str, ...] = tuple(".m4a .mp4 .aac .webm .weba .mka .mkv .mov .3gp .amr .wma .asf".split())
"""Extensions decoded with PyAV (FFmpeg's decoders bundled in the wheel): phone, browser and video containers."""
AUDIO_EXTENSIONS: tuple[str, ...] = SNDFILE_EXTENSIONS + PYAV_EXTENSIONS
"""Every extension treated as audio (folder scans list other files as skipped, "not audio")."""
LOSSLESS_EXTENSIONS: tuple[str, ...] = (".wav", ".wave", ".flac", ".aiff", ".aif", ".aifc", ".caf")
"""Formats that hold an original recording without lossy coding (preferred when one recording has two files)."""
SILENCE_PEAK: float = 1e-5
"""A file whose peak absolute sample is below this (-100 dBFS) is rejected as all-silent; also the largest step
between neighbouring samples inside a run of digital silence (:func:`sound_intervals`)."""
SILENCE_MIN_S: float = 0.1
"""Shortest run of digital silence (s) treated like padding; shorter flat stretches are part of the signal."""
DEAD_CHANNEL_DB: float = -40.0
"""A channel whose RMS is this far below the loudest channel's is dead and left out of the down-mix."""
CANCEL_DB: float = -20.0
"""A down-mix whose RMS is this far below the mean RMS of its channels has cancelled the signal (inverted polarity):
the loudest channel is used alone. Uncorrelated channels mix at -3 dB, identical ones at 0 dB."""
STALE_SLACK: float = 0.01
"""A WAV data chunk declared up to this fraction larger than the bytes present is a stale header (read what is
there, with a warning); beyond it the file is truncated (an error)."""
BLOCK_S: float = 30.0
"""Seconds per block when :func:`stream` reads a file."""
ERROR_KINDS: tuple[str, ...] = (
    "missing", "not audio", "empty file", "placeholder", "unreadable", "truncated", "no samples", "NaN/inf",
    "all-silent", "too short", "silent window",
)  # fmt: skip
"""Values of :attr:`AudioError.kind`."""


class AudioError(ValueError):
    """A file that cannot be used as audio; ``path``, ``reason`` and ``kind`` (one of :data:`ERROR_KINDS`)."""

    def __init__(self, path: str | Path, reason: str, kind: str = "unreadable") -> None:
        self.path = str(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"{display_path(self.path)}: {reason}")


class AudioWarning(UserWarning):
    """Audio that was read but needed a repair or a choice (stale header, dead or cancelling channel)."""


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as printable text under any locale: bytes that are not UTF-8 (kept by Python as surrogate escapes)
    are shown as ``\\xNN``. Use it for messages and tables; keep the path itself to open the file."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", errors="backslashreplace")


def _path_bytes_or_escape(err: UnicodeError) -> tuple[str | bytes, int]:
    """Encoding error handler: a file name's undecodable bytes (surrogate escapes) are written back as the bytes they
    were; any other character the stream cannot encode becomes ``\\uNNNN``."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    chunk = err.object[err.start : err.end]
    if all(0xDC80 <= ord(c) <= 0xDCFF for c in chunk):
        return bytes(ord(c) - 0xDC00 for c in chunk), err.end
    return chunk.encode("ascii", errors="backslashreplace").decode("ascii"), err.end


codecs.register_error("sefin_paths", _path_bytes_or_escape)


def safe_output(stream: Any) -> Any:
    """Make a text stream (``sys.stdout``) write any file name under any locale: raw bytes for names that are not
    UTF-8, escapes for characters the locale cannot encode. Returns the stream (unchanged when it cannot be
    reconfigured, e.g. a StringIO)."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="sefin_paths")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - a stream that refuses
            pass
    return stream


def _warn(path: str | Path, note: str) -> None:
    warnings.warn(f"{display_path(path)}: {note}", AudioWarning, stacklevel=3)


@dataclass(frozen=True)
class Clip:
    """A fixed-length clip: ``samples`` (float32) and ``valid`` = (start, stop) of the real (non-padding) samples."""

    samples: np.ndarray
    valid: tuple[int, int]
    source_start: int = 0
    """Sample index (at the clip's rate) in the loaded signal where the clip's real audio begins."""


@dataclass(frozen=True)
class AudioInfo:
    """Facts about a file before decoding it all: native ``sample_rate``, ``channels``, ``frames`` (samples per
    channel at the native rate), the ``decoder`` used (``soundfile`` or ``pyav``) and ``notes`` (repairs made)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    decoder: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.sample_rate


# --------------------------------------------------------------------------------------------------------------------
# Files that are not audio at all
# --------------------------------------------------------------------------------------------------------------------


def sniff_placeholder(path: str | Path) -> str | None:
    """Say what a non-audio file saved under an audio name is, with the fix, or None.

    Recognised: a Git LFS pointer (clone without git-lfs), a git-annex pointer or broken annex link, an HTML page (a
    failed download), macOS AppleDouble metadata (``._name``), and other text.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        if "annex/objects" in target:
            return "a git-annex link whose content is not here: run `git annex get` on it"
        return f"a broken symbolic link (to {display_path(target)})"
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if head.startswith(b"version https://git-lfs.github.com/spec/"):
        return (
            f"a Git LFS pointer ({path.stat().st_size} bytes), not the audio: the repository was cloned without "
            "git-lfs; run `git lfs install && git lfs pull` in it"
        )
    if b"annex/objects" in head[:200]:
        return "a git-annex pointer, not the audio: run `git annex get` on it"
    if head[:4] == b"\x00\x05\x16\x07" or path.name.startswith("._"):
        return "macOS AppleDouble metadata (a '._' twin made when copying from a Mac), not audio"
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html", b"<?xml")):
        return "an HTML/XML page (a failed or blocked download?), not audio"
    if head and all(b in b"\t\n\r" or 32 <= b < 127 for b in head):
        return "a text file, not audio"
    return None


# --------------------------------------------------------------------------------------------------------------------
# WAV headers
# --------------------------------------------------------------------------------------------------------------------

_PLACEHOLDER_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


@dataclass(frozen=True)
class _WavData:
    data_offset: int
    declared: int
    available: int
    block_align: int
    header: bytes  # everything before the data chunk's size field
    big_endian: bool
    byte_rate: int = 0
    tail: bytes = b""  # the first bytes after the declared data (and its pad byte)

    @property
    def stale_short(self) -> bool:
        """The header declares less than the audio that follows: a recorder that updated its header now and then and
        stopped early. True when at least 50 ms of bytes follow the declared data and they are neither a chunk
        (four printable ASCII characters), an ID3 tag nor zero padding."""
        extra = self.available - self.declared - (self.declared & 1)
        if self.declared in _PLACEHOLDER_SIZES or extra < max(self.block_align, 0.05 * self.byte_rate, 1):
            return False
        head = self.tail[:4]
        if all(32 <= b < 127 for b in head) or head[:3] in (b"ID3", b"TAG") or not any(self.tail):
            return False
        return True


def _wav_data(path: Path) -> _WavData | None:
    """Locate a RIFF/WAVE file's data chunk. None when the file is not RIFF/WAVE (soundfile decides)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos, block_align, byte_rate = 12, 0, 0
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack(endian + "4sI", fh.read(8))
            if chunk_id == b"fmt " and chunk_size >= 14:
                _, _, _, byte_rate, block_align = struct.unpack(endian + "HHIIH", fh.read(14))
            if chunk_id == b"data":
                fh.seek(pos + 8 + chunk_size + (chunk_size & 1))
                tail = fh.read(4096) if chunk_size not in _PLACEHOLDER_SIZES else b""
                fh.seek(0)
                header = fh.read(pos + 4)
                return _WavData(
                    pos + 8, chunk_size, size - pos - 8, block_align, header, endian == ">", byte_rate, tail
                )
            pos += 8 + chunk_size + (chunk_size & 1)
    raise AudioError(path, "WAV file has no data chunk (truncated or corrupt)", "truncated")


def check_wav_header(path: str | Path) -> str | None:
    """Check a RIFF/WAVE header against the file's size.

    Returns
    -------
    str or None
        None when the header is consistent (or the file is not RIFF/WAVE); a note when the header is stale but the
        samples are there (data size 0 or 0xFFFFFFFF from a recorder that never finalised it, declared at most
        :data:`STALE_SLACK` larger than the bytes present, or smaller than the audio that follows it, see
        ``_WavData.stale_short``): :func:`load` then reads what is present.

    Raises
    ------
    AudioError
        No data chunk, or a data chunk that declares more than ``1 + STALE_SLACK`` times the bytes present (the file
        was cut; "mid-sample" when the bytes present end inside a sample frame).
    """
    path = Path(path)
    wav = _wav_data(path)
    if wav is None:
        return None
    declared, available, align = wav.declared, wav.available, max(wav.block_align, 1)
    if declared in _PLACEHOLDER_SIZES:
        if available < align:
            return None  # nothing follows: soundfile reports "no samples"
        label = "0" if declared == 0 else f"{declared:#x}"
        present = available - available % align
        return f"stale WAV header (data size {label}: never finalised); read the {present} bytes present"
    if declared > available:
        cut = " mid-sample" if available % align else ""
        if declared - available > STALE_SLACK * declared:
            raise AudioError(
                path,
                f"truncated file: header declares {declared} bytes of audio, only {available} present (cut{cut})",
                "truncated",
            )
        return f"stale WAV header (declares {declared} bytes of audio, {available} present); read what is present"
    if wav.stale_short:
        return (
            f"stale WAV header (declares {declared} bytes of audio but {available} bytes of audio follow: a header "
            "not updated when recording stopped); read them all"
        )
    return None


def _repaired_wav(path: Path) -> io.BytesIO:
    """The file with its data size set to the whole sample frames present (an in-memory copy)."""
    wav = _wav_data(path)
    assert wav is not None
    align = max(wav.block_align, 1)
    stale = wav.declared in _PLACEHOLDER_SIZES or wav.stale_short
    n = wav.available if stale else min(wav.available, wav.declared)
    n -= n % align
    endian = ">" if wav.big_endian else "<"
    with path.open("rb") as fh:
        fh.seek(wav.data_offset)
        body = fh.read(n)
    header = bytearray(wav.header)
    header[4:8] = struct.pack(endian + "I", len(header) - 8 + 4 + n)  # RIFF size: everything after its own field
    return io.BytesIO(bytes(header) + struct.pack(endian + "I", n) + body)


# --------------------------------------------------------------------------------------------------------------------
# Decoders
# --------------------------------------------------------------------------------------------------------------------


def _check_file(path: Path) -> None:
    if not path.is_file():
        note = sniff_placeholder(path) if path.is_symlink() else None
        raise AudioError(path, note or "no such file", "placeholder" if note else "missing")
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        known = ", ".join(AUDIO_EXTENSIONS)
        raise AudioError(path, f"unknown audio extension {path.suffix!r} (expected one of {known})", "not audio")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)", "empty file")


def _unreadable(path: Path, err: Exception, pyav_err: Exception | None = None) -> AudioError:
    note = sniff_placeholder(path)
    if note:
        return AudioError(path, f"unreadable as audio: {note}", "placeholder")
    extra = f"; PyAV/FFmpeg: {pyav_err}" if pyav_err is not None else ""
    return AudioError(path, f"unreadable or corrupt audio ({err}{extra})", "unreadable")


def _raise_placeholder(path: Path) -> None:
    note = sniff_placeholder(path)
    if note:
        raise AudioError(path, f"unreadable as audio: {note}", "placeholder")


def _sf_source(path: Path) -> tuple[bytes | io.BytesIO, tuple[str, ...]]:
    """What soundfile should open (the path, or a repaired in-memory copy) and the notes."""
    if path.suffix.lower() in (".wav", ".wave"):
        note = check_wav_header(path)
        if note:
            return _repaired_wav(path), (note,)
    return os.fsencode(path), ()


def _utf8_ok(path: Path) -> bool:
    try:
        os.fspath(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _pyav_open(path: Path):  # noqa: ANN202 - av types
    import av

    # FFmpeg takes UTF-8 names: a name that is not UTF-8 is handed over as an open file (closed when collected)
    container = av.open(os.fsdecode(path)) if _utf8_ok(path) else av.open(Path(path).open("rb"))  # noqa: SIM115
    stream = next((s for s in container.streams if s.type == "audio"), None)
    if stream is None:
        container.close()
        raise AudioError(path, "no audio stream in this container (video only?)", "no samples")
    return container, stream


def _pyav_blocks(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    """Decode with PyAV: (k, channels) float32 blocks of about ``block_frames`` at the native rate."""
    import av

    container, stream = _pyav_open(path)
    resampler = av.AudioResampler(format="flt")  # interleaved float32, rate and layout kept
    pending: list[np.ndarray] = []
    count = 0
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                ch = out.layout.nb_channels
                a = out.to_ndarray().reshape(-1, ch)
                pending.append(a)
                count += len(a)
                if count >= block_frames:
                    yield np.concatenate(pending)
                    pending, count = [], 0
        for out in resampler.resample(None):
            pending.append(out.to_ndarray().reshape(-1, out.layout.nb_channels))
    finally:
        container.close()
    if pending:
        yield np.concatenate(pending)


def info(path: str | Path, *, count: bool = True) -> AudioInfo:
    """Header facts of an audio file. PyAV containers state their length only as an estimate, so with ``count``
    they are decoded once to count the samples; without it ``frames`` is -1 for them.

    Raises
    ------
    AudioError
        Missing, empty, not audio, placeholder (Git LFS pointer...), unreadable, truncated or zero-length file.
    """
    path = Path(path)
    _check_file(path)
    src, notes = _sf_source(path)
    sf_err: Exception | None = None
    if path.suffix.lower() in SNDFILE_EXTENSIONS:
        try:
            i = sf.info(src)
            if i.frames <= 0:
                raise AudioError(path, "zero-length audio (no samples)", "no samples")
            return AudioInfo(str(path), int(i.samplerate), int(i.channels), int(i.frames), "soundfile", notes)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            sf_err = err
    _raise_placeholder(path)
    try:
        container, stream = _pyav_open(path)
    except AudioError:
        raise
    except Exception as err:  # noqa: BLE001 - any FFmpeg failure is an unreadable file
        raise _unreadable(path, sf_err or err, err if sf_err else None) from err
    try:
        rate, channels = int(stream.rate or 0), int(stream.channels or 0)
    finally:
        container.close()
    if not count:
        return AudioInfo(str(path), rate, channels, -1, "pyav", notes)
    frames = sum(len(b) for b in _pyav_blocks(path, 1 << 20))  # exact: containers' durations are estimates
    if frames <= 0 or rate <= 0:
        raise AudioError(path, "zero-length audio (no samples)", "no samples")
    return AudioInfo(str(path), rate, channels, frames, "pyav", notes)


def read(path: str | Path) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """Decode a whole file at its native rate: ``(data (frames, channels) float32, rate, notes)``.

    Raises
    ------
    AudioError
        As :func:`info`.
    """
    path = Path(path)
    _check_file(path)
    src, notes = _sf_source(path)
    sf_err: Exception | None = None
    if path.suffix.lower() in SNDFILE_EXTENSIONS:
        try:
            data, rate = sf.read(src, dtype="float32", always_2d=True)
            return data, int(rate), notes
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            sf_err = err
    _raise_placeholder(path)
    try:
        container, stream = _pyav_open(path)
        rate = int(stream.rate)
        container.close()
        blocks = list(_pyav_blocks(path, 1 << 22))
    except AudioError:
        raise
    except Exception as err:  # noqa: BLE001 - any FFmpeg failure is an unreadable file
        raise _unreadable(path, sf_err or err, err if sf_err else None) from err
    data = np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)
    return np.ascontiguousarray(data, dtype=np.float32), rate, notes


def _native_blocks(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    """(k, channels) float32 blocks at the native rate (soundfile when it opens the file, else PyAV)."""
    src, _ = _sf_source(path)
    fh = None
    if path.suffix.lower() in SNDFILE_EXTENSIONS:
        try:
            fh = sf.SoundFile(src)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            fh = None
    if fh is None:
        yield from _pyav_blocks(path, block_frames)
        return
    with fh:
        while True:
            block = fh.read(block_frames, dtype="float32", always_2d=True)
            if not len(block):
                return
            yield block


# --------------------------------------------------------------------------------------------------------------------
# Down-mix
# --------------------------------------------------------------------------------------------------------------------


def mix_weights(channel_power: np.ndarray, cross: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """Decide how to down-mix from per-channel mean power and the channels' mean cross products.

    Parameters
    ----------
    channel_power : np.ndarray, shape (c,)
        Mean square of each channel.
    cross : np.ndarray, shape (c, c)
        Mean of ``x_i * x_j`` (``channel_power`` on the diagonal).

    Returns
    -------
    (weights, note)
        ``weights`` (c,) for ``data @ weights``, or None for the plain mean (``data.mean(axis=1)``); ``note`` says
        what was done when it is not the plain mean.
    """
    c = len(channel_power)
    if c == 1:
        return None, None
    rms = np.sqrt(np.maximum(channel_power, 0.0))
    loudest = int(np.flatnonzero(rms >= rms.max() * 10 ** (-1 / 20))[0])  # the first channel within 1 dB of the top
    if rms[loudest] <= 0:
        return None, None
    live = rms > rms[loudest] * 10 ** (DEAD_CHANNEL_DB / 20)
    weights = live / live.sum()
    mix_rms = float(np.sqrt(max(weights @ cross @ weights, 0.0)))
    mean_rms = float(rms[live].mean())
    if live.sum() > 1 and mix_rms < mean_rms * 10 ** (CANCEL_DB / 20):
        db = 20 * np.log10(max(mix_rms, 1e-12) / mean_rms)
        only = np.zeros(c)
        only[loudest] = 1.0
        return only, (
            f"channels cancel when averaged (mix {db:.0f} dB below the channels: a polarity-inverted channel?); "
            f"used channel {loudest + 1} of {c} alone"
        )
    if live.all():
        return None, None
    dead = ", ".join(str(i + 1) for i in np.flatnonzero(~live))
    kept = ", ".join(str(i + 1) for i in np.flatnonzero(live))
    return weights.astype(np.float64), f"channel(s) {dead} of {c} silent (dead); down-mixed channel(s) {kept} only"


def _apply_mix(data: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if data.shape[1] == 1:
        return data[:, 0]
    if weights is None:
        return data.mean(axis=1)
    if np.count_nonzero(weights) == 1:
        return data[:, int(np.flatnonzero(weights)[0])]
    return (data[:, weights > 0]).mean(axis=1)


def downmix(data: np.ndarray, *, path: str | Path | None = None) -> tuple[np.ndarray, str | None]:
    """Mono from (frames, channels): the mean, unless it destroys the signal (see :func:`mix_weights`).

    Returns ``(mono (frames,) float32, note or None)``.
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"expected (frames, channels), got shape {data.shape}")
    if data.shape[1] == 1:
        return data[:, 0], None
    d = data.astype(np.float64)
    cross = d.T @ d / max(len(d), 1)
    weights, note = mix_weights(np.diag(cross), cross)
    return np.ascontiguousarray(_apply_mix(data, weights), dtype=np.float32), note


# --------------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------------


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with soxr ``soxr_hq`` (librosa's default; length ``ceil(n * target_sr / orig_sr)``)."""
    import librosa

    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def _check_samples(path: Path, data: np.ndarray) -> None:
    if data.size == 0:
        raise AudioError(path, "zero-length audio (no samples)", "no samples")
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioError(path, f"{int(np.sum(bad))} NaN/inf samples", "NaN/inf")


def load(path: str | Path, *, sr: int = SR, min_samples: int = FRAME_LENGTH) -> np.ndarray:
    """Load an audio file as mono float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
        Any file of :data:`AUDIO_EXTENSIONS`: soundfile formats, or phone/browser formats through PyAV.
    sr : int
        Target sample rate; other rates are resampled with soxr (``soxr_hq``).
    min_samples : int
        Shortest accepted signal after resampling (default one 2048-sample frame).

    Returns
    -------
    np.ndarray, shape (n,)
        Mono float32 samples (channels averaged, see :func:`downmix`).

    Warns
    -----
    AudioWarning
        A stale WAV header was repaired, or a dead/cancelling channel was left out of the down-mix.

    Raises
    ------
    AudioError
        Missing file, unknown extension, placeholder (Git LFS pointer...), unreadable or truncated file, zero length,
        NaN/inf samples, all-silent signal, or shorter than ``min_samples``.
    """
    path = Path(path)
    data, rate, notes = read(path)
    for note in notes:
        _warn(path, note)
    _check_samples(path, data)
    y, note = downmix(data, path=path)
    if note:
        _warn(path, note)
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        raise AudioError(path, f"all-silent audio (peak {peak:.2e} < {SILENCE_PEAK:.0e})", "all-silent")
    if rate != sr:
        y = resample(y, orig_sr=rate, target_sr=sr)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if len(y) < min_samples:
        raise AudioError(
            path,
            f"too short: {len(y)} samples at {sr} Hz ({len(y) / sr:.3f} s) < one {min_samples}-sample frame",
            "too short",
        )
    return y


@dataclass(frozen=True)
class StreamInfo:
    """What a first pass over a file found: ``n_samples`` after resampling to ``sr``, the native ``rate``,
    ``channels``, the down-mix ``weights`` and ``notes`` (repairs and down-mix choices)."""

    path: str
    sr: int
    rate: int
    channels: int
    n_samples: int
    weights: np.ndarray | None
    notes: tuple[str, ...]


def scan(path: str | Path, *, sr: int = SR, min_samples: int = FRAME_LENGTH, block_s: float = BLOCK_S) -> StreamInfo:
    """A first pass over a file, block by block (memory: one block): the checks of :func:`load` and the down-mix.

    Raises
    ------
    AudioError
        As :func:`load`.
    """
    path = Path(path)
    inf = info(path, count=False)  # this pass counts the samples itself
    c = inf.channels
    cross = np.zeros((c, c))
    ch_peak, mean_peak = np.zeros(c), 0.0
    n, bad = 0, 0
    block_frames = max(1, int(block_s * inf.sample_rate))
    for block in _native_blocks(path, block_frames):
        bad += int(np.sum(~np.isfinite(block)))
        if bad:
            continue
        if block.shape[1] != c:  # the decoder's layout rules over a container's header
            if n:
                raise AudioError(path, f"channel count changes inside the file ({c} -> {block.shape[1]})")
            c = block.shape[1]
            cross, ch_peak = np.zeros((c, c)), np.zeros(c)
        d = block.astype(np.float64)
        cross += d.T @ d
        ch_peak = np.maximum(ch_peak, np.abs(block).max(axis=0))
        mean_peak = max(mean_peak, float(np.max(np.abs(block.mean(axis=1)))))
        n += len(block)
    if bad:
        raise AudioError(path, f"{bad} NaN/inf samples", "NaN/inf")
    if n == 0:
        raise AudioError(path, "zero-length audio (no samples)", "no samples")
    cross /= n
    weights, note = mix_weights(np.diag(cross), cross)
    notes = list(inf.notes) + ([note] if note else [])
    if weights is None or c == 1:
        peak = mean_peak if c > 1 else float(ch_peak[0])
    elif np.count_nonzero(weights) == 1:
        peak = float(ch_peak[int(np.flatnonzero(weights)[0])])
    else:  # the mean of the live channels: one more pass
        peak = max(float(np.max(np.abs(_apply_mix(b, weights)))) for b in _native_blocks(path, block_frames))
    if peak < SILENCE_PEAK:
        raise AudioError(path, f"all-silent audio (peak {peak:.2e} < {SILENCE_PEAK:.0e})", "all-silent")
    n_out = n if inf.sample_rate == sr else int(np.ceil(n * sr / inf.sample_rate))
    if n_out < min_samples:
        raise AudioError(
            path,
            f"too short: {n_out} samples at {sr} Hz ({n_out / sr:.3f} s) < one {min_samples}-sample frame",
            "too short",
        )
    return StreamInfo(str(path), sr, inf.sample_rate, c, n_out, weights, tuple(notes))


def stream(path: str | Path, found: StreamInfo, *, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``found.sr``, equal when joined to :func:`load`'s signal (same down-mix, and
    ``soxr.ResampleStream`` in HQ quality gives the samples of librosa's ``soxr_hq``)."""
    path = Path(path)
    resampler = None
    if found.rate != found.sr:
        import soxr

        resampler = soxr.ResampleStream(found.rate, found.sr, 1, dtype="float32", quality="HQ")
    produced = 0
    blocks = _native_blocks(path, max(1, int(block_s * found.rate)))
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        mono = np.ascontiguousarray(_apply_mix(block, found.weights), dtype=np.float32)
        if resampler is not None:
            mono = resampler.resample_chunk(mono, last=following is None)
        mono = mono[: max(0, found.n_samples - produced)]
        produced += len(mono)
        if len(mono):
            yield mono
        block = following
    if produced < found.n_samples:  # librosa pads to ceil(n * ratio) (fix_length)
        yield np.zeros(found.n_samples - produced, np.float32)


# --------------------------------------------------------------------------------------------------------------------
# Windows and silence
# --------------------------------------------------------------------------------------------------------------------


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


def sound_intervals(
    y: np.ndarray, *, sr: int = SR, min_silence_s: float = SILENCE_MIN_S, threshold: float = SILENCE_PEAK
) -> list[tuple[int, int]]:
    """The ``[start, stop)`` sample ranges of a signal that are not digital silence.

    Digital silence is a run of at least ``min_silence_s`` seconds where the signal is flat: every step between
    neighbouring samples is at most ``threshold`` (zeros, and also a constant DC level from a stuck or offset
    converter). Quiet room noise is not flat and stays sound.

    Returns
    -------
    list of (int, int)
        Sorted, disjoint ranges; empty for an entirely flat signal.
    """
    return sound_intervals_blocks([np.asarray(y, dtype=np.float32)], sr=sr, min_silence_s=min_silence_s,
                                  threshold=threshold)  # fmt: skip


def sound_intervals_blocks(
    blocks: Iterable[np.ndarray], *, sr: int = SR, min_silence_s: float = SILENCE_MIN_S, threshold: float = SILENCE_PEAK
) -> list[tuple[int, int]]:
    """:func:`sound_intervals` of a signal given as consecutive mono blocks (memory: one block)."""
    min_run = max(1, int(round(min_silence_s * sr)))
    silent: list[tuple[int, int]] = []
    run_start: int | None = None  # start of the flat run still open at the end of the previous block
    pos, prev = 0, None
    for block in blocks:
        b = np.asarray(block, dtype=np.float32)
        if not len(b):
            continue
        flat = np.empty(len(b), bool)
        if prev is not None:
            flat[0] = abs(float(b[0]) - prev) <= threshold
        else:
            flat[0] = abs(float(b[1] - b[0])) <= threshold if len(b) > 1 else abs(float(b[0])) <= threshold
        flat[1:] = np.abs(np.diff(b)) <= threshold
        edges = np.flatnonzero(np.diff(np.concatenate(([0], flat.view(np.int8), [0])))) + pos
        starts, stops = list(edges[::2]), list(edges[1::2])
        if run_start is not None and starts and starts[0] == pos:
            starts[0] = run_start  # the run continues from the previous block
        elif run_start is not None:
            if pos - run_start >= min_run:
                silent.append((run_start, pos))
        run_start = None
        end = pos + len(b)
        for a, z in zip(starts, stops, strict=True):
            if z == end:
                run_start = int(a)  # may continue in the next block
            elif z - a >= min_run:
                silent.append((int(a), int(z)))
        pos, prev = end, float(b[-1])
    if run_start is not None and pos - run_start >= min_run:
        silent.append((run_start, pos))
    out, cur = [], 0
    for a, z in silent:
        if a > cur:
            out.append((cur, a))
        cur = z
    if cur < pos:
        out.append((cur, pos))
    return out


def is_silent_window(clip: Clip, *, sr: int = SR) -> bool:
    """True when a clip's real samples hold less than one frame (2048 samples) of sound (:func:`sound_intervals`):
    a training window of digital silence, not data."""
    v0, v1 = clip.valid
    spans = sound_intervals(clip.samples[v0:v1], sr=sr)
    return sum(b - a for a, b in spans) < FRAME_LENGTH


def load_clip(path: str | Path, *, sr: int = SR, offset: float = OFFSET_S, duration: float = DURATION_S) -> Clip:
    """``load`` then ``window``: the fixed-length clip every stage works on.

    Raises
    ------
    AudioError
        As :func:`load`; also kind ``silent window`` when the window holds less than one frame of sound (a recording
        whose audio lies outside the study's window, e.g. a long leading silence).
    """
    clip = window(load(path, sr=sr), sr=sr, offset=offset, duration=duration)
    if is_silent_window(clip, sr=sr):
        raise AudioError(
            path,
            f"the {duration:g} s window from {clip.source_start / sr:.2f} s is digital silence (less than one frame "
            "of sound): not used as data",
            "silent window",
        )
    return clip


def valid_frame_mask(valid: tuple[int, int], n_samples: int) -> np.ndarray:
    """Boolean mask over center=False frames: True where a frame overlaps the real samples ``[start, stop)``.

    The one definition is :func:`sefin_utils.features.valid_frame_mask`; this name is kept for old callers.
    """
    from sefin_utils import features

    return features.valid_frame_mask(valid, n_samples)


def frames_at(n_samples: int) -> int:
    """Number of center=False frames in a signal of ``n_samples`` (:func:`sefin_utils.features.n_frames`), 0 when
    shorter than one frame."""
    from sefin_utils import features

    return 0 if n_samples < FRAME_LENGTH else features.n_frames(n_samples)
