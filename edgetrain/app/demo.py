"""`make demo`: the main job on the built-in default scenario, end to end.

1. calibrate: measure the devices on the emulated testbed (the default scenario, smart-home-sessions:
   smart-home's devices coming and going in sessions of a typical length, where foresight pays),
2. train a scheduling policy with MaskablePPO on the simulator calibrated by those measurements,
3. fine-tune it briefly online on the live testbed (every decision trains the model for real),
4. evaluate it against the baselines on the same seeded availability traces (table, JSON, plots), and
   say trace by trace how it fares against greedy, the tuned heuristic and the clairvoyant planner,
5. deploy it: the policy schedules a real training job on the emulated testbed until the scenario's
   target is reached, replanning as devices come and go.
Without root there is no testbed: the devices are measured as local processes, and steps 3 and 5 are
skipped (they say so).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from edgetrain.core.errors import RunError, UserError

TIMESTEPS = 60_000
ONLINE_STEPS = 16
EPISODES = 20
# Availability runs in real time while deploying: the default scenario's devices already come and go
# every minute or so (smart-home-sessions: the laptop's sessions last 40 s on average).
DEPLOY_TIME_SCALE = 1.0
# The deployment's seed fixes the testbed's availability traces. With seed 3, the laptop (in the
# cheapest plan) leaves at 8 s, 68 s and 138 s of scenario time and returns at 31 s, 99 s and 153 s, the
# xavier-nx leaves at 35 s and returns at 69 s, the phone leaves at 96 s and returns at 177 s: the policy
# must recover, replan, and read the laptop's age (tests/unit/test_demo_schedule.py checks the seed).
DEPLOY_SEED = 3


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> int:
    from edgetrain.core.scenario import load_scenario
    from edgetrain.fleet.backends import open_backend
    from edgetrain.fleet.measure import calibrate_fleet
    scenario = load_scenario()
    out = Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    live = os.geteuid() == 0
    backend_name = "mininet" if live else "local"
    started = time.monotonic()

    say(f"== 1/5 calibrating: measuring the {len(scenario.devices)} devices of {scenario.name} "
        f"({backend_name} backend)")
    with open_backend(backend_name, scenario, out / "calibrate", follow_availability=False, progress=say) as backend:
        calibration = calibrate_fleet(backend, scenario, out / "calibrate", progress=say)
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2))

    online = ONLINE_STEPS if live else 0
    say(f"== 2/5 training a policy: MaskablePPO, {TIMESTEPS} simulator steps")
    if not online:
        say("   (3/5 online fine-tuning skipped: the live testbed needs root)")
    from edgetrain.agents.train import Task, TrainConfig, train
    zip_path, onnx_path, run = train([Task(scenario, calibration)], str(out / "policy"),
                                     TrainConfig(timesteps=TIMESTEPS, online_steps=online),
                                     on_online_start=lambda: say(f"== 3/5 fine-tuning the policy online: {online} "
                                                                 "decisions on the live testbed"))

    say(f"== 4/5 evaluating the policy against the baselines ({EPISODES} episodes each, simulator)")
    from edgetrain.agents.evaluate import evaluate, head_to_head, plot_learning_curve, plot_tradeoff, table, write
    from edgetrain.envs.edgetrain_env import EdgeTrainEnv
    report = evaluate(scenario, calibration, str(zip_path), EPISODES, progress=say)
    env = EdgeTrainEnv(scenario=scenario, calibration=calibration)
    report["plots"] = {"tradeoff": str(plot_tradeoff(env, report, out / "energy_vs_time.png"))}
    curve = plot_learning_curve(run, out / "learning_curve.png")
    if curve:
        report["plots"]["learning_curve"] = str(curve)
    write(report, str(out / "evaluation.json"))

    deployed = None
    if live:
        say(f"== 5/5 deploying the policy: training {scenario.objective.target_samples} samples for real on the "
            f"emulated testbed (availability {DEPLOY_TIME_SCALE:g}x real time)")
        from edgetrain.agents.deploy import deploy
        try:
            deployed = deploy(str(zip_path), scenario, calibration, out / "deploy", backend="mininet",
                              time_scale=DEPLOY_TIME_SCALE, seed=DEPLOY_SEED, progress=say)
        except (UserError, RunError) as exc:
            say(f"   deployment failed: {exc}")
    else:
        say("== 5/5 deployment skipped: the emulated testbed needs root (or deploy to real devices with "
            "`edgetrain deploy --cluster FILE`)")

    print("\n" + table(report))
    print("\n".join(head_to_head(report)))
    if deployed is not None:
        total = deployed["total"]
        print(f"\ndeployed on the emulated testbed: {total['samples']} samples ({total['steps']} steps) over "
              f"{len(deployed['decisions'])} decisions, {len(deployed['recoveries'])} recoveries; loss "
              f"{deployed['steps'][0]['loss']:.3f} -> {total['final_loss']:.3f}; Zeus cost "
              f"{total['zeus_cost_per_sample']:.4f} per sample ({total['energy_per_sample_j']:.3f} J, "
              f"{total['time_per_sample_s'] * 1e3:.2f} ms); plans used: {', '.join(total['plans_used'])}")
        print(f"model checkpoint: {deployed['checkpoint']}; metrics: {out / 'deploy' / 'metrics.json'}; "
              f"TensorBoard run: {deployed['tensorboard']}")
    print(f"\npolicy: {zip_path} and {onnx_path}\nTensorBoard run of training: {run} "
          f"(tensorboard --logdir training_logs)\nevaluation: {out / 'evaluation.json'}\n"
          f"plots: {', '.join(report['plots'].values())}\ncalibration: {out / 'calibration.json'}\n"
          f"demo took {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UserError, RunError) as exc:
        print(f"edgetrain demo: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
