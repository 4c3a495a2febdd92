"""`edgetrain train`: learn a scheduling policy with MaskablePPO on EdgeTrain-v0.

Trains on the simulator with several environments in parallel, then optionally fine-tunes online on
the live emulated testbed (`online_steps` decisions, each training the model for real), logs to
TensorBoard (SB3's scalars plus `sched/` ones and the hyperparameters; the online part continues the
same run), checkpoints the policy during training, shows a progress bar, and leaves `policy.zip` (SB3)
and `policy.onnx` (for devices without stable-baselines3: `edgetrain.agents.onnx_policy`) in the output folder.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv
from torch import nn

from edgetrain.core.plans import ALL_KINDS, Plan
from edgetrain.core.config import Scenario
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


@dataclass(frozen=True)
class TrainConfig:
    """Every hyperparameter of `edgetrain train`; each is a flag of the command."""

    timesteps: int = 60_000
    """Environment steps (decisions) to train for."""
    seed: int = 0
    n_envs: int = 4
    """Simulator environments stepped in parallel."""
    subproc: bool = False
    """Step them in subprocesses (the simulator is fast enough in one process)."""
    learning_rate: float = 1e-4
    """Small, with no entropy bonus: PPO starts from the imitated planner and must not wander off."""
    n_steps: int = 256
    """Steps per environment per rollout."""
    batch_size: int = 256
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] = (128, 128)
    network: str = "mlp"
    """The policy network: "mlp", SB3's MLP over the flattened offer, or "scorer", one scorer shared by
    every offered plan (edgetrain.agents.scorer; measured no better, see there)."""
    decision_steps: int = 10
    """Training steps per decision of the environment."""
    imitate_steps: int = 50_000
    """Warm start: first clone the teacher's decisions over this many simulated decisions (actor and
    critic), then improve on it with PPO; 0: PPO from scratch."""
    dagger_rounds: int = 2
    """Of the imitated decisions, all but the first share are collected in this many DAgger rounds (Ross,
    Gordon and Bagnell, AISTATS 2011): the student drives, the teacher labels the states the student's
    own choices lead to (a student that keeps a plan the teacher would have left learns, there, to
    leave it); 0: plain behaviour cloning."""
    teacher: str = "lifetime_oracle"
    """Whom the warm start imitates (`TEACHERS`): by default a privileged one that knows each episode's
    availability trace, which the policy never sees (see `imitate`)."""
    imitate_epochs: int = 20
    vary_fleet: bool = True
    """Every simulated episode on a random subset of the devices in random slots, with varied
    availability, so that the policy serves fleets it was not trained on."""
    vary_links: bool = True
    """Train on each task as measured and on its fleet with links 4x slower and 4x faster
    (`LINK_FACTORS`), the simulators taking the variants in turn, episode by episode."""
    checkpoint_every: int = 10_000
    """Save the policy every this many environment steps."""
    validate_every: int = 20_000
    """Every this many environment steps (and before the first), price the policy against greedy on
    `validation_episodes` simulated jobs of the training tasks (seeds of their own, none the benchmarks
    use) and keep the best policy seen, not the last (`ValidationCallback`); 0: keep the last."""
    validation_episodes: int = 24
    online_steps: int = 0
    """Then fine-tune for this many decisions on the live mininet testbed (root); 0: simulator only."""
    online_n_steps: int = 16
    """Live decisions per rollout of the online fine-tuning (each is one PPO update)."""
    online_learning_rate: float = 3e-5
    """Smaller than on the simulator: a few noisy live rollouts must not undo what the simulator taught."""
    time_scale: float = 1.0
    """Online: scenario seconds per real second for the testbed's availability traces."""
    busy_devices: tuple = ()
    """Online: testbed devices busy with work of their own, which the calibration never saw (a CPU-bound
    process in the host: `Testbed.busy_devices`); what the simulator cannot teach."""


def _say(line: str) -> None:
    """Progress of the parts SB3's bar does not cover (imitation, the live testbed), on stderr."""
    print(line, file=sys.stderr, flush=True)


def run_name(scenario: str, algo: str, seed: int) -> str:
    return f"{scenario}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


REFERENCES = ("greedy", "heuristic", "clairvoyant")
"""Drawn in the learning curve (TensorBoard and PNG): what the policy must beat, and the clairvoyant bound."""


def simulators(tasks: list, config: TrainConfig) -> list[EdgeTrainEnv]:
    """One simulated env per task, as training sees them (its decision length and fleet variation)."""
    return [EdgeTrainEnv(scenario=t.scenario, calibration=t.calibration, decision_steps=config.decision_steps,
                         vary_fleet=config.vary_fleet) for t in tasks]


def reference_costs(tasks: list, config: TrainConfig, episodes: int = 8,
                    progress: Callable[[str], None] = lambda line: None) -> dict:
    """Zeus cost per sample of each reference on simulated jobs like the training ones (the tasks in turn,
    the same fleet variation), mean and spread over `episodes` seeded episodes: the lines a learning
    curve is read against. (The clairvoyant planner replays the job at every decision: on long jobs it
    takes minutes, so each reference says when it is priced.)"""
    from edgetrain.agents.baselines import BASELINES
    from edgetrain.agents.evaluate import run_episode
    envs = simulators(tasks, config)
    out = {}
    for name in REFERENCES:
        act = BASELINES[name](config.seed)
        costs = [run_episode(envs[e % len(envs)], act, 7_000_000 + config.seed * 1000 + e)["zeus_cost"]
                 for e in range(episodes)]
        costs = [c for c in costs if c == c]  # jobs that trained nothing have no cost per sample
        out[name] = {"mean": float(np.mean(costs)), "std": float(np.std(costs)), "episodes": len(costs)}
        progress(f"pricing the references: {name} {out[name]['mean']:.4f} Zeus cost/sample")
    return out


class SchedCallback(BaseCallback):
    """`sched/` scalars per finished episode (one training job), from the env's own job totals
    (`info["job"]`): energy and time per sample, Zeus cost per sample, failures, plan switches; and
    histograms of the plan kinds and device counts chosen. With `references`, every rollout also logs
    `sched/reference/NAME` (mean) and `NAME_high`/`NAME_low` (mean +- one spread) of each reference, so
    that TensorBoard draws them as lines next to the policy's curve."""

    def __init__(self, references: dict | None = None):
        super().__init__()
        self.references = references or {}

    def _on_training_start(self) -> None:
        self.kinds: list[int] = []
        self.sizes: list[int] = []

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if info["plan"] != "none":  # "none": no device was there to train
                plan = Plan.parse(info["plan"])
                self.kinds.append(ALL_KINDS.index(plan.kind))
                self.sizes.append(plan.degree)
            job = info["job"]
            if done and job.samples:
                per_sample = job.per_sample()
                self.logger.record_mean("sched/energy_per_sample_j", per_sample["energy_per_sample_j"])
                self.logger.record_mean("sched/time_per_sample_s", per_sample["time_per_sample_s"])
                self.logger.record_mean("sched/zeus_cost_per_sample", per_sample["zeus_cost"])
                self.logger.record_mean("sched/failures", job.failures)
                self.logger.record_mean("sched/plan_switches", job.plan_switches)
        return True

    def _on_rollout_end(self) -> None:
        for name, figures in self.references.items():
            self.logger.record(f"sched/reference/{name}", figures["mean"])
            self.logger.record(f"sched/reference/{name}_high", figures["mean"] + figures["std"])
            self.logger.record(f"sched/reference/{name}_low", figures["mean"] - figures["std"])
        if self.kinds:
            only_tensorboard = ("stdout", "log", "json", "csv")
            self.logger.record("sched/plan_kind", torch.tensor(self.kinds), exclude=only_tensorboard)
            self.logger.record("sched/devices_per_plan", torch.tensor(self.sizes), exclude=only_tensorboard)
        self.kinds, self.sizes = [], []


class HParamCallback(BaseCallback):
    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config

    def _on_training_start(self) -> None:
        hparams = {k: (str(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()}
        self.logger.record("hparams", HParam(hparams, {"sched/zeus_cost_per_sample": 0.0}),
                           exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True


class ValidationCallback(BaseCallback):
    """Early stopping by validation, as SB3's EvalCallback keeps a best model: before PPO's first update
    and every `config.validate_every` steps after it, the deterministic policy runs `config.validation_episodes`
    simulated jobs of the training tasks (in turn, with the training's fleet variation, on seeds no
    benchmark uses), each priced against greedy on the same trace; the policy with the lowest mean
    cost ratio is kept and loaded when training ends. Why: PPO from the imitated start often undid what
    imitation learned (measured, scratch, general student: smart-home-sessions 0.968x greedy after
    imitation, 0.994x after 60k PPO steps; held-out lab-sessions 1.004x -> 1.029x), and a policy that
    got worse on the jobs it trains on is not one to ship. Logs `sched/validation_vs_greedy`."""

    SEED = 8_000_000

    def __init__(self, tasks: list, config: TrainConfig, progress: Callable[[str], None] = lambda line: None):
        super().__init__()
        self.envs = simulators(tasks, config)
        self.seeds = [self.SEED + config.seed * 1000 + e for e in range(config.validation_episodes)]
        self.every = config.validate_every
        self.progress = progress
        self.history: list[dict] = []
        self.best: tuple[float, int, dict] | None = None
        self._next = 0

    def _on_training_start(self) -> None:
        from edgetrain.agents.baselines import make_greedy
        from edgetrain.agents.evaluate import run_episode
        greedy = make_greedy()
        self.greedy = [run_episode(self._env(e), greedy, seed)["zeus_cost"] for e, seed in enumerate(self.seeds)]
        self._next = self.model.num_timesteps

    def _env(self, episode: int) -> EdgeTrainEnv:
        return self.envs[episode % len(self.envs)]

    def _on_rollout_start(self) -> None:
        # Between PPO updates: the policy priced is the one the steps so far have made.
        if self.model.num_timesteps >= self._next:
            self._validate()

    def _on_step(self) -> bool:
        return True

    def _validate(self) -> None:
        import copy
        from edgetrain.agents.evaluate import run_episode

        def act(env, obs):
            return int(self.model.predict(obs, action_masks=env.action_masks(), deterministic=True)[0])

        ratios = []
        for e, seed in enumerate(self.seeds):
            cost = run_episode(self._env(e), act, seed)["zeus_cost"]
            if cost == cost and self.greedy[e] == self.greedy[e]:  # NaN: a job that trained nothing
                ratios.append(cost / self.greedy[e])
        ratio = float(np.mean(ratios)) if ratios else float("nan")
        steps = self.model.num_timesteps
        self.history.append({"timesteps": steps, "vs_greedy": ratio})
        self.logger.record("sched/validation_vs_greedy", ratio)
        kept = self.best is None or ratio < self.best[0]
        if kept:
            self.best = (ratio, steps, copy.deepcopy(self.model.policy.state_dict()))
        self.progress(f"validation after {steps} PPO steps: {ratio:.4f}x greedy on {len(ratios)} simulated jobs"
                      + (" (best so far: kept)" if kept else f" (best: {self.best[0]:.4f}x at {self.best[1]})"))
        self._next = steps + self.every

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.model.num_timesteps:
            self._validate()
        ratio, steps, state = self.best
        self.model.policy.load_state_dict(state)
        self.progress(f"kept the policy after {steps} PPO steps: {ratio:.4f}x greedy in validation")

    def summary(self) -> dict:
        return {"seeds": [self.seeds[0], self.seeds[-1]], "greedy_episodes": len(self.greedy),
                "history": self.history, "kept_timesteps": self.best[1], "kept_vs_greedy": self.best[0]}


@dataclass(frozen=True)
class Task:
    """One scenario and the calibration of its simulator: what a policy trains on."""

    scenario: Scenario
    calibration: dict


LINK_FACTORS = (0.25, 4.0)
"""`vary_links`: besides each task as measured, its fleet on links this many times as fast (jetson-lab's
links are 5-7x slower than smart-home's: how much communication weighs against compute is what sets
which plan is cheapest, and what a policy trained on one fleet must not take for granted)."""


def with_links_scaled(task: Task, factor: float) -> Task:
    """The task on links `factor` times as fast: every device's bandwidth, and the calibration's measured
    transfer times beyond their latency (and its record of the emulated links, so that it still matches
    the scenario), scaled."""
    import copy
    import dataclasses
    calibration = copy.deepcopy(task.calibration)
    for link in calibration["links"].values():
        latency = link["latency_s"]
        for table in ("transfer_s", "exchange_s"):
            if table in link:
                link[table] = {size: latency + max(t - latency, 0.0) / factor for size, t in link[table].items()}
        if "mbps" in link:
            link["mbps"] *= factor
    for device in calibration.get("emulation", {}).get("devices", {}).values():
        device["bandwidth_mbps"] *= factor
    scenario = dataclasses.replace(task.scenario, devices=tuple(
        dataclasses.replace(d, bandwidth_mbps=d.bandwidth_mbps * factor) for d in task.scenario.devices))
    return Task(scenario, calibration)


def with_varied_links(tasks: list[Task]) -> list[Task]:
    return [varied for task in tasks for varied in [task] + [with_links_scaled(task, f) for f in LINK_FACTORS]]


def general_tasks(exclude: tuple[str, ...] = ()) -> list[Task]:
    """What the general policy trains on: every built-in scenario that ships a calibration (fleets and
    models of several families, so that the policy learns what carries over), but those in `exclude`
    (held out, to measure how well it carries over)."""
    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.core.scenario import builtin_scenarios
    tasks = []
    for name in (n for n in builtin_scenarios() if n not in exclude):
        scenario = load_scenario(name)
        path = Path(default_calibration_path(scenario))
        if path.is_file():
            tasks.append(Task(scenario, load_calibration(str(path))))
    return tasks


def train(tasks: list[Task], out: str, config: TrainConfig, logdir: str = "training_logs",
          progress_bar: bool = True, on_online_start=lambda: None, init: str | None = None) -> tuple[Path, Path, Path]:
    """Train on `tasks` (simulators spread over them, one scenario per simulator in turn) and save;
    returns the paths of policy.zip, policy.onnx and the TensorBoard run. `init`: start from this policy
    (fine-tuning: no imitation). Online fine-tuning runs on the first task's testbed. `on_online_start`
    is called when the simulator part is done and online fine-tuning begins."""
    # The policy is a small MLP: one thread is fastest, and leaves the other cores to the testbed.
    torch.set_num_threads(1)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sim_tasks = with_varied_links(tasks) if config.vary_links else tasks
    env_fns = [partial(_monitored_env, sim_tasks, i, config) for i in range(config.n_envs)]
    env = (SubprocVecEnv if config.subproc else DummyVecEnv)(env_fns)
    env.seed(config.seed)
    model = MaskablePPO(
        policy_class(config), env, learning_rate=config.learning_rate, n_steps=config.n_steps,
        batch_size=config.batch_size, n_epochs=config.n_epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
        clip_range=config.clip_range, ent_coef=config.ent_coef, seed=config.seed, verbose=0, device="cpu",
        policy_kwargs={"net_arch": list(config.net_arch)}, tensorboard_log=logdir)
    if init is not None:
        _start_from(model, init)
        _say(f"fine-tuning {init} on {', '.join(t.scenario.name for t in tasks)} (no imitation)")
    elif config.imitate_steps > 0:
        imitation = imitate(model, sim_tasks, config, progress=_say)
        (out_dir / "imitation.json").write_text(json.dumps(imitation, indent=2))
    _say("pricing the references for the learning curve: " + ", ".join(REFERENCES) + " on 8 simulated jobs")
    references = reference_costs(sim_tasks, config, progress=_say)
    (out_dir / "references.json").write_text(json.dumps(references, indent=2))
    name = run_name(tasks[0].scenario.name if len(tasks) == 1 else "general", "maskableppo", config.seed)
    checkpoints = CheckpointCallback(save_freq=max(config.checkpoint_every // config.n_envs, 1),
                                     save_path=str(out_dir / "checkpoints"), name_prefix="policy")
    callbacks = [SchedCallback(references), HParamCallback(config), checkpoints]
    validation = ValidationCallback(sim_tasks, config, progress=_say) if config.validate_every > 0 else None
    if config.timesteps > 0:  # 0: a policy fine-tuned online only (from `init`)
        model.learn(total_timesteps=config.timesteps, tb_log_name=name, progress_bar=progress_bar,
                    callback=CallbackList(callbacks + ([validation] if validation else [])))
    env.close()
    if validation is not None and config.timesteps > 0:
        (out_dir / "validation.json").write_text(json.dumps(validation.summary(), indent=2))
    if config.online_steps > 0:
        on_online_start()
        _say(f"fine-tuning online: {config.online_steps} decisions on the live testbed of {tasks[0].scenario.name}, "
             "each training the model for real")
        model = fine_tune_online(model, tasks[0].scenario, tasks[0].calibration, config, name, out_dir, progress_bar)
    zip_path = out_dir / "policy.zip"
    model.save(zip_path)
    (out_dir / "trained_on.json").write_text(json.dumps([t.scenario.name for t in tasks]))
    return zip_path, export_onnx(model, out_dir / "policy.onnx"), Path(logdir) / f"{name}_1"


def policy_class(config: TrainConfig):
    if config.network == "mlp":
        return "MlpPolicy"
    from edgetrain.agents.scorer import OfferScorerPolicy
    return OfferScorerPolicy


class TaskCycle(gym.Env):
    """One simulator slot that trains on several tasks: each episode on the next task, starting from
    `first` (so that the slots of a vector env start on different ones). Seeded resets stay
    reproducible: each episode's seed is drawn from this env's own seeded generator."""

    metadata = {"render_modes": []}

    def __init__(self, tasks: list[Task], first: int, config: TrainConfig):
        self.envs = simulators(tasks, config)
        self.next_task = first % len(tasks)
        self.current = self.envs[self.next_task]
        self.observation_space, self.action_space = self.current.observation_space, self.current.action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.current = self.envs[self.next_task]
        self.next_task = (self.next_task + 1) % len(self.envs)
        return self.current.reset(seed=int(self.np_random.integers(2 ** 31)), options=options)

    def step(self, action):
        return self.current.step(action)

    def action_masks(self):
        return self.current.action_masks()


def _monitored_env(tasks: list[Task], first: int, config: TrainConfig):
    return Monitor(TaskCycle(tasks, first, config))


def _start_from(model: MaskablePPO, path: str) -> None:
    """Load another policy's weights into `model` (same layout, checked: one sentence otherwise)."""
    from edgetrain.agents.policy import load_policy
    from edgetrain.core.errors import UserError
    if not path.endswith(".zip"):
        raise UserError(f"--init {path}: fine-tuning starts from a policy.zip (the ONNX export holds no training state)")
    load_policy(path).check_fits(model.observation_space.shape[0], int(model.action_space.n))
    start = MaskablePPO.load(path, device="cpu").policy
    if type(start) is not type(model.policy):
        raise UserError(f"--init {path}: that policy's network is {type(start).__name__}, not "
                        f"{type(model.policy).__name__}: pass the --network it was trained with")
    model.policy.load_state_dict(start.state_dict())


def _offered_choice(env: EdgeTrainEnv, ranked) -> int:
    """The index of the offered plan that `ranked` (a plan -> price function) prices lowest."""
    return min(range(len(env.offered)), key=lambda k: ranked(env, env.offered[k])) if env.offered else 0


def make_teacher(name: str, seed: int) -> Callable[[EdgeTrainEnv, np.ndarray], int]:
    """A teacher as a function of the env that returns an offered index (the student can only ever pick
    an offered plan, so the teacher's choice is made among the same offers)."""
    from edgetrain.agents.baselines import BASELINES, lifetime_cost_per_sample
    if name == "lifetime_oracle":
        return lambda env, obs: _offered_choice(env, lifetime_cost_per_sample)
    planner = BASELINES[name](seed)

    def act(env: EdgeTrainEnv, obs: np.ndarray) -> int:
        plan = planner(env, obs)
        if isinstance(plan, int):
            return plan
        index = env.index_of(plan)
        return 0 if index is None else index  # a plan beyond the offer: the cheapest offered instead

    return act


TEACHERS = ("greedy", "heuristic", "lifetime_oracle", "clairvoyant")
"""Who the warm start may imitate: the greedy planner, the tuned heuristic, or a clairvoyant reference
(lifetime_oracle: cheap, one prediction per offer; clairvoyant: a rollout of the job per offer, minutes
per thousand decisions)."""


def imitate(model: MaskablePPO, tasks: list[Task], config: TrainConfig, progress=lambda line: None) -> dict:
    """Behaviour cloning of a teacher as a warm start: the actor learns the teacher's actions (maximum
    likelihood under the masks) and the critic the discounted returns of the teacher's episodes, on
    simulated episodes of the tasks in turn with the same fleet variation as training; PPO then goes on
    from there.

    The default teacher is privileged ("learning by cheating", Chen, Zhou, Koltun and Krähenbühl, CoRL
    2019): the lifetime oracle knows each episode's availability trace and picks the offer that costs
    least until the job ends or a member leaves. The student sees only the observation (each offer's
    leave chances from its members' availability processes and ages, its switch cost), so it learns
    the choice the trace makes best on average given what can be seen: where a device's age says it
    is about to leave, not to switch onto it. Imitating greedy instead gives back greedy exactly, and
    PPO from there did not find where to leave it (measured on churn-sessions with an 8 s switch:
    greedy's student 1.000x greedy, the lifetime oracle's 0.97-0.98x, in scratch runs of 20,000-60,000
    decisions)."""
    envs = simulators(tasks, config)
    teacher = make_teacher(config.teacher, config.seed)
    policy = model.policy
    who = config.teacher.replace("_", " ")
    data = {"observations": [], "masks": [], "actions": [], "returns": []}
    episode = 0

    def collect(decisions: int, student: bool) -> None:
        """Episodes until `decisions` more are labelled by the teacher; the student's own actions drive
        them in a DAgger round (the teacher labels the states the student gets itself into)."""
        nonlocal episode
        wanted = len(data["actions"]) + decisions
        while len(data["actions"]) < wanted:
            env = envs[episode % len(envs)]
            obs, _ = env.reset(seed=config.seed * 100_003 + episode)
            episode += 1
            rewards = []
            for _ in range(2_000):
                label, mask = teacher(env, obs), env.action_masks()
                data["observations"].append(obs)
                data["masks"].append(mask)
                data["actions"].append(label)
                action = label
                if student:
                    with torch.no_grad():
                        action, _ = model.predict(obs, action_masks=mask, deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(int(action))
                rewards.append(reward)
                if terminated or truncated:
                    break
            discounted, running = [], 0.0
            for reward in reversed(rewards):  # the episode ends at its target: nothing to bootstrap
                running = reward + config.gamma * running
                discounted.append(running)
            data["returns"].extend(reversed(discounted))

    def tensors() -> tuple:
        return (torch.as_tensor(np.array(data["observations"]), dtype=torch.float32),
                torch.as_tensor(np.array(data["masks"]), dtype=torch.bool),
                torch.as_tensor(np.array(data["actions"]), dtype=torch.int64),
                torch.as_tensor(np.array(data["returns"]), dtype=torch.float32))

    def fit(epochs: int) -> None:
        obs_t, mask_t, act_t, ret_t = tensors()
        policy.set_training_mode(True)
        for epoch in range(epochs):
            for batch in torch.randperm(len(obs_t), generator=generator).split(config.batch_size):
                values, log_prob, _ = policy.evaluate_actions(obs_t[batch], act_t[batch], action_masks=mask_t[batch])
                loss = -log_prob.mean() + 0.5 * torch.nn.functional.mse_loss(values.flatten(), ret_t[batch])
                policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
                policy.optimizer.step()
        policy.set_training_mode(False)

    generator = torch.Generator().manual_seed(config.seed)
    rounds = config.dagger_rounds
    first = config.imitate_steps // (rounds + 1)
    progress(f"imitating the {who}: collecting {first} simulated decisions, then {rounds} DAgger rounds")
    collect(first, student=False)
    fit(config.imitate_epochs)
    for k in range(rounds):
        collect((config.imitate_steps - first) // rounds, student=True)
        progress(f"imitating the {who}: DAgger round {k + 1}/{rounds}: {len(data['actions'])} labelled decisions "
                 f"of {episode} jobs; {config.imitate_epochs} epochs of behaviour cloning")
        fit(config.imitate_epochs)
    obs_t, mask_t, act_t, _ = tensors()  # how closely the student follows its teacher on what it learned
    sample = torch.randperm(len(obs_t), generator=generator)[:1000]
    with torch.no_grad():
        distribution = policy.get_distribution(obs_t[sample], action_masks=mask_t[sample].numpy())
        chosen = distribution.get_actions(deterministic=True)
    agreement = (chosen == act_t[sample]).float().mean().item()
    return {"teacher": config.teacher, "dagger_rounds": rounds, "decisions": len(obs_t), "episodes": episode,
            "agreement_with_teacher": agreement}


def fine_tune_online(model: MaskablePPO, scenario, calibration, config: TrainConfig, name: str, out_dir: Path,
                     progress_bar: bool) -> MaskablePPO:
    """Go on learning on the live testbed: the same policy, one live environment, short rollouts. Every
    decision trains the scenario's model for real, so the rewards are measured, not predicted."""
    live = DummyVecEnv([lambda: EdgeTrainEnv(scenario=scenario, calibration=calibration, backend="mininet",
                                             decision_steps=config.decision_steps, time_scale=config.time_scale,
                                             busy_devices=tuple(config.busy_devices),
                                             progress=lambda line: _say(f"   {line}"))])
    live.seed(config.seed)
    n_steps = min(config.online_n_steps, config.online_steps)
    online = MaskablePPO(
        policy_class(config), live, learning_rate=config.online_learning_rate, n_steps=n_steps,
        batch_size=n_steps, n_epochs=config.n_epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
        clip_range=config.clip_range, ent_coef=config.ent_coef, seed=config.seed, verbose=0, device="cpu",
        policy_kwargs={"net_arch": list(config.net_arch)}, tensorboard_log=model.tensorboard_log)
    online.policy.load_state_dict(model.policy.state_dict())
    online.num_timesteps = model.num_timesteps  # the TensorBoard run goes on where the simulator stopped
    checkpoints = CheckpointCallback(save_freq=n_steps, save_path=str(out_dir / "checkpoints"),
                                     name_prefix="policy_online")
    try:
        online.learn(total_timesteps=config.online_steps, tb_log_name=name, reset_num_timesteps=False,
                     progress_bar=progress_bar, callback=CallbackList([SchedCallback(), checkpoints]))
    finally:
        live.close()
    return online


class MaskedGreedyPolicy(nn.Module):
    """The deterministic masked action of a MaskablePPO MLP policy, as a plain module for ONNX."""

    def __init__(self, policy):
        super().__init__()
        self.features = policy.features_extractor
        self.extractor = policy.mlp_extractor
        self.action_net = policy.action_net

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latent, _ = self.extractor(self.features(obs))
        logits = self.action_net(latent)
        logits = torch.where(mask, logits, torch.full_like(logits, -1e8))
        return logits.argmax(dim=1)


def export_onnx(model: MaskablePPO, path: Path) -> Path:
    module = MaskedGreedyPolicy(model.policy).eval()
    obs = torch.zeros((1,) + model.observation_space.shape, dtype=torch.float32)
    mask = torch.ones((1, int(model.action_space.n)), dtype=torch.bool)
    torch.onnx.export(module, (obs, mask), str(path), input_names=["observation", "action_mask"],
                      output_names=["action"], dynamic_axes={"observation": {0: "batch"},
                                                             "action_mask": {0: "batch"}, "action": {0: "batch"}},
                      dynamo=False)
    return path
