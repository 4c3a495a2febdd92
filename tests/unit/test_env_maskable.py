"""EdgeTrain-v0 as made by `gym.make` (wrapped in Gymnasium's TimeLimit and checkers) gives its action
masks to sb3-contrib's MaskablePPO: SB3's VecEnvs look methods up through the wrappers
(`get_wrapper_attr`), so `env.action_masks()` not being forwarded by Gymnasium's wrappers does not matter.
By hand, the documented ways are `env.unwrapped.action_masks()` and `env.get_wrapper_attr("action_masks")()`.
"""

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.vec_env import DummyVecEnv

import edgetrain.envs  # noqa: F401  (registers EdgeTrain-v0)
from conftest import TINY, TINY_CALIBRATION


def _make() -> gym.Env:
    return gym.make("EdgeTrain-v0", scenario=TINY, calibration=TINY_CALIBRATION)


class _CheckMasks(gym.Wrapper):
    """Counts the actions taken, and those that the env's mask at that moment did not allow."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.taken = 0
        self.invalid = []

    def step(self, action):
        mask = self.env.unwrapped.action_masks()
        if not mask[int(action)]:
            self.invalid.append((int(action), mask.tolist()))
        self.taken += 1
        return self.env.step(action)


def test_the_documented_ways_to_get_the_masks_of_a_made_env():
    env = _make()
    env.reset(seed=0)
    mask = env.unwrapped.action_masks()
    assert mask.dtype == bool and mask.shape == (int(env.action_space.n),)
    assert not mask.all()  # the tiny fleet has fewer plans than the offer's rows: something is masked
    np.testing.assert_array_equal(env.get_wrapper_attr("action_masks")(), mask)


def test_masks_before_reset_are_refused_with_a_sentence():
    """The README's snippet once asked for masks before reset(): an AttributeError on None, not a reason."""
    import pytest
    env = _make()
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        env.unwrapped.action_masks()


def test_sb3_vec_env_of_gym_make_gives_maskable_ppo_the_env_masks():
    vec_env = DummyVecEnv([_make])
    vec_env.reset()
    assert is_masking_supported(vec_env)
    masks = get_action_masks(vec_env)
    expected = vec_env.envs[0].unwrapped.action_masks()
    assert masks.shape == (1, expected.shape[0])
    np.testing.assert_array_equal(masks[0], expected)


def test_maskable_ppo_learns_on_gym_make_and_only_takes_allowed_actions():
    checked = _CheckMasks(_make())
    vec_env = DummyVecEnv([lambda: checked])
    model = MaskablePPO("MlpPolicy", vec_env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    assert checked.taken >= 64
    assert checked.invalid == []
    # Handed the made env directly, SB3 wraps it the same way.
    direct = MaskablePPO("MlpPolicy", _make(), n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    direct.learn(total_timesteps=16)
