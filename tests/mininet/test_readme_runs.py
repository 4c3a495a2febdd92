"""The README, run as a new user runs it: every command block, in order, in a fresh folder.

Each `edgetrain` line of a ```bash block runs as written, in an empty temporary folder (HOME points
there too), with two kinds of change only, both listed below: step counts made small (`SMALL`), and
what a reader fills in (`<previous run>`, `<run>`, the cluster file's addresses, which name real
boards). The YAML blocks that begin with `# NAME.yaml` are written to that file first, as a reader
would save them; the ```python block runs as a script. A command must exit 0, print no traceback, and
leave what its flags promise (`--out`, `--json`, `--metrics-out`, the token file's mode, the plots next
to an evaluation's JSON). Long-running commands (`emulate up`, `worker`) must announce themselves, then
stop cleanly. The README's cluster block runs against real `edgetrain worker` daemons on loopback.

Lives in tests/mininet because the README's testbed blocks need root; `make demo`, `make test`, the
benchmarks and TensorBoard are the only lines not run (`NOT_RUN` says why).
"""

import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_CALIBRATION

VENV_BIN = Path(sys.executable).parent
EDGETRAIN = str(VENV_BIN / "edgetrain")

# Lines of the README that this test does not run, and why.
NOT_RUN = {
    "make demo": "the demo is its own job (`make demo`)",
    "make test": "this is the test suite",
    ".venv/bin/tensorboard": "a third-party server that runs until stopped",
    ".venv/bin/python benchmarks/": "benchmarks are measurements with their own targets, minutes each",
}

# Small sizes: flag values set whatever the README says (flags absent are added, except where None:
# those are changed only when the README passes them).
SMALL = {
    "train": {"--timesteps": "256", "--imitate-steps": "256", "--n-steps": "32", "--n-envs": "2",
              "--online-steps": None, "--online-n-steps": None},
    "evaluate": {"--episodes": "2"},
    "deploy": {"--target-samples": "1280"},
    "emulate check": {"--seconds": "1"},
    # 10 steps still pass the README's injected fault (at step 7) and its checkpoints (every 5).
    "run": {"--steps": "10"},
}
ONLINE_SMALL = {"--online-steps": "2", "--online-n-steps": "2"}


@dataclass
class Command:
    words: list[str]   # as the README writes it
    shown: str


def readme_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)


def readme_steps() -> list[Command | str]:
    """In README order: each command of a bash block, and each python block (as a string)."""
    steps, seen = [], set()
    for lang, body in readme_blocks():
        if lang == "python":
            steps.append(body)
        if lang != "bash":
            continue
        for line in body.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(".venv/bin/edgetrain "):
                line = line[len(".venv/bin/"):]
            if not line or line in seen or any(line.startswith(skip) for skip in NOT_RUN):
                continue
            seen.add(line)
            words = shlex.split(re.sub(r"<[^>]*>", lambda m: m.group(0).replace(" ", "_"), line))  # one word
            assert words[0] == "edgetrain", f"README line {line!r} is neither an edgetrain command nor in NOT_RUN"
            steps.append(Command(words, line))
    return steps


STEPS = readme_steps()


def _subcommand(words: list[str]) -> str:
    return " ".join(words[1:3]) if words[1] == "emulate" else words[1]


def _set_flags(words: list[str], values: dict) -> list[str]:
    words = list(words)
    for flag, value in values.items():
        if flag in words:
            words[words.index(flag) + 1] = value if value is not None else words[words.index(flag) + 1]
        elif value is not None:
            words += [flag, value]
    return words


def small(words: list[str]) -> list[str]:
    values = dict(SMALL.get(_subcommand(words), {}))
    if "--online-steps" in words:
        values.update(ONLINE_SMALL)
    return _set_flags(words, values)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reader:
    """The new user: a fresh folder, HOME in it, the README's files saved there."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {**os.environ, "HOME": str(folder), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        self.daemons: list[subprocess.Popen] = []
        self.cluster_workers_started = False
        for lang, body in readme_blocks():
            first = body.splitlines()[0]
            if lang == "yaml" and re.match(r"# [\w.-]+\.yaml", first):
                (folder / first[2:].split()[0].rstrip(":")).write_text(body)

    def resolve(self, words: list[str]) -> list[str]:
        """Fill in what the README leaves to the reader, and expand ~ as a shell would."""
        out = []
        for word in words:
            if word.startswith("~/"):
                word = str(self.folder / word[2:])
            if "<previous_run>" in word:
                runs = sorted(self.folder.glob("runs/*/checkpoint.pt"), key=lambda p: p.stat().st_mtime)
                assert runs, "no earlier run left a checkpoint for <previous run>"
                word = str(runs[-1])
            if word == "training_logs/<run>":
                logs = sorted((self.folder / "training_logs").iterdir(), key=lambda p: p.stat().st_mtime)
                word = str(logs[-1])
            out.append(word)
        return [EDGETRAIN, *out[1:]]

    def run(self, words: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(self.resolve(words), cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, words: list[str], announces: str, timeout: float = 180) -> subprocess.Popen:
        """Start a long-running command and wait for the line that says it is up."""
        process = subprocess.Popen(self.resolve(words), cwd=self.folder, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.daemons.append(process)
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            if announces in line:
                return process
        pytest.fail(f"`{shlex.join(words)}` never printed {announces!r}:\n{''.join(seen)}")

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
        process.send_signal(sig)
        try:
            rest, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            where = _where_stuck(process.pid)
            os.killpg(process.pid, signal.SIGKILL)
            rest, _ = process.communicate()
            self.daemons.remove(process)  # gone: close() must not kill its group again
            pytest.fail(f"{process.args} did not stop within 60 s of signal {sig}:\n{rest[-3000:]}\n{where}")
        self.daemons.remove(process)
        return rest

    def start_cluster_workers(self, worker_words: list[str]) -> None:
        """The README's cluster file names real boards; here each is an `edgetrain worker` on loopback,
        started with the README's own worker command, and the token copied where the file says."""
        cluster_path = self.folder / "home.yaml"
        cluster = yaml.safe_load(cluster_path.read_text())
        shutil.copy(self.folder / ".edgetrain-token", self.folder / cluster["token_file"])
        for device, entry in cluster["devices"].items():
            port = _free_port()
            entry["address"] = f"127.0.0.1:{port}"
            entry["socket_ifname"] = "lo"
            words = _set_flags(worker_words, {"--listen": f"127.0.0.1:{port}", "--device": device,
                                              "--socket-ifname": "lo"})
            self.start(words, f"serving device {device}")
        cluster_path.write_text(yaml.safe_dump(cluster))
        self.cluster_workers_started = True

    def close(self) -> None:
        for process in list(self.daemons):
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def _where_stuck(pid: int) -> str:
    """What a command that does not stop is waiting for: its processes' kernel wait channels and, where
    py-spy is installed, its Python stacks (a hang seen only when the whole suite runs needs both)."""
    ps = subprocess.run(["ps", "-eo", "pid,ppid,pgid,sid,stat,wchan:24,etimes,args"], capture_output=True,
                        text=True).stdout.splitlines()
    mine = [line for line in ps[1:] if line.split()[3] == str(pid)]
    report = "\n".join([ps[0], *mine])
    spy = shutil.which("py-spy", path=f"{VENV_BIN}:{os.environ['PATH']}")
    if spy:
        report += "\n" + subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True,
                                        timeout=60).stdout
    return report


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    folder = tmp_path_factory.mktemp("new-user")
    (folder / "tests").symlink_to(REPO / "tests")  # the python block's live env names tests/data/tiny.yaml
    reader = Reader(folder)
    yield reader
    reader.close()
    subprocess.run([EDGETRAIN, "emulate", "clean"], capture_output=True, timeout=120)


def _promised_outputs(words: list[str], folder: Path) -> list[Path]:
    promised = []
    for flag in ("--out", "--json", "--metrics-out"):
        if flag in words:
            promised.append(folder / words[words.index(flag) + 1])
    if words[1] == "train":
        promised += [promised[0] / "policy.zip", promised[0] / "policy.onnx"]
    if words[1] == "evaluate":
        json_path = folder / words[words.index("--json") + 1]
        promised.append(json_path.with_name(f"{json_path.stem}-plots") / "energy_vs_time.png")
    return promised


def _worker_command() -> list[str]:
    return next(s.words for s in STEPS if isinstance(s, Command) and s.words[1] == "worker")


def test_the_readme_is_run_whole():
    """Every line of every bash block is either run below or listed in NOT_RUN with a reason."""
    shown = {s.words[1] for s in STEPS if isinstance(s, Command)}
    assert shown >= {"scenario", "profiles", "plans", "run", "emulate", "token", "worker", "calibrate", "predict",
                     "train", "evaluate", "deploy"}
    assert sum(isinstance(s, str) for s in STEPS) == 1


@pytest.mark.parametrize("step", STEPS, ids=[s.shown if isinstance(s, Command) else "python block" for s in STEPS])
def test_readme_step(step, reader):
    if isinstance(step, str):
        script = step.replace("calibration=...", f"calibration={TINY_CALIBRATION!r}")
        script += "\nenv.close(); live.close()\n"
        result = subprocess.run([sys.executable, "-c", script], cwd=reader.folder, env=reader.env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return
    words = small(step.words)
    if words[1:3] == ["emulate", "up"]:
        up = reader.start(words, "Ctrl-C brings the testbed down")
        rest = reader.stop(up, signal.SIGINT)
        assert "Traceback" not in rest, rest
        assert reader.run(["edgetrain", "emulate", "clean"]).stdout.strip() == "nothing left behind"
        return
    if words[1] == "worker":
        port = _free_port()
        worker = reader.start(_set_flags(words, {"--listen": f"127.0.0.1:{port}"}),
                              f"edgetrain worker: serving device {words[words.index('--device') + 1]} on 127.0.0.1:{port}")
        assert "Traceback" not in reader.stop(worker)
        return
    if "--cluster" in words and not reader.cluster_workers_started:
        reader.start_cluster_workers(_worker_command())
    result = reader.run(words)
    assert result.returncode == 0, f"`{step.shown}` exited {result.returncode}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    for path in _promised_outputs(reader.resolve(words), reader.folder):
        assert path.exists(), f"`{step.shown}` did not leave {path}"
    if words[1] == "token":
        token = Path(reader.resolve(words)[words.index("--out") + 1])
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert token.read_text().strip() not in result.stdout + result.stderr
