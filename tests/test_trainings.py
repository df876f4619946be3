"""Named trainings: every output under outputs/<name>/, two trainings apart, --name on scripts and runners."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ast_distill import trainings
from ast_distill.config import REPO_ROOT
from ast_distill.errors import UserError
from ast_distill.settings import load_settings
from ast_distill.settings.loader import TRAININGS_ROOT_ENV

SMART_HOME = REPO_ROOT / "data" / "examples" / "smart_home.schema.json"
DATASET_STAGES = ("generate_domain_specs", "build_schemas", "generate_dataset", "build_training_corpus")
TODO_SCHEMA = {"title": "TodoItem", "type": "object", "required": ["title", "priority"], "additionalProperties": False,
               "properties": {"title": {"type": "string", "maxLength": 30},
                              "priority": {"enum": ["low", "normal", "urgent"]},
                              "due": {"type": "string", "format": "date"}}}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "trainings"
    monkeypatch.setenv(TRAININGS_ROOT_ENV, str(folder))
    return folder


def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"teacher": {"backend": "grammar"},
                                "dataset_generation": {"samples_per_user_schema": 40, "val_fraction": 0.1,
                                                       "pref_fraction": 0.1, "test_fraction": 0.2}}))
    return path


def run_script(stage: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / f"{stage}.py"), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_name_moves_every_output_path_under_its_folder(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "named.json"
    config.write_text(json.dumps({"run": {"name": "shop"}, "training": {"output_dir": "/elsewhere/run"}}))
    settings = load_settings(config).as_dict()
    paths = [v for section in settings.values() for v in section.values() if isinstance(v, str)
             and ("outputs" in v or str(root) in v)]
    assert paths and all(p.startswith(str(root / "shop") + "/") for p in paths), paths
    assert settings["training"]["output_dir"] == "/elsewhere/run"  # a path outside outputs/ is the user's choice
    unnamed = load_settings(None).as_dict()
    assert unnamed["dataset_generation"]["dataset_out"] == "outputs/d_03_dataset.jsonl"  # no name: today's layout


@pytest.mark.parametrize("name", ["../up", "a b", "", "logs", "-x"])
def test_a_bad_training_name_is_one_line(root: Path, name: str) -> None:
    with pytest.raises(UserError, match="training name"):
        trainings.prepare(name, str(REPO_ROOT / "config" / "offline.json"))


def test_prepare_copies_the_schema_and_keeps_it_when_the_config_changes(root: Path, tmp_path: Path) -> None:
    config = small_config(tmp_path)
    made = trainings.prepare("home", str(config), [str(SMART_HOME)])
    settings = load_settings(made).as_dict()
    [copy] = settings["dataset_generation"]["user_schemas"]
    assert Path(copy) == root / "home" / "schemas" / SMART_HOME.name
    assert json.loads(Path(copy).read_text()) == json.loads(SMART_HOME.read_text())
    assert settings["dataset_generation"]["samples_per_user_schema"] == 40
    trainings.prepare("home", str(REPO_ROOT / "config" / "offline.json"))  # another config, no --schema
    assert load_settings(made).dataset_generation.user_schemas == [copy]
    assert trainings.prepare("home") == made  # neither: the training as it is
    with pytest.raises(UserError, match="no training named 'other'"):
        trainings.prepare("other")
    fresh = load_settings(trainings.prepare("other", schemas=[str(SMART_HOME)]))  # a schema alone: the defaults
    assert fresh.teacher.backend == "ollama" and fresh.dataset_generation.user_schemas


def test_a_bad_schema_stops_prepare_before_anything_is_written(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "integer", "minimum": 5, "maximum": 1}')
    done = subprocess.run([sys.executable, "-m", "ast_distill.trainings", "prepare", "--name", "x", "--schema",
                           str(bad), "--config", str(small_config(tmp_path))], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=dict(os.environ))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "admits no value" in done.stderr
    assert not (root / "x").exists()


def test_two_named_trainings_do_not_touch_each_others_files(root: Path, tmp_path: Path) -> None:
    todo = tmp_path / "todo.json"
    todo.write_text(json.dumps(TODO_SCHEMA))
    trainings.prepare("home", str(small_config(tmp_path)), [str(SMART_HOME)])
    trainings.prepare("todo", str(small_config(tmp_path)), [str(todo)])
    for stage in DATASET_STAGES:
        done = run_script(stage, "--name", "home")
        assert done.returncode == 0, done.stderr[-2000:]
    home = files_under(root / "home")
    assert {"d_01_domain_specs.jsonl", "d_03_dataset.jsonl", "d_05_test_set.jsonl"} <= set(home)
    for stage in DATASET_STAGES:
        done = run_script(stage, "--name", "todo")
        assert done.returncode == 0, done.stderr[-2000:]
    assert files_under(root / "home") == home  # byte for byte
    rows = [json.loads(line) for line in (root / "todo" / "d_03_dataset.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all("priority" in r["ast"] or r["kind"] == "refusal" for r in rows)
    assert sorted(p.name for p in root.iterdir()) == ["home", "todo"]
    listing = trainings.listing()
    assert "home: schema" in listing and "todo: schema" in listing and "not evaluated yet" in listing


def test_name_and_config_together_or_an_unknown_name_are_one_line(root: Path, tmp_path: Path) -> None:
    done = run_script("build_schemas", "--name", "nope")
    assert done.returncode == 2 and "no training named 'nope'" in done.stderr and done.stderr.count("\n") == 1
    trainings.prepare("home", str(small_config(tmp_path)), [str(SMART_HOME)])
    done = run_script("build_schemas", "--name", "home", "--config", "config/offline.json")
    assert done.returncode == 2 and "not both" in done.stderr


def test_runner_rejects_a_schema_without_a_name(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(REPO_ROOT / "runAll.sh"), "--schema", str(SMART_HOME)], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 2 and "--schema needs --name" in done.stderr
