"""Gymnasium environments: EdgeTrain-v0 over the calibrated simulator (and the live testbed)."""

from gymnasium.envs.registration import register

register(id="EdgeTrain-v0", entry_point="envs.edgetrain_env:EdgeTrainEnv", max_episode_steps=500)
