"""Issue 10 item 5, online learning that matters, measured live: a device is slower on the testbed than
its calibration says (it runs a CPU-bound process of its own beside the worker, `--busy` orin-nano by
default, which the calibration never saw), and what the simulator taught is then wrong about it. What
does learning on the live testbed win there?

Every contender trains the same job for real to `--target-samples` on the busy testbed, with the same
availability traces (`--seed`), one after the other:

- `sim_only_as_calibrated`: the policy trained in the simulator alone, every decision priced and offered
  by the calibration as measured (no online recalibration): what the simulator alone gives;
- `sim_only_recalibrating`: the same policy, the deployment's measured steps correcting the cost model
  that describes its offers (`edgetrain.envs.recalibration`; every deployment does this);
- `fine_tuned_online`: that policy after `--online-steps` decisions of PPO on the busy testbed
  (`edgetrain train --init POLICY --timesteps 0 --online-steps N --busy-device DEVICE`), deployed
  recalibrating;
- `greedy_recalibrating`: greedy on the recalibrated model, the reference a person would run.

Prints JSON: per contender the deployment's totals (Zeus cost, energy and time per sample, plans used,
switches, recoveries) and the ratio of each to `sim_only_as_calibrated`; the online fine-tuning's wall time.

    sudo .venv/bin/python benchmarks/online_gain.py [--scenario smart-home-sessions] [--busy orin-nano]
        [--seed 3] [--target-samples 20000] [--online-steps 32] [--calibration FILE --policy FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deployed_vs_greedy import measured_calibration, run, say, summary, trained_policy, written

from edgetrain.agents.deploy import deploy, with_target
from edgetrain.app.demo import DEPLOY_SEED
from edgetrain.core.calibration import load_calibration
from edgetrain.core.scenario import DEFAULT_SCENARIO, load_scenario
from edgetrain.fleet.backends import require_mininet


def fine_tuned(policy: str, scenario, calibration: dict, busy: tuple, online_steps: int, out: Path) -> str:
    """The policy after `online_steps` live decisions of PPO on the busy testbed (no simulator steps)."""
    from edgetrain.agents.train import Task, TrainConfig, train
    config = TrainConfig(timesteps=0, imitate_steps=0, online_steps=online_steps, busy_devices=busy)
    zip_path, _, _ = train([Task(scenario, calibration)], str(out / "fine-tuned"), config,
                           logdir=str(out / "tensorboard"), progress_bar=False, init=policy)
    return str(zip_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO)
    parser.add_argument("--busy", default="orin-nano", help="comma-separated devices busy with work of their own")
    parser.add_argument("--seed", type=int, default=DEPLOY_SEED)
    parser.add_argument("--target-samples", type=int, default=20_000)
    parser.add_argument("--online-steps", type=int, default=32)
    parser.add_argument("--calibration", default=None, help="calibration the policy was trained on (default: measure one)")
    parser.add_argument("--policy", default=None, help="simulator-trained policy.zip (default: train one)")
    parser.add_argument("--out", default=None, help="folder for everything made (default: runs/TIME-online-gain)")
    args = parser.parse_args()
    require_mininet()
    if args.policy and not args.calibration:
        parser.error("--policy needs the --calibration it was trained on")
    busy = tuple(d.strip() for d in args.busy.split(",") if d.strip())
    scenario = load_scenario(args.scenario)
    unknown = sorted(set(busy) - set(scenario.device_names))
    if unknown:
        parser.error(f"--busy {unknown[0]}: not a device of {scenario.name}")
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-online-gain")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    calibration = load_calibration(args.calibration) if args.calibration else measured_calibration(scenario, out)
    policy = args.policy or trained_policy(scenario, calibration, out)
    say(f"fine-tuning {policy} online: {args.online_steps} decisions on the testbed, {', '.join(busy)} busy")
    tuning_started = time.monotonic()
    tuned = fine_tuned(policy, scenario, calibration, busy, args.online_steps, out)
    tuning_s = time.monotonic() - tuning_started
    job = with_target(scenario, args.target_samples)
    contenders = {  # name -> (policy or rule, recalibrate)
        "sim_only_as_calibrated": (policy, False),
        "sim_only_recalibrating": (policy, True),
        "fine_tuned_online": (tuned, True),
        "greedy_recalibrating": ("greedy", True),
    }
    results = {}
    for name, (which, recalibrate) in contenders.items():
        say(f"deploying {name} ({args.target_samples} samples, {', '.join(busy)} busy, seed {args.seed})")
        report = deploy(which, job, calibration, out / name, backend="mininet", seed=args.seed,
                        logdir=str(out / "tensorboard"), progress=say, busy_devices=busy, recalibrate=recalibrate)
        results[name] = {**summary(report), "recalibrated": recalibrate,
                         "prediction_error": report["prediction_error"]}
        say(f"{name}: {results[name]['zeus_cost_per_sample']:.4f} Zeus cost per sample, plans "
            f"{', '.join(results[name]['plans_used'])}")
    base = results["sim_only_as_calibrated"]["zeus_cost_per_sample"]
    for figures in results.values():
        figures["vs_sim_only_as_calibrated"] = figures["zeus_cost_per_sample"] / base
    report = {"scenario": scenario.name, "busy_devices": list(busy), "seed": args.seed,
              "target_samples": args.target_samples, "online_steps": args.online_steps,
              "online_fine_tuning_wall_s": tuning_s, "policy": policy, "fine_tuned_policy": tuned,
              "results": results,
              "fine_tuned_beats_sim_only": results["fine_tuned_online"]["zeus_cost_per_sample"]
              < min(results["sim_only_as_calibrated"]["zeus_cost_per_sample"],
                    results["sim_only_recalibrating"]["zeus_cost_per_sample"]),
              "wall_s": time.monotonic() - started}
    return written(report, out / "online_gain.json")


if __name__ == "__main__":
    run(main, "online_gain")
