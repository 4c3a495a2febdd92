"""A folder in the working directory named like a built-in scenario neither shadows it nor is written
into: `evaluate --json workshop.json` puts its plots in `workshop-plots/`, not `workshop/`."""

import json
import subprocess
import sys
from pathlib import Path


def _edgetrain(cwd, *args: str) -> subprocess.CompletedProcess:
    """The `edgetrain` command run from `cwd` (run_cli runs from the repository)."""
    return subprocess.run([sys.executable, "-m", "edgetrain", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_a_folder_named_like_a_builtin_scenario_does_not_shadow_it(tmp_path):
    (tmp_path / "workshop").mkdir()
    shown = _edgetrain(tmp_path, "scenario", "validate", "--scenario", "workshop")
    assert shown.returncode == 0, shown.stderr
    source, _, rest = shown.stdout.partition(": ")
    assert rest.startswith("valid scenario 'workshop'")
    assert Path(source).parts[-2:] == ("scenarios", "workshop.yaml")  # the built-in file, not ./workshop


def test_evaluate_writes_plots_to_json_stem_plots_and_never_into_a_scenario_named_folder(tmp_path):
    (tmp_path / "workshop").mkdir()
    done = _edgetrain(tmp_path, "evaluate", "--scenario", "workshop", "--episodes", "1", "--json", "workshop.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "workshop").iterdir()) == []  # the user's folder is left alone
    plot = tmp_path / "workshop-plots" / "energy_vs_time.png"
    assert plot.is_file()
    report = json.loads((tmp_path / "workshop.json").read_text())
    assert report["scenario"] == "workshop"
    assert report["plots"]["tradeoff"] == str(plot.relative_to(tmp_path))

    # And again, now that workshop-plots/ exists too: the scenario is still the built-in one.
    again = _edgetrain(tmp_path, "evaluate", "--scenario", "workshop", "--episodes", "1", "--json", "workshop.json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert list((tmp_path / "workshop").iterdir()) == []
