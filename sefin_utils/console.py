"""Keep log noise out of the rendered pages: progress and library warnings go to the terminal or the kernel log.

A Jupyter kernel saves whatever reaches its stderr into the notebook, and the HTML shows it as a pink block, also
on the code-free pages: TensorFlow's C++ start-up lines, tqdm's bars unrolled line by line, Python warnings. Every
stage notebook calls :func:`quiet_kernel` first, before TensorFlow is imported:

- TensorFlow's C++ log keeps errors only (``TF_CPP_MIN_LOG_LEVEL=2`` unless set);
- two messages that say nothing about the run are filtered, each named below (:data:`FILTERED`);
- in a kernel started by the runner (``SEFIN_KERNEL_STDERR=log`` in its environment) the kernel's stderr, Python's
  and the C++ libraries' alike, goes back to where the kernel's own stderr pointed before Jupyter captured it: the
  runner's ``runs/<profile>/executed/<stage>.kernel.log``. Progress bars and any warning are kept there for whoever
  wants them, and the page shows only what the notebook displays. Errors still reach the page: a failing cell's
  traceback is sent as the cell's error output, not through stderr.

Outside a kernel (scripts, tests) :func:`quiet_kernel` changes nothing but the TensorFlow log level default.

Commands (``python -m sefin_utils predict``) import TensorFlow through :func:`import_tensorflow_quietly`: since
TensorFlow 2.19 two start-up lines ignore ``TF_CPP_MIN_LOG_LEVEL`` (tensorflow/tensorflow#100442) and would precede
every answer; they are held back (:data:`STARTUP_LINES`), anything else TensorFlow writes while loading is shown.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import TextIO

STDERR_ENV = "SEFIN_KERNEL_STDERR"
"""Environment variable the runner sets to ``log`` in its kernels' environment (see :func:`quiet_kernel`)."""

FILTERED: dict[str, str] = {
    "IProgress not found": "tqdm.auto's warning, at import in a kernel without ipywidgets (not a sefin dependency): "
    "it then uses its text bar, which is what sefin wants",
    "triggered tf.function retracing": "TensorFlow's notice when a model is called on new input shapes or a new "
    "model is built in a loop (every seed and variant of a stage builds one): expected, and costs seconds",
}
"""Messages filtered on purpose (message start -> why it cannot be fixed at its source)."""


STARTUP_LINES: dict[str, str] = {
    "All log messages before absl::InitializeLog() is called": "absl's notice that it logs to stderr before it is "
    "initialised (TensorFlow never initialises it)",
    "oneDNN custom operations are on": "TensorFlow's INFO line at import on x86 CPUs (its numerics differ from "
    "oneDNN-off builds by float round-off only); TF_CPP_MIN_LOG_LEVEL no longer hides it (TensorFlow 2.19+)",
}
"""Lines TensorFlow's C++ libraries write at import that :func:`import_tensorflow_quietly` holds back (-> why)."""


_ROUTED: TextIO | None = None
"""The stream :func:`quiet_kernel` made the kernel's stderr (None until it routes)."""


def in_kernel() -> bool:
    """True inside a Jupyter (ipykernel) kernel, whose output is captured into the notebook."""
    return any(type(s).__module__.startswith("ipykernel") for s in (sys.stdout, sys.stderr))


def progress_stream() -> TextIO:
    """Where progress should go: the kernel's original stderr (the terminal, or the runner's kernel log) inside a
    kernel that captures output; elsewhere ``sys.stderr``. A stream opened here is the caller's to close (see
    :func:`to_log`)."""
    if _ROUTED is not None:
        return _ROUTED
    copy = getattr(sys.stderr, "_original_stdstream_copy", None)
    if type(sys.stderr).__module__.startswith("ipykernel") and copy is not None:
        return open(os.dup(copy), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    return sys.stderr


class _DropMessages(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(s in msg for s in self.starts)


def quiet_kernel(*, route: bool | None = None) -> bool:
    """Quiet TensorFlow's start-up, filter :data:`FILTERED`, and in a runner's kernel send stderr to the kernel log.

    Parameters
    ----------
    route : bool, optional
        Send the kernel's stderr (Python and file descriptor 2) to its original target. Default: when running in
        a kernel whose environment has ``SEFIN_KERNEL_STDERR=log`` (the runner sets it).

    Returns
    -------
    bool
        Whether stderr was routed away from the notebook.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm.std import TqdmWarning

    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _DropMessages) for f in tf_logger.filters):
        tf_logger.addFilter(_DropMessages(("triggered tf.function retracing",)))
    if route is None:
        route = in_kernel() and os.environ.get(STDERR_ENV) == "log"
    if not route or not in_kernel():
        return False
    global _ROUTED
    if _ROUTED is not None:
        return True
    sys.stderr.flush()
    # ipykernel copies the kernel's original stderr before pointing fd 2 at the notebook; it leaves fd 2 alone (no
    # copy) when it does not capture file descriptors, e.g. under pytest
    target = getattr(sys.stderr, "_original_stdstream_copy", None)
    if target is not None:
        os.dup2(target, 2)  # C++ libraries (TensorFlow, absl) write to fd 2: back to the kernel's original stderr
    else:
        target = 2
    sys.stderr = _ROUTED = io.TextIOWrapper(
        open(os.dup(target), "wb", buffering=0),  # noqa: SIM115
        encoding="utf-8",
        errors="replace",
        line_buffering=True,
    )
    return True


@contextlib.contextmanager
def to_log() -> Iterator[None]:
    """Within the block, send ``print`` and Keras' epoch lines (stdout) where progress goes (:func:`progress_stream`):
    a training loop's log stays in the terminal or the kernel log, not on the page. Outside a kernel, a no-op."""
    if not in_kernel():
        yield
        return
    stream = progress_stream()
    opened = stream is not _ROUTED and stream is not sys.stderr
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()
        if opened:
            stream.close()


def startup_noise(text: str) -> tuple[str, int]:
    """``text`` (what went to stderr while TensorFlow loaded) without the lines of :data:`STARTUP_LINES`; returns the
    kept text and how many lines were held back."""
    kept, dropped = [], 0
    for line in text.splitlines(keepends=True):
        if any(s in line for s in STARTUP_LINES):
            dropped += 1
        else:
            kept.append(line)
    return "".join(kept), dropped


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras with file descriptor 2 held in a temporary file, then write to stderr whatever
    they wrote there except :data:`STARTUP_LINES` (an error while loading still shows, and the import's exception
    propagates). A no-op when TensorFlow is already imported."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept, _ = startup_noise(held.read().decode("utf-8", errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
