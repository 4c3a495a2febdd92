"""The cost model against what really happens: bytes on the wire, and its command line."""

import json
import statistics

import pytest

from conftest import TINY, run_cli
from edgetrain.core.plans import Plan
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.costmodel import CostModel
from edgetrain.runtime.coordinator.job import Job, run_job
from edgetrain.runtime.coordinator.launcher import LocalLauncher


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    from edgetrain.runtime.coordinator.calibration import calibrate_devices
    return calibrate_devices(load_scenario(TINY), LocalLauncher(), tmp_path_factory.mktemp("calibrate"), backend="local")


def test_the_calibration_holds_measurements_and_says_how_they_were_taken(calibration):
    assert set(calibration["devices"]) == {"a", "b", "c"}
    assert set(calibration["links"]) == {f"{s}->{d}" for s in "abc" for d in "abc" if s != d}
    for device in calibration["devices"].values():
        assert device["sustained_cpu_rate"] > 0.3  # one thread per shard, on a 2-core machine
        assert all(e["forward_cpu_s"] > 0 and e["backward_cpu_s"] > 0 for e in device["block"])
        assert device["block"][0]["activation_bytes"] > 0
    for link in calibration["links"].values():  # both ways at once, at every size measured one way
        assert set(link["exchange_s"]) == set(link["transfer_s"]) and min(link["exchange_s"].values()) > 0
    assert {"compute", "links", "activation_bytes", "sustained_cpu_rate", "exchange_s"} <= set(calibration["how"])


@pytest.mark.parametrize("plan", ["dp:a,b", "dp:a,b,c", "pp:a,b", "pp:a,b,c", "tp:a,b", "tp:a,b,c",
                                  "sp:a,b", "sp:a,b,c"])
def test_predicted_traffic_matches_the_bytes_really_sent(plan, calibration, tmp_path):
    scenario = load_scenario(TINY)
    job = Job(scenario=scenario, plan=Plan.parse(plan), steps=5, run_dir=tmp_path)
    steps = run_job(job, LocalLauncher()).steps[1:]  # steady state: no start-up traffic
    # Received bytes, not sent: a step's last sends may be acknowledged (and so counted as sent) only
    # after its counters are read, but whatever a device waited for has arrived within the step.
    # Per device, so that one device's error cannot hide behind another's.
    predicted = CostModel(calibration, scenario).predict(Plan.parse(plan))
    for device in Plan.parse(plan).devices:
        received = statistics.median(s["devices"][device]["bytes_recv"] for s in steps)
        assert received == pytest.approx(predicted.bytes_recv[device], rel=0.10), device


def test_predict_command(calibration, tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration))
    result = run_cli("predict", "--calibration", str(path), "--scenario", TINY, "--plan", "pp:a,b,c", "--json")
    assert result.returncode == 0, result.stderr
    prediction = json.loads(result.stdout)
    assert prediction["fits"] and prediction["step_time_s"] > 0 and set(prediction["energy_j"]) == {"a", "b", "c"}
    refused = run_cli("predict", "--calibration", str(path), "--scenario", TINY, "--plan", "pp:a,b,c,a")
    assert refused.returncode == 2 and "twice" in refused.stderr and "Traceback" not in refused.stderr
    path.write_text("{}")
    bad = run_cli("predict", "--calibration", str(path), "--scenario", TINY, "--plan", "dp:a,b")
    assert bad.returncode == 2 and "not an edgetrain calibration" in bad.stderr and "Traceback" not in bad.stderr
