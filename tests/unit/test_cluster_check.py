"""`edgetrain cluster check`: one line per device, from what its worker says over the control plane."""

import json
import os
import socket

from conftest import TINY, run_cli, serve_on_a_free_port

from edgetrain import __version__
from edgetrain.core.secrets import write_secret
from edgetrain.runtime.device.worker import Worker
from edgetrain.runtime.wire.control import PROTOCOL_VERSION


def _serve(worker: Worker) -> Worker:
    worker.warm_up = lambda: None
    return serve_on_a_free_port(worker)


def test_cluster_check_says_per_device_what_is_there_and_what_is_wrong(tmp_path):
    secret = os.urandom(32).hex()
    write_secret(tmp_path / "token", secret)
    good = _serve(Worker("a", ("127.0.0.1", 0), secret.encode(), workdir=str(tmp_path / "a")))
    stranger = _serve(Worker("b", ("127.0.0.1", 0), b"another-secret-0123456789abcdef", workdir=str(tmp_path / "b")))
    with socket.socket() as s:  # nobody listens here
        s.bind(("127.0.0.1", 0))
        nobody = s.getsockname()[1]
    try:
        (tmp_path / "cluster.yaml").write_text(
            f"scenario: {TINY}\ntoken_file: token\ndevices:\n  a: 127.0.0.1:{good.listen[1]}\n"
            f"  b: 127.0.0.1:{stranger.listen[1]}\n  c: 127.0.0.1:{nobody}\n")
        result = run_cli("cluster", "check", str(tmp_path / "cluster.yaml"), "--json", str(tmp_path / "check.json"))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 3
        assert lines[0].startswith(f"a at 127.0.0.1:{good.listen[1]}: ok: edgetrain {__version__} (protocol {PROTOCOL_VERSION})")
        assert "MiB free" in lines[0] and "clock " in lines[0] and "GPU " in lines[0] and "meter " in lines[0]
        assert lines[1].startswith("b at") and "refused" in lines[1] and "token" in lines[1]
        assert lines[2].startswith("c at") and "unreachable" in lines[2]
        reports = {r["device"]: r for r in json.loads((tmp_path / "check.json").read_text())}
        assert reports["a"]["ok"] and abs(reports["a"]["clock_offset_s"]) < 1.0
        assert not reports["b"]["authenticated"] and reports["b"]["reachable"] and not reports["c"]["reachable"]
    finally:
        good.shutdown()
        stranger.shutdown()
