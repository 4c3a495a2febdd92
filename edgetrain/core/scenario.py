"""Load scenario YAML files into validated `Scenario` objects.

Any problem ends in a `ScenarioError` whose message is one sentence naming the file and the key path,
for example `scenarios/x.yaml: devices[1].cpu_share: must be in (0, 1], got 3`.
"""

from __future__ import annotations

import dataclasses
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edgetrain.core.availability import read_trace_file
from edgetrain.core.catalog import CATALOG
from edgetrain.core.config import Availability, ConfigValueError, DeviceConfig, ModelConfig, Objective, Scenario
from edgetrain.core.errors import ScenarioError

DEFAULT_SCENARIO = "smart-home-sessions"
"""A world where foresight pays (its file says why): smart-home's devices in sessions of a typical length."""


def builtin_dir() -> Path:
    """Built-in scenarios ship as package data (edgetrain/scenarios), so any install finds them."""
    return Path(str(resources.files("edgetrain") / "scenarios"))


def builtin_scenarios() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def resolve_scenario_path(name_or_path: str | None) -> Path:
    """A path as given, or the built-in scenario of that name; the default one when None."""
    if name_or_path is None:
        name_or_path = DEFAULT_SCENARIO
    path = Path(name_or_path)
    # A bare name is a built-in unless a file of that name exists (a folder never shadows one).
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ScenarioError(f"{path}: no such scenario file")
        return path
    builtin = builtin_dir() / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin
    raise ScenarioError(
        f"{name_or_path}: neither a scenario file nor a built-in scenario "
        f"(built-in: {', '.join(builtin_scenarios()) or 'none'})")


def load_scenario(name_or_path: str | None = None) -> Scenario:
    """Load and validate a scenario file, or a built-in scenario by name."""
    path = resolve_scenario_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot be read ({exc})") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str) -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ScenarioError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: the top level must be a mapping of keys to values")
    try:
        scenario = _build(Scenario, data, "", extra={"source": source})
    except _KeyPathError as exc:
        raise ScenarioError(f"{source}: {exc.path}: {exc.message}") from None
    for index, device in enumerate(scenario.devices):
        if device.profile not in CATALOG:
            raise ScenarioError(
                f"{source}: devices[{index}].profile: unknown device profile {device.profile!r} "
                f"(known: {', '.join(sorted(CATALOG))})")
        if device.availability.kind == "trace":
            trace = Path(source).parent / device.availability.file
            if not trace.is_file():
                raise ScenarioError(f"{source}: devices[{index}].availability.file: no such file {str(trace)!r}")
            try:  # its contents too, now: not later, in a testbed thread that would die silently
                read_trace_file(trace)
            except ScenarioError as exc:
                raise ScenarioError(f"{source}: devices[{index}].availability.file: {exc}") from None
    return scenario


class _KeyPathError(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path or "(top level)"
        self.message = message


_NESTED = {Objective, ModelConfig, Availability}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build(cls: type, data: Any, path: str, extra: dict | None = None):
    if not isinstance(data, dict):
        raise _KeyPathError(path, f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source"}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise _KeyPathError(_join(path, str(unknown[0])),
                            f"unknown key (expected one of {', '.join(fields)})")
    kwargs: dict[str, Any] = dict(extra or {})
    for key, value in data.items():
        hint = hints[key]
        key_path = _join(path, key)
        if hint in _NESTED:
            value = _build(hint, value, key_path)
        elif key == "devices":
            if not isinstance(value, list):
                raise _KeyPathError(key_path, "must be a list of devices")
            value = tuple(_build(DeviceConfig, item, f"{key_path}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, bool) and hint is not bool:
            raise _KeyPathError(key_path, f"must be a number or string, got {value!r}")
        kwargs[key] = value
    missing = [name for name, f in fields.items()
               if name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _KeyPathError(_join(path, missing[0]), "is required")
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        raise _KeyPathError(_join(path, exc.key), exc.message) from None
    except TypeError as exc:  # a value of the wrong type that a comparison refused
        raise _KeyPathError(path, f"has a value of the wrong type ({exc})") from None
