"""Command line: ``python -m sefin_utils <command> ...``.

Commands (each delegates to its module's ``main(argv) -> int``):
  run        execute the stage notebooks for a profile (sefin_utils.runner)
  manifest   discover corpora under a folder and write the manifest (sefin_utils.corpora)
  predict    classify the emotion of audio files (sefin_utils.predict)
  demo-data  write the generated demo corpus (sefin_utils.synth)
  publish    copy rendered reports (pages without code, tables, figures) into a folder to commit (sefin_utils.publish)
  status     where run folders stand: stages, heartbeat, wall time, stored models, ablation (sefin_utils.status)
"""

from __future__ import annotations

import importlib
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("sefin_utils.runner", "execute the stage notebooks for a profile"),
    "manifest": ("sefin_utils.corpora", "discover corpora and write a manifest CSV"),
    "predict": ("sefin_utils.predict", "classify the emotion in audio files"),
    "demo-data": ("sefin_utils.synth", "write the generated demo corpus"),
    "publish": ("sefin_utils.publish", "copy rendered reports into a folder to commit"),
    "status": ("sefin_utils.status", "where run folders stand (stages, wall time, models, ablation)"),
}


def _usage() -> str:
    lines = ["usage: python -m sefin_utils <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`python -m sefin_utils <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command's ``main``; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up INFO/WARNING lines are noise here
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
