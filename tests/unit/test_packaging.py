"""A non-editable install (a wheel, as `pip install edgetrain` gives) finds the built-in scenarios and
their calibrations: they ship as package data, not beside the source tree."""

import os
import shutil
import subprocess
import sys

from conftest import REPO


def test_a_non_editable_install_ships_the_scenarios_and_calibrations(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "edgetrain", source / "edgetrain", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    shutil.rmtree(source)  # nothing may be found through the source tree
    probe = ("import edgetrain.core.scenario as s, edgetrain.core.calibration as c\n"
             "print(s.__file__)\n"
             "for name in s.builtin_scenarios():\n"
             "    scenario = s.load_scenario(name)\n"
             "    print(name, c.load_calibration(c.default_calibration_path(scenario))['scenario'])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(target)), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(str(target))  # the installed copy, not the repository
    assert {line.split()[0] for line in lines[1:]} == {"smart-home", "smart-home-busy", "smart-home-sessions",
                                                       "workshop", "jetson-lab", "big-model"}
    measured_on = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert measured_on.pop("jetson-lab") == "jetson-lab"  # its own devices, its own calibration
    assert measured_on.pop("big-model") == "big-model"  # its own model and memory caps
    assert set(measured_on.values()) == {"smart-home"}  # the others share smart-home's devices
