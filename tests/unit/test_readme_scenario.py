"""The commented example scenario in README.md (the YAML block whose first line is `# my-home.yaml`)
is a valid scenario, and it mentions every key of the scenario format."""

import dataclasses
import re

from conftest import REPO, run_cli
from edgetrain.core.config import Availability, DeviceConfig, ModelConfig, Objective, Scenario
from edgetrain.core.scenario import parse_scenario

MARKER = "# my-home.yaml"


def _example_block() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", readme, flags=re.S | re.M)
    found = [b for b in blocks if any(line.startswith(MARKER) for line in b.splitlines())]
    assert len(found) == 1, f"README.md needs exactly one yaml block with a line starting {MARKER!r}"
    return found[0]


def test_the_readme_example_scenario_is_valid():
    scenario = parse_scenario(_example_block(), "README.md (my-home.yaml)")
    assert scenario.name == "my-home"
    assert len(scenario.devices) >= 2
    kinds = {d.availability.kind for d in scenario.devices}
    assert {"always", "markov"} <= kinds
    assert any(d.battery_wh for d in scenario.devices)


def test_the_readme_example_mentions_every_key_of_the_format():
    block = _example_block()
    for cls in (Scenario, Objective, ModelConfig, DeviceConfig, Availability):
        for field in dataclasses.fields(cls):
            if field.init and field.name != "source":
                assert re.search(rf"\b{field.name}:", block), f"{cls.__name__}.{field.name} is not in the example"


def test_edgetrain_scenario_validate_accepts_the_readme_example(tmp_path):
    path = tmp_path / "my-home.yaml"
    path.write_text(_example_block())
    result = run_cli("scenario", "validate", "--scenario", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: valid scenario 'my-home' with 3 devices")
