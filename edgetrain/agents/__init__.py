"""Layer 5 of 6: learned scheduling policies and what they are judged against.

`train` (MaskablePPO on EdgeTrain-v0, imitation warm start, online fine-tuning, ONNX export),
`baselines` (random, all_dp, fastest_single, greedy, the tuned heuristic, the clairvoyant references), `evaluate`, `deploy`
(a policy schedules a real job), `policy` (load any saved policy) and `onnx_policy` (run an exported
one with onnxruntime alone).

May import: edgetrain.core, edgetrain.envs (and below through them). `onnx_policy` imports neither
torch nor stable-baselines3 (CI checks it).
"""
