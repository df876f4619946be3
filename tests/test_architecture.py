"""The module boundaries AGENTS.md describes, checked on the source: stages sit on top, lower modules never
import a stage, stages import each other only where one builds on the other, no module reaches into another's
private names, and no module grows past ~500 lines."""
from __future__ import annotations

import ast
from pathlib import Path

from ast_distill.config import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "ast_distill"
# The stages: each turns files into files. Everything else is a library they share.
STAGES = {"dataset", "corpus", "training", "evaluation", "predict", "alignment", "reporting", "benchmark",
          "export", "gate", "sweep", "trainings"}
# A stage may build on another only here (what and why).
STAGE_DEPENDENCIES = {
    ("training", "corpus"),  # SFT records the schema_format its corpus was rendered with
    ("evaluation", "predict"),  # evaluation loads and runs the student as predict does
    ("sweep", "evaluation"),  # each checkpoint is scored by the evaluation stage on the val rows
    ("alignment", "training"),  # DPO tokenizes its pairs as SFT does its rows
    ("alignment", "dataset"), ("alignment", "corpus"),  # boost rows are made as stage 3 makes rows, rendered as stage 4
    ("export", "alignment"),  # by default the export ships the student alignment chose
    ("trainings", "alignment"),  # a training's student is the one alignment chose
    ("export", "predict"), ("export", "evaluation"),  # the export is checked on d_05 rows as evaluation picks them
    ("benchmark", "dataset"), ("benchmark", "evaluation"), ("benchmark", "predict"), ("benchmark", "training"),
}
MAX_LINES = 500
LONGER_MODULES: dict[str, str] = {  # module -> why it may be longer
    "settings.sections": "the data: every config key of the pipeline once, with its type, default, help and range",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Package-relative names of the project modules (and their members) a file imports, anywhere in it."""
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("ast_distill"):
                target = node.module.removeprefix("ast_distill").lstrip(".")
            else:
                continue
            found.update(f"{target}.{a.name}".lstrip(".") for a in node.names)
            found.add(target)
    return {name for name in found if name}


def top_level(name: str) -> str:
    return name.split(".")[0]


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_lower_modules_never_import_a_stage_and_stages_only_build_on_the_listed_ones() -> None:
    wrong = []
    for path in sources():
        own = top_level(module_name(path))
        for target in {top_level(t) for t in imported_modules(path)} & STAGES - {own}:
            if own not in STAGES or (own, target) not in STAGE_DEPENDENCIES:
                wrong.append(f"{module_name(path)} imports the stage {target}")
    assert wrong == []


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = []
    for path in sources():
        for name in imported_modules(path):
            if name.rsplit(".", 1)[-1].startswith("_") and not name.rsplit(".", 1)[-1].startswith("__"):
                wrong.append(f"{module_name(path)} imports {name}")
    assert wrong == []


def private_attribute_uses(path: Path) -> list[str]:
    """`module._name` where `module` is a project module this file imported (``from . import module``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    project_modules = {p.stem for p in sources()} | {p.parent.name for p in sources()}
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and (node.level or (node.module or "").startswith("ast_distill")) for alias in node.names
               if alias.name in project_modules}
    return [f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
            and node.attr.startswith("_") and not node.attr.startswith("__")]


def test_no_module_reads_a_private_name_of_another_module() -> None:
    wrong = {module_name(p): uses for p in sources() if (uses := private_attribute_uses(p))}
    assert wrong == {}


def test_modules_stay_short_or_say_why() -> None:
    long = {module_name(p): n for p in sources()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(long) <= set(LONGER_MODULES), f"over {MAX_LINES} lines with no stated reason: {long}"
