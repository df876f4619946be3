"""The one config loader, as plain dicts: {section: {key: value}}.

Every known key is a field of a dataclass in settings/sections.py, with its type, default and help text;
config/defaults.json is generated from them. Another config file (``--config``) overlays the defaults, so it
may hold only the keys it changes; a key the dataclasses do not know, or a value of the wrong type, is an
error (one line), never ignored. ``load_config`` returns ``settings.load_settings(path).as_dict()``.

Precedence for a value: command-line flag > config file > environment (LLM_MODEL, teacher model only) > .llmrc.
A script's config-key flags are made by ``cli.add_settings_flags`` (dest = the key); ``flag_settings`` resolves
the keys a script has flags for. The teacher model is resolved by that rule for generating and judging alike
(generation_teacher_model, judge_teacher_model). teacher.host is null by default so that OLLAMA_HOST applies
when no config sets it (teachers.ollama_teacher.resolve_ollama_hosts).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UserError
from .settings import DEFAULTS_PATH, REPO_ROOT, load_settings

__all__ = ["REPO_ROOT", "DEFAULTS_PATH", "Config", "load_config", "pick", "resolve", "flag_settings",
           "read_llmrc", "resolve_teacher_model", "generation_teacher_model", "judge_teacher_model"]

Config = dict[str, dict[str, Any]]

# The namespace attribute where cli.add_settings_flags records which config keys a parser has flags for:
# {section: [key, ...]}.
SETTINGS_FLAGS = "settings_flags"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Defaults overlaid with the given file. Errors are one-line UserErrors naming the file and key."""
    return load_settings(path).as_dict()


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


def flag_settings(args: Any, config: Config, section: str) -> dict[str, Any]:
    """Every key of `section` the script has a flag for (cli.add_settings_flags), in the section's order: the
    flag's value when given, else the config's."""
    keys = set((getattr(args, SETTINGS_FLAGS, None) or {}).get(section, ()))
    return resolve(args, config, section, [key for key in config[section] if key in keys])


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
