"""The testbed paths of the `edgetrain` command that no other test runs: `emulate check` and online
fine-tuning (`train --online-steps`)."""

import json

from conftest import TINY, TINY_CALIBRATION, run_cli


def test_emulate_check_measures_every_link_and_cpu_share_against_the_scenario(tmp_path):
    """With a 2 ms CFS period, 10 ms steps run at the device's share too (under Linux's 100 ms they
    ran at 2.5x: a step found the period's whole quota unspent)."""
    out = tmp_path / "check.json"
    result = run_cli("emulate", "check", "--scenario", TINY, "--seconds", "2", "--json", str(out),
                     "--cfs-period-ms", "2", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    configured = {"a": (50, 0.2), "b": (40, 0.2), "c": (20, 0.2)}
    assert set(report["devices"]) == set(configured)
    for name, (mbps, share) in configured.items():
        device = report["devices"][name]
        assert device["bandwidth_mbps"]["configured"] == mbps and device["cpu_share"]["configured"] == share
        assert abs(device["bandwidth_mbps"]["measured"] - mbps) <= 0.10 * mbps, name
        assert abs(device["cpu_share"]["measured"] - share) <= 0.15 * share, name
        assert abs(device["cpu_share_short_steps"]["measured"] - share) <= 0.15 * share, name
        assert device["cpu_share_after_idle"]["measured"] > 0
    assert report["cfs_period_us"] == 2000
    assert report["all_within_target"] is True and report["delay_emulated"] is False
    assert "a step after idle is not counted): True" in result.stdout


def test_online_fine_tuning_trains_on_the_live_testbed_and_continues_the_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logs = tmp_path / "logs"
    result = run_cli("train", "--scenario", TINY, "--calibration", TINY_CALIBRATION, "--timesteps", "128",
                     "--n-envs", "1", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1",
                     "--imitate-steps", "300", "--decision-steps", "3", "--online-steps", "2", "--online-n-steps", "2",
                     "--out", str(tmp_path / "policy"), "--logdir", str(logs), "--no-progress", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "policy" / "policy.zip").is_file() and (tmp_path / "policy" / "policy.onnx").is_file()
    online = sorted((tmp_path / "policy" / "checkpoints").glob("policy_online*"))
    assert online, "no checkpoint of the online part"
    (run,) = [p for p in logs.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run))
    events.Reload()
    steps = [e.step for e in events.Scalars("time/fps")] if "time/fps" in events.Tags()["scalars"] else []
    # One TensorBoard run: the live decisions come after the simulator's 128 steps.
    assert steps and max(steps) > 128
