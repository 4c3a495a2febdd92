"""The `edgetrain` command: parses arguments and calls into runtime, emulation, envs and agents.

Errors a user can cause end in one sentence on stderr and exit code 2; a run that fails at run time
exits with 1. No traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgetrain.errors import RunError, UserError


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _default_run_dir(kind: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}"


def cmd_run(args: argparse.Namespace) -> int:
    from edgetrain.plans import Plan
    from edgetrain.scenario import load_scenario
    scenario = load_scenario(args.scenario)
    plan = Plan.parse(args.plan)
    plan.check_devices(scenario.device_names)
    from runtime.coordinator import Job, run_job
    from runtime.launcher import LocalLauncher
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(plan.kind)
    job = Job(scenario=scenario, plan=plan, steps=args.steps, run_dir=run_dir, seed=args.seed, data=args.data,
              resume=args.resume, checkpoint_out=args.checkpoint or str(run_dir / "checkpoint.pt"),
              checkpoint_every=args.checkpoint_every)
    metrics = run_job(job, LocalLauncher(), progress=_progress)
    if args.metrics_out:
        metrics.write(args.metrics_out)
    total = metrics.to_dict()["total"]
    print(f"{plan}: {len(metrics.steps)} steps, final loss {metrics.losses[-1]:.4f}, "
          f"{total['time_per_sample_s'] * 1e3:.2f} ms and {total['energy_per_sample_j']:.3f} J per sample; "
          f"checkpoint {job.checkpoint_out}" + (f"; metrics {args.metrics_out}" if args.metrics_out else ""))
    return 0


def cmd_scenario(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from edgetrain.scenario import builtin_scenarios, load_scenario
    if args.action == "list":
        print("\n".join(builtin_scenarios()))
        return 0
    scenario = load_scenario(args.scenario)
    if args.action == "validate":
        print(f"{scenario.source}: valid scenario {scenario.name!r} with {len(scenario.devices)} devices")
    else:
        print(json.dumps(asdict(scenario), indent=2))
    return 0


def cmd_plans(args: argparse.Namespace) -> int:
    from edgetrain.scenario import load_scenario
    from runtime.feasibility import enumerate_plans, plan_problems
    scenario = load_scenario(args.scenario)
    for plan in enumerate_plans(scenario.device_names, max_devices=args.max_devices):
        problems = plan_problems(plan, scenario)
        if problems and not args.all:
            continue
        print(f"{str(plan):60s} {'ok' if not problems else 'infeasible: ' + '; '.join(problems)}")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from edgetrain.profiles import CATALOG
    for name, p in sorted(CATALOG.items()):
        print(f"{name:18s} idle {p.idle_power_w.value:5.1f} W  active {p.active_power_w.value:5.1f} W  "
              f"memory {p.memory_mb.value:6.0f} MiB  tx {p.radio_tx_j_per_byte.value:.2e} J/B  "
              f"rx {p.radio_rx_j_per_byte.value:.2e} J/B")
        if args.sources:
            for field in ("idle_power_w", "active_power_w", "radio_tx_j_per_byte", "radio_rx_j_per_byte",
                          "memory_mb", "cpu_cores"):
                print(f"    {field}: {getattr(p, field).source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgetrain", description="Train a Transformer on a group of trusted edge devices, "
                                      "with plans learned by reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train for real with one plan",
                         description="Train the scenario's model for real with one plan: one process per device.")
    run.add_argument("--scenario", default=None, help="scenario file or built-in name (default: smart-home)")
    run.add_argument("--plan", required=True, help="KIND:DEV,DEV,... with KIND in local, dp, pp, tp, sp")
    run.add_argument("--steps", type=int, default=10, help="training steps to run (default: 10)")
    run.add_argument("--backend", choices=["local"], default="local",
                     help="local: one process per device on this machine, over loopback")
    run.add_argument("--metrics-out", default=None, help="write the run's metrics JSON here")
    run.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the batches")
    run.add_argument("--data", default=None, help="a text file or folder to train on (default: Python's stdlib source)")
    run.add_argument("--resume", default=None, help="continue from this checkpoint, on any plan")
    run.add_argument("--checkpoint", default=None, help="where to save checkpoints (default: RUN_DIR/checkpoint.pt)")
    run.add_argument("--checkpoint-every", type=int, default=0, help="also save every N steps (default: only at the end)")
    run.add_argument("--run-dir", default=None, help="folder for shard logs and checkpoints (default: runs/TIME-KIND)")
    run.set_defaults(func=cmd_run)

    scenario = sub.add_parser("scenario", help="list, validate or show scenarios")
    scenario.add_argument("action", choices=["list", "validate", "show"])
    scenario.add_argument("--scenario", default=None, help="scenario file or built-in name (default: smart-home)")
    scenario.set_defaults(func=cmd_scenario)

    plans = sub.add_parser("plans", help="list the plans a scenario's devices can run")
    plans.add_argument("--scenario", default=None, help="scenario file or built-in name (default: smart-home)")
    plans.add_argument("--max-devices", type=int, default=3, help="largest device group to list (default: 3)")
    plans.add_argument("--all", action="store_true", help="also list infeasible plans, with the reason")
    plans.set_defaults(func=cmd_plans)

    profiles = sub.add_parser("profiles", help="list the device profile catalog")
    profiles.add_argument("--sources", action="store_true", help="show where every number comes from")
    profiles.set_defaults(func=cmd_profiles)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"edgetrain: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunError as exc:
        print(f"edgetrain: run failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgetrain: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
