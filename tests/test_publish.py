"""Publishing rendered reports (sefin_utils.publish): the readable part is copied, the code pages stay behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from sefin_utils import publish


def _report(root: Path) -> Path:
    root.mkdir(parents=True)
    links = " | ".join(['<a href="01_data.nocode.html">report</a>', '<a href="01_data.html">with code</a>'])
    (root / "index.html").write_text(f"<html><body><td>{links}</td></body></html>")
    for name in ("01_data.nocode.html", "01_data.html", "01_data.failed.html", "results.csv", "splits.csv"):
        (root / name).write_text(name)
    (root / "figures").mkdir()
    (root / "figures" / "01_counts.png").write_bytes(b"png")
    return root


def test_publish_keeps_the_readable_part_and_drops_code_links(tmp_path: Path) -> None:
    src = _report(tmp_path / "src")
    dest = tmp_path / "pub"
    assert publish.main([str(src), "--to", str(dest), "--names", "speaker"]) == 0
    out = dest / "speaker"
    assert sorted(p.name for p in out.iterdir()) == [
        "01_data.nocode.html",
        "figures",
        "index.html",
        "results.csv",
        "splits.csv",
    ]
    index = (out / "index.html").read_text()
    assert "with code" not in index and "01_data.nocode.html" in index
    assert (out / "figures" / "01_counts.png").read_bytes() == b"png"
    landing = (dest / "index.html").read_text()
    assert 'href="speaker/index.html"' in landing and "CC BY-NC-SA 4.0" in landing


def test_publish_mirrors_the_source(tmp_path: Path) -> None:
    src = _report(tmp_path / "src")
    dest = tmp_path / "pub"
    (dest / "stale.html").parent.mkdir(parents=True)
    (dest / "stale.html").write_text("old")
    publish.publish_report(src, dest)
    assert not (dest / "stale.html").exists()


def test_publish_names_a_folder_that_is_not_a_report(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no index.html"):
        publish.publish_report(tmp_path, tmp_path / "out")
