"""`make demo`: the main job on the built-in default scenario, end to end.

1. profile the smart-home devices on the emulated testbed (on this machine's processes without root),
2. train a scheduling policy with MaskablePPO on the simulator calibrated by that profile,
3. evaluate it against the baselines on the same seeded availability traces (table, JSON, plots),
4. run the plan the policy picks for real on the emulated testbed.
Online fine-tuning and deployment with live replanning are not part of it yet.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from edgetrain.errors import RunError, UserError

TIMESTEPS = 30_000
EPISODES = 10
LIVE_STEPS = 20


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> int:
    from edgetrain.backends import open_backend
    from edgetrain.plans import Plan
    from edgetrain.scenario import load_scenario
    scenario = load_scenario()
    out = Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    backend_name = "mininet" if os.geteuid() == 0 else "local"
    say(f"== 1/4 profiling the {len(scenario.devices)} devices of {scenario.name} ({backend_name} backend)")
    from runtime.profile_job import profile_devices
    with open_backend(backend_name, scenario, out / "profile", follow_availability=False, progress=say) as backend:
        profile = profile_devices(scenario, backend.launcher, out / "profile", backend=backend_name,
                                  device_cores=backend.device_cores, socket_ifnames=backend.socket_ifnames,
                                  progress=say)
        profile.update(backend.facts)
    (out / "profile.json").write_text(json.dumps(profile, indent=2))

    say(f"== 2/4 training a policy: MaskablePPO, {TIMESTEPS} simulator steps")
    from agents.train import TrainConfig, train
    zip_path, onnx_path, run = train(None, profile, str(out / "policy"), TrainConfig(timesteps=TIMESTEPS))

    say(f"== 3/4 evaluating the policy against the baselines ({EPISODES} episodes each)")
    from agents.evaluate import evaluate, plot_learning_curve, plot_tradeoff, table, write
    from envs.edgetrain_env import EdgeTrainEnv
    report = evaluate(scenario, profile, str(zip_path), EPISODES, progress=say)
    env = EdgeTrainEnv(scenario=scenario, profile=profile)
    report["plots"] = {"tradeoff": str(plot_tradeoff(env, report, out / "energy_vs_time.png"))}
    curve = plot_learning_curve(run, out / "learning_curve.png")
    if curve:
        report["plots"]["learning_curve"] = str(curve)
    write(report, str(out / "evaluation.json"))

    chosen = Plan.parse(report["results"]["policy"]["most_used_plan"])
    say(f"== 4/4 training for real with the policy's plan {chosen} ({LIVE_STEPS} steps, {backend_name})")
    from runtime.coordinator import Job
    from runtime.recovery import run_with_recovery
    try:
        with open_backend(backend_name, scenario, out / "live", progress=say) as backend:
            job = Job(scenario=scenario, plan=chosen, steps=LIVE_STEPS, run_dir=out / "live",
                      checkpoint_out=str(out / "live" / "checkpoint.pt"), device_cores=backend.device_cores,
                      socket_ifnames=backend.socket_ifnames)
            metrics = run_with_recovery(job, backend.launcher, progress=say)
            metrics.extra.update(backend.facts)
            metrics.write(str(out / "live_metrics.json"))
    except (UserError, RunError) as exc:
        say(f"   live run failed: {exc}")
        metrics = None

    print("\n" + table(report))
    if metrics is not None:
        total = metrics.to_dict()["total"]
        print(f"\nlive run of {chosen} (ended on {metrics.plans[-1]['plan']}, "
              f"{len(metrics.recoveries)} recoveries): final loss {metrics.losses[-1]:.4f}, "
              f"{total['time_per_sample_s'] * 1e3:.2f} ms and {total['energy_per_sample_j']:.3f} J per sample")
    print(f"\npolicy: {zip_path} and {onnx_path}\nTensorBoard run: {run} (tensorboard --logdir training_logs)\n"
          f"evaluation: {out / 'evaluation.json'}\nplots: {', '.join(report['plots'].values())}\n"
          f"profile: {out / 'profile.json'}; live metrics: {out / 'live_metrics.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UserError, RunError) as exc:
        print(f"edgetrain demo: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
