"""Layer 4 of 6: the Gymnasium environment EdgeTrain-v0.

`edgetrain_env` is the env; `dynamics` the interface behind it and the calibrated simulator;
`live` the live dynamics (training for real through `edgetrain.fleet`); `costmodel` predicts every
plan from a calibration; `slots`, `state` and `actions` are the pieces the env is made of.

May import: edgetrain.core, edgetrain.runtime, edgetrain.fleet (never edgetrain.emulation directly,
nor agents or app). The simulator and the cost model import no torch (CI checks it).
"""

from gymnasium.envs.registration import register

register(id="EdgeTrain-v0", entry_point="edgetrain.envs.edgetrain_env:EdgeTrainEnv", max_episode_steps=500)
