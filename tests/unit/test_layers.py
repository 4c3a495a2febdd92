"""The import contract (.importlinter) holds for the tree, and it bites: a deliberate forbidden import,
made in a copy of the package, fails it with the rule it breaks."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

LINT = str(Path(sys.executable).parent / "lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))  # the copy's edgetrain before the installed one
    return subprocess.run([LINT, "--no-cache", "--config", str(root / ".importlinter")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(REPO / "edgetrain", root / "edgetrain", ignore=shutil.ignore_patterns("__pycache__", "scenarios"))
    shutil.copy(REPO / ".importlinter", root / ".importlinter")
    return root


def test_the_tree_keeps_every_contract():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("core/plans.py", "import edgetrain.agents.baselines", "edgetrain.core is not allowed to import edgetrain.agents"),
    ("runtime/coordinator/job.py", "import edgetrain.emulation.network",
     "edgetrain.runtime is not allowed to import edgetrain.emulation"),
    ("runtime/device/worker.py", "import edgetrain.runtime.coordinator.remote",
     "edgetrain.runtime.device is not allowed to import edgetrain.runtime.coordinator"),
    ("envs/costmodel.py", "import torch", "edgetrain.envs.costmodel is not allowed to import torch"),
    ("fleet/backends.py", "import mininet", "edgetrain.fleet is not allowed to import mininet"),
    ("runtime/training/model.py", "import gymnasium", "edgetrain.runtime is not allowed to import gymnasium"),
    ("agents/onnx_policy.py", "import stable_baselines3",
     "edgetrain.agents.onnx_policy is not allowed to import stable_baselines3"),
])
def test_a_forbidden_import_breaks_the_contract(copy, module, line, broken):
    path = copy / "edgetrain" / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # deliberately forbidden\n")
    try:
        result = lint(copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert broken in " ".join(result.stdout.split()), result.stdout[-3000:]
