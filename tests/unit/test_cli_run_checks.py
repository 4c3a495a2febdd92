"""`edgetrain run` refuses what cannot work before anything starts (exit 2, one sentence, no run folder),
and its closing line names the plan that ran last."""

import pytest

from conftest import TINY, run_cli
from edgetrain.core.errors import UserError
from edgetrain.runtime.coordinator.metrics import RunMetrics


def _one_sentence_refusal(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_fault_on_a_scenario_device_outside_the_plan_is_refused_before_anything_starts(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("run", "--plan", "local:a", "--scenario", TINY, "--steps", "1", "--inject-fault", "b@2",
                     "--run-dir", str(run_dir), timeout=60)
    line = _one_sentence_refusal(result)
    assert "'b'" in line and "not in the plan local:a" in line
    assert not run_dir.exists()


def test_a_missing_data_path_is_refused_before_anything_starts(tmp_path):
    run_dir, missing = tmp_path / "run", tmp_path / "no-such-corpus.txt"
    result = run_cli("run", "--plan", "local:a", "--scenario", TINY, "--steps", "1", "--data", str(missing),
                     "--run-dir", str(run_dir), timeout=60)
    line = _one_sentence_refusal(result)
    assert str(missing) in line and "no such file or folder" in line
    assert not run_dir.exists()


def test_data_check_takes_a_text_file_or_a_folder(tmp_path):
    from edgetrain.app.cli import _check_data
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("hello " * 400)
    _check_data(str(tmp_path / "corpus"))
    _check_data(str(tmp_path / "corpus" / "a.txt"))
    with pytest.raises(UserError, match="no such file or folder"):
        _check_data(str(tmp_path / "corpus" / "b.txt"))


def _step(step: int, loss: float, devices: list[str]) -> dict:
    return {"step": step, "loss": loss, "loss_weight": 1.0 / len(devices), "time_s": 0.1, "interval_s": 0.1,
            "cpu_s": 0.1, "energy_j": 0.5, "bytes_sent": 10, "bytes_recv": 10}


def test_the_closing_line_names_the_plan_that_ran_last_after_a_recovery():
    from edgetrain.app.cli import _closing_line
    metrics = RunMetrics(plan="", scenario="tiny", devices=[], batch_size=10)
    metrics.begin_plan("dp:a,b", ["a", "b"], 0)
    for step in (1, 2, 3):
        for device in ("a", "b"):
            metrics.add_step(device, _step(step, 2.0, ["a", "b"]), world=2)
    metrics.recoveries.append({"devices": ["b"], "step": 3, "resumed_from_step": 2, "new_plan": "local:a"})
    metrics.begin_plan("local:a", ["a"], 2)
    for step in (3, 4):
        metrics.add_step("a", _step(step, 1.5, ["a"]), world=1)
    line = _closing_line(metrics.to_dict(), "ckpt.pt", "m.json")
    assert line.startswith("local:a: 4 steps, final loss 1.5000, ")
    assert "dp:a,b" not in line
    assert line.endswith("checkpoint ckpt.pt; metrics m.json")


def test_the_closing_line_of_a_run_without_recovery_names_its_plan():
    from edgetrain.app.cli import _closing_line
    metrics = RunMetrics(plan="", scenario="tiny", devices=[], batch_size=10)
    metrics.begin_plan("pp:a,b", ["a", "b"], 0)
    for device in ("a", "b"):
        metrics.add_step(device, _step(1, 3.0, ["a", "b"]), world=2)
    assert _closing_line(metrics.to_dict(), "ckpt.pt", None) == (
        "pp:a,b: 1 steps, final loss 3.0000, 10.00 ms and 0.100 J per sample; checkpoint ckpt.pt")
