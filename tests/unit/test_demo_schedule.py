"""`make demo` deploys on a testbed whose availability must make the product show what it is for: the
laptop, in the cheapest plan, leaves and returns early in the deployment (several times: the default
scenario is the foresight world smart-home-sessions, in real time). The testbed's traces follow
from the deployment's seed; this test derives them the way the live env does and checks the demo's
promise (edgetrain/app/demo.py, DEPLOY_SEED)."""

from gymnasium.utils import seeding

from edgetrain.app.demo import DEPLOY_SEED, DEPLOY_TIME_SCALE
from edgetrain.core.availability import availability_events
from edgetrain.core.scenario import load_scenario


def test_the_demo_deployment_sees_the_laptop_leave_and_return_within_its_first_minutes():
    rng, _ = seeding.np_random(DEPLOY_SEED)  # EdgeTrainEnv.reset(seed=DEPLOY_SEED)
    testbed_seed = int(rng.integers(2 ** 31))  # LiveDynamics opens the testbed with this seed
    window_s = 180 * DEPLOY_TIME_SCALE  # the first three minutes of real time
    events = [(t, device, online) for t, device, online in availability_events(load_scenario(), testbed_seed, 10_000)
              if 40 * DEPLOY_TIME_SCALE < t < window_s]  # after the testbed is up and warm
    laptop = [online for _, device, online in events if device == "laptop"]
    assert False in laptop and True in laptop[laptop.index(False):], events
    assert {device for _, device, _ in events} >= {"laptop", "phone"}
