"""The one config loader.

config/defaults.json is the source of truth: every known key lives there, with its default; its type is the
default's type (an int default also accepts nothing but ints, a float default accepts ints too). Keys whose
default is null say their type in NULLABLE_TYPES. Another config file (``--config``) overlays the defaults,
so it may hold only the keys it changes; a key the defaults do not know is an error, never ignored.

Precedence for a value: command-line flag > config file > environment (LLM_MODEL, teacher model only) > .llmrc.
The teacher model is resolved by that rule for generating and judging alike (generation_teacher_model,
judge_teacher_model). teacher.host is null by default so that OLLAMA_HOST applies when no config sets it
(teachers.ollama_teacher.resolve_ollama_host).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULTS_PATH = REPO_ROOT / "config" / "defaults.json"

# Types of keys whose default is null (null stays allowed for them).
NULLABLE_TYPES: dict[str, tuple[type, ...]] = {
    "max_samples": (int,),
    "max_pairs": (int,),
    "pref_max_samples": (int,),
    "max_domains": (int,),
    "num_ctx": (int,),
    "teacher_model": (str,),
    "adapter": (str,),
    "max_steps": (int,),
    "openai_base_url": (str,),
    "openai_api_key_env": (str,),
    "host": (str,),
}

# Switches that also take "always" (on even where the stage measures it slower; see hardware.py).
ALWAYS_SWITCHES = ("bf16", "torch_compile")

Config = dict[str, dict[str, Any]]


def _read_json_object(path: Path) -> dict[str, Any]:
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


def _allowed_types(key: str, default: Any) -> tuple[type, ...]:
    if key in ALWAYS_SWITCHES:
        return (bool, str)
    if default is None:
        return NULLABLE_TYPES.get(key, (str, int, float, bool)) + (type(None),)
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (int, float)
    if isinstance(default, int):
        return (int,)
    return (type(default),)


def _type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in allowed:
        return False  # True is an int in Python; not in a config file
    return isinstance(value, allowed)


def _overlay(base: Config, extra: dict[str, Any], path: Path) -> None:
    for section, values in extra.items():
        if section.startswith("_"):
            continue  # "_comment" and friends document a file; they carry no settings
        if section not in base:
            raise UserError(f"{path}: unknown config section '{section}'; known sections: "
                            f"{', '.join(sorted(base))}")
        if not isinstance(values, dict):
            raise UserError(f"{path}: section '{section}' must be a JSON object")
        for key, value in values.items():
            if key.startswith("_"):
                continue
            if key not in base[section]:
                raise UserError(f"{path}: unknown config key '{section}.{key}'; see config/defaults.json "
                                f"for the known keys of '{section}'")
            allowed = _allowed_types(key, base[section][key])
            if not _type_ok(value, allowed):
                names = "/".join("null" if t is type(None) else t.__name__ for t in allowed)
                raise UserError(f"{path}: config key '{section}.{key}' must be {names}, got "
                                f"{json.dumps(value)}")
            if key in ALWAYS_SWITCHES and isinstance(value, str) and value != "always":
                raise UserError(f"{path}: config key '{section}.{key}' must be true, false or \"always\", got "
                                f"{json.dumps(value)}")
            base[section][key] = value


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Defaults overlaid with the given file. Errors are one-line UserErrors naming the file and key."""
    base = _read_json_object(DEFAULTS_PATH)
    config: Config = {s: dict(v) for s, v in base.items() if not s.startswith("_") and isinstance(v, dict)}
    if path is not None and Path(path).resolve() != DEFAULTS_PATH:
        _overlay(config, _read_json_object(Path(path)), Path(path))
    return config


def pick(flag_value: Any, config: Config, section: str, key: str) -> Any:
    """A flag beats the config; a flag left unset (None) falls back to the config value."""
    if flag_value is not None:
        return flag_value
    try:
        return config[section][key]
    except KeyError:
        raise UserError(f"config key '{section}.{key}' is missing from config/defaults.json") from None


def resolve(args: Any, config: Config, section: str, keys: Iterable[str]) -> dict[str, Any]:
    """Resolve several keys at once: flag attribute (same name as the key) over config value."""
    return {key: pick(getattr(args, key, None), config, section, key) for key in keys}


def read_llmrc(search: Iterable[Path] | None = None) -> str | None:
    """The teacher model named in .llmrc (``LLM_MODEL=name`` or a bare name), in the cwd or home."""
    for folder in search or (Path.cwd(), Path.home()):
        rc = Path(folder) / ".llmrc"
        if not rc.is_file():
            continue
        for line in rc.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" in line:
                name, _, value = line.partition("=")
                if name.strip().removeprefix("export ").strip() == "LLM_MODEL":
                    return value.strip().strip("'\"") or None
            else:
                return line
    return None


def resolve_teacher_model(flag_value: str | None, config_value: str | None) -> str | None:
    """flag > config > LLM_MODEL > .llmrc; None when nothing names a model."""
    return flag_value or config_value or os.environ.get("LLM_MODEL") or read_llmrc()


def generation_teacher_model(flag_value: str | None, config: Config) -> str | None:
    """The model that writes the dataset (stages 1 and 3): flag > dataset_generation.teacher_model >
    LLM_MODEL > .llmrc; None for the built-in teacher, which has no model."""
    if config["teacher"]["backend"] == "grammar":
        return None
    return resolve_teacher_model(flag_value, config["dataset_generation"]["teacher_model"])


def judge_teacher_model(flag_value: str | None, config: Config) -> str | None:
    """The model that judges (evaluation, alignment, their preflight check), by the same rule as
    generation_teacher_model: the config's value is evaluation.teacher_model, else the model that wrote the
    data (dataset_generation.teacher_model); None for the built-in teacher."""
    if config["teacher"]["backend"] == "grammar":
        return None
    configured = config["evaluation"]["teacher_model"] or config["dataset_generation"]["teacher_model"]
    return resolve_teacher_model(flag_value, configured)
