"""Loading and checking settings: a config file over the defaults, and the ranges where a stage resolves them.

`load_settings` overlays a config file on the defaults (`config.load_config` returns it as dicts); every
section, key and type is checked as it is read (`check_value`): a value must be of the annotated type (a float
key also takes an int; `X | None` also takes null); a `Literal` key takes one of its values; `bf16` /
`torch_compile` take true, false or "always" (on even where the stage measures it slower; see hardware.py).
Ranges (`Range` on a field) are checked by `check_ranges` when a stage resolves its settings, flags included.
Errors are one-line UserErrors.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from .sections import SECTIONS, Settings, flag_name
from .types import allowed_types, choices, field_type, type_ok


def check_value(where: str, section: str, key: str, value: Any) -> None:
    """A one-line UserError unless `value` suits the key's annotation."""
    annotation = field_type(SECTIONS[section], key)
    allowed = allowed_types(annotation)
    if not type_ok(value, allowed):
        names = "/".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise UserError(f"{where}config key '{section}.{key}' must be {names}, got {json.dumps(value)}")
    allowed_values = choices(annotation)
    if allowed_values and isinstance(value, str) and value not in allowed_values:
        if bool in allowed:  # bf16 / torch_compile
            raise UserError(f"{where}config key '{section}.{key}' must be true, false or \"always\", got "
                            f"{json.dumps(value)}")
        raise UserError(f"{where}config key '{section}.{key}' must be one of "
                        f"{', '.join(json.dumps(v) for v in allowed_values)}, got {json.dumps(value)}")


def check_ranges(section: type, values: Mapping[str, Any],
                 message: str = "{flag} must be {rule}, got {value}") -> None:
    """A one-line UserError for the first key of `values`, in the section's order, whose value is outside the
    range its field declares (keys without one, or not in `values`, pass). `message` is the error's format:
    {key}, {flag} (the key's flag), {rule} (as ">= 1" or "in [0, 1)", with the field's note) and {value}."""
    for f in dataclasses.fields(section):
        limits = f.metadata["limits"]
        if limits is not None and f.name in values and not limits.allows(values[f.name]):
            raise UserError(message.format(key=f.name, flag=flag_name(f), rule=limits.rule(), value=values[f.name]))


def read_json_object(path: Path) -> dict[str, Any]:
    """A config file's JSON object; a missing file or bad JSON is a one-line UserError."""
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass --config with an existing file "
                        f"(see config/defaults.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"config file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}); fix the file") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object of sections")
    return data


def overlay(settings: Settings, extra: dict[str, Any], path: Path) -> Settings:
    """`settings` with the values of a config file's object over it; every section, key and type checked."""
    changed: dict[str, dict[str, Any]] = {}
    for section, values in extra.items():
        if section.startswith("_"):
            continue  # "_comment" and friends document a file; they carry no settings
        if section not in SECTIONS:
            raise UserError(f"{path}: unknown config section '{section}'; known sections: "
                            f"{', '.join(sorted(SECTIONS))}")
        if not isinstance(values, dict):
            raise UserError(f"{path}: section '{section}' must be a JSON object")
        keys = {f.name for f in dataclasses.fields(SECTIONS[section])}
        for key, value in values.items():
            if key.startswith("_"):
                continue
            if key not in keys:
                raise UserError(f"{path}: unknown config key '{section}.{key}'; see config/defaults.json "
                                f"for the known keys of '{section}'")
            check_value(f"{path}: ", section, key, value)
            changed.setdefault(section, {})[key] = value
    return dataclasses.replace(settings, **{
        section: dataclasses.replace(getattr(settings, section), **values) for section, values in changed.items()})


OUTPUTS = "outputs"  # the folder every default output path is under; a named training gets outputs/<name>/
TRAININGS_ROOT_ENV = "AST_DISTILL_TRAININGS_ROOT"  # where named trainings live instead (tests: a temporary folder)
TRAINING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Folders of the unnamed layout: a training of that name would mix its files with theirs.
RESERVED_NAMES = frozenset({"logs", "pretty", "reports", "student_runs", "exports", "benchmarks"})


def check_training_name(name: str, where: str = "") -> str:
    """The name, or a one-line UserError when it cannot be a folder under outputs/ of its own."""
    if not TRAINING_NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise UserError(f"{where}training name {json.dumps(name)} must be 1-64 letters, digits, '.', '_' or '-' "
                        f"(starting with a letter or digit) and not one of {', '.join(sorted(RESERVED_NAMES))}")
    return name


def trainings_root() -> Path:
    """The folder named trainings live in: outputs/, or $AST_DISTILL_TRAININGS_ROOT when set."""
    return Path(os.environ.get(TRAININGS_ROOT_ENV) or OUTPUTS)


def training_folder(name: str) -> Path:
    """Where a named training keeps everything: <trainings_root>/<name>/."""
    return trainings_root() / check_training_name(name)


TRAINING_CONFIG = "config.json"  # a named training's settings, made by trainings.prepare


def training_config_path(name: str) -> Path:
    """Where a named training's config file lives (it may not exist yet)."""
    return training_folder(name) / TRAINING_CONFIG


def training_config(name: str) -> Path:
    """A named training's config file, or a one-line UserError saying how to make it (`--name NAME` reads it)."""
    path = training_config_path(name)
    if not path.is_file():
        raise UserError(f"no training named '{name}' ({path} does not exist); make it with ./runAll.sh --name {name} "
                        f"--schema YOUR_SCHEMA.json --config config/offline.json (python -m ast_distill.trainings "
                        f"list shows the trainings)")
    return path


def in_training_folder(value: str, name: str) -> str:
    """A path under outputs/ moved into the training's folder (once: a path already there stays)."""
    folder = training_folder(name)
    path = Path(value)
    if path.parts[:len(folder.parts)] == folder.parts or path.parts[:1] != (OUTPUTS,):
        return value
    return str(folder.joinpath(*path.parts[1:]))


def relocate_outputs(settings: Settings) -> Settings:
    """With run.name set, every string setting naming a path under outputs/ moved to outputs/<name>/: the one rule
    that keeps a named training's files apart (Python stages and, through config_value, the runners)."""
    name = settings.run.name
    if name is None:
        return settings
    check_training_name(name, "config key 'run.name': ")
    changes = {}
    for section in SECTIONS:
        values = getattr(settings, section)
        moved = {f.name: in_training_folder(getattr(values, f.name), name) for f in dataclasses.fields(values)
                 if isinstance(getattr(values, f.name), str)}
        changes[section] = dataclasses.replace(values, **moved)
    return dataclasses.replace(settings, **changes)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """The defaults (the section dataclasses) overlaid with the given config file; a named training's output paths
    under outputs/<name>/. Errors are one-line UserErrors naming the file and key."""
    settings = Settings()
    if path is not None:
        settings = overlay(settings, read_json_object(Path(path)), Path(path))
    return relocate_outputs(settings)

