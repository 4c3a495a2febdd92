"""Every `edgetrain` command the README shows is one the command accepts: its subcommand and flags
parse, so a renamed or removed flag cannot leave the README behind, without root and in a second.
tests/mininet/test_readme_runs.py runs them all, in order, in a fresh folder."""

import re
import shlex

import pytest

from conftest import REPO
from edgetrain.app.cli import build_parser


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"<[^>]*>", "PLACEHOLDER", line.split(" #", 1)[0]).strip()  # `<run>`: the reader's
            words = shlex.split(line) if line else []
            if words and words[0] in ("edgetrain", ".venv/bin/edgetrain"):
                commands.append(line)
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_of_the_tour():
    assert len(COMMANDS) >= 20
    assert {shlex.split(c)[1] for c in COMMANDS} >= {"run", "calibrate", "predict", "train", "evaluate", "deploy",
                                                     "worker", "token", "emulate", "scenario", "plans", "profiles"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses(command, capsys):
    words = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(words)
    except SystemExit as exc:  # argparse's refusal: the README is out of step with the command
        pytest.fail(f"`{command}` is refused: {capsys.readouterr().err.strip()} (exit {exc.code})")
    assert callable(args.func)
