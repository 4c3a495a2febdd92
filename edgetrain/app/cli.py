"""The `edgetrain` command: parses arguments and composes the layers below (fleet, envs, agents).

Errors a user can cause end in one sentence on stderr and exit code 2; a run that fails at run time
exits with 1. No traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgetrain.core.errors import RunError, UserError
from edgetrain.core.scenario import DEFAULT_SCENARIO

SCENARIO_HELP = f"scenario file or built-in name (default: {DEFAULT_SCENARIO})"

if TYPE_CHECKING:
    from edgetrain.core.plans import Plan


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _default_run_dir(kind: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}"


def _parse_faults(values: list[str], devices: list[str], plan: Plan) -> dict[int, str]:
    """DEV@STEP for devices of the plan only: a fault on any other device would never fire."""
    faults = {}
    for value in values:
        device, sep, step = value.rpartition("@")
        if not sep or not step.isdigit() or int(step) < 1:
            raise UserError(f"--inject-fault {value!r} is not DEV@STEP (for example pi4@3)")
        if device not in devices:
            raise UserError(f"--inject-fault {value!r}: unknown device {device!r} (devices: {', '.join(devices)})")
        if device not in plan.devices:
            raise UserError(f"--inject-fault {value!r}: device {device!r} is not in the plan {plan}, "
                            f"so no fault would be injected (devices of the plan: {', '.join(plan.devices)})")
        faults[int(step)] = device
    return faults


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
    return value


def _check_data(path: str) -> None:
    """What `--data` must be (runtime.training.data reads it in every shard): an existing, readable text
    file or folder of them. Checked here, before anything starts, without importing the training code."""
    import os
    data = Path(path)
    if not data.exists():
        raise UserError(f"--data {path}: no such file or folder")
    if not (data.is_file() or data.is_dir()):
        raise UserError(f"--data {path}: not a text file or a folder of them")
    if not os.access(data, os.R_OK | (os.X_OK if data.is_dir() else 0)):
        raise UserError(f"--data {path}: cannot be read (permission denied)")


def _closing_line(metrics: dict, checkpoint: str, metrics_out: str | None) -> str:
    """The last line of `edgetrain run`, from the metrics' dict: it names the plan that ran last (after a
    recovery, not the plan the run started with)."""
    plans = metrics.get("plans") or []
    plan = plans[-1]["plan"] if plans else metrics["plan"]
    total, steps = metrics["total"], metrics["steps"]
    return (f"{plan}: {len(steps)} steps, final loss {steps[-1]['loss']:.4f}, "
            f"{total['time_per_sample_s'] * 1e3:.2f} ms and {total['energy_per_sample_j']:.3f} J per sample; "
            f"checkpoint {checkpoint}" + (f"; metrics {metrics_out}" if metrics_out else ""))


def cmd_run(args: argparse.Namespace) -> int:
    from edgetrain.core.plans import Plan
    from edgetrain.core.scenario import load_scenario
    from edgetrain.fleet.backends import open_backend
    scenario = load_scenario(args.scenario)
    plan = Plan.parse(args.plan)
    plan.check_devices(scenario.device_names)
    faults = _parse_faults(args.inject_fault, scenario.device_names, plan)
    if args.data is not None:
        _check_data(args.data)
    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    if args.checkpoint_every < 0:
        raise UserError("--checkpoint-every must be 0 or more")
    from edgetrain.core.feasibility import check_plan
    from edgetrain.runtime.coordinator.job import Job
    from edgetrain.runtime.coordinator.recovery import run_with_recovery
    check_plan(plan, scenario)  # before anything starts, network included
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(plan.kind)
    with open_backend(args.backend, scenario, run_dir, seed=args.seed, time_scale=args.time_scale,
                      follow_availability=args.availability == "follow", progress=_progress) as backend:
        if faults and backend.kill_worker is None:
            raise UserError("--inject-fault needs a backend with worker daemons (--backend mininet)")
        job = Job(scenario=scenario, plan=plan, steps=args.steps, run_dir=run_dir, seed=args.seed, data=args.data,
                  resume=args.resume, checkpoint_out=args.checkpoint or str(run_dir / "checkpoint.pt"),
                  checkpoint_every=args.checkpoint_every, device_cores=backend.device_cores,
                  socket_ifnames=backend.socket_ifnames, faults=faults)
        metrics = run_with_recovery(job, backend.launcher, progress=_progress, inject_fault=backend.kill_worker)
        metrics.extra.update(backend.facts)
    if args.metrics_out:
        metrics.write(args.metrics_out)
    for recovery in metrics.recoveries:
        print(f"recovered: lost {', '.join(recovery['devices'])} after step {recovery['step']}, "
              f"went on with {recovery['new_plan']} from step {recovery['resumed_from_step']} "
              f"in {recovery.get('seconds_to_resume', float('nan')):.1f} s")
    print(_closing_line(metrics.to_dict(), job.checkpoint_out, args.metrics_out))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from edgetrain.core.scenario import load_scenario
    from edgetrain.fleet.backends import open_backend
    from edgetrain.fleet.measure import calibrate_fleet
    cluster = None
    if args.cluster:
        from edgetrain.fleet.cluster import load_cluster
        cluster = load_cluster(args.cluster, args.scenario)
        scenario, args.backend = cluster.scenario, "cluster"
    else:
        scenario = load_scenario(args.scenario)
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir("calibrate")
    with open_backend(args.backend, scenario, run_dir, follow_availability=False, progress=_progress,
                      cluster=cluster) as backend:
        calibration = calibrate_fleet(backend, scenario, run_dir, progress=_progress)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(calibration, indent=2))
    print(f"calibration of {len(calibration['devices'])} devices and {len(calibration['links'])} links written to "
          f"{args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from edgetrain.core.calibration import load_calibration
    from edgetrain.core.plans import Plan
    from edgetrain.core.scenario import load_scenario
    from edgetrain.envs.costmodel import CostModel
    calibration = load_calibration(args.calibration)
    scenario = load_scenario(args.scenario or calibration["scenario"])
    plan = Plan.parse(args.plan)
    plan.check_devices(scenario.device_names)
    missing = [d for d in plan.devices if d not in calibration["devices"]]
    if missing:
        raise UserError(f"calibration {args.calibration} has no measurements of {', '.join(missing)}")
    prediction = CostModel(calibration, scenario).predict(plan)
    if args.json:
        print(json.dumps(prediction.to_dict(), indent=2))
        return 0
    samples = scenario.model.batch_size
    print(f"{plan}: {prediction.step_time_s:.3f} s per step, {prediction.total_energy_j:.2f} J per step "
          f"({prediction.step_time_s / samples * 1e3:.2f} ms and {prediction.total_energy_j / samples:.3f} J per sample)")
    print(f"{'device':12s} {'energy J':>9s} {'sent MB':>8s} {'recv MB':>8s} {'memory MiB':>11s}")
    for dev in plan.devices:
        print(f"{dev:12s} {prediction.energy_j[dev]:9.3f} {prediction.bytes_sent[dev] / 1e6:8.2f} "
              f"{prediction.bytes_recv[dev] / 1e6:8.2f} {prediction.memory_mb[dev]:11.0f}")
    if not prediction.fits:
        print("cannot run: " + "; ".join(prediction.problems))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from edgetrain.core.calibration import check_calibration_matches, default_calibration_path, load_calibration
    from edgetrain.core.scenario import builtin_scenarios, load_scenario
    from edgetrain.agents.train import Task, TrainConfig, general_tasks, train
    if args.scenario is None and args.calibration is None:
        tasks = general_tasks()  # the general policy: every built-in scenario with its shipped calibration
    else:
        calibration = load_calibration(args.calibration) if args.calibration else None
        name = args.scenario or calibration.get("scenario")
        if args.scenario is None and name not in builtin_scenarios():
            raise UserError(f"calibration {args.calibration} was measured on scenario {name!r}, which is not built "
                            "in: pass --scenario FILE too")
        scenario = load_scenario(name)
        calibration = calibration or load_calibration(default_calibration_path(scenario))
        check_calibration_matches(calibration, scenario)
        tasks = [Task(scenario, calibration)]
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    values["net_arch"] = tuple(int(x) for x in args.net_arch.split(","))
    values["busy_devices"] = tuple(args.busy_devices)
    online_only = args.init and values["online_steps"] > 0  # fine-tuning on the testbed alone may skip the simulator
    if values["timesteps"] < (0 if online_only else 1) or values["n_envs"] < 1:
        raise UserError("--timesteps and --n-envs must be at least 1 (--timesteps 0 only with --init and "
                        "--online-steps)")
    if values["busy_devices"] and not values["online_steps"]:
        raise UserError("--busy-device emulates a device during online fine-tuning: it needs --online-steps")
    unknown = sorted({d for d in values["busy_devices"]} - set(tasks[0].scenario.device_names))
    if unknown:
        raise UserError(f"--busy-device {unknown[0]}: not a device of {tasks[0].scenario.name} "
                        f"({', '.join(tasks[0].scenario.device_names)})")
    if values["validate_every"] < 0 or values["validation_episodes"] < 1:
        raise UserError("--validate-every must be at least 0 and --validation-episodes at least 1")
    if values["online_steps"] < 0 or values["online_n_steps"] < 1:
        raise UserError("--online-steps must be at least 0 and --online-n-steps at least 1")
    if values["online_steps"]:
        from edgetrain.fleet.backends import require_mininet
        require_mininet()
    if values["online_steps"] and len(tasks) > 1:
        raise UserError("--online-steps fine-tunes on one scenario's testbed: pass --scenario")
    if args.init:
        values["imitate_steps"] = 0  # it starts from a trained policy
    zip_path, onnx_path, run = train(tasks, args.out, TrainConfig(**values), logdir=args.logdir,
                                     progress_bar=not args.no_progress, init=args.init)
    print(f"policy: {zip_path} and {onnx_path}; TensorBoard run: {run}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.core.scenario import load_scenario
    from edgetrain.envs.edgetrain_env import EdgeTrainEnv
    scenario = load_scenario(args.scenario)
    calibration = load_calibration(args.calibration or default_calibration_path(scenario))
    if args.policy and not Path(args.policy).is_file():
        raise UserError(f"--policy {args.policy}: no such file")
    if args.episodes < 1:
        raise UserError("--episodes must be at least 1")
    from edgetrain.agents.evaluate import evaluate, head_to_head, plot_learning_curve, plot_tradeoff, table, write
    report = evaluate(scenario, calibration, args.policy, args.episodes, seed=args.seed, progress=_progress)
    plots = Path(args.plots) if args.plots else default_plots_dir(args.json)
    plots.mkdir(parents=True, exist_ok=True)
    report["plots"] = {"tradeoff": str(plot_tradeoff(EdgeTrainEnv(scenario=scenario, calibration=calibration), report,
                                                     plots / "energy_vs_time.png"))}
    if args.run:
        curve = plot_learning_curve(Path(args.run), plots / "learning_curve.png")
        if curve:
            report["plots"]["learning_curve"] = str(curve)
    write(report, args.json)
    print(table(report))
    for line in head_to_head(report):
        print(line)
    print(f"results: {args.json}; plots: {', '.join(report['plots'].values())}")
    return 0


def default_plots_dir(json_path: str) -> Path:
    """`<json stem>-plots/` next to the JSON: never a bare scenario name (workshop.json -> workshop-plots/)."""
    path = Path(json_path)
    return path.with_name(f"{path.stem}-plots")


def cmd_deploy(args: argparse.Namespace) -> int:
    from edgetrain.agents.deploy import deploy, with_target
    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.core.scenario import load_scenario
    cluster = None
    if args.cluster and args.busy_devices:
        raise UserError("--busy-device emulates a device on the testbed: real devices are as busy as they are")
    if args.cluster:
        from edgetrain.fleet.cluster import load_cluster
        cluster = load_cluster(args.cluster, args.scenario)
        scenario, backend = cluster.scenario, "cluster"
    else:
        from edgetrain.fleet.backends import require_mininet
        require_mininet()
        scenario, backend = load_scenario(args.scenario), "mininet"
    scenario = with_target(scenario, args.target_samples)
    calibration_path = args.calibration or default_calibration_path(scenario)
    if not args.calibration and not Path(calibration_path).is_file():
        raise UserError(f"scenario {scenario.name!r} has no shipped calibration: measure one with `edgetrain calibrate "
                        f"{'--cluster ' + args.cluster if args.cluster else '--scenario ' + str(args.scenario)} "
                        f"--out FILE` and pass --calibration FILE")
    if args.decision_steps < 1:
        raise UserError("--decision-steps must be at least 1")
    out = Path(args.out) if args.out else _default_run_dir("deploy")
    report = deploy(args.policy, scenario, load_calibration(calibration_path), out, backend=backend, cluster=cluster,
                    decision_steps=args.decision_steps, checkpoint_every=args.checkpoint_every,
                    time_scale=args.time_scale, seed=args.seed, logdir=args.logdir, progress=_progress,
                    busy_devices=tuple(args.busy_devices))
    total = report["total"]
    print(f"trained {total['samples']} samples ({total['steps']} steps) in {total['time_s']:.1f} s over "
          f"{len(report['decisions'])} decisions, {len(report['recoveries'])} recoveries; final loss "
          f"{total['final_loss']:.4f}; Zeus cost {total['zeus_cost_per_sample']:.4f} per sample "
          f"({total['energy_per_sample_j']:.3f} J, {total['time_per_sample_s'] * 1e3:.2f} ms); plans: "
          f"{', '.join(total['plans_used'])}")
    print(f"checkpoint: {report['checkpoint']}; metrics: {out / 'metrics.json'}; TensorBoard run: {report['tensorboard']}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging
    import socket

    from edgetrain.runtime.device.worker import run_worker
    from edgetrain.runtime.wire.control import parse_address, read_token
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        listen = parse_address(args.listen)
        token = read_token(args.token_file)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    device = args.device or socket.gethostname()
    if (args.cpu_quota_us is None) != (args.cpu_period_us is None):
        raise UserError("--cpu-quota-us and --cpu-period-us come together (an emulated device's top CPU bandwidth)")
    if args.cpu_quota_us is not None:
        from edgetrain.runtime.device.power_modes import CpuQuotaModes
        try:
            CpuQuotaModes.check_top(args.cpu_quota_us, args.cpu_period_us)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def listening(host: str, port: int) -> None:  # never the token
        _progress(f"edgetrain worker: serving device {device} on {host}:{port}")

    try:
        run_worker(device, listen, token, socket_ifname=args.socket_ifname, battery_file=args.battery_file,
                   log_dir=args.log_dir, on_listening=listening, workdir=args.workdir,
                   cpu_quota_us=args.cpu_quota_us, cpu_period_us=args.cpu_period_us)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.listen}: {exc.strerror}") from None
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """A new shared secret for the control plane, in a file only its owner can read; never printed."""
    import os

    from edgetrain.core.secrets import write_secret
    from edgetrain.runtime.wire.control import new_token
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder, not a file")
    if (out.exists() or out.is_symlink()) and not args.force:
        raise UserError(f"--out {out}: the file exists; pass --force to replace it with a new secret")

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if args.force:  # a new file renamed over the old one: replaced whole, whatever the old one's mode
            write_secret(tmp, new_token() + "\n")
            os.replace(tmp, out)
        else:
            write_secret(out, new_token() + "\n")  # O_EXCL: a file that appeared meanwhile is not overwritten either
    except FileExistsError:
        raise UserError(f"--out {out}: the file exists; pass --force to replace it with a new secret") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"--out {out}: cannot write the token file ({exc.strerror})") from None
    print(f"new secret written to {out} (mode 0600); give every worker and the coordinator this file "
          f"(`edgetrain worker --token-file {out}`, `token_file:` in a cluster file)")
    return 0


def _off_by(judged: dict) -> str:
    return f"{judged['measured'] / judged['configured'] - 1:+.1%}"


def cmd_emulate(args: argparse.Namespace) -> int:
    from edgetrain.fleet.backends import require_mininet
    require_mininet()
    if args.action == "clean":
        from edgetrain.emulation.network import cleanup_leftovers
        removed, failed = cleanup_leftovers()
        print("\n".join(f"removed {what}" for what in removed) if removed else "nothing left behind")
        for what in failed:
            print(f"could not remove {what}", file=sys.stderr)
        return 1 if failed else 0
    from edgetrain.core.scenario import load_scenario
    scenario = load_scenario(args.scenario)
    if args.action == "check":
        from edgetrain.emulation.check import check_scenario
        from edgetrain.emulation.network import DEFAULT_CFS_PERIOD_US
        period_ms = DEFAULT_CFS_PERIOD_US / 1000 if args.cfs_period_ms is None else args.cfs_period_ms
        if not 1 <= period_ms <= 1000:
            raise UserError(f"--cfs-period-ms {period_ms:g}: the kernel takes 1 to 1000 ms")
        report = check_scenario(scenario, seconds=args.seconds, progress=_progress,
                                cfs_period_us=round(period_ms * 1000))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"{'device':12s} {'Mbit/s conf':>11s} {'measured':>9s} {'CPU conf':>9s} {'measured':>9s} "
              f"{'10ms steps':>10s} {'after idle':>10s}")
        for name, d in report["devices"].items():
            print(f"{name:12s} {d['bandwidth_mbps']['configured']:11.1f} {d['bandwidth_mbps']['measured']:9.2f} "
                  f"{d['cpu_share']['configured']:9.3f} {d['cpu_share']['measured']:9.3f} "
                  f"{_off_by(d['cpu_share_short_steps']):>10s} {_off_by(d['cpu_share_after_idle']):>10s}")
        print(f"all within target (10% bandwidth, 15% CPU over seconds and 10 ms steps; a step after idle "
              f"is not counted): {report['all_within_target']}; "
              f"delay emulated: {report['delay_emulated']}")
        return 0
    from edgetrain.fleet.backends import open_backend
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir("testbed")
    with open_backend("mininet", scenario, run_dir, time_scale=args.time_scale, progress=_progress) as backend:
        print(f"token file: {backend.testbed.token_file}")
        for device in scenario.device_names:
            ip, port = backend.testbed.worker_address(device)
            print(f"{device}: worker at {ip}:{port}")
        print("Ctrl-C brings the testbed down.", flush=True)
        while True:
            time.sleep(3600)


def cmd_scenario(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from edgetrain.core.scenario import builtin_scenarios, load_scenario
    if args.action == "list":
        print("\n".join(builtin_scenarios()))
        return 0
    scenario = load_scenario(args.scenario)
    if args.action == "validate":
        print(f"{scenario.source}: valid scenario {scenario.name!r} with {len(scenario.devices)} devices")
    else:
        print(json.dumps(asdict(scenario), indent=2))
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from edgetrain.fleet.check import check_cluster, describe
    from edgetrain.fleet.cluster import load_cluster
    cluster = load_cluster(args.cluster_file)
    try:
        reports = check_cluster(cluster)
    except ValueError as exc:  # the token file: unreadable, too short, or readable by others
        raise UserError(f"{cluster.source}: token_file: {exc}") from None
    for report in reports:
        print(describe(report))
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 0 if all(r["ok"] for r in reports) else 1


def cmd_plan(args: argparse.Namespace) -> int:
    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.core.scenario import load_scenario
    from edgetrain.core.memory import device_memory_mb
    from edgetrain.envs.costmodel import CostModel
    from edgetrain.envs.planner import Planner
    scenario = load_scenario(args.scenario)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else scenario.device_names
    unknown = [d for d in devices if d not in scenario.device_names]
    if unknown:
        raise UserError(f"device {unknown[0]!r} is not in scenario {scenario.name} "
                        f"(devices: {', '.join(scenario.device_names)})")
    calibration = load_calibration(args.calibration or default_calibration_path(scenario))
    started = time.perf_counter()
    best = Planner(CostModel(calibration, scenario)).best_of_each_family(devices, power_modes=True)
    took = time.perf_counter() - started
    ranked = sorted(best.values(), key=lambda found: found.cost_per_sample)
    if args.json:
        print(json.dumps({"scenario": scenario.name, "devices": devices, "planner_s": took,
                          "families": {f.family: {"zeus_cost_per_sample": f.cost_per_sample, **f.prediction.to_dict()}
                                       for f in ranked}}, indent=2))
        return 0
    samples = scenario.model.batch_size
    moded = [d for d in devices if scenario.device(d).power_modes]
    print(f"the cheapest plan of each family on {', '.join(devices)} ({scenario.name}, eta "
          f"{scenario.objective.eta}; planned in {took * 1e3:.0f} ms"
          + (f"; power modes of {', '.join(moded)} weighed" if moded else "") + "), cheapest first:")
    print(f"{'family':7s} {'Zeus/sample':>11s} {'ms/sample':>9s} {'J/sample':>8s}  plan")
    for found in ranked:
        print(f"{found.family:7s} {found.cost_per_sample:11.4f} {found.prediction.step_time_s / samples * 1e3:9.2f} "
              f"{found.prediction.total_energy_j / samples:8.3f}  {found.plan}")
    for found in ranked[:1] + [f for f in ranked[1:] if f.family == "hybrid"]:
        print(f"\n{found.plan}: per device")
        print(f"{'device':12s} {'energy J':>9s} {'sent MB':>8s} {'memory MiB':>11s} {'of MiB':>8s}")
        for dev in found.plan.devices:
            have = device_memory_mb(scenario, dev)
            print(f"{dev:12s} {found.prediction.energy_j[dev]:9.3f} {found.prediction.bytes_sent[dev] / 1e6:8.2f} "
                  f"{found.prediction.memory_mb[dev]:11.0f} {have:8.0f}")
    return 0


def cmd_plans(args: argparse.Namespace) -> int:
    from edgetrain.core.feasibility import plan_problems
    from edgetrain.core.plans import enumerate_plans
    from edgetrain.core.scenario import load_scenario
    scenario = load_scenario(args.scenario)
    for plan in enumerate_plans(scenario.device_names, max_devices=args.max_devices):
        problems = plan_problems(plan, scenario)
        if problems and not args.all:
            continue
        print(f"{str(plan):60s} {'ok' if not problems else 'infeasible: ' + '; '.join(problems)}")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from edgetrain.core.catalog import CATALOG
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
    run.add_argument("--scenario", default=None, help=SCENARIO_HELP)
    run.add_argument("--plan", required=True, help="KIND:DEV,DEV,... with KIND in local, dp, pp, tp, sp; or "
                     "hybrid:DEV+DEV=BLOCKS/DEV=BLOCKS@MICROBATCHES")
    run.add_argument("--steps", type=int, default=10, help="training steps to run (default: 10)")
    run.add_argument("--backend", choices=["local", "mininet"], default="local",
                     help="local: one process per device on this machine, over loopback; "
                          "mininet: the emulated testbed (root)")
    run.add_argument("--metrics-out", default=None, help="write the run's metrics JSON here")
    run.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the batches")
    run.add_argument("--data", default=None, help="a text file or folder to train on (default: Python's stdlib source)")
    run.add_argument("--resume", default=None, help="continue from this checkpoint, on any plan")
    run.add_argument("--checkpoint", default=None, help="where to save checkpoints (default: RUN_DIR/checkpoint.pt)")
    run.add_argument("--checkpoint-every", type=int, default=5,
                     help="save every N steps, the points a recovery restarts from (default: 5; 0: only at the end)")
    run.add_argument("--inject-fault", action="append", default=[], metavar="DEV@STEP",
                     help="kill DEV's worker after step STEP (mininet backend; repeatable)")
    run.add_argument("--availability", choices=["follow", "ignore"], default="follow",
                     help="mininet: take devices off and on the network as their availability traces say")
    run.add_argument("--time-scale", type=float, default=1.0,
                     help="mininet: scenario seconds per real second for availability traces (default: 1)")
    run.add_argument("--run-dir", default=None, help="folder for shard logs and checkpoints (default: runs/TIME-KIND)")
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help="the worker daemon a device runs",
                            description="Serve the coordinator: heartbeats, device state, shard processes.")
    worker.add_argument("--listen", required=True, help="ADDR:PORT to listen on")
    worker.add_argument("--token-file", required=True, help="file holding the shared secret")
    worker.add_argument("--device", default=None, help="this device's name in the scenario (default: hostname)")
    worker.add_argument("--socket-ifname", default=None, help="network interface for torch.distributed (gloo)")
    worker.add_argument("--battery-file", default=None, help="JSON {percent: N} to report as the battery level")
    worker.add_argument("--log-dir", default=None, help="folder for shard logs")
    worker.add_argument("--workdir", default=None,
                        help="the only folder the worker reads and writes for a coordinator: checkpoints sent to "
                             "it and written by its shards (default: ~/.edgetrain/worker/DEVICE)")
    worker.add_argument("--cpu-quota-us", type=_positive_int, default=None,
                        help="emulated device: its CPU cgroup's CFS quota in its top power mode; with "
                             "--cpu-period-us the worker sets a plan's power mode by scaling it (the testbed gives both)")
    worker.add_argument("--cpu-period-us", type=_positive_int, default=None,
                        help="emulated device: its CPU cgroup's CFS period in its top power mode")
    worker.set_defaults(func=cmd_worker)

    token = sub.add_parser("token", help="write a new shared secret for workers and the coordinator",
                           description="Write a new random secret to a file of mode 0600 (never printed); start "
                                       "every worker with --token-file FILE and name it as token_file in the "
                                       "cluster file.")
    token.add_argument("--out", required=True, help="the token file to write")
    token.add_argument("--force", action="store_true", help="replace the file if it exists")
    token.set_defaults(func=cmd_token)

    emulate = sub.add_parser("emulate", help="the emulated Mininet testbed (root)")
    emulate.add_argument("action", choices=["check", "up", "clean"],
                         help="check: measure links and CPU shares; up: bring the testbed up until Ctrl-C; "
                              "clean: remove what a crashed run left behind")
    emulate.add_argument("--scenario", default=None, help=SCENARIO_HELP)
    emulate.add_argument("--json", default=None, help="check: write the report here")
    emulate.add_argument("--seconds", type=float, default=3.0, help="check: seconds per measurement")
    emulate.add_argument("--cfs-period-ms", type=float, default=None,
                         help="check: the hosts' CPU quota period (default: the testbed's 2; Linux's own is 100, "
                              "under which 10 ms steps run at this machine's speed)")
    emulate.add_argument("--time-scale", type=float, default=1.0, help="up: scenario seconds per real second")
    emulate.add_argument("--run-dir", default=None, help="up: folder for the testbed's logs")
    emulate.set_defaults(func=cmd_emulate)

    calibrate = sub.add_parser("calibrate", aliases=["profile"],
                               help="measure the devices and links the cost model is built from (a calibration)")
    calibrate.add_argument("--scenario", default=None, help=SCENARIO_HELP)
    calibrate.add_argument("--backend", choices=["local", "mininet"], default="mininet")
    calibrate.add_argument("--cluster", default=None, help="measure real devices listed in this cluster file instead")
    calibrate.add_argument("--out", required=True, help="the calibration JSON to write")
    calibrate.add_argument("--run-dir", default=None, help="folder for logs (default: runs/TIME-calibrate)")
    calibrate.set_defaults(func=cmd_calibrate)

    predict = sub.add_parser("predict", help="predict a plan's step time, energy and traffic from a calibration")
    predict.add_argument("--calibration", "--profile", required=True, help="a calibration JSON from `edgetrain calibrate`")
    predict.add_argument("--plan", required=True, help="KIND:DEV,DEV,...")
    predict.add_argument("--scenario", default=None, help="scenario (default: the one the calibration was measured on)")
    predict.add_argument("--json", action="store_true", help="print the prediction as JSON")
    predict.set_defaults(func=cmd_predict)

    plan = sub.add_parser("plan", help="the cheapest plan of each family (one device, dp, pp, tp, sp, hybrid) "
                                       "on a set of devices, from the cost model")
    plan.add_argument("--scenario", default=None, help=SCENARIO_HELP)
    plan.add_argument("--devices", default=None, help="DEV,DEV,... (default: every device of the scenario)")
    plan.add_argument("--calibration", "--profile", default=None,
                      help="a calibration JSON (default: the one shipped with a built-in scenario)")
    plan.add_argument("--json", action="store_true", help="print the plans and their predictions as JSON")
    plan.set_defaults(func=cmd_plan)

    train = sub.add_parser("train", help="learn a scheduling policy (MaskablePPO on the simulator)")
    train.add_argument("--scenario", default=None,
                       help="train for this scenario (file or built-in name); without it (and without "
                            "--calibration), the general policy: every built-in scenario with its calibration")
    train.add_argument("--calibration", "--profile", default=None, help="calibration of the simulator "
                                                       "(default: the one shipped with the scenario)")
    train.add_argument("--init", default=None, help="fine-tune this policy.zip (e.g. the general policy) "
                                                    "instead of starting from imitation")
    train.add_argument("--out", required=True, help="folder for policy.zip, policy.onnx and checkpoints")
    train.add_argument("--logdir", default="training_logs", help="TensorBoard runs (default: training_logs)")
    train.add_argument("--timesteps", type=int, default=60_000, help="environment steps (default: 60000)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--n-envs", type=int, default=4, help="parallel simulator environments (default: 4)")
    train.add_argument("--subproc", action="store_true", help="step the environments in subprocesses")
    train.add_argument("--learning-rate", type=float, default=1e-4)
    train.add_argument("--n-steps", type=int, default=256, help="steps per environment per rollout")
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--n-epochs", type=int, default=10)
    train.add_argument("--gamma", type=float, default=0.99)
    train.add_argument("--gae-lambda", type=float, default=0.95)
    train.add_argument("--clip-range", type=float, default=0.2)
    train.add_argument("--ent-coef", type=float, default=0.0)
    train.add_argument("--net-arch", default="128,128", help="hidden layer sizes (default: 128,128)")
    train.add_argument("--network", choices=("mlp", "scorer"), default="mlp",
                       help="mlp: SB3's MLP over the offered plans (default); scorer: one network scores every offer")
    train.add_argument("--decision-steps", type=int, default=10, help="training steps per decision")
    train.add_argument("--imitate-steps", type=int, default=50_000,
                       help="warm start: clone the teacher over N simulated decisions first (0: off)")
    train.add_argument("--teacher", choices=("greedy", "heuristic", "lifetime_oracle", "clairvoyant"),
                       default="lifetime_oracle",
                       help="whom the warm start imitates (default: lifetime_oracle, which knows the simulated "
                            "availability trace the policy never sees)")
    train.add_argument("--imitate-epochs", type=int, default=20)
    train.add_argument("--dagger-rounds", type=int, default=2,
                       help="of the imitated decisions, collect all but the first share in N rounds where the "
                            "policy drives and the teacher labels (DAgger; 0: plain behaviour cloning)")
    train.add_argument("--vary-fleet", action=argparse.BooleanOptionalAction, default=True,
                       help="train on random subsets of the devices with varied availability (default: on)")
    train.add_argument("--vary-links", action=argparse.BooleanOptionalAction, default=True,
                       help="also train on each fleet with links 4x slower and 4x faster (default: on)")
    train.add_argument("--checkpoint-every", type=int, default=10_000, help="save the policy every N env steps")
    train.add_argument("--validate-every", type=int, default=20_000,
                       help="price the policy against greedy on simulated jobs every N env steps and keep the "
                            "best one seen, not the last (default: 20000; 0: keep the last)")
    train.add_argument("--validation-episodes", type=int, default=24, help="simulated jobs per validation (default: 24)")
    train.add_argument("--online-steps", type=int, default=0,
                       help="then fine-tune for N decisions on the live mininet testbed (root; default: 0)")
    train.add_argument("--online-n-steps", type=int, default=16, help="live decisions per online rollout (default: 16)")
    train.add_argument("--online-learning-rate", type=float, default=3e-5)
    train.add_argument("--time-scale", type=float, default=1.0,
                       help="online: scenario seconds per real second for availability (default: 1)")
    train.add_argument("--busy-device", dest="busy_devices", action="append", default=[], metavar="DEVICE",
                       help="online: this testbed device runs a CPU-bound process of its own beside the worker, "
                            "which the calibration never saw (repeatable)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="a policy against the baselines, on the same seeded traces")
    evaluate.add_argument("--scenario", default=None, help=SCENARIO_HELP)
    evaluate.add_argument("--policy", default=None, help="policy.zip or policy.onnx from `edgetrain train` (baselines only without)")
    evaluate.add_argument("--calibration", "--profile", default=None, help="calibration of the simulator (default: the shipped one)")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--seed", type=int, default=1000, help="seed of the first episode's traces")
    evaluate.add_argument("--json", required=True, help="write the results here")
    evaluate.add_argument("--plots", default=None,
                          help="folder for the PNG plots (default: JSON-STEM-plots/ next to --json)")
    evaluate.add_argument("--run", default=None, help="the policy's TensorBoard run, for the learning curve")
    evaluate.set_defaults(func=cmd_evaluate)

    deploy = sub.add_parser("deploy", help="let a learned policy schedule a real training job to its target",
                            description="Train the scenario's model to its target samples, the policy choosing the "
                                        "plan at every decision from the live state of the devices.")
    deploy.add_argument("--policy", required=True,
                        help="policy.zip or policy.onnx from `edgetrain train`, or a rule to schedule the job "
                             "instead, for comparison: greedy, heuristic, fastest_single or all_dp")
    where = deploy.add_mutually_exclusive_group()
    where.add_argument("--scenario", default=None,
                       help=f"bring up this scenario's emulated testbed (root; default: {DEFAULT_SCENARIO})")
    where.add_argument("--cluster", default=None, help="drive the real devices of this cluster file "
                                                       "(each running `edgetrain worker`)")
    deploy.add_argument("--calibration", "--profile", default=None, help="calibration of the devices (default: the scenario's shipped one)")
    deploy.add_argument("--out", default=None, help="folder for the checkpoint, metrics.json and runs "
                                                    "(default: runs/TIME-deploy)")
    deploy.add_argument("--logdir", default="training_logs", help="TensorBoard runs (default: training_logs)")
    deploy.add_argument("--decision-steps", type=int, default=10, help="training steps between decisions (default: 10)")
    deploy.add_argument("--checkpoint-every", type=int, default=5, help="checkpoint every N steps (default: 5)")
    deploy.add_argument("--target-samples", type=int, default=None, help="override the scenario's target samples")
    deploy.add_argument("--time-scale", type=float, default=1.0,
                        help="emulated testbed: scenario seconds per real second for availability (default: 1)")
    deploy.add_argument("--seed", type=int, default=0, help="seed of the testbed's availability traces")
    deploy.add_argument("--busy-device", dest="busy_devices", action="append", default=[], metavar="DEVICE",
                        help="emulated testbed: this device runs a CPU-bound process of its own beside the worker, "
                             "which the calibration never saw (repeatable)")
    deploy.set_defaults(func=cmd_deploy)

    scenario = sub.add_parser("scenario", help="list, validate or show scenarios")
    scenario.add_argument("action", choices=["list", "validate", "show"])
    scenario.add_argument("--scenario", default=None, help=SCENARIO_HELP)
    scenario.set_defaults(func=cmd_scenario)

    plans = sub.add_parser("plans", help="list the plans a scenario's devices can run")
    plans.add_argument("--scenario", default=None, help=SCENARIO_HELP)
    plans.add_argument("--max-devices", type=int, default=3, help="largest device group to list (default: 3)")
    plans.add_argument("--all", action="store_true", help="also list infeasible plans, with the reason")
    plans.set_defaults(func=cmd_plans)

    cluster = sub.add_parser("cluster", help="check the devices of a cluster file",
                             description="Ask every worker of a cluster file: reachable, authenticated, version, "
                                         "GPU, energy meter, free memory, clock offset. Exit 1 if any is not ok.")
    cluster.add_argument("action", choices=["check"])
    cluster.add_argument("cluster_file", help="the cluster file (devices, addresses, token_file)")
    cluster.add_argument("--json", default=None, help="also write the answers here")
    cluster.set_defaults(func=cmd_cluster)

    profiles = sub.add_parser("profiles", help="list the device profile catalog")
    profiles.add_argument("--sources", action="store_true", help="show where every number comes from")
    profiles.set_defaults(func=cmd_profiles)
    return parser


def main(argv: list[str] | None = None) -> int:
    import logging
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
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
