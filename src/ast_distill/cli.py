"""Shared plumbing for the thin scripts: run main() with one-line errors and exit code 2 on bad input."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import UserError

EXIT_BAD_INPUT = 2


def run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> int:
    """Parse argv, call main, turn a UserError into one line on stderr and exit code 2."""
    words = sys.argv[1:] if argv is None else argv
    if "-h" in words or "--help" in words:
        show_defaults(parser, words)
    args = parser.parse_args(argv)
    quiet_other_processes()
    try:
        use_named_training(args)
        return int(main(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: what was written so far is kept; run again to resume", file=sys.stderr)
        return 130


def quiet_other_processes() -> None:
    """Under torchrun / accelerate launch, only the main process prints to stdout (errors still reach stderr)."""
    from .distributed import is_main_process

    if not is_main_process():
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  (for the life of the process)


DEFAULT_CONFIG = "config/defaults.json"


def stage_parser(doc: str) -> argparse.ArgumentParser:
    """A stage script's parser: the first paragraph of its docstring as description, and --config."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"config file overlaying {DEFAULT_CONFIG} (default: %(default)s)")
    parser.add_argument("--name", metavar="NAME",
                        help="a named training: its config, outputs/NAME/config.json, instead of --config (made by "
                             "./runAll.sh --name NAME --schema FILE; python -m ast_distill.trainings list shows them)")
    return parser


def use_named_training(args: argparse.Namespace) -> None:
    """--name NAME: the stage reads outputs/NAME/config.json (trainings.py); with --config too, one error line."""
    name = getattr(args, "name", None)
    if name is None:
        return
    from .settings.loader import training_config

    if getattr(args, "config", DEFAULT_CONFIG) != DEFAULT_CONFIG:
        raise UserError(f"give --name {name} or --config {args.config}, not both (a named training has its own config; "
                        f"./runAll.sh --name {name} --config {args.config} remakes it from that file)")
    args.config = str(training_config(name))


def add_resume_flag(parser: argparse.ArgumentParser) -> None:
    """--resume-from-checkpoint PATH|auto of the training stages (runs.resolve_resume reads it)."""
    parser.add_argument("--resume-from-checkpoint", dest="resume_from_checkpoint", metavar="PATH|auto",
                        help="go on from a checkpoint-N dir; 'auto' = the newest in --output-dir (fresh if none)")


def print_settings(stage: str, settings: Mapping[str, Any]) -> None:
    """At start, a stage prints its resolved settings."""
    print(f"== {stage}: resolved settings")
    for key in sorted(settings):
        print(f"  {key} = {json.dumps(settings[key], default=str)}")


def print_outputs(stage: str, outputs: Mapping[str, Any]) -> None:
    """At the end, a stage prints what it wrote."""
    print(f"== {stage}: wrote")
    for key, value in outputs.items():
        print(f"  {key}: {value}")


def _flag_help(text: str) -> str:
    """A settings help text for --help: Markdown links and backticks dropped, % escaped for argparse."""
    return MARKDOWN_LINK.sub(r"\1", text).replace("`", "").replace("%", "%%")


def _help_group(parser: argparse.ArgumentParser, title: str) -> Any:
    """The parser's argument group of that title, made on first use."""
    for group in parser._action_groups:
        if group.title == title:
            return group
    return parser.add_argument_group(title)


def add_settings_flags(parser: argparse.ArgumentParser, section: type, keys: Iterable[str] | None = None, *,
                       flags: Mapping[str, str] | None = None, groups: Iterable[str] | None = None,
                       notes: Mapping[str, str] | None = None) -> None:
    """One flag per key of a settings section (settings/sections.py), every key or those named (in that order), or
    those of the named help groups: --kebab-key (or the field's, or `flags`' name for it), dest = the key,
    default None (unset = the config's value, see config.flag_settings); type from the annotation, choices
    from a Literal, --X/--no-X for a bool, cli.add_measured_switch for bool | "always"; help from the field,
    ending in "(default: section.key)", which --help fills in with the value; `notes` add a script's own words
    about a key to its help."""
    from .config import SETTINGS_FLAGS
    from .settings import allowed_types, choices, field_type, flag_name

    fields = {f.name: f for f in dataclasses.fields(section)}
    wanted = list(fields) if keys is None else list(keys)
    if groups is not None:
        wanted = [key for key in wanted if fields[key].metadata["group"] in set(groups)]
    registry = {name: list(done) for name, done in (parser.get_default(SETTINGS_FLAGS) or {}).items()}
    for key in wanted:
        meta = fields[key].metadata
        flag = (flags or {}).get(key) or flag_name(fields[key])
        note = f"; {(notes or {})[key]}" if key in (notes or {}) else ""
        help_text = f"{_flag_help(meta['help'] + note)} (default: {section.SECTION}.{key})"
        target = _help_group(parser, f"{section.SECTION}: {meta['group']}" if meta["group"] else section.SECTION)
        annotation = field_type(section, key)
        allowed, values = allowed_types(annotation), choices(annotation)
        if values and bool in allowed:
            add_measured_switch(target, flag, key, help_text)
        elif allowed == (bool,):
            target.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif values:
            target.add_argument(flag, dest=key, choices=values, default=None, help=help_text)
        else:
            kind = next(k for k in allowed if k is not type(None))
            target.add_argument(flag, dest=key, type=None if kind is str else float if float in allowed else kind,
                                default=None, metavar=meta["metavar"], help=help_text)
        registry.setdefault(section.SECTION, []).append(key)
    parser.set_defaults(**{SETTINGS_FLAGS: registry})


def switch_value(text: str) -> bool | str:
    """true/false/always (as --bf16=always); argparse turns the ValueError into a usage error, exit 2."""
    value = text.strip().lower()
    if value in ("true", "on", "yes", "1"):
        return True
    if value in ("false", "off", "no", "0"):
        return False
    if value == "always":
        return "always"
    raise ValueError(text)


def add_measured_switch(parser: Any, flag: str, dest: str, help_text: str) -> None:
    """--X (on where measured faster), --X=always (on even where slower), --no-X (off); see hardware.py."""
    switch_value.__name__ = "true, false or always"  # argparse names the type in its error line
    parser.add_argument(flag, dest=dest, nargs="?", const=True, type=switch_value, metavar="always",
                        help=f"--{flag[2:]} = on where this machine measures it faster, --{flag[2:]}=always = on "
                             f"regardless, --no-{flag[2:]} = off; {help_text}")
    parser.add_argument(f"--no-{flag[2:]}", dest=dest, action="store_const", const=False, help=argparse.SUPPRESS)


MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
CONFIG_DEFAULT = re.compile(r"\(default: ([a-z_]+)\.([a-z_0-9]+)")


def config_file_in(words: list[str]) -> str | None:
    """The value of --config among command-line words, if any."""
    for i, word in enumerate(words):
        if word == "--config" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--config="):
            return word.split("=", 1)[1]
    return None


def show_defaults(parser: argparse.ArgumentParser, words: list[str]) -> None:
    """Put each flag's default value into its help, for --help.

    A flag whose help says "(default: section.key ...)" (every flag add_settings_flags makes) gets that key's
    value from the config the command line names, else the script's own default --config (config/defaults.json
    overlaid); a hand-written flag named after a key of the config section most of the parser's flags belong
    to gets that value; any other flag with a default of its own shows it.
    """
    from .config import load_config

    try:
        config = load_config(config_file_in(words) or parser.get_default("config"))
    except Exception:  # noqa: BLE001  a bad --config is reported when the command runs, not by --help
        return
    dests = {a.dest for a in parser._actions}
    section = max(config, key=lambda name: len(dests & set(config[name])))

    def shown(value: object) -> str:
        return json.dumps(value) if not isinstance(value, str) else value

    for action in parser._actions:
        text = action.help
        if not text or text == argparse.SUPPRESS:
            continue
        match = CONFIG_DEFAULT.search(text)
        if match and match.group(2) in config.get(match.group(1), {}):
            value = config[match.group(1)][match.group(2)]
            action.help = text[:match.end()] + f" = {shown(value)}".replace("%", "%%") + text[match.end():]
        elif "default" in text:
            continue
        elif action.dest in config[section]:
            value = config[section][action.dest]
            action.help = text + f" (default: {section}.{action.dest} = {shown(value)})".replace("%", "%%")
        elif action.default not in (None, argparse.SUPPRESS, False) and action.dest != "help":
            action.help = text + " (default: %(default)s)"
