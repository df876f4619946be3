"""Every config key, once: its section, type, default, help text and range.

One dataclass per config section (sections.py) holds, per key, the type (the annotation), the default, and in
the field's metadata the help text (with its unit), an optional flag name, a help group and an optional range.
Everything else is made from them: the loader (loader.py: `load_settings`, and `config.load_config` on top of
it) checks a config file's keys and types against the annotations, and `check_ranges` the ranges where a stage
resolves its settings; `config/defaults.json` and the README's "Defaults explained" tables are generated
(generated.py: `uv run python -m ast_distill.settings --write`; a test fails when they are stale);
`cli.add_settings_flags` makes the scripts' `--kebab-name` flags. types.py holds the annotation helpers and the
Literal aliases other modules import. Stdlib only, so those modules import it cheaply. A new key is one field.
"""
from .generated import (DEFAULTS_COMMENT, DEFAULTS_PATH, README_BEGIN, README_END, README_PATH, REPO_ROOT,
                        WRITE_COMMAND, defaults_json, main, readme_tables, readme_with_tables, stale_files)
from .loader import check_ranges, check_value, load_settings, overlay, read_json_object
from .sections import (SECTIONS, AlignmentSettings, BoostSettings, DatasetGenerationSettings, EvaluationSettings,
                       ExportSettings, GateSettings, ReportingSettings, RunSettings, Settings, SweepSettings, TeacherSettings, TrainingSettings, flag_name,
                       setting)
from .types import (Optimizer, Range, SchemaFormat, Switch, TeacherBackend, TrainingBackend, allowed_types,
                    choices, field_type, type_name, type_ok)

__all__ = [
    "DEFAULTS_COMMENT", "DEFAULTS_PATH", "README_BEGIN", "README_END", "README_PATH", "REPO_ROOT", "WRITE_COMMAND",
    "defaults_json", "main", "readme_tables", "readme_with_tables", "stale_files",
    "check_ranges", "check_value", "load_settings", "overlay", "read_json_object",
    "SECTIONS", "AlignmentSettings", "BoostSettings", "DatasetGenerationSettings", "EvaluationSettings", "ExportSettings", "GateSettings",
    "ReportingSettings", "RunSettings",
    "Settings", "SweepSettings", "TeacherSettings", "TrainingSettings", "flag_name", "setting",
    "Optimizer", "Range", "SchemaFormat", "Switch", "TeacherBackend", "TrainingBackend", "allowed_types",
    "choices", "field_type", "type_name", "type_ok",
]
