"""The typed settings: one field per key makes defaults.json, the README tables, the loader's checks and the flags."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ast_distill import cli, settings
from ast_distill.config import flag_settings, load_config
from ast_distill.errors import UserError
from ast_distill.settings import (DEFAULTS_PATH, README_PATH, SECTIONS, WRITE_COMMAND, AlignmentSettings,
                                  EvaluationSettings, Settings, TrainingSettings, load_settings)


def write_config(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_defaults_json_is_generated_from_the_dataclasses() -> None:
    assert DEFAULTS_PATH.read_text(encoding="utf-8") == settings.defaults_json(), \
        f"config/defaults.json is stale: run {WRITE_COMMAND}"


def test_readme_tables_are_generated_from_the_dataclasses() -> None:
    text = README_PATH.read_text(encoding="utf-8")
    assert settings.README_BEGIN in text and settings.README_END in text
    assert settings.readme_with_tables(text) == text, f"README's 'Defaults explained' is stale: run {WRITE_COMMAND}"
    for name, cls in SECTIONS.items():  # one row per key
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text, f"{name}.{f.name}"


def test_every_key_has_help_a_group_and_a_unique_flag() -> None:
    for name, cls in SECTIONS.items():
        flags = []
        for f in dataclasses.fields(cls):
            assert f.metadata["help"].strip(), f"{name}.{f.name} has no help text"
            assert "\n" not in f.metadata["help"] and "|" not in f.metadata["help"], f"{name}.{f.name}"
            assert f.metadata["group"], f"{name}.{f.name} has no help group"
            flags.append(f.metadata["flag"] or "--" + f.name.replace("_", "-"))
            assert f.name in (cls.__doc__ or ""), f"{name}.{f.name} missing from the docstring"
        assert len(flags) == len(set(flags)), name


def test_defaults_are_the_loaded_config_without_a_file() -> None:
    assert load_config(None) == Settings().as_dict() == load_config(DEFAULTS_PATH)
    assert load_settings(None) == Settings()


def test_the_literals_match_the_library() -> None:
    from ast_distill.prompting import SCHEMA_FORMATS
    from ast_distill.teachers import BACKENDS

    assert set(settings.choices(settings.field_type(SECTIONS["teacher"], "backend"))) == set(BACKENDS)
    assert set(settings.choices(settings.field_type(SECTIONS["dataset_generation"], "schema_format"))) == \
        set(SCHEMA_FORMATS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    cli.add_settings_flags(parser, TrainingSettings, ("batch_size", "learning_rate", "group_by_length", "optimizer",
                                                      "bf16", "torch_compile", "max_samples", "output_dir"))
    cli.add_settings_flags(parser, EvaluationSettings, ("final_schemas",))
    return parser


def test_generated_flags_parse_to_the_annotated_types() -> None:
    args = _parser().parse_args(["--batch-size", "8", "--learning-rate", "1e-3", "--no-group-by-length",
                                 "--optimizer", "muon", "--bf16=always", "--no-torch-compile", "--max-samples", "5",
                                 "--output-dir", "/tmp/x", "--schemas", "s.jsonl"])
    assert args.batch_size == 8 and isinstance(args.batch_size, int)
    assert args.learning_rate == 1e-3 and isinstance(args.learning_rate, float)
    assert args.group_by_length is False and args.optimizer == "muon"
    assert args.bf16 == "always" and args.torch_compile is False
    assert args.max_samples == 5 and args.output_dir == "/tmp/x" and args.final_schemas == "s.jsonl"
    assert _parser().parse_args(["--bf16"]).bf16 is True
    assert _parser().parse_args(["--group-by-length"]).group_by_length is True


def test_unset_flags_fall_back_to_the_config_and_only_flagged_keys_resolve(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"training": {"batch_size": 2, "learning_rate": 0.5}}))
    args = _parser().parse_args(["--batch-size", "8"])
    resolved = flag_settings(args, config, "training")
    assert list(resolved) == ["output_dir", "max_samples", "batch_size", "optimizer", "learning_rate", "bf16",
                              "torch_compile", "group_by_length"]  # the section's order
    assert resolved["batch_size"] == 8 and resolved["learning_rate"] == 0.5
    assert resolved["bf16"] is True and resolved["group_by_length"] is True
    assert flag_settings(args, config, "evaluation") == {"final_schemas": config["evaluation"]["final_schemas"]}
    assert flag_settings(SimpleNamespace(), config, "training") == {}


@pytest.mark.parametrize("argv", [["--batch-size", "2.5"], ["--optimizer", "sgd"], ["--bf16=sometimes"],
                                  ["--learning-rate", "fast"]])
def test_a_bad_flag_value_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_generated_help_names_the_key_and_shows_its_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overlay = write_config(tmp_path, {"training": {"batch_size": 6}})
    parser = _parser()
    parser.add_argument("--config", default="config/defaults.json")
    with pytest.raises(SystemExit):
        cli.run(lambda args: 0, parser, ["--config", str(overlay), "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: training.batch_size = 6)" in text
    assert "(default: training.optimizer = adamw)" in text
    assert "`" not in text


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("training", "learning_rate", "fast", "config key 'training.learning_rate' must be int/float, got \"fast\""),
    ("training", "max_samples", 1.5, "config key 'training.max_samples' must be int/null, got 1.5"),
    ("training", "group_by_length", 1, "config key 'training.group_by_length' must be bool, got 1"),
    ("training", "output_dir", None, "config key 'training.output_dir' must be str, got null"),
    ("alignment", "bf16", 3, "config key 'alignment.bf16' must be bool/str, got 3"),
    ("alignment", "bf16", "maybe", "config key 'alignment.bf16' must be true, false or \"always\", got \"maybe\""),
    ("training", "optimizer", "sgd", "config key 'training.optimizer' must be one of \"adamw\", \"muon\", got \"sgd\""),
])
def test_a_bad_value_in_a_config_file_is_one_line(tmp_path: Path, section: str, key: str, value: object,
                                                  message: str) -> None:
    path = write_config(tmp_path, {section: {key: value}})
    with pytest.raises(UserError) as exc:
        load_settings(path)
    assert str(exc.value) == f"{path}: {message}"
    assert "\n" not in str(exc.value)


def test_the_typed_loader_keeps_the_file_values(tmp_path: Path) -> None:
    loaded = load_settings(write_config(tmp_path, {"training": {"bf16": "always", "learning_rate": 1},
                                                   "alignment": {"max_pairs": 4}}))
    assert loaded.training.bf16 == "always" and loaded.training.learning_rate == 1
    assert loaded.alignment == dataclasses.replace(AlignmentSettings(), max_pairs=4)


def test_every_script_flag_for_a_key_is_generated() -> None:
    """Each config-key flag of a script has the key as dest and the generated help (the key named in it)."""
    import importlib.util

    for path in sorted(Path(settings.REPO_ROOT, "scripts").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        parser = module.build_parser()
        registry = parser.get_default("settings_flags") or {}
        for section, keys in registry.items():
            for key in keys:
                action = next(a for a in parser._actions if a.dest == key and a.help != argparse.SUPPRESS)
                assert f"(default: {section}.{key})" in action.help, (path.name, key)


# --- ranges ---------------------------------------------------------------------------------------------------

def _training_check(values: dict) -> None:
    from ast_distill.training.stage import training_settings

    training_settings(values)


def _alignment_check(values: dict) -> None:
    from ast_distill.alignment.dpo import dpo_settings

    dpo_settings(values)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("training", "batch_size", 0, "batch_size must be >= 1 (training settings)"),
    ("training", "max_seq_length", 8, "max_seq_length must be >= 16 tokens (training settings)"),
    ("training", "val_split", 1.0, "val_split must be in [0, 1) (training settings)"),
    ("training", "learning_rate", 0, "learning_rate must be > 0 (training settings)"),
    ("training", "max_minutes", -1, "max_minutes must be >= 0 (0 = no time budget) (training settings)"),
    ("training", "max_steps", 0, "max_steps must be > 0, or -1/null to use num_epochs (training settings)"),
    ("alignment", "batch_size", 0, "--batch-size must be >= 1 (alignment settings)"),
    ("alignment", "beta", 0.0, "--beta must be > 0 (alignment settings)"),
    ("alignment", "max_steps", 0, "--max-steps must be > 0, or -1/null for one pass (alignment settings)"),
    ("alignment", "save_steps", -1, "--save-steps must be >= 0 (0 = no checkpoint-N) (alignment settings)"),
])
def test_a_value_out_of_range_in_a_config_file_is_one_line_when_the_stage_resolves_it(
        tmp_path: Path, section: str, key: str, value: object, message: str) -> None:
    config = load_config(write_config(tmp_path, {section: {key: value}}))  # the loader checks types, not ranges
    check = _training_check if section == "training" else _alignment_check
    with pytest.raises(UserError) as exc:
        check(config[section])
    assert str(exc.value) == message


def test_the_stages_keep_their_other_range_rules() -> None:
    training = dataclasses.asdict(TrainingSettings())
    for steps in (-1, -5, None, 1):  # any negative (or null) max_steps means "use num_epochs"
        _training_check({**training, "max_steps": steps})
    with pytest.raises(UserError, match=r"^num_epochs must be > 0 \(training settings\)$"):
        _training_check({**training, "num_epochs": float("inf")})
    with pytest.raises(UserError, match=r"^backend must be one of auto, hf, unsloth \(training settings\)$"):
        _training_check({**training, "backend": "jax"})
    _alignment_check({**dataclasses.asdict(AlignmentSettings()), "max_steps": None})


@pytest.mark.parametrize(("values", "message"), [
    ({"batch_size": 0}, "--batch-size must be >= 1, got 0"),
    ({"max_new_tokens": -3}, "--max-new-tokens must be >= 1, got -3"),
    ({"temperature": -0.5}, "--temperature must be >= 0, got -0.5"),
    ({"top_p": 0.0}, "--top-p must be in (0, 1], got 0.0"),
    ({"top_p": 1.5}, "--top-p must be in (0, 1], got 1.5"),
])
def test_check_ranges_names_the_flag_and_the_value_by_default(values: dict, message: str) -> None:
    with pytest.raises(UserError) as exc:
        settings.check_ranges(EvaluationSettings, {**dataclasses.asdict(EvaluationSettings()), **values})
    assert str(exc.value) == message


def test_every_declared_range_holds_its_default() -> None:
    declared = 0
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.metadata["limits"] is not None:
                declared += 1
                assert f.metadata["limits"].allows(f.default), f"{name}.{f.name}"
        settings.check_ranges(cls, dataclasses.asdict(cls()))
    assert declared >= 20


def test_a_script_reports_a_value_out_of_range_as_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    monkeypatch.chdir(settings.REPO_ROOT)
    path = Path(settings.REPO_ROOT, "scripts", "report_training.py")
    spec = importlib.util.spec_from_file_location("script_report_training_ranges", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert cli.run(module.main, module.build_parser(), ["--examples-per-cause", "-1"]) == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: --examples-per-cause must be >= 0, got -1\n"


def _domain_specs(tmp_path: Path, **sizes: int) -> None:
    from ast_distill.dataset import generate_domain_specs
    from ast_distill.teachers.grammar import GrammarTeacher

    generate_domain_specs(teacher=GrammarTeacher(1), prompts_path=tmp_path / "prompts.jsonl",
                          **{"examples_per_schema": 3, "schemas_per_domain": 1, **sizes}, max_domains=None, seed=1,
                          retries=0, out=tmp_path / "d_01.jsonl", settings={})


def _schemas(tmp_path: Path, min_operators: int, max_operators: int) -> None:
    from ast_distill.dataset import build_schemas

    data = settings.REPO_ROOT / "data"
    build_schemas(specs_path=tmp_path / "d_01.jsonl", template_path=data / "base_schema_template.json",
                  catalog_path=data / "operator_catalog.json", min_operators=min_operators,
                  max_operators=max_operators, seed=1, out=tmp_path / "d_02.jsonl", settings={})


def _dataset(tmp_path: Path, samples_per_schema: int) -> None:
    from ast_distill.dataset import generate_dataset
    from ast_distill.teachers.grammar import GrammarTeacher

    generate_dataset(teacher=GrammarTeacher(1), schemas_path=tmp_path / "d_02.jsonl",
                     specs_path=tmp_path / "d_01.jsonl", samples_per_schema=samples_per_schema, seed=1,
                     out=tmp_path / "d_03.jsonl", checkpoint_path=None, checkpoint_every=5, resume=False,
                     concurrency=1, settings={})


def _fractions(heldout: float = 0.2, val: float = 0.05, pref: float = 0.15, test: float = 0.1) -> None:
    from ast_distill.corpus import check_fractions

    check_fractions(heldout, val, pref, test)


def _refusal_fraction(value: float) -> None:
    from ast_distill.teachers.base import check_refusal_fraction

    check_refusal_fraction(value)


def _pairs(max_pairs: int) -> None:
    from ast_distill.alignment import write_pairs

    write_pairs({"adapter": "sft", "max_pairs": max_pairs, "eval_results": "missing.jsonl"})


def _optimizer(**values: object) -> None:
    from ast_distill.student.optim import check_optimizer

    check_optimizer(values)


def _scheduler(**values: object) -> None:
    from ast_distill.training.trainer import scheduler_kwargs

    scheduler_kwargs(values)


@pytest.mark.parametrize(("check", "message"), [
    (lambda tmp: _domain_specs(tmp, examples_per_schema=-1), "examples_per_schema must be >= 0, got -1"),
    (lambda tmp: _domain_specs(tmp, schemas_per_domain=0), "schemas_per_domain must be >= 1, got 0"),
    (lambda tmp: _schemas(tmp, 0, 7), "min_operators must be >= 1, got 0"),
    (lambda tmp: _schemas(tmp, 5, 4), "min_operators (5) must be <= max_operators (4)"),
    (lambda tmp: _dataset(tmp, 0), "samples_per_schema must be >= 1, got 0"),
    (lambda tmp: _fractions(heldout=-0.1), "heldout_schema_fraction must be in [0, 1), got -0.1"),
    (lambda tmp: _fractions(test=1.0), "test_fraction must be in [0, 1), got 1.0"),
    (lambda tmp: _fractions(val=0.5, pref=0.3, test=0.2),
     "val_fraction + pref_fraction + test_fraction = 1 leaves no training rows; keep the sum below 1"),
    (lambda tmp: _refusal_fraction(1.5),
     "dataset_generation.refusal_fraction must be in [0, 1), got 1.5; fix the config"),
    (lambda tmp: _pairs(-1), "--max-pairs must be >= 0 (null = all), got -1"),
    (lambda tmp: _optimizer(optimizer="muon", muon_learning_rate=0),
     "training.muon_learning_rate is 0: give a rate > 0 (0.02 is Muon's usual one)"),
    (lambda tmp: _scheduler(lr_scheduler_type="cosine_with_min_lr", min_lr_rate=1.0),
     "training.min_lr_rate is 1.0: give a share of the peak learning rate in [0, 1)"),
    (lambda tmp: _scheduler(lr_scheduler_type="cosine", min_lr_rate=0.1),
     "training.min_lr_rate is 0.1 but lr_scheduler_type is 'cosine': the floor needs lr_scheduler_type "
     "'cosine_with_min_lr' (or set min_lr_rate to 0)"),
])
def test_a_stage_checks_the_declared_range_of_a_key_it_takes_as_an_argument(tmp_path: Path, check,
                                                                             message: str) -> None:
    with pytest.raises(UserError) as exc:
        check(tmp_path)
    assert str(exc.value) == message


@pytest.mark.parametrize(("key", "value", "message"), [
    ("muon_learning_rate", 0, "muon_learning_rate must be > 0 (training settings)"),
    ("min_lr_rate", 1.0, "min_lr_rate must be in [0, 1) (training settings)"),
])
def test_the_training_settings_check_the_optimizer_ranges_whatever_the_optimizer_and_scheduler(
        key: str, value: float, message: str) -> None:
    training = dataclasses.asdict(TrainingSettings())  # adamw, linear: the stage checks these keys only when used
    with pytest.raises(UserError) as exc:
        _training_check({**training, key: value})
    assert str(exc.value) == message
    _optimizer(optimizer="adamw", muon_learning_rate=0)  # an unused Muon rate does not stop the optimizer check
