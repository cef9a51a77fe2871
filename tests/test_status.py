"""`python -m sefin_utils status`: where a run folder stands, read from its files alone."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from sefin_utils import runs, status
from sefin_utils.stages import STAGE_HISTORY


def _metrics(path: Path, f1: float, epochs: int, seconds: float, when: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"record": {"test_macro_f1": f1}, "epochs_run": epochs, "epoch_seconds": [seconds] * epochs})
    )
    os.utime(path, (when, when))


def test_status_names_stages_heartbeat_history_models_and_the_ablations_pace(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"profile": "full", "protocol": "speaker"}))
    (run / "stages" / "data.json").write_text(json.dumps({"finished": "2026-12-07T14:10:21", "seconds": 36.0}))
    beat = {"started": "2026-12-07T20:00:41", "seconds": 210.0, "beat": "x", "beat_epoch": time.time(), "pid": 1}
    (run / "stages" / "ser_with_fins.running.json").write_text(json.dumps({**beat, "host": "h"}))
    lines = [{"status": "ran", "seconds": 600.0}, {"status": "killed", "seconds": 60.0}]
    (run / STAGE_HISTORY).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    t0 = time.time() - 3600
    _metrics(run / "baseline" / "metrics" / "anchor_mlp__seed0.json", 0.36, 3, 1.0, t0)
    for i, code in enumerate(runs.ablation_order()[:3] + [runs.ablation_order()[16]]):
        _metrics(run / "ser" / "metrics" / f"ablation_{code}__seed0.json", 0.3 + i / 100, 10, 60.0, t0 + 60 * (i + 1))
    text = status.describe(run, last=2)
    assert "01_data            done 2026-12-07T14:10:21 (0.6 min)" in text
    assert "05_ser_with_fins   running: started 2026-12-07T20:00:41, 3.5 min at its last heartbeat" in text
    assert "04_fins            not run" in text
    assert "wall time recorded: 11.0 min over 2 stage executions (1 ran, 1 killed)" in text
    assert "models stored: 5" in text and "anchor_mlp               seeds 0" in text
    # 4 mixes, 3 of them in the half fraction; 10 epochs of 60 s = 10 min a mix
    assert "ablation: 4 of 32 mixes; the half fraction trained first (an even number of L): 3 of 16" in text
    assert "at least 2.2 h to the half fraction, 4.7 h to all 32" in text
    assert text.count("ablation_") == 2 and "test macro-F1 0.330, 10 epochs in 10.0 min" in text  # the last 2


def test_status_command_names_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert status.main([str(tmp_path)]) == 1
    assert f"{tmp_path} is not a run folder" in capsys.readouterr().out
