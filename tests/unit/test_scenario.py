import pytest

from conftest import run_cli
from edgetrain.core.errors import ScenarioError
from edgetrain.core.scenario import load_scenario, parse_scenario

GOOD = """
name: t
model: {layers: 2, d_model: 32, heads: 4, seq_len: 16, batch_size: 4}
devices:
  - {name: a, profile: laptop, cpu_share: 0.2, bandwidth_mbps: 10}
"""


def _availability(flow: str) -> str:
    """GOOD with its device's availability given as a YAML flow mapping."""
    return GOOD.replace("bandwidth_mbps: 10", f"bandwidth_mbps: 10, availability: {flow}")


def test_default_scenario_is_a_foresight_world_of_five_devices_within_the_cpu_budget():
    """Issue 10: the default scenario is one where foresight pays: sessions of a typical length (a
    device's age says when it leaves) and switches that cost more than an interval's decision."""
    scenario = load_scenario()
    assert scenario.name == "smart-home-sessions" and scenario.switch_s >= 5
    assert {d.availability.kind for d in scenario.devices} == {"sessions", "always"}
    assert all(d.availability.shape > 1 for d in scenario.devices if d.availability.kind == "sessions")
    assert len(scenario.devices) == 5
    assert len({d.profile for d in scenario.devices}) == 5
    assert sum(d.cpu_share for d in scenario.devices) <= 0.8 + 1e-9


def test_good_scenario_parses_with_defaults():
    scenario = parse_scenario(GOOD, "x.yaml")
    assert scenario.devices[0].availability.kind == "always"
    assert scenario.model.ffn_dim == 128
    assert scenario.objective.eta == 0.5


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace("seq_len: 16", "seq_len: 16, colour: red"), "x.yaml: model.colour: unknown key"),
    (GOOD.replace("cpu_share: 0.2", "cpu_share: 3"), "x.yaml: devices[0].cpu_share: must be in (0, 1]"),
    (GOOD.replace("profile: laptop", "profile: toaster"), "x.yaml: devices[0].profile: unknown device profile 'toaster'"),
    (GOOD.replace("heads: 4", "heads: 5"), "x.yaml: model.heads: d_model (32) must be divisible by heads (5)"),
    (GOOD.replace("{name: a, ", "{"), "x.yaml: devices[0].name: is required"),
    (GOOD + "objective: {eta: 2}\n", "x.yaml: objective.eta: must be between 0 and 1"),
    (_availability("{kind: markov, mean_up_s: 5}"),
     "x.yaml: devices[0].availability.mean_down_s: is required"),
    (GOOD.replace("batch_size: 4", "batch_size: true"), "x.yaml: model.batch_size: must be a number"),
    (_availability("{kind: diurnal}"),
     "x.yaml: devices[0].availability.kind: must be one of always, markov, sessions, trace, got 'diurnal'"),
    (_availability("{kind: sessions, mean_up_s: 5, mean_down_s: 5, hours: [[20, 18]]}"),
     "x.yaml: devices[0].availability.hours: must be a list of [start_h, end_h] windows"),
    (_availability("{kind: sessions, mean_up_s: 5, mean_down_s: 5, hours: [[1, 3], [2, 4]]}"),
     "x.yaml: devices[0].availability.hours: must be a list of [start_h, end_h] windows"),
    (_availability("{kind: sessions, mean_up_s: 5, mean_down_s: 5, hours: 7}"),
     "x.yaml: devices[0].availability.hours: must be a list of [start_h, end_h] windows"),
    (_availability("{kind: sessions, mean_up_s: 5, mean_down_s: 5, shape: 50}"),
     "x.yaml: devices[0].availability.shape: must be a number from 0.2 to 20"),
    (_availability("{kind: markov, mean_up_s: 5, mean_down_s: 5, shape: 2}"),
     "x.yaml: devices[0].availability.shape: does not apply to availability kind 'markov'"),
    (GOOD + "start_hour: 25\n", "x.yaml: start_hour: must be a number of hours from 0 to 24"),
    (GOOD + "switch_s: -1\n", "x.yaml: switch_s: must be a number of seconds from 0 to 600"),
    (GOOD + "switch_s: fast\n", "x.yaml: switch_s: must be a number of seconds from 0 to 600"),
    (GOOD.replace("bandwidth_mbps: 10", "bandwidth_mbps: 10, charging_hours: [[0, 6]]"),
     "x.yaml: devices[0].charging_hours: needs battery_wh"),
    (GOOD.replace("bandwidth_mbps: 10", "bandwidth_mbps: 10, battery_wh: 5, charging_hours: [[6, 0]]"),
     "x.yaml: devices[0].charging_hours: must be a list of [start_h, end_h] windows"),
    (GOOD.replace("bandwidth_mbps: 10", "bandwidth_mbps: 10, battery_wh: 5, charge_w: 0"),
     "x.yaml: devices[0].charge_w: must be a positive number"),
    ("name: [unclosed", "x.yaml: not valid YAML at line 1"),
    ("- just a list", "x.yaml: the top level must be a mapping"),
])
def test_bad_scenarios_name_the_file_and_the_key_path(text, expected):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.yaml")
    assert str(info.value).startswith(expected)


def test_cpu_shares_over_the_budget_are_refused():
    devices = "".join(f"  - {{name: d{i}, profile: laptop, cpu_share: 0.3}}\n" for i in range(3))
    with pytest.raises(ScenarioError, match="cpu_share values sum to 0.90"):
        parse_scenario("name: t\ndevices:\n" + devices, "x.yaml")


def test_cli_reports_a_bad_scenario_in_one_sentence_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("profile: laptop", "profile: laptop, wings: 2"))
    result = run_cli("scenario", "validate", "--scenario", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"edgetrain: error: {bad}: devices[0].wings: unknown key "
                                                  "(expected one of name, profile, cpu_share, bandwidth_mbps, "
                                                  "delay_ms, loss_pct, memory_mb, battery_wh, "
                                                  "battery_initial_pct, availability, charging_hours, charge_w, power_modes)"]


def test_cli_reports_a_missing_scenario_file(tmp_path):
    result = run_cli("scenario", "validate", "--scenario", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "no such scenario file" in result.stderr and "Traceback" not in result.stderr


CLUSTER_CASES = [
    ("devices: {a: {address: '127.0.0.1:7000'}}", "token_file: required"),
    ("token_file: t\ndevices: {a: {address: 'nohost'}}", "address must be HOST:PORT"),
    ("token_file: t\ndevices: {a: {address: '127.0.0.1:99999'}}", "port in 1..65535"),
    ("token_file: t\ndevices: {zz: {address: 'h:1'}}", "not a device of scenario"),
    ("token_file: t\ndevices: {a: 'h:1'}", "no address for b, c"),
    ("token_file: t\nextra: 1\ndevices: {a: 'h:1'}", "unknown key(s) extra"),
    ("[1, 2", "not a YAML file"),
]


@pytest.mark.parametrize("body, expected", CLUSTER_CASES)
def test_bad_cluster_files_get_one_sentence_naming_the_key(tmp_path, body, expected):
    from conftest import TINY
    from edgetrain.core.errors import UserError
    from edgetrain.fleet.cluster import load_cluster
    path = tmp_path / "c.yaml"
    path.write_text(f"scenario: {TINY}\n{body}\n" if not body.startswith("[") else body)
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_cluster(str(path))


def test_a_good_cluster_file_resolves_addresses_and_the_token_path(tmp_path):
    from conftest import TINY
    from edgetrain.fleet.cluster import load_cluster
    path = tmp_path / "c.yaml"
    path.write_text(f"scenario: {TINY}\ntoken_file: secret\ndevices:\n  a: {{address: '10.0.0.1:7077', "
                    "socket_ifname: wlan0}\n  b: '10.0.0.2:7077'\n  c: {address: 'pi.local:7078'}\n")
    cluster = load_cluster(str(path))
    assert cluster.scenario.name == "tiny"
    assert cluster.devices["a"].address == ("10.0.0.1", 7077) and cluster.devices["a"].socket_ifname == "wlan0"
    assert cluster.devices["c"].address == ("pi.local", 7078) and cluster.devices["b"].socket_ifname is None
    assert cluster.token_file == str(tmp_path / "secret")


def test_deploy_without_a_calibration_for_an_uncalibrated_cluster_says_how_to_make_one(tmp_path):
    from conftest import TINY
    path = tmp_path / "c.yaml"
    path.write_text(f"scenario: {TINY}\ntoken_file: secret\ndevices: {{a: 'h:1', b: 'h:2', c: 'h:3'}}\n")
    (tmp_path / "policy.zip").write_bytes(b"x")
    result = run_cli("deploy", "--policy", str(tmp_path / "policy.zip"), "--cluster", str(path))
    assert result.returncode == 2
    assert "no shipped calibration" in result.stderr and "edgetrain calibrate --cluster" in result.stderr
    assert "Traceback" not in result.stderr
