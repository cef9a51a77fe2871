"""Screenshot every page of a rendered report in headless Chromium, for a person to look at.

Usage::

    python tools/screenshot_report.py REPORT_DIR [--out DIR] [--width 1400] [--height 3000] [--full] [--code]

REPORT_DIR is a report folder written by ``python -m sefin_utils run`` (``reports/<profile>``). The pages shot are
``index.html``, every stage's code-free page (``NN_*.nocode.html``; with ``--code`` the pages with code too),
``results.html`` and ``skipped.html`` when present. Each page becomes ``<out>/<page>.png`` (default out:
``REPORT_DIR/screenshots``), the top ``--height`` pixels of the page at ``--width``. With ``--full`` the window is as
tall as Chromium allows (16,000 px): the white space below the page is cropped off and the page is also cut into
``<page>.partNN.png`` tiles of ``--height`` pixels, each small enough to read.

Chromium is Debian's ``chromium`` package (``apt-get install -y chromium``); ``--chromium`` or ``$CHROMIUM`` names
another binary. The flags keep it off the network and out of the user's profile. Prints one line per page (the PNG,
its size) and exits 1 if a page could not be shot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
"""Flags of every Chromium call (headless, no network fetches of its own, no sandbox: it runs as root here)."""
MAX_HEIGHT = 16_000
"""The tallest window ``--full`` asks for (Chromium's screenshots stay reliable up to about this size)."""


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium binary: ``explicit``, ``$CHROMIUM``, or ``chromium`` / ``chromium-browser`` on the PATH.

    Raises
    ------
    FileNotFoundError
        When none is found (with the command that installs it).
    """
    for cand in (explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and (path := shutil.which(cand)):
            return path
    raise FileNotFoundError("no Chromium found: apt-get install -y chromium (or pass --chromium /path/to/chrome)")


def pages(report_dir: Path, *, code: bool = False) -> list[Path]:
    """The pages of a report folder in reading order: index, stages (code-free, then with code), tables."""
    report_dir = Path(report_dir)
    out = [report_dir / "index.html"] if (report_dir / "index.html").is_file() else []
    out += sorted(report_dir.glob("[0-9][0-9]_*.nocode.html"))
    if code:
        out += sorted(p for p in report_dir.glob("[0-9][0-9]_*.html") if not p.name.endswith(".nocode.html"))
    out += [report_dir / n for n in ("results.html", "skipped.html") if (report_dir / n).is_file()]
    return out


def shoot(
    page: Path, png: Path, *, chromium: str, width: int = 1400, height: int = 3000, timeout: float = 120.0
) -> Path:
    """Render ``page`` in headless Chromium into ``png`` (``width`` x ``height`` window, the page's top).

    Raises
    ------
    RuntimeError
        When Chromium exits with an error or writes no PNG (its stderr's last lines in the message).
    """
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="sefin-chromium-") as profile:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            Path(page).resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not png.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"chromium could not shoot {page} (exit {proc.returncode}):\n{tail}")
    return png


def crop_and_tile(png: Path, *, tile: int) -> list[Path]:
    """Crop the uniform background below a full-height screenshot and cut it into ``tile``-pixel-high parts."""
    from PIL import Image, ImageChops

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    background = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
    box = ImageChops.difference(rgb, background).getbbox()
    bottom = min(rgb.height, (box[3] if box else 1) + 40)
    rgb = rgb.crop((0, 0, rgb.width, bottom))
    rgb.save(png)
    parts = []
    for i, top in enumerate(range(0, bottom, tile)):
        part = png.with_name(f"{png.stem}.part{i + 1:02d}.png")
        rgb.crop((0, top, rgb.width, min(bottom, top + tile))).save(part)
        parts.append(part)
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default REPORT_DIR/screenshots)")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=3000, help="window height; with --full the tile height")
    ap.add_argument("--full", action="store_true", help="whole pages, cropped, and cut into tiles")
    ap.add_argument("--code", action="store_true", help="also the stage pages with code")
    ap.add_argument("--chromium", default=None, help="Chromium binary (default: $CHROMIUM or chromium on the PATH)")
    args = ap.parse_args(argv)
    found = pages(args.report_dir, code=args.code)
    if not found:
        print(f"no report pages in {args.report_dir} (expected index.html and NN_*.nocode.html)", file=sys.stderr)
        return 1
    chromium = find_chromium(args.chromium)
    out = args.out or Path(args.report_dir) / "screenshots"
    failed = 0
    for page in found:
        png = out / f"{page.name.removesuffix('.html')}.png"
        try:
            shoot(page, png, chromium=chromium, width=args.width, height=MAX_HEIGHT if args.full else args.height)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"FAILED {page.name}: {err}", file=sys.stderr)
            failed += 1
            continue
        extra = ""
        if args.full:
            parts = crop_and_tile(png, tile=args.height)
            extra = f" ({len(parts)} part(s) of {args.height} px)"
        print(f"{png}{extra}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
