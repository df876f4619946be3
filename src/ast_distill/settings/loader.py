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


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """The defaults (the section dataclasses) overlaid with the given config file. Errors are one-line
    UserErrors naming the file and key."""
    settings = Settings()
    if path is not None:
        settings = overlay(settings, read_json_object(Path(path)), Path(path))
    return settings

