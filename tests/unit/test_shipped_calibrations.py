"""The calibration shipped with smart-home is current: the simulator works out of the box, for every
built-in scenario, and a calibration of other devices or another model is refused."""

import dataclasses

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from edgetrain.core.errors import UserError
from edgetrain.core.scenario import builtin_scenarios, load_scenario
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


def test_the_default_env_runs_on_the_shipped_calibration():
    env = EdgeTrainEnv()  # smart-home-sessions, whose calibration is smart-home's (the same devices and links)
    check_env(env)
    env.reset(seed=0)
    chosen = env.resolve("dp", range(env.n))  # dp on every device (those available, when it runs)
    _, reward, _, _, info = env.step(chosen)
    assert reward < 0 and info["samples"] in (0, 10 * env.batch) and info["plan"].startswith("dp:")
    with pytest.raises(ValueError, match="an action is the index of one offered plan"):
        env.step(np.array([1] + [1] * 5 + [0] * 3))  # the action layout before the job-aware policy
    assert env.calibration["backend"] == "mininet" and len(env.calibration["devices"]) == 5


@pytest.mark.parametrize("name", builtin_scenarios())
def test_every_builtin_scenario_has_a_calibration_that_matches_it(name):
    env = EdgeTrainEnv(scenario=name)
    assert env.n == len(load_scenario(name).devices)


def test_a_calibration_of_another_model_or_other_links_is_refused():
    scenario = load_scenario()
    bigger = dataclasses.replace(scenario, model=dataclasses.replace(scenario.model, layers=6))
    with pytest.raises(UserError, match="another model"):
        EdgeTrainEnv(scenario=bigger)
    faster = dataclasses.replace(scenario, devices=(dataclasses.replace(scenario.devices[0], bandwidth_mbps=999),)
                                 + scenario.devices[1:])
    with pytest.raises(UserError, match="another CPU share or bandwidth"):
        EdgeTrainEnv(scenario=faster)


@pytest.mark.parametrize("period_us, says", [(100_000, "under a 100 ms CPU quota period"),
                                             (None, "under the former 100 ms CPU quota period")])
def test_a_testbed_calibration_under_another_cpu_quota_period_is_refused(period_us, says):
    """Under a 100 ms period a short step ran at this machine's full speed: such a calibration prices
    another testbed. One made before the period was recorded was made under 100 ms."""
    import copy

    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.envs.costmodel import CostModel
    scenario = load_scenario()
    calibration = copy.deepcopy(load_calibration(default_calibration_path(scenario)))
    CostModel(calibration, scenario)  # today's period: accepted
    if period_us is None:
        del calibration["emulation"]["cfs_period_us"]
    else:
        calibration["emulation"]["cfs_period_us"] = period_us
    with pytest.raises(UserError, match=says + r".*run `edgetrain calibrate --backend mininet` again"):
        CostModel(calibration, scenario)
