"""`edgetrain token` writes a new secret only its owner can read and never shows it; `edgetrain worker`
says on stderr, in one line, which device it serves and where it listens (never the token)."""

import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import psutil
import pytest

from conftest import REPO, run_cli
from edgetrain.runtime.wire.control import read_token


def test_token_writes_a_new_secret_of_mode_0600_and_never_prints_it(tmp_path):
    out = tmp_path / "edgetrain.token"
    made = run_cli("token", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    secret = read_token(str(out))
    assert len(secret) >= 32
    assert str(out) in made.stdout
    assert secret.decode() not in made.stdout + made.stderr

    again = run_cli("token", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert read_token(str(out)) == secret  # refused: the file is untouched

    out.chmod(0o644)
    forced = run_cli("token", "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    new_secret = read_token(str(out))
    assert new_secret != secret
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # a new file, not the old one's mode
    assert new_secret.decode() not in forced.stdout + forced.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgetrain.token"]  # no temporary file left


def test_token_into_a_missing_folder_is_one_sentence(tmp_path):
    result = run_cli("token", "--out", str(tmp_path / "no-such-folder" / "token"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_worker_says_which_device_it_serves_and_where_it_listens(tmp_path):
    token = tmp_path / "token"
    secret = os.urandom(32).hex()
    token.write_text(secret)
    token.chmod(0o600)
    port = _free_port()  # the CLI takes ports 1..65535 only
    worker = subprocess.Popen([sys.executable, "-m", "edgetrain", "worker", "--listen", f"127.0.0.1:{port}",
                               "--token-file", str(token), "--device", "d0"],
                              cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    lines: "queue.Queue[str | None]" = queue.Queue()

    def read():
        for line in worker.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if f":{port}" in line:
                break
        assert seen, f"the worker printed nothing within 20 s (exit code {worker.poll()})"
        line = seen[-1]
        assert "d0" in line and f"127.0.0.1:{port}" in line, seen
        assert secret not in "".join(seen)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it does listen there
    finally:
        # The worker starts its warm shard (a process of its own session) right after listening; let it
        # appear, so that the worker's shutdown kills it, and kill what is left by pid.
        family = []
        deadline = time.monotonic() + 10
        while worker.poll() is None and time.monotonic() < deadline:
            family = psutil.Process(worker.pid).children(recursive=True)
            if family:
                break
            time.sleep(0.05)
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        for process in family:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def test_a_token_file_others_can_read_is_refused_in_one_sentence(tmp_path):
    token = tmp_path / "token"
    token.write_text(os.urandom(32).hex())
    token.chmod(0o644)
    with pytest.raises(ValueError, match="others can read or change it .mode 0644."):
        read_token(str(token))
    result = run_cli("worker", "--listen", "127.0.0.1:1", "--token-file", str(token), "--device", "d0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "chmod 600" in result.stderr
    token.chmod(0o600)
    assert len(read_token(str(token))) == 64


def test_a_secret_is_created_unreadable_by_others_whatever_the_umask(tmp_path):
    from edgetrain.core.secrets import write_secret
    old = os.umask(0)
    try:
        write_secret(tmp_path / "s", "x" * 32)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_secret(tmp_path / "s", "y" * 32)
