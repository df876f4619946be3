"""A trimmed vocabulary (student/trim.py): fewer tokens, the same pieces for the run's texts, the same logits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ast_distill.errors import UserError
from ast_distill.student.bases import MADE_BY
from ast_distill.student.trim import ensure_trimmed_base, merge_closure
from ast_distill.training.data import vocabulary_texts
from ast_distill.training.stage import trimmed_base
from helpers import OTHER_TEXTS, make_tiny_corpus, make_tiny_sentencepiece_base, make_tiny_student


def test_merge_closure_keeps_every_piece_a_kept_piece_is_merged_from() -> None:
    vocabulary = {"a", "b", "c", "ab", "bc", "abc", "zz"}
    assert merge_closure({"abc"}, vocabulary) == {"abc", "ab", "bc", "a", "b", "c"}


@pytest.fixture
def trimmed(tmp_path: Path) -> tuple[str, Path, list[str]]:
    base = make_tiny_sentencepiece_base(tmp_path)
    texts = vocabulary_texts(AutoTokenizer.from_pretrained(base), make_tiny_corpus(24))
    return base, ensure_trimmed_base(base, tmp_path / "run", texts, 8, log=lambda _: None), texts


def test_the_trimmed_tokenizer_keeps_fewer_tokens_and_encodes_the_texts_to_the_same_pieces(trimmed) -> None:
    base, folder, texts = trimmed
    full, small = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(str(folder))
    assert len(small) < len(full)
    for text in texts:
        assert full.convert_ids_to_tokens(full(text, add_special_tokens=False)["input_ids"]) == \
            small.convert_ids_to_tokens(small(text, add_special_tokens=False)["input_ids"])
    assert small("x")["input_ids"][0] == small.bos_token_id == 2  # it adds <bos> itself, as Gemma's does
    # words the run never used are still written, from smaller pieces or bytes
    assert small.decode(small(OTHER_TEXTS[1], add_special_tokens=False)["input_ids"]) == OTHER_TEXTS[1]
    assert small.chat_template == full.chat_template


def test_the_trimmed_model_loads_with_plain_transformers_and_keeps_the_logits_of_kept_tokens(trimmed) -> None:
    base, folder, texts = trimmed
    full_tok, small_tok = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(str(folder))
    full_model = AutoModelForCausalLM.from_pretrained(base).eval()
    small_model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    assert small_model.get_output_embeddings().weight.shape[0] == len(small_tok) < len(full_tok)
    kept = full_tok.convert_tokens_to_ids(small_tok.convert_ids_to_tokens(list(range(len(small_tok)))))
    with torch.inference_mode():
        want = full_model(**full_tok(texts[0], return_tensors="pt")).logits[..., kept]
        got = small_model(**small_tok(texts[0], return_tensors="pt")).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    stops = small_model.generation_config.eos_token_id
    assert set(small_tok.convert_ids_to_tokens(stops)) == {"<eos>", "<end_of_turn>"}


def test_a_trimmed_base_is_reused_for_the_same_texts_and_other_texts_get_their_own(trimmed) -> None:
    base, folder, texts = trimmed
    built: list[str] = []
    assert folder.parent.name == "run" and folder.name.startswith("base-trimmed-")
    assert ensure_trimmed_base(base, folder.parent, texts, 8, log=built.append) == folder and built == []
    other = ensure_trimmed_base(base, folder.parent, texts[:-1], 8, log=built.append)
    assert len(built) == 1 and other != folder
    assert json.loads((other / MADE_BY).read_text(encoding="utf-8"))["texts"] == len(texts) - 1
    assert (folder / MADE_BY).is_file()  # the base an earlier adapter names is still there


def test_trimming_a_base_without_a_sentencepiece_model_is_one_line(tmp_path: Path) -> None:
    cfg = {"base_model": make_tiny_student(tmp_path), "output_dir": str(tmp_path / "run"), "trim_vocabulary": 100}
    with pytest.raises(UserError, match="trim_vocabulary") as caught:
        trimmed_base(cfg, make_tiny_corpus(4), [], print)
    assert "\n" not in str(caught.value)
