"""Publishing rendered reports (sefin_utils.publish): the readable part is copied, the code pages stay behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sefin_utils import publish, runs


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


def test_publish_renames_local_paths_in_pages_and_tables(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _report(tmp_path / "src")
    (src / "index.html").write_text((src / "index.html").read_text() + "<td>/home/me/sefin/data/full</td>")
    (src / "skipped.csv").write_text("path,reason\n/home/me/sefin/data/full/esd/x.txt,not audio\n")
    dest = tmp_path / "pub"
    argv = [str(src), "--to", str(dest), "--rename", "/home/me/sefin/data/full=data/full"]
    assert publish.main(argv) == 0
    out = dest / "src"
    assert "<td>data/full</td>" in (out / "index.html").read_text()
    assert (out / "skipped.csv").read_text() == "path,reason\ndata/full/esd/x.txt,not audio\n"
    assert (out / "figures" / "01_counts.png").read_bytes() == b"png"  # not text: untouched
    with pytest.raises(SystemExit):
        publish.main([str(src), "--to", str(dest), "--rename", "no-equals-sign"])
    assert "expected OLD=NEW" in capsys.readouterr().err


def test_publish_names_a_folder_that_is_not_a_report(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no index.html"):
        publish.publish_report(tmp_path, tmp_path / "out")


def _bundle(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "classifier.keras").write_bytes(b"keras")
    (root / "preprocess.json").write_text("{}")
    card = {
        "variant": "anchor_mlp",
        "won": "anchor_mlp (anchor) on the speaker protocol",
        "chosen_by": "best validation macro-F1",
        "protocol": "speaker",
        "classes": ["angry", "sad"],
        "metrics": {"test_n": 10, "test_macro_f1": 0.5, "test_CREMA-D_n": 4, "test_CREMA-D_macro_f1": 0.25},
        "data": {"data_root": "/home/me/sefin/data/full", "clips_per_split": {"train": 8}},
    }
    (root / "card.json").write_text(json.dumps(card))
    return root


def test_ship_model_copies_the_bundle_and_writes_its_card(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "run" / "model")
    dest = tmp_path / "models" / "sefin-ser"
    assert publish.main(["--model", str(bundle), "--model-to", str(dest)]) == 0
    assert (dest / "classifier.keras").read_bytes() == b"keras"
    card = json.loads((dest / "card.json").read_text())
    assert card["variant"] == "anchor_mlp" and card["licences"]["RAVDESS"] == "CC BY-NC-SA 4.0"
    readme = (dest / "README.md").read_text()
    assert "| test, CREMA-D | 4 | – | 0.250 | – |" in readme and "non-commercial" in readme
    local = json.loads((bundle / "card.json").read_text())["data"]["data_root"]
    assert publish.main(["--model", str(bundle), "--model-to", str(dest), "--rename", f"{local}=data/full"]) == 0
    assert json.loads((dest / "card.json").read_text())["data"]["data_root"] == "data/full"
    assert "**Data:** data/full;" in (dest / "README.md").read_text()


def test_ship_model_names_an_incomplete_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "model")
    (bundle / "preprocess.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing preprocess.json"):
        publish.ship_model(bundle, tmp_path / "out")


def test_results_section_is_computed_from_the_published_tables(tmp_path: Path) -> None:
    cols = "model,protocol,seeds,test macro-F1,test macro-F1 sd,ESD macro-F1,ESD macro-F1 sd,study macro-F1\n"
    for name, f1 in (("speaker", 0.4), ("study", 0.6)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "headline.csv").write_text(cols + f"e2e_finetuned,{name},3,{f1},0.01,0.25,,0.65\n")
    codes = [c for c in runs.ablation_order() if c.count("L") % 2 == 0]  # the half fraction, trained first
    rows = [f"ablation_{c},ablation,{c},{0.4 + 0.1 * (c[0] == 'F')}" for c in codes]
    (tmp_path / "speaker" / "results.csv").write_text("variant,kind,sources,test_macro_f1\n" + "\n".join(rows) + "\n")
    partial = ["ablation_F-F-F-F-F,ablation,F-F-F-F-F,0.5", "ablation_F-F-F-F-L,ablation,F-F-F-F-L,0.45"]
    (tmp_path / "study" / "results.csv").write_text("variant,kind,sources,test_macro_f1\n" + "\n".join(partial))
    section = publish.results_markdown(tmp_path, ["speaker", "study"])
    assert "| `e2e_finetuned` | 0.400 ± 0.010 (3) | 0.600 ± 0.010 (3) | 0.250 | 0.250 | 0.65 |" in section
    assert "Ablation (speaker protocol, the 16 mixes of a half fraction of resolution V" in section
    # the main effect; a half fraction holds no pair of mixes that differ in one feature only
    assert "| `rms` | 0.500 ± 0.000 (8) | 0.400 ± 0.000 (8) | +0.100 | – |" in section
    assert "Ablation (study protocol, 2 of the 32 mixes so far, not a balanced design" in section
    assert "| `mel` | 0.500 (1) | 0.450 (1) | – | 0.050 (1) |" in section  # only the paired difference
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{publish.RESULTS_START}\nold\n{publish.RESULTS_END}\n\n## After\n")
    publish.update_readme(readme, section)
    text = readme.read_text()
    assert "old" not in text and text.count("## Results") == 1 and text.endswith("## After\n")
